/* SPDX-License-Identifier: MIT */
/* SQLite backend: a run's outcome (finish), alone or as one of a group
 * commit's decisions (group.c), and the running totals it adds to.
 *
 * A finish is token-checked: it applies only to the row still RUNNING
 * under the decision's claim token, so a run whose lease was recovered and
 * claimed again cannot overwrite the new run's outcome, and a miss changes
 * nothing (omniq__sqlite_explain_miss then says ESTATE or ENOTFOUND).
 *
 * The decision names the task's queue as its claim returned it (storage
 * ABI 7). The running totals are kept by queue, so a finish needs the
 * queue; with the hint the update is one statement by id, token and queue
 * and the totals take the hinted queue. That is safe because the queue is
 * part of the update's fence: a hint that is not the task's queue matches
 * no row, and the finish then looks the row up under its token alone (as
 * it does without a hint) and counts the run in the queue the row names.
 * So a wrong hint costs one statement more and never changes the outcome.
 *
 * In a group commit the totals and results go to the batch's tally and
 * are written once each, before the commit (omniq__sqlite_tally_write).
 *
 * A group commit's finishes that name their queue go 64, 32, ... 2 to a
 * statement (finish_rows: one UPDATE ... FROM a VALUES list, prepared
 * per row count on first use). One statement keeps its cursors on the
 * indexes it writes between rows, where a statement per finish seeks
 * each of them from the root again: 19% fewer instructions a finish
 * (docs/benchmarks.md). Its fences are the single finish's (id, RUNNING,
 * token, queue); when fewer rows change than it carries (a stale token, a
 * gone task, a wrong queue, the same task twice), a savepoint undoes it
 * and each finish is applied alone, so each gets its own outcome and
 * message as before. */
#include "storage/sqlite/backend.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/records.h"

typedef omniq__sqlite_t sq_t;

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
  if (src == SQLITE_DONE) return omniq__sqlite_explain_miss(sq, d->id, "finish", err, errlen);
  if (src != SQLITE_ROW) return omniq__sqlite_fail(sq, src, "finish", err, errlen);
  if (*queue == NULL) return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "out of memory");
  s = sq->st[OMNIQ__SQ_FINISH];
  sqlite3_bind_int64(s, 1, seq);
  bind_outcome(s, d, error_json, finished);
  src = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  return src == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, src, "finish", err, errlen);
}

/* When a finish of d records its run: the result's time if it ends the
 * task with one, else 0. */
static int64_t finished_at(const omniq_decision_t *d) {
  return omniq_status_is_terminal(d->next_status) && d->result != NULL ? d->result->finished_at_ms
                                                                        : 0;
}

/* What a finish that took its row adds: its run to the totals of queue
 * (or its count in tally) and its result (queued in tally, or written). */
static int account(sq_t *sq, const omniq_decision_t *d, const char *queue,
                   omniq__sqlite_tally_t *tally, char *err, size_t errlen) {
  int rc = OMNIQ_OK;
  if (tally == NULL || tally_add(tally, queue, d->runs) != 0)
    rc = add_total(sq, queue, d->runs, 1, err, errlen);
  if (rc == OMNIQ_OK && d->result != NULL) {
    if (tally != NULL && tally->nresults < OMNIQ__SQLITE_GROUP_MAX)
      tally->results[tally->nresults++] = d;
    else
      rc = omniq__sqlite_put_result(sq, d->id, d->result, err, errlen);
  }
  return rc;
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
  int64_t finished = finished_at(d);
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
  if (rc == OMNIQ_OK) rc = account(sq, d, queue, tally, err, errlen);
  omniq__free(found);
  return rc;
}

/* ---- many to a statement ------------------------------------------------- */

/* The finishes as rows of v, each binding FINISH_PARAMS values (bind_row),
 * and the update of each task v names, fenced as finish_hinted's. */
#define FINISH_HEAD "WITH v (id, status, eta, reset, error, crashes, finished, token, queue) AS (VALUES "
#define FINISH_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define FINISH_PARAMS 9
#define FINISH_TAIL                                                                         \
  ") UPDATE tasks SET status = v.status,"                                                    \
  " eta = CASE WHEN v.status = 0 THEN v.eta ELSE tasks.eta END,"                             \
  " attempts = CASE WHEN v.status = 0 AND v.reset THEN 0 ELSE tasks.attempts END,"          \
  " last_error = coalesce(v.error, tasks.last_error), crashes = v.crashes,"                  \
  " finished_at = v.finished FROM v WHERE tasks.id = v.id AND tasks.status = 1"             \
  " AND tasks.token = v.token AND tasks.queue = v.queue"

