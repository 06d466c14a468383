/* SPDX-License-Identifier: MIT */
/* SQLite backend: the reads (get_task, get_result, count_by_status,
 * expired_leases).
 *
 * Each is one SELECT outside any explicit transaction: a single statement
 * reads one consistent WAL snapshot, and in WAL mode it never waits for a
 * writer. The statement is reset before the lock is let go, so no snapshot
 * stays open between calls. */
#include "storage/sqlite/backend.h"

#include <string.h>

#include "base/alloc.h"
#include "base/records.h"

typedef omniq__sqlite_t sq_t;

typedef struct {
  const char *id;
  void *out; /* omniq_task_t ** or omniq_result_t ** */
} get_arg_t;

static int do_get_task(sq_t *sq, void *p, char *err, size_t errlen) {
  get_arg_t *a = p;
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_GET_TASK];
  int rc;
  sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rc = omniq__sqlite_row_task(s, a->out, NULL);
    if (rc != OMNIQ_OK) rc = omniq__sqlite_fail_row(sq, rc, a->id, err, errlen);
  } else if (rc == SQLITE_DONE) {
    rc = omniq__sqlite_errf(OMNIQ_ENOTFOUND, err, errlen, "get_task %s: no such task", a->id);
  } else {
    rc = omniq__sqlite_fail(sq, rc, "get_task", err, errlen);
  }
  sqlite3_reset(s);
  return rc;
}

static int do_get_result(sq_t *sq, void *p, char *err, size_t errlen) {
  get_arg_t *a = p;
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_GET_RESULT];
  int rc;
  sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rc = omniq__sqlite_row_result(s, a->out);
    if (rc != OMNIQ_OK) rc = omniq__sqlite_fail_row(sq, rc, a->id, err, errlen);
  } else if (rc == SQLITE_DONE) {
    rc = omniq__sqlite_errf(OMNIQ_ENOTFOUND, err, errlen, "get_result %s: no result", a->id);
  } else {
    rc = omniq__sqlite_fail(sq, rc, "get_result", err, errlen);
  }
  sqlite3_reset(s);
  return rc;
}

int omniq__sqlite_get_task(void *backend, const char *id, omniq_task_t **out, char *err,
                           size_t errlen) {
  get_arg_t a = {id, out};
  *out = NULL;
  if (!omniq_id_valid(id))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "get_task: malformed task id");
  return omniq__sqlite_run(backend, do_get_task, &a, err, errlen);
}

int omniq__sqlite_get_result(void *backend, const char *id, omniq_result_t **out, char *err,
                             size_t errlen) {
  get_arg_t a = {id, out};
  *out = NULL;
  if (!omniq_id_valid(id))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "get_result: malformed task id");
  return omniq__sqlite_run(backend, do_get_result, &a, err, errlen);
}

static int do_count(sq_t *sq, void *p, char *err, size_t errlen) {
  int64_t *counts = p;
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_COUNT];
  int rc;
  memset(counts, 0, OMNIQ_STATUS_COUNT * sizeof *counts);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    int status = sqlite3_column_int(s, 0);
    if (status >= 0 && status < OMNIQ_STATUS_COUNT) counts[status] = sqlite3_column_int64(s, 1);
  }
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? OMNIQ_OK : omniq__sqlite_fail(sq, rc, "count_by_status", err, errlen);
}

int omniq__sqlite_count_by_status(void *backend, int64_t counts[OMNIQ_STATUS_COUNT], char *err,
                                  size_t errlen) {
  return omniq__sqlite_run(backend, do_count, counts, err, errlen);
}

typedef struct {
  int64_t now;
  size_t max;
  omniq_task_t **tasks;
  size_t n;
} expired_arg_t;

static int do_expired(sq_t *sq, void *p, char *err, size_t errlen) {
  expired_arg_t *a = p;
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_EXPIRED];
  size_t cap = 0;
  int rc = OMNIQ_OK, src;
  omniq__tasks_free(a->tasks, a->n); /* a retry starts from nothing */
  a->tasks = NULL;
  a->n = 0;
  sqlite3_bind_int64(s, 1, a->now);
  sqlite3_bind_int64(s, 2, a->max > INT64_MAX ? INT64_MAX : (int64_t)a->max);
  while (rc == OMNIQ_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
    if (a->n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      omniq_task_t **tasks = omniq__realloc(a->tasks, ncap * sizeof *tasks);
      if (tasks == NULL) {
        rc = omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "expired_leases: out of memory");
        break;
      }
      a->tasks = tasks;
      cap = ncap;
    }
    rc = omniq__sqlite_row_task(s, &a->tasks[a->n], NULL);
    if (rc != OMNIQ_OK)
      rc = omniq__sqlite_fail_row(sq, rc, (const char *)sqlite3_column_text(s, 0), err, errlen);
    else
      a->n++;
  }
  if (rc == OMNIQ_OK && src != SQLITE_DONE)
    rc = omniq__sqlite_fail(sq, src, "expired_leases", err, errlen);
  sqlite3_reset(s);
  return rc;
}

int omniq__sqlite_expired_leases(void *backend, int64_t now_ms, size_t max, omniq_task_t ***out,
                                 size_t *n, char *err, size_t errlen) {
  expired_arg_t a = {now_ms, max, NULL, 0};
  int rc = OMNIQ_OK;
  *out = NULL;
  *n = 0;
  if (max > 0) rc = omniq__sqlite_run(backend, do_expired, &a, err, errlen);
  if (rc != OMNIQ_OK) {
    omniq__tasks_free(a.tasks, a.n);
    return rc;
  }
  if (a.n == 0) {
    omniq__free(a.tasks);
    a.tasks = NULL;
  }
  *out = a.tasks;
  *n = a.n;
  return OMNIQ_OK;
}
