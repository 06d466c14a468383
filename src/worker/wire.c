/* SPDX-License-Identifier: MIT */
/* The frames between a pool and its handler processes; see wire.h.
 *
 * Task frame:   "OQT1" | attempts i32 | deadline_ms i64 | limits 3 x i64 |
 *               len(func, args, kwargs) 3 x u32 | id[OMNIQ_ID_SIZE] |
 *               func NUL args NUL kwargs NUL
 * Report frame: "OQR3" | kind u8 | retryable u8 | has_value u8 | note u8 |
 *               len(value, error_type, message) 3 x u32 | the bytes
 *
 * The NULs in a task frame let the child point the task's strings into the
 * frame's body instead of copying them. A report's strings are copied by
 * the pool when it applies them, so they carry no NUL. A note is a report
 * header with note = 1 and no strings, small enough for one write() from a
 * signal handler. */
#include "worker/wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"

#define TASK_MAGIC "OQT1"
#define REPORT_MAGIC "OQR3"
#define STRING_MAX (1u << 30)

typedef struct task_hdr {
  char magic[4];
  int32_t attempts;
  int64_t deadline_ms;
  int64_t limits[3]; /* memory_bytes, cpu_ms, files */
  uint32_t len[3];   /* func, args, kwargs */
  char id[OMNIQ_ID_SIZE];
} task_hdr_t;

typedef struct report_hdr {
  char magic[4];
  uint8_t kind, retryable, has_value, note;
  uint32_t len[3]; /* value, error_type, message */
} report_hdr_t;

_Static_assert(sizeof(report_hdr_t) == OMNIQ__WIRE_NOTE_SIZE, "a note is one report header");

/* ---- buffers ------------------------------------------------------------- */

int omniq__buf_append(omniq__buf_t *b, const void *p, size_t n, size_t max) {
  if (n > max || b->len > max - n) return -1;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = omniq__realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void omniq__buf_consume(omniq__buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void omniq__buf_free(omniq__buf_t *b) {
  omniq__free(b->data);
  *b = (omniq__buf_t){0};
}

/* ---- task frames --------------------------------------------------------- */

int omniq__wire_task_encode(omniq__buf_t *out, const omniq_task_t *t, int64_t deadline_ms,
                            const omniq__limits_t *limits) {
  const char *s[3] = {t->func, t->args ? t->args : "[]", t->kwargs ? t->kwargs : "{}"};
  task_hdr_t h;
  memset(&h, 0, sizeof h); /* no stray padding bytes on the wire */
  memcpy(h.magic, TASK_MAGIC, 4);
  h.attempts = t->attempts;
  h.deadline_ms = deadline_ms;
  h.limits[0] = limits->memory_bytes;
  h.limits[1] = limits->cpu_ms;
  h.limits[2] = limits->files;
  memcpy(h.id, t->id, OMNIQ_ID_SIZE);
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(s[i]);
    if (n >= STRING_MAX) return OMNIQ_EINVAL;
    h.len[i] = (uint32_t)n;
  }
  out->len = 0;
  if (omniq__buf_append(out, &h, sizeof h, SIZE_MAX) != 0) return OMNIQ_ENOMEM;
  for (int i = 0; i < 3; i++)
    if (omniq__buf_append(out, s[i], (size_t)h.len[i] + 1, SIZE_MAX) != 0) return OMNIQ_ENOMEM;
  return OMNIQ_OK;
}

/* 1 = n bytes read; 0 = EOF before the first byte; -1 = error or EOF
 * inside. */
static int read_full(int fd, void *p, size_t n) {
  char *c = p;
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, c + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r == 0 && got == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

int omniq__wire_task_read(int fd, omniq__wire_task_t *out) {
  task_hdr_t h;
  memset(out, 0, sizeof *out);
  int rc = read_full(fd, &h, sizeof h);
  if (rc <= 0) return rc;
  if (memcmp(h.magic, TASK_MAGIC, 4) != 0 || h.id[OMNIQ_ID_SIZE - 1] != '\0') return -1;
  size_t total = 0;
  for (int i = 0; i < 3; i++) {
    if (h.len[i] >= STRING_MAX) return -1;
    total += (size_t)h.len[i] + 1;
  }
  char *body = omniq__malloc(total);
  if (body == NULL || read_full(fd, body, total) != 1) {
    omniq__free(body);
    return -1;
  }
  char *s[3];
  size_t at = 0;
  for (int i = 0; i < 3; i++) {
    s[i] = body + at;
    at += (size_t)h.len[i] + 1;
    if (s[i][h.len[i]] != '\0') {
      omniq__free(body);
      return -1;
    }
  }
  memcpy(out->task.id, h.id, OMNIQ_ID_SIZE);
  out->task.func = s[0];
  out->task.args = s[1];
  out->task.kwargs = s[2];
  out->task.attempts = h.attempts;
  out->deadline_ms = h.deadline_ms;
  out->limits = (omniq__limits_t){h.limits[0], h.limits[1], h.limits[2]};
  out->body = body;
  return 1;
}

void omniq__wire_task_free(omniq__wire_task_t *t) {
  omniq__free(t->body);
  t->body = NULL;
}

/* ---- report frames ------------------------------------------------------- */

static int send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL); /* a vanished pool is EPIPE, not SIGPIPE */
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int omniq__wire_report_write(int fd, const omniq__run_report_t *r) {
  int ok = r->kind == OMNIQ__RUN_OK;
  const char *parts[3] = {ok ? r->value : NULL, ok ? NULL : r->error_type,
                          ok ? NULL : r->message};
  report_hdr_t h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, REPORT_MAGIC, 4);
  h.kind = (uint8_t)r->kind;
  h.retryable = (uint8_t)(r->retryable != 0);
  h.has_value = (uint8_t)(ok && r->value != NULL);
  int too_large = 0;
  for (int i = 0; i < 3; i++) {
    size_t n = parts[i] ? strlen(parts[i]) : 0;
    if (n > OMNIQ__WIRE_RESULT_MAX) {
      n = OMNIQ__WIRE_RESULT_MAX + 1; /* the header alone tells the pool */
      too_large = 1;
    }
    h.len[i] = (uint32_t)n;
  }
  if (send_all(fd, &h, sizeof h) != 0 || too_large) return -1;
  for (int i = 0; i < 3; i++)
    if (h.len[i] > 0 && send_all(fd, parts[i], h.len[i]) != 0) return -1;
  return 0;
}

