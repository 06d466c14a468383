/* SPDX-License-Identifier: MIT */
/* SQLite backend: inserting tasks (enqueue) and results (finish, cancel).
 *
 * Both are inserted many rows to a statement where they can be: one
 * INSERT of 2^lg rows, lg at most OMNIQ__SQLITE_ROWS_LG (64 rows), prepared
 * on first use and kept per connection by lg (insert_rows[], result_rows[]
 * of omniq__sqlite_t). A run of a statement allocates and frees its
 * registers and cursors (this SQLite build has no lookaside), so rows
 * inserted one statement each cost several thousand instructions apiece
 * more than rows inserted together (docs/benchmarks.md). Keeping only
 * powers of two bounds the cache at six statements per kind: n rows take
 * n / 64 statements of 64 rows, then one per set bit of the rest, a last
 * single row the one-row statement prepared at open (OMNIQ__SQ_INSERT,
 * OMNIQ__SQ_PUT_RESULT).
 *
 * A task row that fails a constraint fails its whole statement, which then
 * changes nothing, so the rows are inserted again one by one: the error
 * names the task exactly as a lone insert's does. Results are INSERT OR
 * REPLACE and in order, so a task finished twice in one batch keeps its
 * later result, as it would finished twice alone.
 *
 * Everything here runs with the connection lock held, inside the caller's
 * transaction (backend.c). */
#include <stdio.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/sqlite/backend.h"

typedef omniq__sqlite_t sq_t;

/* A task's insert; each row binds INSERT_PARAMS values (bind_task). */
#define INSERT_HEAD                                                                       \
  "INSERT INTO tasks (id, func, queue, args, kwargs, status, priority, attempts,"          \
  " max_retries, eta, interval_ms, timeout_ms, created_at, started_at, lease_until, token," \
  " last_error, unique_key, unique_for_ms, cron, crashes, finished_at) VALUES "
#define INSERT_ROW "(?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define INSERT_PARAMS 21
/* A result's insert; each row binds RESULT_PARAMS values (bind_result). */
#define RESULT_HEAD "INSERT OR REPLACE INTO results (" OMNIQ__SQLITE_RESULT_COLS ") VALUES "
#define RESULT_ROW "(?, ?, ?, ?, ?, ?, ?)"
#define RESULT_PARAMS 7
#define ROWS_LG OMNIQ__SQLITE_ROWS_LG
#define ROWS_MAX (1 << ROWS_LG)

const char omniq__sqlite_insert_sql[] = INSERT_HEAD INSERT_ROW;
const char omniq__sqlite_put_result_sql[] = RESULT_HEAD RESULT_ROW;

/* head, 2^lg copies of row separated by commas, then tail (NULL: none),
 * prepared on first use into cache[lg] (see above for why). */
int omniq__sqlite_rows_stmt(sq_t *sq, sqlite3_stmt **cache, int lg, const char *head,
                            const char *row, const char *tail, sqlite3_stmt **out) {
  if (cache[lg] == NULL) {
    sqlite3_str *q = sqlite3_str_new(NULL);
    sqlite3_str_appendall(q, head);
    for (int i = 0; i < 1 << lg; i++) {
      if (i > 0) sqlite3_str_appendall(q, ", ");
      sqlite3_str_appendall(q, row);
    }
    if (tail != NULL) sqlite3_str_appendall(q, tail);
    char *sql = sqlite3_str_finish(q);
    if (sql == NULL) return SQLITE_NOMEM;
    int rc = sqlite3_prepare_v3(sq->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &cache[lg], NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) return rc;
  }
  *out = cache[lg];
  return SQLITE_OK;
}

int omniq__sqlite_rows_lg(size_t n) {
  int lg = 0;
  while (lg < ROWS_LG && (size_t)2 << lg <= n) lg++;
  return lg;
}

/* Binds error e (NULL = none) as JSON to parameter i, for a task's
 * last_error and a result's error alike; the text stays in *json (NULL
 * before) for the caller to free after the step. -1, binding nothing, out
 * of memory. bind_task and bind_result bind it first, so a row they fail
 * has nothing bound. */
