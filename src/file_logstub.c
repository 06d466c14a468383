/* Temporary stand-in for log.c until it is merged; deleted then. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

void omniq__log_init(omniq__log_t *lg, const omniq_settings_t *s) {
  lg->level = s->log_level;
  lg->format = s->log_format;
  lg->fn = s->log_fn;
  lg->userdata = s->log_userdata;
  lg->clock = s;
}

void omniq__log(const omniq__log_t *lg, int level, const char *event, const char *task_id,
                const char *fmt, ...) {
  char msg[1024], line[1200];
  va_list ap;
  if (level < lg->level) return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(line, sizeof line, "%s id=%s %s", event, task_id ? task_id : "-", msg);
  if (lg->fn != NULL)
    lg->fn(lg->userdata, level, line);
  else
    fprintf(stderr, "%s\n", line);
}

/* Likewise for settings.c: tests/helpers.c needs it to link. */
__attribute__((weak)) void omniq_settings_init(omniq_settings_t *s) {
  *s = (omniq_settings_t){0};
  s->fsync = 1;
  s->lease_ms = OMNIQ_DEFAULT_LEASE_MS;
}
