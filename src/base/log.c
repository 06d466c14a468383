/* SPDX-License-Identifier: MIT */
/* Logging: one line per lifecycle event, as text or as a JSON object, to
 * stderr or to the user's sink.
 *
 *   text: 2026-11-26T09:07:24.123Z INFO task.enqueued id=<id> <msg>
 *   json: {"ts":"2026-11-26T09:07:24.123Z","level":"INFO","event":"task.enqueued",
 *          "task_id":"<id>","msg":"<msg>"}      (task_id left out when there is none)
 *
 * What goes in: event names and short messages written by the library. Never
 * task arguments, kwargs or results: they may hold secrets or personal data,
 * and a log is kept and shipped with far less care than the store. Callers
 * own that rule; this module cannot tell a value from a message.
 *
 * Threads: a line is formatted entirely in the calling thread's stack buffer
 * and handed over in one call, so lines from several threads never mix. The
 * user sink is called without a lock (omniq_log_fn says it may run on several
 * threads at once); stderr is written with one fwrite under `stderr_lock`, so
 * two of our lines can never interleave even if stderr was made buffered.
 *
 * The text form stays one line: control characters in the message become
 * spaces. The JSON form is built with jansson, so quotes, backslashes and
 * newlines are escaped; bytes that are not UTF-8 become '?', since jansson
 * refuses them and a log line is worth more than the exact byte. A line that
 * cannot be built as JSON (out of memory) falls back to the text form rather
 * than vanish. */
#include "base/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/clock.h"

#define MSG_SIZE 1024
#define LINE_SIZE 2048

static pthread_mutex_t stderr_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct {
  int level;
  const char *name;
} levels[] = {{OMNIQ_LOG_DEBUG, "DEBUG"},
              {OMNIQ_LOG_INFO, "INFO"},
              {OMNIQ_LOG_WARNING, "WARNING"},
              {OMNIQ_LOG_ERROR, "ERROR"}};

#define NLEVELS (sizeof levels / sizeof levels[0])

int omniq__log_level_parse(const char *name, int *level) {
  for (size_t i = 0; name != NULL && i < NLEVELS; i++)
    if (strcasecmp(name, levels[i].name) == 0) {
      *level = levels[i].level;
      return OMNIQ_OK;
    }
  return OMNIQ_EINVAL;
}

const char *omniq__log_level_name(int level) {
  for (size_t i = 0; i < NLEVELS; i++)
    if (levels[i].level == level) return levels[i].name;
  return "UNKNOWN";
}

void omniq__log_init(omniq__log_t *lg, const omniq_settings_t *s) {
  if (lg == NULL) return;
  lg->level = s != NULL ? s->log_level : OMNIQ_DEFAULT_LOG_LEVEL;
  lg->format = s != NULL ? s->log_format : OMNIQ_DEFAULT_LOG_FORMAT;
  lg->fn = s != NULL ? s->log_fn : NULL;
  lg->userdata = s != NULL ? s->log_userdata : NULL;
  lg->clock = s;
}

/* ---- the two line forms ---------------------------------------------------- */

/* Writes the text line into buf (LINE_SIZE bytes) and returns its length. */
static size_t text_line(char *buf, const char *ts, const char *level, const char *event,
                        const char *task_id, const char *msg) {
  /* LINE_SIZE - 1 keeps two bytes after the text for emit's newline. */
  int n = snprintf(buf, LINE_SIZE - 1, "%s %s %s%s%s%s%s", ts, level, event,
                   task_id != NULL ? " id=" : "", task_id != NULL ? task_id : "",
                   msg[0] != '\0' ? " " : "", msg);
  size_t len = n < 0 ? 0 : (size_t)n < LINE_SIZE - 2 ? (size_t)n : LINE_SIZE - 2;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) buf[i] = ' ';
  return len;
}

/* A JSON string for s; bytes of a string that is not valid UTF-8 are
 * replaced by '?' so the line can still be written. */
static json_t *text_json(const char *s) {
  json_t *j = json_string(s);
  if (j == NULL) {
    char *copy = omniq__strdup(s);
    if (copy == NULL) return NULL;
    for (char *p = copy; *p != '\0'; p++)
      if ((unsigned char)*p >= 0x80) *p = '?';
    j = json_string(copy);
    omniq__free(copy);
  }
  return j;
}

/* Builds the JSON line. Returns its length, with the text in buf when it fits
 * (leaving room for a newline) or in *heap (yours: omniq__free) when not;
 * 0 when the object could not be built. */
static size_t json_line(char *buf, char **heap, const char *ts, const char *level,
                        const char *event, const char *task_id, const char *msg) {
  const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
  json_t *j = json_object();
  size_t len = 0;
  int failed = j == NULL || json_object_set_new(j, "ts", json_string(ts)) ||
               json_object_set_new(j, "level", json_string(level)) ||
               json_object_set_new(j, "event", text_json(event)) ||
               (task_id != NULL && json_object_set_new(j, "task_id", text_json(task_id))) ||
               json_object_set_new(j, "msg", text_json(msg));
  if (!failed) len = json_dumpb(j, buf, LINE_SIZE - 2, flags);
  if (len > LINE_SIZE - 2) {
    /* A long message with many escapes: build it once more at full size. */
    *heap = omniq__malloc(len + 2);
    if (*heap == NULL || json_dumpb(j, *heap, len, flags) != len) len = 0;
  }
  json_decref(j);
  return len;
}

/* Hands one finished line (len bytes, with two spare bytes after it) to the
 * sink. */
static void emit(const omniq__log_t *lg, int level, char *line, size_t len) {
  if (lg->fn != NULL) {
    line[len] = '\0';
    lg->fn(lg->userdata, level, line);
    return;
  }
  line[len] = '\n';
  line[len + 1] = '\0';
  pthread_mutex_lock(&stderr_lock);
  fwrite(line, 1, len + 1, stderr);
  fflush(stderr);
  pthread_mutex_unlock(&stderr_lock);
}

void omniq__log(const omniq__log_t *lg, int level, const char *event, const char *task_id,
                const char *fmt, ...) {
  char msg[MSG_SIZE], ts[OMNIQ__ISO_SIZE], buf[LINE_SIZE];
  char *heap = NULL;
  const char *name;
  size_t len = 0;

  /* First, before anything is named or zeroed: the engine logs each task
   * it enqueues and finishes, and below the level that must cost nothing. */
  if (lg == NULL || level < lg->level) return;
  name = omniq__log_level_name(level);
  msg[0] = '\0';
  if (fmt != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  if (event == NULL) event = "";
  omniq__iso8601(omniq__now(lg->clock), ts);
  if (lg->format == OMNIQ_LOG_JSON)
    len = json_line(buf, &heap, ts, name, event, task_id, msg);
  if (len == 0) {
    omniq__free(heap);
    heap = NULL;
    len = text_line(buf, ts, name, event, task_id, msg);
  }
  emit(lg, level, heap != NULL ? heap : buf, len);
  omniq__free(heap);
}
