/* SPDX-License-Identifier: MIT */
/* SQLite backend: rows <-> records, and the SQL text of the claim.
 *
 * Records leave here allocated with the library's allocator, so callers free
 * them with omniq_task_free / omniq_result_free like any other. A row that
 * cannot be a record (a malformed id, a last_error that is not TaskError
 * JSON) is reported as OMNIQ_ECORRUPT rather than handed on half-read. */
#include "storage/sqlite/backend.h"

#include <string.h>

#include "base/alloc.h"

/* INDEXED BY, here and in the claim: with the listing's indexes beside
 * them (schema version 2), SQLite's planner, which has no statistics, would
 * rather take an equality on (status, id) and sort than walk these partial
 * indexes in order. Naming the index keeps the plan; a statement that could
 * not use it fails to prepare instead of quietly scanning. */
const char omniq__sqlite_expired_sql[] =
    "SELECT " OMNIQ__SQLITE_TASK_COLS " FROM tasks INDEXED BY tasks_leased"
    " WHERE status = 1 AND lease_until < ?1 ORDER BY lease_until, seq LIMIT ?2";

/* One queue: walk tasks_due for that queue from the top; the first rows are
 * the answer, so the cost is O(log n + k) in pending tasks (plus any
 * not-yet-due tasks of higher priority, which are skipped one by one).
 *
 * Several queues: one arm per queue, each the single-queue walk limited to
 * what that queue may give (k, or less when its rate limit says so), then
 * the union (at most q * k rows) sorted and cut to k. Cost
 * O(q * (log n + k)) plus a sort of q * k rows. A plain `queue IN (...)`
 * would be simpler but makes SQLite collect and sort every due task of those
 * queues before applying the limit, which grows with the backlog. */
/* The due tasks of nqueues queues, in claim order, as the columns cols.
 * Several queues take arm_cols from each arm (what the union is sorted
 * by, at least) and cols from the union. */
static void append_due(sqlite3_str *s, size_t nqueues, const char *cols, const char *arm_cols) {
  static const char arm[] = " FROM tasks INDEXED BY tasks_due WHERE status = 0"
                            " AND queue = ?%d AND eta <= ?1 ORDER BY priority DESC, eta, seq"
                            " LIMIT ?%d";
  if (nqueues <= 1) {
    sqlite3_str_appendf(s, "SELECT %s", cols);
    sqlite3_str_appendf(s, arm, 4, 5);
    return;
  }
  sqlite3_str_appendf(s, "SELECT %s FROM (", cols);
  for (size_t i = 0; i < nqueues; i++) {
    sqlite3_str_appendall(s, i > 0 ? " UNION ALL SELECT * FROM (" : "SELECT * FROM (");
    sqlite3_str_appendf(s, "SELECT %s", arm_cols);
    sqlite3_str_appendf(s, arm, (int)(4 + 2 * i), (int)(5 + 2 * i));
    sqlite3_str_appendall(s, ")");
  }
  sqlite3_str_appendall(s, ") ORDER BY priority DESC, eta, seq LIMIT ?3");
}

/* One queue reads its arm's rows whole. Several read the rows whose seq
 * the union names: a union of whole rows sorted by columns it returns is
 * flattened by SQLite into a merge that sorts every arm again. */
char *omniq__sqlite_claim_read_sql(size_t nqueues) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  if (nqueues <= 1) {
    append_due(s, nqueues, OMNIQ__SQLITE_TASK_COLS, NULL);
  } else {
    sqlite3_str_appendall(s, "SELECT " OMNIQ__SQLITE_TASK_COLS " FROM tasks WHERE seq IN (");
    append_due(s, nqueues, "seq", "seq, priority, eta");
    sqlite3_str_appendall(s, ")");
  }
  return sqlite3_str_finish(s);
}

char *omniq__sqlite_claim_sql(size_t nqueues) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendall(s,
                        "UPDATE tasks SET status = 1, attempts = attempts + 1,"
                        " token = token + 1, started_at = ?1, lease_until = ?2"
                        " WHERE seq IN (");
  append_due(s, nqueues, "seq", "seq, priority, eta");
  sqlite3_str_appendall(s, ")");
  return sqlite3_str_finish(s);
}

/* ---- rows ---------------------------------------------------------------- */

/* Copies a TEXT column with the library allocator; *out NULL for NULL.
 * Every text OmniQ stores is a C string (a NUL inside JSON is its escape,
 * never a raw byte), so a value holding a NUL byte was not written by it:
 * OMNIQ_ECORRUPT rather than a copy that C would read cut short. */