static int bind_error(sqlite3_stmt *s, int i, const omniq_task_error_t *e, char **json) {
  if (e != NULL && (*json = omniq_task_error_to_json(e)) == NULL) return -1;
  omniq__sqlite_bind_text(s, i, *json);
  return 0;
}

/* ---- tasks --------------------------------------------------------------- */

/* Binds task t to the INSERT_PARAMS parameters of one row from base + 1
 * (the text as SQLITE_STATIC: t and *error_json outlive the step); -1 out
 * of memory (bind_error). */
static int bind_task(sqlite3_stmt *s, int base, const omniq_task_t *t, char **error_json) {
  if (bind_error(s, base + 16, t->last_error, error_json) != 0) return -1;
  sqlite3_bind_text(s, base + 1, t->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, base + 2, t->func, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, base + 3, t->queue, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, base + 4, t->args, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, base + 5, t->kwargs, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, base + 6, t->priority);
  sqlite3_bind_int(s, base + 7, t->attempts);
  sqlite3_bind_int(s, base + 8, t->max_retries);
  sqlite3_bind_int64(s, base + 9, t->eta_ms);
  sqlite3_bind_int64(s, base + 10, t->interval_ms);
  sqlite3_bind_int64(s, base + 11, t->timeout_ms);
  sqlite3_bind_int64(s, base + 12, t->created_at_ms);
  sqlite3_bind_int64(s, base + 13, t->started_at_ms);
  sqlite3_bind_int64(s, base + 14, t->lease_until_ms);
  sqlite3_bind_int64(s, base + 15, t->token);
  omniq__sqlite_bind_text(s, base + 17, t->unique_key);
  sqlite3_bind_int64(s, base + 18, t->unique_for_ms);
  omniq__sqlite_bind_text(s, base + 19, t->cron);
  sqlite3_bind_int(s, base + 20, t->crashes);
  sqlite3_bind_int64(s, base + 21, t->finished_at_ms);
  return 0;
}

static int insert_task(sq_t *sq, const omniq_task_t *t, size_t index, char *err, size_t errlen) {
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_INSERT];
  char *error_json = NULL;
  char what[64];
  int rc;
  if (bind_task(s, 0, t, &error_json) != 0)
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "out of memory storing %s", t->id);
  rc = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  omniq__free(error_json);
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    snprintf(err, errlen, "enqueue: task %zu: id %s already exists; nothing stored", index, t->id);
    return OMNIQ_EINVAL;
  }
  snprintf(what, sizeof what, "enqueue: task %zu", index);
  return rc == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, rc, what, err, errlen);
}

/* Inserts tasks[0..2^lg) in one statement (rows_stmt). A row that fails a
 * constraint fails the whole statement, which changes nothing; the rows
 * are then inserted one by one, so the error names the task as a lone
 * insert's does. */
static int insert_rows(sq_t *sq, omniq_task_t *const *tasks, int lg, size_t first, char *err,
                       size_t errlen) {
  char *error_json[ROWS_MAX] = {0};
  sqlite3_stmt *s;
  int rc = OMNIQ_OK, k = 1 << lg;
  int src = omniq__sqlite_rows_stmt(sq, sq->insert_rows, lg, INSERT_HEAD, INSERT_ROW, NULL, &s);
  if (src != SQLITE_OK) return omniq__sqlite_fail(sq, src, "enqueue: preparing", err, errlen);
  for (int i = 0; i < k && rc == OMNIQ_OK; i++) {
    if (bind_task(s, i * INSERT_PARAMS, tasks[i], &error_json[i]) != 0)
      rc = omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "out of memory storing %s", tasks[i]->id);
  }
  if (rc == OMNIQ_OK) src = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  for (int i = 0; i < k; i++) omniq__free(error_json[i]);
  if (rc != OMNIQ_OK || src == SQLITE_OK) return rc;
  if ((src & 0xff) != SQLITE_CONSTRAINT)
    return omniq__sqlite_fail(sq, src, "enqueue: inserting tasks", err, errlen);
  for (int i = 0; i < k && rc == OMNIQ_OK; i++)
    rc = insert_task(sq, tasks[i], first + (size_t)i, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  snprintf(err, errlen, "enqueue: tasks %zu to %zu: %s together, not one by one", first,
           first + (size_t)k - 1, sqlite3_errstr(src));
  return omniq__sqlite_code(src);
}

