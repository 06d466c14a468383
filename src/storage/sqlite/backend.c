/* SPDX-License-Identifier: MIT */
/* SQLite backend: the storage operations (omniq/storage.h).
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
 * The claim lives in claim.c, the group commit of finishes in group.c, the
 * inserts of tasks and results (many rows to a statement) in inserts.c. */
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
static int explain_miss(sq_t *sq, const char *id, const char *what, char *err, size_t errlen) {
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
  for (int i = 0; i < OMNIQ__SQLITE_LAZY; i++) sqlite3_finalize(sq->lazy[i]);
  for (int i = 0; i <= OMNIQ__SQLITE_ROWS_LG; i++) sqlite3_finalize(sq->insert_rows[i]);
  for (int i = 0; i <= OMNIQ__SQLITE_ROWS_LG; i++) sqlite3_finalize(sq->result_rows[i]);
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

/* ---- enqueue ------------------------------------------------------------- */

typedef struct {
  omniq_task_t *const *tasks;
  size_t n;
  char (*holders)[OMNIQ_ID_SIZE]; /* may be NULL */
} enqueue_arg_t;

int omniq__sqlite_take_key(sq_t *sq, const char *queue, const char *key, const char *self,
                           int64_t now, char holder[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_KEY_GET];
  int held = 0, src;
  sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
  src = sqlite3_step(s);
  if (src == SQLITE_ROW && sqlite3_column_type(s, 1) != SQLITE_NULL) { /* its task exists */
    const char *who = (const char *)sqlite3_column_text(s, 0);
    held = (sqlite3_column_int(s, 1) < OMNIQ_SUCCESS || sqlite3_column_int64(s, 2) > now) &&
           who != NULL && (self == NULL || strcmp(who, self) != 0);
    if (held) snprintf(holder, OMNIQ_ID_SIZE, "%s", who);
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (src != SQLITE_ROW && src != SQLITE_DONE)
    return omniq__sqlite_fail(sq, src, "reading a unique key", err, errlen);
  if (held) {
    snprintf(err, errlen, "unique key of queue %s is held by task %s", queue, holder);
    return OMNIQ_EEXISTS;
  }
  if (self == NULL) return OMNIQ_OK;
  s = sq->st[OMNIQ__SQ_KEY_PUT];
  sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, self, -1, SQLITE_STATIC);
  src = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  return src == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, src, "taking a unique key", err, errlen);
}
/* Keys are checked and taken in the same transaction as the inserts, which
 * BEGIN IMMEDIATE makes the only writer of the database: of two enqueues of
 * one key, in any processes, the second sees the first's row. Every key is
 * looked at, so each held one gets its holder. */
static int do_enqueue(sq_t *sq, void *p, char *err, size_t errlen) {
  const enqueue_arg_t *a = p;
  int rc = omniq__sqlite_begin(sq, err, errlen), held = 0;
  for (size_t i = 0; a->holders != NULL && i < a->n; i++) a->holders[i][0] = '\0';
  for (size_t i = 0; rc == OMNIQ_OK && i < a->n; i++) {
    const omniq_task_t *t = a->tasks[i];
    char who[OMNIQ_ID_SIZE];
    if (t->unique_key == NULL) continue;
    rc = omniq__sqlite_take_key(sq, t->queue, t->unique_key, t->id, t->created_at_ms, who, err,
                                errlen);
    if (rc == OMNIQ_EEXISTS) {
      if (a->holders != NULL) memcpy(a->holders[i], who, OMNIQ_ID_SIZE);
      held = 1;
      rc = OMNIQ_OK;
    }
  }
  if (rc == OMNIQ_OK && held) {
    snprintf(err, errlen, "enqueue: a unique key is held; nothing stored");
    rc = OMNIQ_EEXISTS;
  }
  if (rc == OMNIQ_OK) rc = omniq__sqlite_insert_tasks(sq, a->tasks, a->n, err, errlen);
  return rc == OMNIQ_OK ? omniq__sqlite_commit(sq, err, errlen) : rc;
}

static int enqueue_many_sqlite(void *backend, omniq_task_t *const *tasks, size_t n,
                               char (*holders)[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  enqueue_arg_t a = {tasks, n, holders};
  if (n > 0 && tasks == NULL)
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "enqueue: no tasks");
  for (size_t i = 0; i < n; i++) {
    const omniq_task_t *t = tasks[i];
    /* Defence in depth: the engine validates too, but the id becomes
     * a key here and every column is NOT NULL. */
    if (t == NULL || !omniq_id_valid(t->id) || t->func == NULL || t->queue == NULL ||
        t->args == NULL || t->kwargs == NULL) {
      snprintf(err, errlen, "enqueue: task %zu: malformed id or missing field; nothing stored", i);
      return OMNIQ_EINVAL;
    }
  }
  return n == 0 ? OMNIQ_OK : omniq__sqlite_run(backend, do_enqueue, &a, err, errlen);
}

