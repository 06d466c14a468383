/* SPDX-License-Identifier: MIT */
/* SQLite backend: a page of a listing (storage ABI 3).
 *
 * A page is ordered by id and starts after the cursor's id. Each walk
 * below reads an index in id order from the cursor and stops after `limit`
 * matching rows; the walks' rows (at most walks x limit) are merged by id
 * and cut to the page. Which index (schema version 3, schema.c):
 *
 * - every status asked for: one walk of tasks_queue_id when a queue is
 *   named, else tasks_func_id when a func is, else the id index;
 * - otherwise one walk per status: PENDING on tasks_pending_id; RUNNING on
 *   tasks_leased, the running tasks in lease order, sorted by id here (they
 *   are the leases held, as many as the runners that hold them); each
 *   terminal status on tasks_done_queue when a queue is named, else
 *   tasks_done_func when a func is, else tasks_done_id.
 *
 * So a page costs O(walks x (log n + rows walked)); rows walked exceed the
 * page only when a filter the index does not hold skips rows: a time
 * range, the func when a queue is named too, and a queue or func on a
 * PENDING walk (pending tasks of other queues are stepped over). None of
 * these indexes holds a live task's status in its key, so a claim or a
 * finish moves no listing entry (the point of version 3). INDEXED BY names
 * each index, so a plan cannot drift to a scan and a sort, and
 * tests/test_store_sqlite.c checks every one with EXPLAIN QUERY PLAN.
 *
 * The statement text depends on the filters and the status, so each walk
 * is prepared when the page is read. */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/sqlite/backend.h"

typedef omniq__sqlite_t sq_t;

/* The index of a walk (see the note above); NULL for the id index. */
static const char *walk_index(const omniq_list_req_t *req, int status) {
  int q = req->queue != NULL, f = req->func != NULL;
  switch (status) {
  case OMNIQ__SQLITE_ANY_STATUS: return q ? "tasks_queue_id" : f ? "tasks_func_id" : NULL;
  case OMNIQ_PENDING: return "tasks_pending_id";
  case OMNIQ_RUNNING: return "tasks_leased";
  default: return q ? "tasks_done_queue" : f ? "tasks_done_func" : "tasks_done_id";
  }
}

/* The status is written as a literal: SQLite uses a partial index only
 * when the query's WHERE implies the index's at prepare time, and a
 * terminal walk repeats the WHERE of the done indexes, which `status = 3`
 * alone does not prove to it (schema.c). */
char *omniq__sqlite_list_sql(const omniq_list_req_t *req, int status) {
  const char *index = walk_index(req, status);
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendall(s, "SELECT " OMNIQ__SQLITE_TASK_COLS " FROM tasks");
  if (index != NULL) sqlite3_str_appendf(s, " INDEXED BY %s", index);
  if (status == OMNIQ__SQLITE_ANY_STATUS)
    sqlite3_str_appendall(s, " WHERE 1");
  else if (omniq_status_is_terminal(status))
    sqlite3_str_appendf(s, " WHERE status + 0 >= 2 AND status = %d", status);
  else
    sqlite3_str_appendf(s, " WHERE status = %d", status);
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

/* Prepares one walk and appends its rows. */
static int walk(sq_t *sq, int status, list_arg_t *a, char *err, size_t errlen) {
  sqlite3_stmt *s = NULL;
  char *sql = omniq__sqlite_list_sql(a->req, status);
  int rc = OMNIQ_OK, src;
  if (sql == NULL)
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "list: out of memory");
  src = sqlite3_prepare_v2(sq->db, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (src != SQLITE_OK) return omniq__sqlite_fail(sq, src, "list: preparing", err, errlen);
  bind_request(s, a->req);
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
  sqlite3_finalize(s);
  return rc;
}

size_t omniq__sqlite_list_walks(const omniq_list_req_t *req, int walks[OMNIQ_STATUS_COUNT]) {
  unsigned want = req->statuses & OMNIQ_STATUS_ALL;
  size_t n = 0;
  if (want == OMNIQ_STATUS_ALL) {
    walks[n++] = OMNIQ__SQLITE_ANY_STATUS;
    return n;
  }
  for (int st = 0; st < OMNIQ_STATUS_COUNT; st++)
    if (want & OMNIQ_STATUS_BIT(st)) walks[n++] = st;
  return n;
}

/* Every walk in one read transaction, so a task that changes status
 * meanwhile is seen once, in one status. */
static int do_list(sq_t *sq, void *p, char *err, size_t errlen) {
  list_arg_t *a = p;
  int walks[OMNIQ_STATUS_COUNT];
  size_t n = omniq__sqlite_list_walks(a->req, walks);
  int rc;
  drop(a); /* a retry starts from nothing */
  rc = sqlite3_exec(sq->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK
           ? OMNIQ_OK
           : omniq__sqlite_fail(sq, sqlite3_errcode(sq->db), "list", err, errlen);
  for (size_t i = 0; rc == OMNIQ_OK && i < n; i++) rc = walk(sq, walks[i], a, err, errlen);
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