int omniq__sqlite_insert_tasks(sq_t *sq, omniq_task_t *const *tasks, size_t n, char *err,
                               size_t errlen) {
  int rc = OMNIQ_OK;
  for (size_t i = 0; rc == OMNIQ_OK && i < n;) {
    int lg = omniq__sqlite_rows_lg(n - i);
    rc = lg == 0 ? insert_task(sq, tasks[i], i, err, errlen)
                 : insert_rows(sq, tasks + i, lg, i, err, errlen);
    i += (size_t)1 << lg;
  }
  return rc;
}

/* ---- results ------------------------------------------------------------- */

/* Binds the result of task id to the RESULT_PARAMS parameters of one row
 * from base + 1 (id, r and *error_json outlive the step); -1 out of memory
 * (bind_error). */
static int bind_result(sqlite3_stmt *s, int base, const char *id, const omniq_result_t *r,
                       char **error_json) {
  if (bind_error(s, base + 4, r->error, error_json) != 0) return -1;
  sqlite3_bind_text(s, base + 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, base + 2, r->status);
  omniq__sqlite_bind_text(s, base + 3, r->value);
  sqlite3_bind_int(s, base + 5, r->attempts);
  sqlite3_bind_int64(s, base + 6, r->finished_at_ms);
  sqlite3_bind_int64(s, base + 7, r->last_attempt_at_ms);
  return 0;
}

int omniq__sqlite_put_result(sq_t *sq, const char *id, const omniq_result_t *r, char *err,
                             size_t errlen) {
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_PUT_RESULT];
  char *error_json = NULL;
  int rc;
  if (bind_result(s, 0, id, r, &error_json) != 0)
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "out of memory storing the result of %s",
                              id);
  rc = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  omniq__free(error_json);
  return rc == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, rc, "storing a result", err, errlen);
}

/* The results of ds[0..n) in as few statements as the row counts allow
 * (64, 32, ... rows each): what omniq__sqlite_put_result does for each, in
 * order, so a task finished twice in one batch keeps its later result. */
int omniq__sqlite_put_results(sq_t *sq, const omniq_decision_t *const *ds, size_t n, char *err,
                              size_t errlen) {
  size_t i = 0;
  int rc = OMNIQ_OK;
  while (rc == OMNIQ_OK && i < n) {
    int lg = omniq__sqlite_rows_lg(n - i), k = 1 << lg;
    char *error_json[ROWS_MAX] = {0};
    sqlite3_stmt *s;
    if (lg == 0) {
      rc = omniq__sqlite_put_result(sq, ds[i]->id, ds[i]->result, err, errlen);
      i++;
      continue;
    }
    int src = omniq__sqlite_rows_stmt(sq, sq->result_rows, lg, RESULT_HEAD, RESULT_ROW, NULL, &s);
    if (src != SQLITE_OK) return omniq__sqlite_fail(sq, src, "storing results", err, errlen);
    for (int j = 0; j < k && rc == OMNIQ_OK; j++) {
      const omniq_decision_t *d = ds[i + (size_t)j];
      if (bind_result(s, j * RESULT_PARAMS, d->id, d->result, &error_json[j]) != 0)
        rc = omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen,
                                "out of memory storing the result of %s", d->id);
    }
    if (rc == OMNIQ_OK && (src = omniq__sqlite_step_done(s)) != SQLITE_OK)
      rc = omniq__sqlite_fail(sq, src, "storing results", err, errlen);
    sqlite3_clear_bindings(s);
    for (int j = 0; j < k; j++) omniq__free(error_json[j]);
    i += (size_t)k;
  }
  return rc;
}