static int enqueue_sqlite(void *backend, omniq_task_t *const *tasks, size_t n, char *err,
                          size_t errlen) {
  return enqueue_many_sqlite(backend, tasks, n, NULL, err, errlen);
}

/* ---- finish -------------------------------------------------------------- */

/* Adds runs runs of kind to the running totals of queue. */
static int add_total(sq_t *sq, const char *queue, int kind, int64_t runs, char *err,
                     size_t errlen) {
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_TOTAL_ADD];
  sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 2, kind);
  sqlite3_bind_int64(s, 3, runs);
  int src = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  return src == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, src, "finish: totals", err, errlen);
}

/* Counts one run of kind in queue (copied when new to t); 0, or -1 when t
 * is full of other queues and kinds or out of memory: the caller then
 * writes the run to the totals itself. */
static int tally_add(omniq__sqlite_tally_t *t, const char *queue, int kind) {
  for (size_t i = 0; i < t->n; i++) {
    if (t->e[i].kind == kind && strcmp(t->e[i].queue, queue) == 0) {
      t->e[i].runs++;
      return 0;
    }
  }
  if (t->n == OMNIQ__SQLITE_GROUP_MAX || (t->e[t->n].queue = omniq__strdup(queue)) == NULL)
    return -1;
  t->e[t->n].kind = kind;
  t->e[t->n].runs = 1;
  t->n++;
  return 0;
}

int omniq__sqlite_tally_write(sq_t *sq, const omniq__sqlite_tally_t *t, char *err,
                              size_t errlen) {
  int rc = OMNIQ_OK;
  for (size_t i = 0; rc == OMNIQ_OK && i < t->n; i++)
    rc = add_total(sq, t->e[i].queue, t->e[i].kind, t->e[i].runs, err, errlen);
  if (rc == OMNIQ_OK) rc = omniq__sqlite_put_results(sq, t->results, t->nresults, err, errlen);
  return rc;
}

void omniq__sqlite_tally_free(omniq__sqlite_tally_t *t) {
  for (size_t i = 0; i < t->n; i++) omniq__free(t->e[i].queue);
  t->n = 0;
  t->nresults = 0;
}

/* Binds what a finish writes (?2 to ?7 of both finish statements). */
static void bind_outcome(sqlite3_stmt *s, const omniq_decision_t *d, const char *error_json,
                         int64_t finished) {
  sqlite3_bind_int(s, 2, d->next_status);
  sqlite3_bind_int64(s, 3, d->eta_ms);
  sqlite3_bind_int(s, 4, d->reset_attempts != 0);
  omniq__sqlite_bind_text(s, 5, error_json);
  sqlite3_bind_int(s, 6, d->crashes);
  sqlite3_bind_int64(s, 7, finished);
}

/* The finish by its claim token and the queue the decision names, in one
 * UPDATE: *applied = 1 if it took the row, 0 if nothing matched (a miss,
 * or a queue that is not the task's) and nothing changed. */
static int finish_hinted(sq_t *sq, const omniq_decision_t *d, const char *error_json,
                         int64_t finished, int *applied, char *err, size_t errlen) {
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_FINISH_HINTED];
  sqlite3_bind_text(s, 1, d->id, -1, SQLITE_STATIC);
  bind_outcome(s, d, error_json, finished);
  sqlite3_bind_int64(s, 8, d->token);
  sqlite3_bind_text(s, 9, d->queue, -1, SQLITE_STATIC);
  int src = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  if (src != SQLITE_OK) return omniq__sqlite_fail(sq, src, "finish", err, errlen);
  *applied = sqlite3_changes(sq->db) == 1;
  return OMNIQ_OK;
}

/* The finish without a usable hint: the row found under its claim token
 * (naming the task's queue, copied to *queue), then its update by rowid.
 * The lookup comes first, so a miss (ESTATE, ENOTFOUND) writes nothing. */
