/* SPDX-License-Identifier: MIT */
/* Task records of the file backend (see record.h for the forms). */
#include "storage/file/record.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define COMMIT_KEY ",\"commit_result\":"

/* 1 if s is NULL or well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), which is what JSON text can carry. */
static int utf8_ok(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (p != NULL && *p) {
    unsigned c = *p++, lo = 0x80, hi = 0xBF;
    int n;
    if (c < 0x80) continue;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return 0;
    }
    for (int i = 0; i < n; i++, p++) {
      if (*p < (i == 0 ? lo : 0x80) || *p > (i == 0 ? hi : 0xBF)) return 0;
    }
  }
  return 1;
}

static int error_utf8_ok(const omniq_task_error_t *e) {
  return e == NULL || (utf8_ok(e->error_type) && utf8_ok(e->message) && utf8_ok(e->traceback));
}

/* Why an encoding failed: jansson refuses text that is not UTF-8, and
 * otherwise only runs out of memory. */
static int encode_failure(const omniq_task_t *t, const omniq_result_t *r, char *err,
                          size_t errlen) {
  if (utf8_ok(t->func) && utf8_ok(t->queue) && utf8_ok(t->args) && utf8_ok(t->kwargs) &&
      error_utf8_ok(t->last_error) &&
      (r == NULL || (utf8_ok(r->value) && error_utf8_ok(r->error)))) {
    snprintf(err, errlen, "file store: out of memory writing task %s", t->id);
    return OMNIQ_ENOMEM;
  }
  snprintf(err, errlen,
           "file store: task %s holds bytes that are not UTF-8; the file backend stores "
           "JSON text only",
           t->id);
  return OMNIQ_ESERIALIZE;
}

static int instant_ok(int64_t ms) { return ms >= 0 && ms <= OMNIQ_TIME_MAX_MS; }

static int error_instants_ok(const omniq_task_error_t *e) {
  return e == NULL || instant_ok(e->timestamp);
}

/* Times are written as ISO-8601 text with a four-digit year: an instant
 * outside [0, OMNIQ_TIME_MAX_MS] would be written in a form that does not
 * read back, so it is refused here rather than lost to quarantine later.
 * The engine never asks for one (omniq.h, Limits). */
static int instants_ok(const omniq_task_t *t, const omniq_result_t *r) {
  return instant_ok(t->eta_ms) && instant_ok(t->created_at_ms) && instant_ok(t->started_at_ms) &&
         instant_ok(t->finished_at_ms) && instant_ok(t->lease_until_ms) &&
         error_instants_ok(t->last_error) &&
         (r == NULL || (instant_ok(r->finished_at_ms) && instant_ok(r->last_attempt_at_ms) &&
                        error_instants_ok(r->error)));
}

int omniq__frec_encode(omniq__frec_t *rec, const omniq_task_t *t, const omniq_result_t *r,
                       char *err, size_t errlen) {
  memset(rec, 0, sizeof *rec);
  if (!instants_ok(t, r)) {
    snprintf(err, errlen,
             "file store: task %s: a time is outside 1970-01-01T00:00:00.000Z to "
             "9999-12-31T23:59:59.999Z, the instants a store keeps; nothing written",
             t->id);
    return OMNIQ_EINVAL;
  }
  rec->task = omniq_task_to_json(t);
  if (r != NULL) rec->result = omniq_result_to_json(r);
  if (rec->task == NULL || (r != NULL && rec->result == NULL)) {
    omniq__frec_free(rec);
    return encode_failure(t, r, err, errlen);
  }
  rec->task_len = strlen(rec->task);
  rec->result_len = rec->result != NULL ? strlen(rec->result) : 0;
  rec->runs = -1;
  return OMNIQ_OK;
}

void omniq__frec_free(omniq__frec_t *rec) {
  omniq__free(rec->task);
  omniq__free(rec->result);
  memset(rec, 0, sizeof *rec);
}

/* The pieces of a form; returns how many. A task's JSON is one compact
 * object, so the slot opens it up before its closing brace. rec is not
 * const: the slot's "commit_runs" text is made in it. */
static int pieces(omniq__frec_t *rec, omniq__frec_form_t form, struct iovec iov[5]) {
  static char nl[] = "\n", key[] = COMMIT_KEY, close_nl[] = "}\n";
  int n = 0;
  if (form == OMNIQ__FREC_RESULT) {
    iov[0] = (struct iovec){rec->result, rec->result_len};
    iov[1] = (struct iovec){nl, 1};
    return 2;
  }
  if (form == OMNIQ__FREC_SLOT && (rec->result != NULL || rec->runs >= 0)) {
    iov[n++] = (struct iovec){rec->task, rec->task_len - 1};
    if (rec->result != NULL) {
      iov[n++] = (struct iovec){key, sizeof key - 1};
      iov[n++] = (struct iovec){rec->result, rec->result_len};
    }
    if (rec->runs >= 0) {
      int len = snprintf(rec->runs_text, sizeof rec->runs_text, ",\"commit_runs\":%d", rec->runs);
      iov[n++] = (struct iovec){rec->runs_text, (size_t)len};
    }
    iov[n++] = (struct iovec){close_nl, 2};
    return n;
  }
  iov[0] = (struct iovec){rec->task, rec->task_len};
  iov[1] = (struct iovec){nl, 1};
  return 2;
}

