/* SPDX-License-Identifier: MIT */
/* SQLite backend: the connection, its statements and transactions, and
 * the storage table (omniq/storage.h).
 *
 * One connection per opened backend, guarded by `lock`, so one handle may be
 * shared by many threads (the worker pool shares one). SQLite runs that
 * connection in multi-thread mode (SQLITE_OPEN_NOMUTEX) because our mutex
 * already serialises every use of it and of its statements. Other handles
 * and other processes have their own connections, and SQLite's file locks
 * arbitrate between them: WAL lets readers run beside the single writer;
 * each write transaction starts with BEGIN IMMEDIATE, taking the write lock
 * up front, because a deferred transaction that upgrades from read to write
 * can fail with SQLITE_BUSY without waiting; the busy timeout makes a writer
 * wait for another, and omniq__sqlite_run retries the few SQLITE_BUSY cases SQLite
 * returns without waiting.
 *
 * Each operation is one transaction that either applies completely or not
 * at all (omniq__sqlite_run rolls back whatever an operation left open on error), so a
 * caller never sees half of a finish, and a retried operation starts from
 * scratch. Statements are prepared once per connection and reset right
 * after use: a statement left mid-step would hold its read snapshot open,
 * pinning the WAL and blocking checkpoints.
 *
 * This file holds what every operation shares: the statements prepared at
 * open, the transaction helpers, open and close, and the table. A run's
 * outcome lives in finish.c, the other writes (enqueue, extend, cancel,
 * purge) in transitions.c, the claim in claim.c, the group commit of
 * finishes in group.c, the inserts of tasks and results (many rows to a
 * statement) in inserts.c. */
#include "storage/sqlite/backend.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/records.h"
#include "storage/registry.h"

typedef omniq__sqlite_t sq_t;

/* Status values are written as literals (1 = RUNNING, 4 = CANCELLED) so the
 * partial indexes apply; see the schema notes in schema.c. */