static int finish_found(sq_t *sq, const omniq_decision_t *d, const char *error_json,
                        int64_t finished, char **queue, char *err, size_t errlen) {
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_FINISH_FIND];
  int64_t seq = 0;
  int src;
  sqlite3_bind_text(s, 1, d->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, d->token);
  src = sqlite3_step(s);
  if (src == SQLITE_ROW) {
    seq = sqlite3_column_int64(s, 0);
    *queue = omniq__strdup((const char *)sqlite3_column_text(s, 1));
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (src == SQLITE_DONE) return explain_miss(sq, d->id, "finish", err, errlen);
  if (src != SQLITE_ROW) return omniq__sqlite_fail(sq, src, "finish", err, errlen);
  if (*queue == NULL) return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "out of memory");
  s = sq->st[OMNIQ__SQ_FINISH];
  sqlite3_bind_int64(s, 1, seq);
  bind_outcome(s, d, error_json, finished);
  src = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  return src == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, src, "finish", err, errlen);
}

/* The token-checked finish inside the caller's transaction: the task's
 * update, the totals (or its count in tally) and the result. With the
 * queue the decision names (storage ABI 7) the update is one statement by
 * id, token and queue, and the totals take that queue; when it misses,
 * or names no queue, the row is looked up under its token as it always
 * was, so a wrong queue changes nothing but the cost. */
int omniq__sqlite_apply_finish(sq_t *sq, const omniq_decision_t *d, omniq__sqlite_tally_t *tally,
                               char *err, size_t errlen) {
  char *error_json = NULL, *found = NULL;
  const char *queue = NULL;
  int rc = OMNIQ_OK, applied = 0;
  int64_t finished = omniq_status_is_terminal(d->next_status) && d->result != NULL
                         ? d->result->finished_at_ms
                         : 0;
  if (d->error != NULL && (error_json = omniq_task_error_to_json(d->error)) == NULL)
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "out of memory recording %s", d->id);
  if (d->queue != NULL) rc = finish_hinted(sq, d, error_json, finished, &applied, err, errlen);
  if (rc == OMNIQ_OK && applied) {
    queue = d->queue;
  } else if (rc == OMNIQ_OK) {
    rc = finish_found(sq, d, error_json, finished, &found, err, errlen);
    queue = found;
  }
  omniq__free(error_json);
  if (rc == OMNIQ_OK && (tally == NULL || tally_add(tally, queue, d->runs) != 0))
    rc = add_total(sq, queue, d->runs, 1, err, errlen);
  omniq__free(found);
  if (rc == OMNIQ_OK && d->result != NULL) {
    if (tally != NULL && tally->nresults < OMNIQ__SQLITE_GROUP_MAX)
      tally->results[tally->nresults++] = d;
    else
      rc = omniq__sqlite_put_result(sq, d->id, d->result, err, errlen);
  }
  return rc;
}

int omniq__sqlite_do_finish(sq_t *sq, void *d, char *err, size_t errlen) {
  int rc = omniq__sqlite_begin(sq, err, errlen);
  if (rc == OMNIQ_OK) rc = omniq__sqlite_apply_finish(sq, d, NULL, err, errlen);
  return rc == OMNIQ_OK ? omniq__sqlite_commit(sq, err, errlen) : rc;
}

int omniq__sqlite_check_finish(const omniq_decision_t *d, char *err, size_t errlen) {
  if (d == NULL || !omniq_id_valid(d->id))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "finish: malformed task id");
  if (!omniq_transition_allowed(OMNIQ_RUNNING, d->next_status) ||
      d->next_status == OMNIQ_CANCELLED) {
    snprintf(err, errlen, "finish %s: next status %s is not how a run ends", d->id,
             omniq_status_name(d->next_status));
    return OMNIQ_EINVAL;
  }
  return OMNIQ_OK;
}

static int finish_sqlite(void *backend, const omniq_decision_t *d, char *err, size_t errlen) {
  int rc = omniq__sqlite_check_finish(d, err, errlen);
  return rc == OMNIQ_OK ? omniq__sqlite_finish_grouped(backend, d, NULL, NULL, err, errlen) : rc;
}

/* ---- extend, cancel ------------------------------------------------------ */

typedef struct {
  const char *id;
  int64_t token, lease_until;
} extend_arg_t;

/* One UPDATE, so no explicit transaction; the follow-up read only explains a
 * miss (tasks are never deleted, so a task seen missing was never there). */
static int do_extend(sq_t *sq, void *p, char *err, size_t errlen) {
  const extend_arg_t *a = p;
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_EXTEND];
  int rc;
  sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, a->token);
  sqlite3_bind_int64(s, 3, a->lease_until);
  rc = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_OK) return omniq__sqlite_fail(sq, rc, "extend_lease", err, errlen);
  return sqlite3_changes(sq->db) == 0 ? explain_miss(sq, a->id, "extend_lease", err, errlen)
                                      : OMNIQ_OK;
}