void omniq__wire_note(omniq__run_kind_t kind, char out[OMNIQ__WIRE_NOTE_SIZE]) {
  report_hdr_t h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, REPORT_MAGIC, 4);
  h.kind = (uint8_t)kind;
  h.note = 1;
  memcpy(out, &h, sizeof h);
}

/* The kinds a child reports itself; everything else (a crash, a timeout, a
 * CPU limit) is seen by the pool. */
static int child_kind(int kind, int note) {
  if (kind == OMNIQ__RUN_MEMORY_LIMIT || kind == OMNIQ__RUN_FILE_LIMIT) return 1;
  return !note && (kind == OMNIQ__RUN_OK || kind == OMNIQ__RUN_HANDLER_FAILED ||
                   kind == OMNIQ__RUN_HANDLER_ERROR || kind == OMNIQ__RUN_NO_HANDLER);
}

int omniq__wire_report_parse(const omniq__buf_t *b, omniq__wire_report_t *r, size_t *used) {
  report_hdr_t h;
  if (b->len < sizeof h) return 0;
  memcpy(&h, b->data, sizeof h);
  if (memcmp(h.magic, REPORT_MAGIC, 4) != 0 || h.note > 1 || !child_kind(h.kind, h.note))
    return -1;
  size_t total = sizeof h;
  for (int i = 0; i < 3; i++) {
    if (h.note && h.len[i] != 0) return -1;
    if (h.len[i] > OMNIQ__WIRE_RESULT_MAX) return -2;
    total += h.len[i];
  }
  if (b->len < total) return 0;
  memset(r, 0, sizeof *r);
  r->note = h.note;
  r->kind = (omniq__run_kind_t)h.kind;
  r->retryable = h.retryable != 0;
  r->has_value = h.has_value != 0;
  const char *p = b->data + sizeof h;
  for (int i = 0; i < 3; i++) {
    r->str[i] = p;
    r->len[i] = h.len[i];
    p += h.len[i];
  }
  *used = total;
  return 1;
}