static int col_dup(sqlite3_stmt *s, int i, char **out) {
  const unsigned char *t = sqlite3_column_text(s, i);
  int n = sqlite3_column_bytes(s, i);
  *out = NULL;
  if (t == NULL) return sqlite3_column_type(s, i) == SQLITE_NULL ? OMNIQ_OK : OMNIQ_ENOMEM;
  if (memchr(t, '\0', (size_t)n) != NULL) return OMNIQ_ECORRUPT;
  if ((*out = omniq__malloc((size_t)n + 1)) == NULL) return OMNIQ_ENOMEM;
  memcpy(*out, t, (size_t)n);
  (*out)[n] = '\0';
  return OMNIQ_OK;
}

static int col_id(sqlite3_stmt *s, int i, char out[OMNIQ_ID_SIZE]) {
  const char *t = (const char *)sqlite3_column_text(s, i);
  if (t == NULL || !omniq_id_valid(t)) return OMNIQ_ECORRUPT;
  memcpy(out, t, OMNIQ_ID_SIZE);
  return OMNIQ_OK;
}

static int col_error(sqlite3_stmt *s, int i, omniq_task_error_t **out) {
  const char *t = (const char *)sqlite3_column_text(s, i);
  *out = NULL;
  if (t == NULL) return OMNIQ_OK;
  int rc = omniq_task_error_from_json(t, out);
  return rc == OMNIQ_ESERIALIZE ? OMNIQ_ECORRUPT : rc;
}

int omniq__sqlite_row_task(sqlite3_stmt *s, omniq_task_t **out, int64_t *seq) {
  omniq_task_t *t = omniq_task_new();
  int rc = t != NULL ? OMNIQ_OK : OMNIQ_ENOMEM;
  *out = NULL;
  if (rc == OMNIQ_OK) rc = col_id(s, 0, t->id);
  if (rc == OMNIQ_OK) rc = col_dup(s, 1, &t->func);
  if (rc == OMNIQ_OK) rc = col_dup(s, 2, &t->queue);
  if (rc == OMNIQ_OK) rc = col_dup(s, 3, &t->args);
  if (rc == OMNIQ_OK) rc = col_dup(s, 4, &t->kwargs);
  if (rc == OMNIQ_OK) rc = col_error(s, 16, &t->last_error);
  if (rc == OMNIQ_OK) rc = col_dup(s, 18, &t->unique_key);
  if (rc == OMNIQ_OK) rc = col_dup(s, 20, &t->cron);
  if (rc != OMNIQ_OK) {
    omniq_task_free(t);
    return rc;
  }
  t->unique_for_ms = sqlite3_column_int64(s, 19);
  t->crashes = sqlite3_column_int(s, 21);
  t->finished_at_ms = sqlite3_column_int64(s, 22);
  t->status = sqlite3_column_int(s, 5);
  t->priority = sqlite3_column_int(s, 6);
  t->attempts = sqlite3_column_int(s, 7);
  t->max_retries = sqlite3_column_int(s, 8);
  t->eta_ms = sqlite3_column_int64(s, 9);
  t->interval_ms = sqlite3_column_int64(s, 10);
  t->timeout_ms = sqlite3_column_int64(s, 11);
  t->created_at_ms = sqlite3_column_int64(s, 12);
  t->started_at_ms = sqlite3_column_int64(s, 13);
  t->lease_until_ms = sqlite3_column_int64(s, 14);
  t->token = sqlite3_column_int64(s, 15);
  if (seq != NULL) *seq = sqlite3_column_int64(s, 17);
  *out = t;
  return OMNIQ_OK;
}

int omniq__sqlite_row_result(sqlite3_stmt *s, omniq_result_t **out) {
  omniq_result_t *r = omniq_result_new();
  int rc = r != NULL ? OMNIQ_OK : OMNIQ_ENOMEM;
  *out = NULL;
  if (rc == OMNIQ_OK) rc = col_id(s, 0, r->task_id);
  if (rc == OMNIQ_OK) rc = col_dup(s, 2, &r->value);
  if (rc == OMNIQ_OK) rc = col_error(s, 3, &r->error);
  if (rc != OMNIQ_OK) {
    omniq_result_free(r);
    return rc;
  }
  r->status = sqlite3_column_int(s, 1);
  r->attempts = sqlite3_column_int(s, 4);
  r->finished_at_ms = sqlite3_column_int64(s, 5);
  r->last_attempt_at_ms = sqlite3_column_int64(s, 6);
  *out = r;
  return OMNIQ_OK;
}