static int extend_sqlite(void *backend, const char *id, int64_t token, int64_t lease_until_ms,
                         char *err, size_t errlen) {
  extend_arg_t a = {id, token, lease_until_ms};
  if (!omniq_id_valid(id))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "extend_lease: malformed task id");
  return omniq__sqlite_run(backend, do_extend, &a, err, errlen);
}

typedef struct {
  const char *id;
  int64_t finished_at;
  int prev_status;
} cancel_arg_t;

/* Reads the task and cancels it inside one write transaction (BEGIN
 * IMMEDIATE holds the write lock from the read on), so the attempts stored
 * in the result are those of the task that was cancelled, whatever claim
 * another connection makes at the same moment. */
static int do_cancel(sq_t *sq, void *p, char *err, size_t errlen) {
  cancel_arg_t *a = p;
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_STATE];
  omniq_result_t r;
  int rc = omniq__sqlite_begin(sq, err, errlen), src;
  if (rc != OMNIQ_OK) return rc;
  memset(&r, 0, sizeof r);
  sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
  src = sqlite3_step(s);
  if (src == SQLITE_ROW) {
    a->prev_status = sqlite3_column_int(s, 0);
    r.attempts = sqlite3_column_int(s, 2);
    r.last_attempt_at_ms = sqlite3_column_int64(s, 3);
  }
  sqlite3_reset(s);
  if (src == SQLITE_DONE)
    return omniq__sqlite_errf(OMNIQ_ENOTFOUND, err, errlen, "cancel %s: no such task", a->id);
  if (src != SQLITE_ROW) return omniq__sqlite_fail(sq, src, "cancel", err, errlen);
  if (omniq_status_is_terminal(a->prev_status))
    return omniq__sqlite_errf(OMNIQ_ESTATE, err, errlen, "cancel %s: task is already %s", a->id,
                              omniq_status_name(a->prev_status));
  s = sq->st[OMNIQ__SQ_CANCEL];
  sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, a->finished_at);
  src = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  if (src != SQLITE_OK) return omniq__sqlite_fail(sq, src, "cancel", err, errlen);
  memcpy(r.task_id, a->id, OMNIQ_ID_SIZE);
  r.status = OMNIQ_CANCELLED;
  r.finished_at_ms = a->finished_at;
  rc = omniq__sqlite_put_result(sq, a->id, &r, err, errlen);
  return rc == OMNIQ_OK ? omniq__sqlite_commit(sq, err, errlen) : rc;
}

static int cancel_sqlite(void *backend, const char *id, int64_t finished_at_ms, int *prev_status,
                         char *err, size_t errlen) {
  cancel_arg_t a = {id, finished_at_ms, -1};
  if (!omniq_id_valid(id))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "cancel: malformed task id");
  int rc = omniq__sqlite_run(backend, do_cancel, &a, err, errlen);
  if (prev_status != NULL) *prev_status = a.prev_status;
  return rc;
}

typedef struct {
  int64_t older_than;
  int64_t count;
} purge_arg_t;

static int do_purge(sq_t *sq, void *p, char *err, size_t errlen) {
  purge_arg_t *a = p;
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_PURGE];
  sqlite3_bind_int64(s, 1, a->older_than);
  int rc = omniq__sqlite_step_done(s);
  if (rc != SQLITE_OK) return omniq__sqlite_fail(sq, rc, "purge_results", err, errlen);
  a->count = sqlite3_changes(sq->db);
  return OMNIQ_OK;
}

static int purge_sqlite(void *backend, int64_t older_than_ms, int64_t *count, char *err,
                        size_t errlen) {
  purge_arg_t a = {older_than_ms, 0};
  int rc = omniq__sqlite_run(backend, do_purge, &a, err, errlen);
  if (count != NULL) *count = rc == OMNIQ_OK ? a.count : 0;
  return rc;
}

const omniq_storage_ops_t omniq__sqlite_ops = {
    .abi_version = OMNIQ_STORAGE_ABI,
    .name = "sqlite",
    .open = open_sqlite,
    .close = close_sqlite,
    .enqueue = enqueue_sqlite,
    .claim = omniq__sqlite_claim,
    .finish = finish_sqlite,
    .extend_lease = extend_sqlite,
    .cancel = cancel_sqlite,
    .get_task = omniq__sqlite_get_task,
    .get_result = omniq__sqlite_get_result,
    .purge_results = purge_sqlite,
    .count_by_status = omniq__sqlite_count_by_status,
    .expired_leases = omniq__sqlite_expired_leases,
    .enqueue_unique = enqueue_many_sqlite,
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
