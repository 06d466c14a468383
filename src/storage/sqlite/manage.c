/* SPDX-License-Identifier: MIT */
/* SQLite backend: the operations of storage ABI 3 that change or read more
 * than one task's run — retry by hand, delete, retention, queue settings,
 * statistics and chores. Listing is list.c.
 *
 * Every change is one write transaction (BEGIN IMMEDIATE), so it applies
 * whole or not at all and no other connection sees it half done; the
 * reads of queue_stats share one read transaction, so counts, totals and
 * settings describe the same moment. Statements are prepared on first use
 * (omniq__sqlite_lazy) since most handles never run them.
 *
 * Space: deleted rows free their pages. A database created by this version
 * has auto_vacuum = INCREMENTAL (schema.c) and purge_tasks returns the
 * freed pages to the file system after each batch; an older database
 * reuses them for new rows, so its file stops growing at the size its
 * largest backlog needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/sqlite/backend.h"

typedef omniq__sqlite_t sq_t;

enum {
  L_TASK_STATE, /* status, queue, unique_key of one task */
  L_RETRY,
  L_DEL_RESULT,
  L_DEL_KEY,
  L_DEL_TASK,
  L_EXPIRED,
  L_PAUSE,
  L_RATE,
  L_CHORE_GET,
  L_CHORE_PUT,
  L_READ_BEGIN,
  L_READ_END,
  L_COUNTS,
  L_COUNTS_ALL,
  L_DUE,
  L_DUE_ALL,
  L_TOTALS,
  L_TOTALS_ALL,
  L_SETTINGS,
  L_SETTINGS_ALL,
  L_VACUUM,
  L_COUNT_
};

_Static_assert(L_COUNT_ <= OMNIQ__SQLITE_LAZY_SP_END, "manage.c's lazy slots meet finish.c's");

static const char *const lazy_sql[L_COUNT_] = {
    [L_TASK_STATE] = "SELECT status, queue, unique_key FROM tasks WHERE id = ?1",
    [L_RETRY] = "UPDATE tasks SET status = 0, attempts = 0, crashes = 0, finished_at = 0,"
                " eta = ?2, lease_until = 0 WHERE id = ?1",
    [L_DEL_RESULT] = "DELETE FROM results WHERE task_id = ?1",
    [L_DEL_KEY] = "DELETE FROM unique_keys WHERE task_id = ?1",
    [L_DEL_TASK] = "DELETE FROM tasks WHERE id = ?1",
    /* `status >= 2` literally, so the partial index tasks_finished applies
     * (named, as the claim's is: rows.c). */
    [L_EXPIRED] = "SELECT id FROM tasks INDEXED BY tasks_finished WHERE status >= 2"
                  " AND finished_at < ?1 ORDER BY finished_at LIMIT ?2",
    [L_PAUSE] = "INSERT INTO queues (name, paused) VALUES (?1, ?2)"
                " ON CONFLICT (name) DO UPDATE SET paused = ?2",
    /* A new period starts a new window; the same period keeps counting. */
    [L_RATE] = "INSERT INTO queues (name, rate_limit, rate_period_ms) VALUES (?1, ?2, ?3)"
               " ON CONFLICT (name) DO UPDATE SET rate_limit = ?2, rate_period_ms = ?3,"
               " window_count = CASE WHEN rate_period_ms = ?3 THEN window_count ELSE 0 END",
    [L_CHORE_GET] = "SELECT next_at FROM chores WHERE name = ?1",
    [L_CHORE_PUT] = "INSERT OR REPLACE INTO chores (name, next_at) VALUES (?1, ?2)",
    [L_READ_BEGIN] = "BEGIN",
    [L_READ_END] = "COMMIT",
    /* Counts come from the partial indexes, as count_by_status's do
     * (backend.c): pending from tasks_due, running from tasks_leased,
     * terminal from tasks_done_queue, each read without the table. */
    [L_COUNTS] =
        "SELECT ?1, 0, count(*) FROM tasks INDEXED BY tasks_due WHERE status = 0 AND queue = ?1"
        " UNION ALL SELECT ?1, 1, count(*) FROM tasks INDEXED BY tasks_leased"
        " WHERE status = 1 AND queue = ?1"
        " UNION ALL SELECT queue, status, count(*) FROM tasks INDEXED BY tasks_done_queue"
        " WHERE status + 0 >= 2 AND queue = ?1 GROUP BY status",
    [L_COUNTS_ALL] =
        "SELECT queue, 0, count(*) FROM tasks INDEXED BY tasks_due WHERE status = 0"
        " GROUP BY queue"
        " UNION ALL SELECT queue, 1, count(*) FROM tasks INDEXED BY tasks_leased"
        " WHERE status = 1 GROUP BY queue"
        " UNION ALL SELECT queue, status, count(*) FROM tasks INDEXED BY tasks_done_queue"
        " WHERE status + 0 >= 2 GROUP BY queue, status",
    [L_DUE] = "SELECT queue, min(eta) FROM tasks WHERE status = 0 AND queue = ?1"
              " AND eta <= ?2",
    [L_DUE_ALL] = "SELECT queue, min(eta) FROM tasks WHERE status = 0 AND eta <= ?2"
                  " GROUP BY queue",
    [L_TOTALS] = "SELECT queue, kind, n FROM run_totals WHERE queue = ?1",
    [L_TOTALS_ALL] = "SELECT queue, kind, n FROM run_totals",
    [L_SETTINGS] = "SELECT name, paused, rate_limit, rate_period_ms FROM queues WHERE name = ?1",
    [L_SETTINGS_ALL] = "SELECT name, paused, rate_limit, rate_period_ms FROM queues",
    [L_VACUUM] = "PRAGMA incremental_vacuum",
};