static const char *const stmt_sql[OMNIQ__SQ_COUNT_] = {
    [OMNIQ__SQ_BEGIN] = "BEGIN IMMEDIATE",
    [OMNIQ__SQ_COMMIT] = "COMMIT",
    [OMNIQ__SQ_ROLLBACK] = "ROLLBACK",
    [OMNIQ__SQ_INSERT] = omniq__sqlite_insert_sql,
    [OMNIQ__SQ_STATE] = "SELECT status, token, attempts, started_at FROM tasks WHERE id = ?1",
    /* A finish finds its row under its claim token first, then updates it
     * by rowid: an UPDATE ... RETURNING gathers its rows in a temporary
     * table, which cost a finish more than the row update itself. */
    [OMNIQ__SQ_FINISH_FIND] =
        "SELECT seq, queue FROM tasks WHERE id = ?1 AND status = 1 AND token = ?2",
    [OMNIQ__SQ_FINISH] =
        "UPDATE tasks SET status = ?2,"
        " eta = CASE WHEN ?2 = 0 THEN ?3 ELSE eta END,"
        " attempts = CASE WHEN ?2 = 0 AND ?4 THEN 0 ELSE attempts END,"
        " last_error = coalesce(?5, last_error), crashes = ?6, finished_at = ?7"
        " WHERE seq = ?1",
    /* The same by id under its token and queue (?8, ?9), for a decision
     * that names its queue: no lookup first. status = 1 keeps it on the
     * id (or (queue, id)) index: the partial lease index has no id. */
    [OMNIQ__SQ_FINISH_HINTED] =
        "UPDATE tasks SET status = ?2,"
        " eta = CASE WHEN ?2 = 0 THEN ?3 ELSE eta END,"
        " attempts = CASE WHEN ?2 = 0 AND ?4 THEN 0 ELSE attempts END,"
        " last_error = coalesce(?5, last_error), crashes = ?6, finished_at = ?7"
        " WHERE id = ?1 AND status = 1 AND token = ?8 AND queue = ?9",
    [OMNIQ__SQ_PUT_RESULT] = omniq__sqlite_put_result_sql,
    [OMNIQ__SQ_CANCEL] =
        "UPDATE tasks SET status = 4, finished_at = ?2 WHERE id = ?1 AND status IN (0, 1)",
    [OMNIQ__SQ_EXTEND] =
        "UPDATE tasks SET lease_until = ?3 WHERE id = ?1 AND status = 1 AND token = ?2",
    [OMNIQ__SQ_GET_TASK] = "SELECT " OMNIQ__SQLITE_TASK_COLS " FROM tasks WHERE id = ?1",
    [OMNIQ__SQ_GET_RESULT] = "SELECT " OMNIQ__SQLITE_RESULT_COLS " FROM results WHERE task_id = ?1",
    [OMNIQ__SQ_PURGE] = "DELETE FROM results WHERE finished_at < ?1",
    /* From the partial indexes, index only (the schema notes in schema.c):
     * no index of version 3 holds every task's status. */
    [OMNIQ__SQ_COUNT] =
        "SELECT 0, count(*) FROM tasks INDEXED BY tasks_pending_id WHERE status = 0"
        " UNION ALL SELECT 1, count(*) FROM tasks INDEXED BY tasks_leased WHERE status = 1"
        " UNION ALL SELECT status, count(*) FROM tasks INDEXED BY tasks_done_id"
        " WHERE status + 0 >= 2 GROUP BY status",
    [OMNIQ__SQ_EXPIRED] = omniq__sqlite_expired_sql,
    [OMNIQ__SQ_QUEUE_STATE] = "SELECT paused, rate_limit, rate_period_ms, window_start,"
                              " window_count FROM queues WHERE name = ?1",
    [OMNIQ__SQ_QUEUE_WINDOW] =
        "UPDATE queues SET window_start = ?2, window_count = ?3 WHERE name = ?1",
    [OMNIQ__SQ_TOTAL_ADD] = "INSERT INTO run_totals (queue, kind, n) VALUES (?1, ?2, ?3)"
                            " ON CONFLICT (queue, kind) DO UPDATE SET n = n + ?3",
    [OMNIQ__SQ_KEY_GET] = "SELECT k.task_id, t.status, t.finished_at + t.unique_for_ms"
                          " FROM unique_keys k LEFT JOIN tasks t ON t.id = k.task_id"
                          " WHERE k.queue = ?1 AND k.key = ?2",
    [OMNIQ__SQ_KEY_PUT] =
        "INSERT OR REPLACE INTO unique_keys (queue, key, task_id) VALUES (?1, ?2, ?3)",
};

/* ---- helpers ------------------------------------------------------------- */

/* The errno of the failed write behind an SQLITE_IOERR_WRITE, or 0. SQLite
 * keeps it per file and sqlite3_system_errno() does not see it, so ask the
 * journal (the WAL) first, where commits write, then the database file. A
 * file's value is only replaced by its next failure, so it is read only
 * right after a write failed. */
static int write_errno(sq_t *sq) {
  sqlite3_file *f = NULL;
  int e = 0;
  if (sqlite3_file_control(sq->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) == SQLITE_OK &&
      f != NULL && f->pMethods != NULL)
    f->pMethods->xFileControl(f, SQLITE_FCNTL_LAST_ERRNO, &e);
  if (e == 0) sqlite3_file_control(sq->db, "main", SQLITE_FCNTL_LAST_ERRNO, &e);
  return e;
}

int omniq__sqlite_fail(sq_t *sq, int rc, const char *what, char *err, size_t errlen) {
  int sys = rc == SQLITE_IOERR_WRITE ? write_errno(sq) : 0;
  if (sys == 0) {
    snprintf(err, errlen, "sqlite %s: %s: %s", sq->path, what, sqlite3_errmsg(sq->db));
    return omniq__sqlite_code(rc);
  }
  /* SQLite says SQLITE_FULL only for ENOSPC; a write refused with EFBIG (a
   * file-size limit) or EDQUOT (a quota) is a plain "disk I/O error". The
   * errno tells the caller what to fix: no retry makes room. */
  snprintf(err, errlen, "sqlite %s: %s: %s (%s)", sq->path, what, sqlite3_errmsg(sq->db),
           strerror(sys));
  return omniq__errno_code(sys) == OMNIQ_ENOSPC ? OMNIQ_ENOSPC : omniq__sqlite_code(rc);
}

