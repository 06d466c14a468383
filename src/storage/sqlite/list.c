/* SPDX-License-Identifier: MIT */
/* SQLite backend: a page of a listing (storage ABI 3).
 *
 * A page is ordered by id and starts after the cursor's id. For each status
 * of the set, one query walks an index whose leading columns are fixed by
 * equality and whose next column is id — tasks_queue_status_id when a queue
 * is named, else tasks_func_status_id when a func is, else tasks_status_id —
 * from the cursor, and stops after `limit` matching rows. The statuses'
 * rows (at most statuses x limit) are merged by id and cut to the page. So
 * a page costs O(statuses x (log n + rows walked)); rows walked exceed the
 * page only when a filter the index does not hold (a time range; the func
 * when a queue is named too) skips rows. No query sorts: INDEXED BY names
 * the index, so the plan cannot drift to a scan and a sort, and
 * tests/test_store_sqlite.c checks it with EXPLAIN QUERY PLAN.
 *
 * The statement text depends on which filters are set, so it is prepared
 * per page (one prepare, reused for every status). */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/sqlite/backend.h"

typedef omniq__sqlite_t sq_t;

char *omniq__sqlite_list_sql(const omniq_list_req_t *req) {
  const char *index = req->queue != NULL  ? "tasks_queue_status_id"
                      : req->func != NULL ? "tasks_func_status_id"
                                          : "tasks_status_id";
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendf(s, "SELECT " OMNIQ__SQLITE_TASK_COLS " FROM tasks INDEXED BY %s"
                      " WHERE status = ?1", index);
  if (req->after_id != NULL) sqlite3_str_appendall(s, req->newest_first ? " AND id < ?2" : " AND id > ?2");
  if (req->queue != NULL) sqlite3_str_appendall(s, " AND queue = ?4");
  if (req->func != NULL) sqlite3_str_appendall(s, " AND func = ?5");
  if (req->created_from_ms != 0) sqlite3_str_appendall(s, " AND created_at >= ?6");
  if (req->created_to_ms != 0) sqlite3_str_appendall(s, " AND created_at < ?7");
  if (req->finished_from_ms != 0 || req->finished_to_ms != 0)
    sqlite3_str_appendall(s, " AND finished_at > 0");
  if (req->finished_from_ms != 0) sqlite3_str_appendall(s, " AND finished_at >= ?8");
  if (req->finished_to_ms != 0) sqlite3_str_appendall(s, " AND finished_at < ?9");
  sqlite3_str_appendall(s, req->newest_first ? " ORDER BY id DESC LIMIT ?3" : " ORDER BY id LIMIT ?3");
  return sqlite3_str_finish(s);
}

typedef struct {
  const omniq_list_req_t *req;
  omniq_task_t **tasks;
  size_t n, cap;
} list_arg_t;

static void drop(list_arg_t *a) {
  for (size_t i = 0; i < a->n; i++) omniq_task_free(a->tasks[i]);
  a->n = 0;
}

/* Binds what the statement text uses; SQLite ignores the parameters a
 * text does not name. */
static void bind_request(sqlite3_stmt *s, const omniq_list_req_t *req) {
  if (req->after_id != NULL) sqlite3_bind_text(s, 2, req->after_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 3, req->limit > INT64_MAX ? INT64_MAX : (int64_t)req->limit);
  if (req->queue != NULL) sqlite3_bind_text(s, 4, req->queue, -1, SQLITE_STATIC);
  if (req->func != NULL) sqlite3_bind_text(s, 5, req->func, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 6, req->created_from_ms);
  sqlite3_bind_int64(s, 7, req->created_to_ms);
  sqlite3_bind_int64(s, 8, req->finished_from_ms);
  sqlite3_bind_int64(s, 9, req->finished_to_ms);
}

static int walk_status(sq_t *sq, sqlite3_stmt *s, int status, list_arg_t *a, char *err,
                       size_t errlen) {
  int rc = OMNIQ_OK, src;
  sqlite3_bind_int(s, 1, status);
  while (rc == OMNIQ_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
    if (a->n == a->cap) {
      size_t cap = a->cap ? a->cap * 2 : 64;
      omniq_task_t **t = omniq__realloc(a->tasks, cap * sizeof *t);
      if (t == NULL) {
        rc = omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "list: out of memory");
        break;
      }
      a->tasks = t;
      a->cap = cap;
    }
    rc = omniq__sqlite_row_task(s, &a->tasks[a->n], NULL);
    if (rc != OMNIQ_OK)
      rc = omniq__sqlite_fail_row(sq, rc, (const char *)sqlite3_column_text(s, 0), err, errlen);
    else
      a->n++;
  }
  if (rc == OMNIQ_OK && src != SQLITE_DONE) rc = omniq__sqlite_fail(sq, src, "list", err, errlen);
  sqlite3_reset(s);
  return rc;
}

/* Every status's rows in one read transaction, so a task that changes
 * status meanwhile is seen once, in one status. */
static int do_list(sq_t *sq, void *p, char *err, size_t errlen) {
  list_arg_t *a = p;
  sqlite3_stmt *s = NULL;
  char *sql = omniq__sqlite_list_sql(a->req);
  int rc;
  drop(a); /* a retry starts from nothing */
  if (sql == NULL) return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "list: out of memory");
  rc = sqlite3_prepare_v2(sq->db, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return omniq__sqlite_fail(sq, rc, "list: preparing", err, errlen);
  bind_request(s, a->req);
  rc = sqlite3_exec(sq->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK
           ? OMNIQ_OK
           : omniq__sqlite_fail(sq, sqlite3_errcode(sq->db), "list", err, errlen);
  for (int st = 0; rc == OMNIQ_OK && st < OMNIQ_STATUS_COUNT; st++)
    if (a->req->statuses & OMNIQ_STATUS_BIT(st)) rc = walk_status(sq, s, st, a, err, errlen);
  sqlite3_finalize(s);
  if (rc == OMNIQ_OK) sqlite3_exec(sq->db, "COMMIT", NULL, NULL, NULL); /* ends a read */
  return rc;
}

static int ascending(const void *x, const void *y) {
  return strcmp((*(omniq_task_t *const *)x)->id, (*(omniq_task_t *const *)y)->id);
}

static int descending(const void *x, const void *y) { return ascending(y, x); }

int omniq__sqlite_list(void *backend, const omniq_list_req_t *req, omniq_task_t ***out,
                       size_t *n, char *err, size_t errlen) {
  list_arg_t a = {req, NULL, 0, 0};
  *out = NULL;
  *n = 0;
  if (req == NULL || req->limit == 0 || req->statuses == 0 ||
      (req->after_id != NULL && !omniq_id_valid(req->after_id)))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "list: malformed request");
  int rc = omniq__sqlite_run(backend, do_list, &a, err, errlen);
  if (rc != OMNIQ_OK || a.n == 0) {
    drop(&a);
    omniq__free(a.tasks);
    return rc;
  }
  if (a.n > 1)
    qsort(a.tasks, a.n, sizeof *a.tasks, req->newest_first ? descending : ascending);
  for (size_t i = req->limit; i < a.n; i++) omniq_task_free(a.tasks[i]);
  *out = a.tasks;
  *n = a.n < req->limit ? a.n : req->limit;
  return OMNIQ_OK;
}