static int lazy(sq_t *sq, int slot, sqlite3_stmt **out, char *err, size_t errlen) {
  return omniq__sqlite_lazy(sq, slot, lazy_sql[slot], out, err, errlen);
}

/* Runs a lazy statement bound to one id (and no rows back). */
static int run_on_id(sq_t *sq, int slot, const char *id, const char *what, char *err,
                     size_t errlen) {
  sqlite3_stmt *s;
  int rc = lazy(sq, slot, &s, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  rc = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  return rc == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, rc, what, err, errlen);
}

/* The status of a task (*status), with copies of its queue and key when
 * queue is given (yours). OMNIQ_ENOTFOUND if there is no such task. */
static int task_state(sq_t *sq, const char *id, const char *what, int *status, char **queue,
                      char **key, char *err, size_t errlen) {
  sqlite3_stmt *s;
  int rc = lazy(sq, L_TASK_STATE, &s, err, errlen), src;
  if (rc != OMNIQ_OK) return rc;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  src = sqlite3_step(s);
  if (src == SQLITE_ROW) {
    *status = sqlite3_column_int(s, 0);
    if (queue != NULL) {
      const char *k = (const char *)sqlite3_column_text(s, 2);
      *queue = omniq__strdup((const char *)sqlite3_column_text(s, 1));
      *key = omniq__strdup(k);
      if (*queue == NULL || (k != NULL && *key == NULL))
        rc = omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s %s: out of memory", what, id);
    }
  } else if (src == SQLITE_DONE) {
    rc = omniq__sqlite_errf(OMNIQ_ENOTFOUND, err, errlen, "%s %s: no such task", what, id);
  } else {
    rc = omniq__sqlite_fail(sq, src, what, err, errlen);
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc;
}

/* ---- retry, delete -------------------------------------------------------- */

typedef struct {
  const char *id;
  int64_t eta, now;
  int prev;
  char *holder;
} retry_arg_t;

static int do_retry(sq_t *sq, void *p, char *err, size_t errlen) {
  retry_arg_t *a = p;
  char *queue = NULL, *key = NULL;
  sqlite3_stmt *s;
  int rc = omniq__sqlite_begin(sq, err, errlen);
  if (rc == OMNIQ_OK) rc = task_state(sq, a->id, "retry", &a->prev, &queue, &key, err, errlen);
  if (rc == OMNIQ_OK && a->prev != OMNIQ_FAILED && a->prev != OMNIQ_CANCELLED)
    rc = omniq__sqlite_errf(OMNIQ_ESTATE, err, errlen, "retry %s: task is %s", a->id,
                            omniq_status_name(a->prev));
  /* The key first: if another task holds it now, nothing changes. */
  if (rc == OMNIQ_OK && key != NULL)
    rc = omniq__sqlite_take_key(sq, queue, key, a->id, a->now, a->holder, err, errlen);
  if (rc == OMNIQ_OK) rc = lazy(sq, L_RETRY, &s, err, errlen);
  if (rc == OMNIQ_OK) {
    sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, a->eta);
    int src = omniq__sqlite_step_done(s);
    sqlite3_clear_bindings(s);
    if (src != SQLITE_OK) rc = omniq__sqlite_fail(sq, src, "retry", err, errlen);
  }
  omniq__free(queue);
  omniq__free(key);
  return rc == OMNIQ_OK ? omniq__sqlite_commit(sq, err, errlen) : rc;
}

