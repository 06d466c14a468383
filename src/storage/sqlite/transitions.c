/* SPDX-License-Identifier: MIT */
/* SQLite backend: the writes besides a run's outcome (finish.c): enqueue
 * (with unique keys), lease extension, cancel and the purge of results.
 *
 * Each is one transaction run through omniq__sqlite_run, which rolls back
 * whatever an operation left open and retries the SQLITE_BUSY cases that
 * do not wait. Enqueue and cancel read before they write, so they start
 * with BEGIN IMMEDIATE (omniq__sqlite_begin): the read and the write then
 * see the same row whatever another connection does meanwhile. Extension
 * and purge are single statements, transactions of their own. */
#include "storage/sqlite/backend.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/records.h"

typedef omniq__sqlite_t sq_t;

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
  return src == SQLITE_OK ? OMNIQ_OK
                          : omniq__sqlite_fail(sq, src, "taking a unique key", err, errlen);
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

int omniq__sqlite_enqueue_many(void *backend, omniq_task_t *const *tasks, size_t n,
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

int omniq__sqlite_enqueue(void *backend, omniq_task_t *const *tasks, size_t n, char *err,
                          size_t errlen) {
  return omniq__sqlite_enqueue_many(backend, tasks, n, NULL, err, errlen);
}

/* ---- extend, cancel, purge ----------------------------------------------- */

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
  if (sqlite3_changes(sq->db) == 0)
    return omniq__sqlite_explain_miss(sq, a->id, "extend_lease", err, errlen);
  return OMNIQ_OK;
}

int omniq__sqlite_extend_lease(void *backend, const char *id, int64_t token,
                               int64_t lease_until_ms, char *err, size_t errlen) {
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

int omniq__sqlite_cancel(void *backend, const char *id, int64_t finished_at_ms,
                         int *prev_status, char *err, size_t errlen) {
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

int omniq__sqlite_purge_results(void *backend, int64_t older_than_ms, int64_t *count,
                                char *err, size_t errlen) {
  purge_arg_t a = {older_than_ms, 0};
  int rc = omniq__sqlite_run(backend, do_purge, &a, err, errlen);
  if (count != NULL) *count = rc == OMNIQ_OK ? a.count : 0;
  return rc;
}
