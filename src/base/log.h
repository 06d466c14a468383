/* SPDX-License-Identifier: MIT */
/* Logging: one line per event, text or JSON, to stderr or a user sink.
 * Never pass argument, kwargs or result data to these functions: they may
 * hold secrets, and this module cannot tell a value from a message, so
 * keeping them out is the caller's duty. */
#ifndef OMNIQ_BASE_LOG_H
#define OMNIQ_BASE_LOG_H

#include "omniq.h"

typedef struct omniq__log {
  int level;        /* lines below it are dropped */
  int format;       /* omniq_log_format_t */
  omniq_log_fn fn;  /* NULL = stderr */
  void *userdata;
  const omniq_settings_t *clock; /* time source for the timestamp; may be NULL */
} omniq__log_t;

void omniq__log_init(omniq__log_t *lg, const omniq_settings_t *s);
/* Logs event (a dotted name such as "task.enqueued") for task_id (may be
 * NULL) with a printf-style message (may be NULL). Thread-safe. */
void omniq__log(const omniq__log_t *lg, int level, const char *event, const char *task_id,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Level and format names for settings parsing: OMNIQ_EINVAL if unknown. */
int omniq__log_level_parse(const char *name, int *level);
const char *omniq__log_level_name(int level);

#endif