int omniq__sqlite_errf(int rc, char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

/* Steps a statement that returns no rows, then resets it. */
int omniq__sqlite_step_done(sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void rollback(sq_t *sq) {
  if (!sqlite3_get_autocommit(sq->db)) omniq__sqlite_step_done(sq->st[OMNIQ__SQ_ROLLBACK]);
}

int omniq__sqlite_begin(sq_t *sq, char *err, size_t errlen) {
  int rc = omniq__sqlite_step_done(sq->st[OMNIQ__SQ_BEGIN]);
  return rc == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, rc, "begin", err, errlen);
}

int omniq__sqlite_commit(sq_t *sq, char *err, size_t errlen) {
  int rc = omniq__sqlite_step_done(sq->st[OMNIQ__SQ_COMMIT]);
  return rc == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, rc, "commit", err, errlen);
}

/* Runs one operation under the connection lock, retrying it whole while the
 * database is busy. The lock is let go during the backoff so other threads
 * of this handle are not held up by a wait they may not need. */
int omniq__sqlite_run(sq_t *sq, omniq__sqlite_op_fn fn, void *arg, char *err, size_t errlen) {
  omniq__sqlite_retry_t retry;
  int rc;
  omniq__sqlite_retry_init(&retry);
  for (;;) {
    pthread_mutex_lock(&sq->lock);
    rc = fn(sq, arg, err, errlen);
    if (rc != OMNIQ_OK) rollback(sq);
    pthread_mutex_unlock(&sq->lock);
    if (rc != OMNIQ_EBUSY || !omniq__sqlite_retry_again(&retry)) return rc;
  }
}

int omniq__sqlite_bind_text(sqlite3_stmt *s, int i, const char *text) {
  return text != NULL ? sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

int omniq__sqlite_lazy(sq_t *sq, int slot, const char *sql, sqlite3_stmt **out, char *err,
                       size_t errlen) {
  if (sq->lazy[slot] == NULL) {
    int rc = sqlite3_prepare_v3(sq->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &sq->lazy[slot], NULL);
    if (rc != SQLITE_OK) return omniq__sqlite_fail(sq, rc, "preparing a statement", err, errlen);
  }
  *out = sq->lazy[slot];
  return OMNIQ_OK;
}

/* A record-level failure reading a row: the message names the task. */
int omniq__sqlite_fail_row(sq_t *sq, int rc, const char *id, char *err, size_t errlen) {
  if (id == NULL) id = "a task"; /* the id column itself was unreadable */
  if (rc == OMNIQ_ENOMEM)
    return omniq__sqlite_errf(rc, err, errlen, "out of memory reading %s", id);
  snprintf(err, errlen, "sqlite %s: the row of %s is malformed", sq->path, id);
  return rc;
}

/* Why a token-checked change matched no row: unknown id or a stale claim. */
int omniq__sqlite_explain_miss(sq_t *sq, const char *id, const char *what, char *err,
                               size_t errlen) {
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_STATE];
  int rc;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    snprintf(err, errlen, "%s %s: task is %s (claim token %lld); nothing changed", what, id,
             omniq_status_name(sqlite3_column_int(s, 0)), (long long)sqlite3_column_int64(s, 1));
    rc = OMNIQ_ESTATE;
  } else if (rc == SQLITE_DONE) {
    snprintf(err, errlen, "%s %s: no such task", what, id);
    rc = OMNIQ_ENOTFOUND;
  } else {
    rc = omniq__sqlite_fail(sq, rc, what, err, errlen);
  }
  sqlite3_reset(s);
  return rc;
}
/* ---- open / close -------------------------------------------------------- */