int omniq__sqlite_retry(void *backend, const char *id, int64_t eta_ms, int64_t now_ms,
                        int *prev_status, char holder[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  char who[OMNIQ_ID_SIZE] = "";
  retry_arg_t a = {id, eta_ms, now_ms, -1, who};
  if (!omniq_id_valid(id))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "retry: malformed task id");
  int rc = omniq__sqlite_run(backend, do_retry, &a, err, errlen);
  if (prev_status != NULL) *prev_status = a.prev;
  if (holder != NULL) memcpy(holder, who, OMNIQ_ID_SIZE);
  return rc;
}

/* A terminal task, its result and its unique key: gone together. */
static int remove_task(sq_t *sq, const char *id, char *err, size_t errlen) {
  int rc = run_on_id(sq, L_DEL_RESULT, id, "delete: the result", err, errlen);
  if (rc == OMNIQ_OK) rc = run_on_id(sq, L_DEL_KEY, id, "delete: the unique key", err, errlen);
  if (rc == OMNIQ_OK) rc = run_on_id(sq, L_DEL_TASK, id, "delete: the task", err, errlen);
  return rc;
}

typedef struct {
  const char *id;
  int prev;
} delete_arg_t;

static int do_delete(sq_t *sq, void *p, char *err, size_t errlen) {
  delete_arg_t *a = p;
  int rc = omniq__sqlite_begin(sq, err, errlen);
  if (rc == OMNIQ_OK) rc = task_state(sq, a->id, "delete", &a->prev, NULL, NULL, err, errlen);
  if (rc == OMNIQ_OK && !omniq_status_is_terminal(a->prev))
    rc = omniq__sqlite_errf(OMNIQ_ESTATE, err, errlen, "delete %s: task is %s", a->id,
                            omniq_status_name(a->prev));
  if (rc == OMNIQ_OK) rc = remove_task(sq, a->id, err, errlen);
  return rc == OMNIQ_OK ? omniq__sqlite_commit(sq, err, errlen) : rc;
}

int omniq__sqlite_delete(void *backend, const char *id, int *prev_status, char *err,
                         size_t errlen) {
  delete_arg_t a = {id, -1};
  if (!omniq_id_valid(id))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "delete: malformed task id");
  int rc = omniq__sqlite_run(backend, do_delete, &a, err, errlen);
  if (prev_status != NULL) *prev_status = a.prev;
  return rc;
}

/* ---- retention ------------------------------------------------------------ */

typedef struct {
  int64_t before;
  size_t max;
  int64_t count;
  char (*ids)[OMNIQ_ID_SIZE];
} purge_arg_t;