static void bind_row(sqlite3_stmt *s, int base, const omniq_decision_t *d, const char *error_json) {
  sqlite3_bind_text(s, base + 1, d->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, base + 2, d->next_status);
  sqlite3_bind_int64(s, base + 3, d->eta_ms);
  sqlite3_bind_int(s, base + 4, d->reset_attempts != 0);
  omniq__sqlite_bind_text(s, base + 5, error_json);
  sqlite3_bind_int(s, base + 6, d->crashes);
  sqlite3_bind_int64(s, base + 7, finished_at(d));
  sqlite3_bind_int64(s, base + 8, d->token);
  sqlite3_bind_text(s, base + 9, d->queue, -1, SQLITE_STATIC);
}

/* Steps the lazy statement of slot (the savepoint's), an SQLite code. */
static int savepoint(sq_t *sq, int slot, const char *sql, char *err, size_t errlen) {
  sqlite3_stmt *s;
  int rc = omniq__sqlite_lazy(sq, slot, sql, &s, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  int src = omniq__sqlite_step_done(s);
  return src == SQLITE_OK ? OMNIQ_OK : omniq__sqlite_fail(sq, src, "finish: savepoint", err, errlen);
}

/* The update of ds[0..k) inside a savepoint; *all says whether it stayed. */
static int update_rows(sq_t *sq, sqlite3_stmt *s, int k, int *all, char *err, size_t errlen) {
  int rc = savepoint(sq, OMNIQ__SQLITE_LAZY_SP_BEGIN, "SAVEPOINT omniq_finish_rows", err, errlen);
  if (rc != OMNIQ_OK) return rc;
  int src = omniq__sqlite_step_done(s);
  if (src != SQLITE_OK) return omniq__sqlite_fail(sq, src, "finish", err, errlen);
  *all = sqlite3_changes(sq->db) == k;
  if (!*all)
    rc = savepoint(sq, OMNIQ__SQLITE_LAZY_SP_UNDO, "ROLLBACK TO omniq_finish_rows", err, errlen);
  if (rc == OMNIQ_OK)
    rc = savepoint(sq, OMNIQ__SQLITE_LAZY_SP_END, "RELEASE omniq_finish_rows", err, errlen);
  return rc;
}

int omniq__sqlite_finish_rows(sq_t *sq, const omniq_decision_t *const *ds, int lg,
                              omniq__sqlite_tally_t *tally, int *all, char *err, size_t errlen) {
  char *error_json[1 << OMNIQ__SQLITE_ROWS_LG] = {0};
  sqlite3_stmt *s;
  int k = 1 << lg, rc = OMNIQ_OK;
  *all = 0;
  int src = omniq__sqlite_rows_stmt(sq, sq->finish_rows, lg, FINISH_HEAD, FINISH_ROW, FINISH_TAIL,
                                    &s);
  if (src != SQLITE_OK) return omniq__sqlite_fail(sq, src, "finish: preparing", err, errlen);
  for (int j = 0; j < k && rc == OMNIQ_OK; j++) {
    const omniq_decision_t *d = ds[j];
    if (d->error != NULL && (error_json[j] = omniq_task_error_to_json(d->error)) == NULL)
      rc = omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "out of memory recording %s", d->id);
    else
      bind_row(s, j * FINISH_PARAMS, d, error_json[j]);
  }
  if (rc == OMNIQ_OK) rc = update_rows(sq, s, k, all, err, errlen);
  sqlite3_clear_bindings(s);
  for (int j = 0; j < k; j++) omniq__free(error_json[j]);
  for (int j = 0; rc == OMNIQ_OK && *all && j < k; j++)
    rc = account(sq, ds[j], ds[j]->queue, tally, err, errlen);
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

int omniq__sqlite_finish(void *backend, const omniq_decision_t *d, char *err, size_t errlen) {
  int rc = omniq__sqlite_check_finish(d, err, errlen);
  return rc == OMNIQ_OK ? omniq__sqlite_finish_grouped(backend, d, NULL, NULL, err, errlen) : rc;
}