int omniq__frec_write(const omniq__fio_t *io, int dirfd, const char *name,
                      const omniq__frec_t *rec, omniq__frec_form_t form, char *err,
                      size_t errlen) {
  omniq__frec_t r = *rec; /* the pieces point into this copy and rec */
  struct iovec iov[5];
  int n = pieces(&r, form, iov);
  return omniq__fio_writev(io, dirfd, name, iov, n, err, errlen);
}

int omniq__frec_write_slot(const omniq__fio_t *io, int running_fd, const char *name,
                           const omniq__frec_t *rec, char *err, size_t errlen) {
  char tmp[OMNIQ__TMP_NAME_SIZE];
  int rc = omniq__frec_stage(io, rec, OMNIQ__FREC_TASK, tmp, err, errlen);
  return rc == OMNIQ_OK ? omniq__fio_replace(io, tmp, running_fd, name, err, errlen) : rc;
}

int omniq__frec_stage(const omniq__fio_t *io, const omniq__frec_t *rec, omniq__frec_form_t form,
                      char tmp_name[OMNIQ__TMP_NAME_SIZE], char *err, size_t errlen) {
  omniq__frec_t r = *rec;
  struct iovec iov[5];
  int n = pieces(&r, form, iov);
  return omniq__fio_stagev(io, iov, n, tmp_name, err, errlen);
}

int omniq__frec_stage_slot(const omniq__fio_t *io, const omniq__frec_t *rec,
                           char slot_tmp[OMNIQ__TMP_NAME_SIZE],
                           char result_tmp[OMNIQ__TMP_NAME_SIZE], char *err, size_t errlen) {
  omniq__frec_t r = *rec;
  struct iovec slot[5], result[5];
  omniq__fio_file_t files[2] = {{slot, pieces(&r, OMNIQ__FREC_SLOT, slot), {0}}};
  int n = 1;
  if (rec->result != NULL)
    files[n++] = (omniq__fio_file_t){result, pieces(&r, OMNIQ__FREC_RESULT, result), {0}};
  int rc = omniq__fio_stage_set(io, files, n, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  memcpy(slot_tmp, files[0].tmp, OMNIQ__TMP_NAME_SIZE);
  if (n == 2) memcpy(result_tmp, files[1].tmp, OMNIQ__TMP_NAME_SIZE);
  return OMNIQ_OK;
}

static int embedded_result(const char *text, const char *id, omniq_result_t **out, int *runs) {
  json_t *j = json_loads(text, 0, NULL), *o;
  int rc = OMNIQ_OK;
  *out = NULL;
  /* text already parsed as a task: failing now can only be memory. */
  if (j == NULL) return OMNIQ_ENOMEM;
  if (runs != NULL) {
    json_t *k = json_object_get(j, "commit_runs");
    *runs = json_is_integer(k) && json_integer_value(k) >= 0 &&
                    json_integer_value(k) < OMNIQ_RUNS_KINDS
                ? (int)json_integer_value(k)
                : -1;
  }
  o = json_object_get(j, "commit_result");
  if (o != NULL && !json_is_null(o)) {
    char *rj = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = rj != NULL ? omniq_result_from_json(rj, out) : OMNIQ_ENOMEM;
    free(rj);
    if (rc == OMNIQ_OK && strcmp((*out)->task_id, id) != 0) {
      omniq_result_free(*out);
      *out = NULL;
      rc = OMNIQ_ESERIALIZE;
    }
  }
  json_decref(j);
  return rc;
}

int omniq__frec_read(int dirfd, const char *name, const char *id, omniq_task_t **t,
                     omniq_result_t **result, char *err, size_t errlen) {
  return omniq__frec_read_slot(dirfd, name, id, t, result, NULL, err, errlen);
}

int omniq__frec_read_slot(int dirfd, const char *name, const char *id, omniq_task_t **t,
                          omniq_result_t **result, int *runs, char *err, size_t errlen) {
  char *text = NULL;
  omniq_result_t *ignored = NULL;
  *t = NULL;
  if (result != NULL) *result = NULL;
  if (runs != NULL) *runs = -1;
  int rc = omniq__fio_read(dirfd, name, &text, NULL, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq_task_from_json(text, t);
  if (rc == OMNIQ_OK && strcmp((*t)->id, id) != 0) rc = OMNIQ_ESERIALIZE;
  if (rc == OMNIQ_OK && (result != NULL || runs != NULL))
    rc = embedded_result(text, id, result != NULL ? result : &ignored, runs);
  /* A time this store cannot write back would make every later transition
   * of the task fail (and a claim that keeps failing blocks its queue):
   * such a file is not a record of this store. */
  if (rc == OMNIQ_OK && !instants_ok(*t, result != NULL ? *result : ignored))
    rc = OMNIQ_ESERIALIZE;
  omniq_result_free(ignored);
  omniq__free(text);
  if (rc == OMNIQ_OK) return OMNIQ_OK;
  omniq_task_free(*t);
  *t = NULL;
  if (result != NULL) {
    omniq_result_free(*result);
    *result = NULL;
  }
  if (rc == OMNIQ_ENOMEM) {
    snprintf(err, errlen, "file store: out of memory reading %s", name);
    return rc;
  }
  snprintf(err, errlen, "not a task record for %s", id);
  return OMNIQ_ECORRUPT;
}