static void close_sqlite(void *backend) {
  sq_t *sq = backend;
  if (sq == NULL) return;
  for (int i = 0; i < OMNIQ__SQ_COUNT_; i++) sqlite3_finalize(sq->st[i]);
  for (int i = 0; i <= OMNIQ__SQLITE_CLAIM_CACHE; i++) sqlite3_finalize(sq->claim[i]);
  for (int i = 0; i <= OMNIQ__SQLITE_CLAIM_CACHE; i++) sqlite3_finalize(sq->claim_read[i]);
  for (int i = 0; i < OMNIQ__SQLITE_LAZY; i++) sqlite3_finalize(sq->lazy[i]);
  for (int i = 0; i <= OMNIQ__SQLITE_ROWS_LG; i++) sqlite3_finalize(sq->insert_rows[i]);
  for (int i = 0; i <= OMNIQ__SQLITE_ROWS_LG; i++) sqlite3_finalize(sq->result_rows[i]);
  for (int i = 0; i <= OMNIQ__SQLITE_ROWS_LG; i++) sqlite3_finalize(sq->finish_rows[i]);
  sqlite3_close(sq->db);
  omniq__sqlite_group_destroy(&sq->group);
  pthread_mutex_destroy(&sq->lock);
  omniq__free(sq);
}

static int open_sqlite(const omniq_settings_t *s, void **backend, char *err, size_t errlen) {
  sq_t *sq;
  int rc;
  *backend = NULL;
  if (s == NULL) return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "sqlite: no settings");
  if ((sq = omniq__calloc(1, sizeof *sq)) == NULL)
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "sqlite: out of memory");
  if (pthread_mutex_init(&sq->lock, NULL) != 0) {
    omniq__free(sq);
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "sqlite: cannot create a mutex");
  }
  if (omniq__sqlite_group_init(&sq->group) != 0) {
    pthread_mutex_destroy(&sq->lock);
    omniq__free(sq);
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "sqlite: cannot create a mutex");
  }
  rc = omniq__sqlite_path(s, sq->path, sizeof sq->path, err, errlen);
  if (rc == OMNIQ_OK) rc = omniq__sqlite_connect(sq->path, &sq->db, err, errlen);
  for (int i = 0; rc == OMNIQ_OK && i < OMNIQ__SQ_COUNT_; i++) {
    int src =
        sqlite3_prepare_v3(sq->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &sq->st[i], NULL);
    if (src != SQLITE_OK) rc = omniq__sqlite_fail(sq, src, "preparing statements", err, errlen);
  }
  if (rc != OMNIQ_OK) {
    close_sqlite(sq);
    return rc;
  }
  *backend = sq;
  return OMNIQ_OK;
}

/* Processes sharing the database share "<db>.wake" beside it; an
 * in-memory database is this handle's alone. */
static int wake_path_sqlite(void *backend, char *path, size_t len) {
  const sq_t *sq = backend;
  if (strcmp(sq->path, ":memory:") == 0) return OMNIQ_ENOTSUP;
  int n = snprintf(path, len, "%s.wake", sq->path);
  return n > 0 && (size_t)n < len ? OMNIQ_OK : OMNIQ_ENOTSUP;
}

const omniq_storage_ops_t omniq__sqlite_ops = {
    .abi_version = OMNIQ_STORAGE_ABI,
    .name = "sqlite",
    .open = open_sqlite,
    .close = close_sqlite,
    .enqueue = omniq__sqlite_enqueue,
    .claim = omniq__sqlite_claim,
    .finish = omniq__sqlite_finish,
    .extend_lease = omniq__sqlite_extend_lease,
    .cancel = omniq__sqlite_cancel,
    .get_task = omniq__sqlite_get_task,
    .get_result = omniq__sqlite_get_result,
    .purge_results = omniq__sqlite_purge_results,
    .count_by_status = omniq__sqlite_count_by_status,
    .expired_leases = omniq__sqlite_expired_leases,
    .enqueue_unique = omniq__sqlite_enqueue_many,
    .list = omniq__sqlite_list,
    .retry = omniq__sqlite_retry,
    .delete_task = omniq__sqlite_delete,
    .purge_tasks = omniq__sqlite_purge_tasks,
    .set_paused = omniq__sqlite_set_paused,
    .set_rate = omniq__sqlite_set_rate,
    .queue_stats = omniq__sqlite_queue_stats,
    .claim_chore = omniq__sqlite_claim_chore,
    .wake_path = wake_path_sqlite,
    .finish_claim = omniq__sqlite_finish_claim,
    .finish_many = omniq__sqlite_finish_many,
    .release = omniq__sqlite_release,
};