static int do_purge_tasks(sq_t *sq, void *p, char *err, size_t errlen) {
  purge_arg_t *a = p;
  sqlite3_stmt *s;
  size_t n = 0;
  int src = SQLITE_DONE;
  int rc = omniq__sqlite_begin(sq, err, errlen);
  a->count = 0;
  if (rc == OMNIQ_OK) rc = lazy(sq, L_EXPIRED, &s, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  /* The ids first, then the deletes: a statement is not stepped while the
   * rows it walks are being deleted. */
  sqlite3_bind_int64(s, 1, a->before);
  sqlite3_bind_int64(s, 2, (int64_t)a->max);
  while (n < a->max && (src = sqlite3_step(s)) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(s, 0);
    if (id != NULL && omniq_id_valid(id)) memcpy(a->ids[n++], id, OMNIQ_ID_SIZE);
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (src != SQLITE_ROW && src != SQLITE_DONE)
    return omniq__sqlite_fail(sq, src, "purge_tasks", err, errlen);
  for (size_t i = 0; rc == OMNIQ_OK && i < n; i++) rc = remove_task(sq, a->ids[i], err, errlen);
  if (rc == OMNIQ_OK) rc = omniq__sqlite_commit(sq, err, errlen);
  if (rc == OMNIQ_OK) a->count = (int64_t)n;
  /* Hand the freed pages back (a no-op unless auto_vacuum is incremental);
   * a failure here costs space, not data, so it is not the caller's. */
  if (rc == OMNIQ_OK && n > 0) {
    if (lazy(sq, L_VACUUM, &s, err, errlen) == OMNIQ_OK) {
      while (sqlite3_step(s) == SQLITE_ROW) {
      }
      sqlite3_reset(s);
    }
    err[0] = '\0';
  }
  return rc;
}

int omniq__sqlite_purge_tasks(void *backend, int64_t before_ms, size_t max, int64_t *count,
                              char *err, size_t errlen) {
  purge_arg_t a = {before_ms, max, 0, NULL};
  int rc = OMNIQ_OK;
  *count = 0;
  if (max == 0) return OMNIQ_OK;
  if ((a.ids = omniq__malloc(max * sizeof *a.ids)) == NULL)
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "purge_tasks: out of memory");
  rc = omniq__sqlite_run(backend, do_purge_tasks, &a, err, errlen);
  omniq__free(a.ids);
  *count = rc == OMNIQ_OK ? a.count : 0;
  return rc;
}

/* ---- queue settings, chores ---------------------------------------------- */

typedef struct {
  int slot;
  const char *name;
  int64_t a, b; /* paused; or limit and period */
  int won;
} setting_arg_t;

static int do_setting(sq_t *sq, void *p, char *err, size_t errlen) {
  setting_arg_t *a = p;
  sqlite3_stmt *s;
  int rc = lazy(sq, a->slot, &s, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  sqlite3_bind_text(s, 1, a->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, a->a);
  sqlite3_bind_int64(s, 3, a->b);
  rc = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  return rc == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, rc, "queue setting", err, errlen);
}

int omniq__sqlite_set_paused(void *backend, const char *queue, int paused, char *err,
                             size_t errlen) {
  setting_arg_t a = {L_PAUSE, queue, paused != 0, 0, 0};
  if (queue == NULL || queue[0] == '\0')
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "set_paused: no queue named");
  return omniq__sqlite_run(backend, do_setting, &a, err, errlen);
}

int omniq__sqlite_set_rate(void *backend, const char *queue, int64_t limit, int64_t period_ms,
                           char *err, size_t errlen) {
  setting_arg_t a = {L_RATE, queue, limit, limit > 0 ? period_ms : 0, 0};
  if (queue == NULL || queue[0] == '\0' || limit < 0 || (limit > 0 && period_ms < 1))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s",
                              "set_rate: no queue named, or a negative limit or period");
  return omniq__sqlite_run(backend, do_setting, &a, err, errlen);
}

static int do_chore(sq_t *sq, void *p, char *err, size_t errlen) {
  setting_arg_t *a = p; /* a: now, b: next */
  sqlite3_stmt *s;
  int rc = omniq__sqlite_begin(sq, err, errlen), src = SQLITE_DONE;
  a->won = 0;
  if (rc == OMNIQ_OK) rc = lazy(sq, L_CHORE_GET, &s, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  sqlite3_bind_text(s, 1, a->name, -1, SQLITE_STATIC);
  src = sqlite3_step(s);
  a->won = src == SQLITE_DONE || (src == SQLITE_ROW && sqlite3_column_int64(s, 0) <= a->a);
  sqlite3_reset(s);
  if (src != SQLITE_ROW && src != SQLITE_DONE)
    return omniq__sqlite_fail(sq, src, "claim_chore", err, errlen);
  if (a->won && (rc = lazy(sq, L_CHORE_PUT, &s, err, errlen)) == OMNIQ_OK) {
    sqlite3_bind_text(s, 1, a->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, a->b);
    src = omniq__sqlite_step_done(s);
    sqlite3_clear_bindings(s);
    if (src != SQLITE_OK) rc = omniq__sqlite_fail(sq, src, "claim_chore", err, errlen);
  }
  if (rc != OMNIQ_OK) a->won = 0;
  return rc == OMNIQ_OK ? omniq__sqlite_commit(sq, err, errlen) : rc;
}

int omniq__sqlite_claim_chore(void *backend, const char *chore, int64_t now_ms, int64_t next_ms,
                              int *won, char *err, size_t errlen) {
  setting_arg_t a = {0, chore, now_ms, next_ms, 0};
  *won = 0;
  if (chore == NULL || chore[0] == '\0')
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "claim_chore: no chore named");
  int rc = omniq__sqlite_run(backend, do_chore, &a, err, errlen);
  *won = rc == OMNIQ_OK && a.won;
  return rc;
}

/* ---- statistics ------------------------------------------------------------ */

typedef struct {
  const char *queue; /* NULL = every queue */
  int64_t now;
  omniq_queue_info_t *q;
  size_t n, cap;
} stats_arg_t;

typedef void (*row_fn)(omniq_queue_info_t *r, sqlite3_stmt *s);

static void row_count(omniq_queue_info_t *r, sqlite3_stmt *s) {
  int st = sqlite3_column_int(s, 1);
  if (st >= 0 && st < OMNIQ_STATUS_COUNT) r->counts[st] = sqlite3_column_int64(s, 2);
}

static void row_due(omniq_queue_info_t *r, sqlite3_stmt *s) {
  r->oldest_due_eta_ms = sqlite3_column_int64(s, 1);
}

static void row_total(omniq_queue_info_t *r, sqlite3_stmt *s) {
  int kind = sqlite3_column_int(s, 1);
  if (kind >= 0 && kind < OMNIQ_RUNS_KINDS) r->runs[kind] = sqlite3_column_int64(s, 2);
}

static void row_setting(omniq_queue_info_t *r, sqlite3_stmt *s) {
  r->paused = sqlite3_column_int(s, 1) != 0;
  r->rate_limit = sqlite3_column_int64(s, 2);
  r->rate_period_ms = sqlite3_column_int64(s, 3);
}

/* Runs one of the statistics queries (its first column the queue name) and
 * hands each row to fn. */
static int gather(sq_t *sq, stats_arg_t *a, int slot, row_fn fn, char *err, size_t errlen) {
  sqlite3_stmt *s;
  int rc = lazy(sq, a->queue != NULL ? slot : slot + 1, &s, err, errlen), src;
  if (rc != OMNIQ_OK) return rc;
  if (a->queue != NULL) sqlite3_bind_text(s, 1, a->queue, -1, SQLITE_STATIC);
  if (slot == L_DUE) sqlite3_bind_int64(s, 2, a->now);
  while (rc == OMNIQ_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
    if (sqlite3_column_type(s, 0) == SQLITE_NULL) continue; /* min() over no rows */
    omniq_queue_info_t *r =
        omniq__queue_info_of(&a->q, &a->n, &a->cap, (const char *)sqlite3_column_text(s, 0));
    if (r != NULL) fn(r, s);
  }
  if (rc == OMNIQ_OK && src != SQLITE_DONE)
    rc = omniq__sqlite_fail(sq, src, "queue_stats", err, errlen);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc;
}

static int do_stats(sq_t *sq, void *p, char *err, size_t errlen) {
  stats_arg_t *a = p;
  sqlite3_stmt *s;
  int rc = lazy(sq, L_READ_BEGIN, &s, err, errlen);
  a->n = 0;
  if (rc == OMNIQ_OK && omniq__sqlite_step_done(s) != SQLITE_OK)
    rc = omniq__sqlite_fail(sq, sqlite3_errcode(sq->db), "queue_stats", err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (a->queue != NULL && omniq__queue_info_of(&a->q, &a->n, &a->cap, a->queue) == NULL)
    rc = omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "queue_stats: out of memory");
  if (rc == OMNIQ_OK) rc = gather(sq, a, L_COUNTS, row_count, err, errlen);
  if (rc == OMNIQ_OK) rc = gather(sq, a, L_DUE, row_due, err, errlen);
  if (rc == OMNIQ_OK) rc = gather(sq, a, L_TOTALS, row_total, err, errlen);
  if (rc == OMNIQ_OK) rc = gather(sq, a, L_SETTINGS, row_setting, err, errlen);
  if (rc == OMNIQ_OK && lazy(sq, L_READ_END, &s, err, errlen) == OMNIQ_OK)
    omniq__sqlite_step_done(s); /* the end of a read transaction cannot lose anything */
  return rc;
}

static int by_name(const void *x, const void *y) {
  return strcmp(((const omniq_queue_info_t *)x)->name, ((const omniq_queue_info_t *)y)->name);
}

int omniq__sqlite_queue_stats(void *backend, const char *queue, int64_t now_ms,
                              omniq_queue_info_t **out, size_t *n, char *err, size_t errlen) {
  stats_arg_t a = {queue, now_ms, NULL, 0, 0};
  *out = NULL;
  *n = 0;
  if (queue != NULL && (queue[0] == '\0' || strlen(queue) >= OMNIQ_NAME_MAX))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "queue_stats: bad queue name");
  int rc = omniq__sqlite_run(backend, do_stats, &a, err, errlen);
  if (rc != OMNIQ_OK || a.n == 0) {
    free(a.q);
    return rc;
  }
  if (a.n > 1) qsort(a.q, a.n, sizeof *a.q, by_name);
  *out = a.q;
  *n = a.n;
  return OMNIQ_OK;
}
