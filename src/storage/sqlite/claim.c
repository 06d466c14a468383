/* SPDX-License-Identifier: MIT */
/* SQLite backend: the claim, alone (claim) or riding with a finish
 * (finish_claim).
 *
 * The claim reads the settings of each queue named (pause, rate limit,
 * inside its transaction), then reads the rows they allow from the partial
 * index tasks_due (omniq__sqlite_claim_read_sql), takes them with one
 * UPDATE of the same walk (omniq__sqlite_claim_sql), and counts the rate
 * windows, all in one BEGIN IMMEDIATE ... COMMIT: nothing writes between
 * the read and the update, so they meet the same rows, and the records
 * are the rows read with what the update wrote (status, attempts, token,
 * started_at, lease_until) set here. An UPDATE ... RETURNING did both in
 * one statement, but SQLite returns its rows through a trigger program
 * run once per row, gathered in a temporary table (and the trigger can
 * make the statement keep a statement journal): 18% of a claim's
 * instructions more than the read and the update (docs/benchmarks.md).
 * If building the records fails (out of memory) nothing was taken yet; if
 * anything fails after the update, the rollback puts the tasks back
 * instead of leaving them RUNNING with no one holding them. The rows come in no promised
 * order (several queues read them by seq), so they are sorted here.
 *
 * finish_claim hands the claim to the group commit (group.c) with the
 * finish: it runs in the finish's transaction if the finish applied, so a
 * runner reporting a run and taking its next task commits once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/records.h"
#include "storage/sqlite/backend.h"

typedef omniq__sqlite_t sq_t;

typedef struct {
  omniq_task_t *t;
  int64_t seq;
} claimed_t;

/* What a claim may take from one queue, read inside its transaction. */
typedef struct {
  const char *name;
  int64_t allow;        /* at most this many; 0 = paused or its window is used up */
  int64_t limit;        /* the rate limit, 0 = none */
  int64_t window, used; /* the rate window this claim falls in, and its starts so far */
} claimable_t;

struct omniq__sqlite_claim {
  const omniq_claim_req_t *req;
  const char **queues; /* distinct names */
  size_t nq;
  claimable_t *open;   /* nq slots: the queues this claim may take from */
  size_t nopen;
  claimed_t *rows;
  size_t n, cap;
};
typedef omniq__sqlite_claim_t claim_arg_t;

static int claim_order(const void *pa, const void *pb) {
  const claimed_t *a = pa, *b = pb;
  if (a->t->priority != b->t->priority) return a->t->priority > b->t->priority ? -1 : 1;
  if (a->t->eta_ms != b->t->eta_ms) return a->t->eta_ms < b->t->eta_ms ? -1 : 1;
  return (a->seq > b->seq) - (a->seq < b->seq);
}

/* A prepared claim statement for nq queues from cache (built by
 * make_sql); *owned when it is a one-off the caller finalizes (more queues
 * than the cache holds). */
static int claim_stmt(sq_t *sq, sqlite3_stmt **cache, char *(*make_sql)(size_t), size_t nq,
                      sqlite3_stmt **out, int *owned, char *err, size_t errlen) {
  char *sql;
  int rc;
  *owned = nq > OMNIQ__SQLITE_CLAIM_CACHE;
  if (!*owned && cache[nq] != NULL) {
    *out = cache[nq];
    return OMNIQ_OK;
  }
  if ((sql = make_sql(nq)) == NULL)
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "claim: out of memory");
  rc = sqlite3_prepare_v3(sq->db, sql, -1, *owned ? 0 : SQLITE_PREPARE_PERSISTENT, out, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) return omniq__sqlite_fail(sq, rc, "preparing the claim", err, errlen);
  if (!*owned) cache[nq] = *out;
  return OMNIQ_OK;
}

/* Binds what both claim statements take (see omniq__sqlite_claim_sql). */
static void bind_claim(sqlite3_stmt *s, const claim_arg_t *a) {
  sqlite3_bind_int64(s, 1, a->req->now_ms);
  sqlite3_bind_int64(s, 2, a->req->lease_until_ms);
  sqlite3_bind_int64(s, 3, a->req->max > INT64_MAX ? INT64_MAX : (int64_t)a->req->max);
  for (size_t i = 0; i < a->nopen; i++) {
    sqlite3_bind_text(s, (int)(4 + 2 * i), a->open[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, (int)(5 + 2 * i), a->open[i].allow);
  }
}

static void finish_stmt(sqlite3_stmt *s, int owned) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (owned) sqlite3_finalize(s);
}

void omniq__sqlite_claim_drop(claim_arg_t *a) {
  for (size_t i = 0; i < a->n; i++) omniq_task_free(a->rows[i].t);
  a->n = 0;
}

/* Reads the settings of each queue named (inside the claim's transaction)
 * and keeps those it may take from, with how many: a paused queue gives
 * nothing, a rate-limited one what its current window has left. */
static int open_queues(sq_t *sq, claim_arg_t *a, char *err, size_t errlen) {
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_QUEUE_STATE];
  int64_t max = a->req->max > INT64_MAX ? INT64_MAX : (int64_t)a->req->max;
  a->nopen = 0;
  for (size_t i = 0; i < a->nq; i++) {
    claimable_t q = {.name = a->queues[i], .allow = max};
    int src;
    sqlite3_bind_text(s, 1, q.name, -1, SQLITE_STATIC);
    src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
      int64_t period = sqlite3_column_int64(s, 2);
      q.limit = sqlite3_column_int64(s, 1);
      if (sqlite3_column_int(s, 0) != 0) {
        q.allow = 0;
      } else if (q.limit > 0 && period > 0) {
        int64_t counting = sqlite3_column_int64(s, 3);
        q.window = a->req->now_ms - a->req->now_ms % period;
        q.used = counting == q.window ? sqlite3_column_int64(s, 4) : 0;
        if (q.limit - q.used < q.allow) q.allow = q.limit - q.used > 0 ? q.limit - q.used : 0;
        /* A claim whose now is behind the window already counting (it
         * read the clock before another claim got in first) takes
         * nothing: counting it in the old window would undo the new one's
         * count. Its next claim has a later now. */
        if (counting > q.window) q.allow = 0;
      } else {
        q.limit = 0;
      }
    }
    sqlite3_reset(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
      return omniq__sqlite_fail(sq, src, "claim: reading the queue's settings", err, errlen);
    if (q.allow > 0) a->open[a->nopen++] = q;
  }
  return OMNIQ_OK;
}

/* Counts what the claim took from each rate-limited queue into its window,
 * in the claim's transaction. */
static int spend_windows(sq_t *sq, claim_arg_t *a, char *err, size_t errlen) {
  sqlite3_stmt *s = sq->st[OMNIQ__SQ_QUEUE_WINDOW];
  for (size_t i = 0; i < a->nopen; i++) {
    claimable_t *q = &a->open[i];
    int64_t took = 0;
    if (q->limit == 0) continue;
    for (size_t k = 0; k < a->n; k++) took += strcmp(a->rows[k].t->queue, q->name) == 0;
    if (took == 0) continue;
    sqlite3_bind_text(s, 1, q->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, q->window);
    sqlite3_bind_int64(s, 3, q->used + took);
    int src = omniq__sqlite_step_done(s);
    sqlite3_clear_bindings(s);
    if (src != SQLITE_OK) return omniq__sqlite_fail(sq, src, "claim: rate window", err, errlen);
  }
  return OMNIQ_OK;
}

/* Reads the rows the claim takes, as they are before it, into a->rows. */
static int read_rows(sq_t *sq, claim_arg_t *a, char *err, size_t errlen) {
  sqlite3_stmt *s;
  int owned, rc, src = SQLITE_DONE;
  rc = claim_stmt(sq, sq->claim_read, omniq__sqlite_claim_read_sql, a->nopen, &s, &owned, err,
                  errlen);
  if (rc != OMNIQ_OK) return rc;
  bind_claim(s, a);
  while (rc == OMNIQ_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
    if (a->n == a->cap) {
      size_t cap = a->cap ? a->cap * 2 : 16;
      claimed_t *rows = omniq__realloc(a->rows, cap * sizeof *rows);
      if (rows == NULL) {
        rc = omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "claim: out of memory");
        break;
      }
      a->rows = rows;
      a->cap = cap;
    }
    rc = omniq__sqlite_row_task(s, &a->rows[a->n].t, &a->rows[a->n].seq);
    if (rc != OMNIQ_OK)
      rc = omniq__sqlite_fail_row(sq, rc, (const char *)sqlite3_column_text(s, 0), err, errlen);
    else
      a->n++;
  }
  if (rc == OMNIQ_OK && src != SQLITE_DONE) rc = omniq__sqlite_fail(sq, src, "claim", err, errlen);
  finish_stmt(s, owned);
  return rc;
}

/* Takes the rows read_rows read: the same walk, in the same transaction
 * with nothing written between, so the same rows; then the records say
 * what the update wrote. */
static int take_rows(sq_t *sq, claim_arg_t *a, char *err, size_t errlen) {
  sqlite3_stmt *s;
  int owned, rc, src;
  rc = claim_stmt(sq, sq->claim, omniq__sqlite_claim_sql, a->nopen, &s, &owned, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  bind_claim(s, a);
  src = sqlite3_step(s);
  finish_stmt(s, owned);
  if (src != SQLITE_DONE) return omniq__sqlite_fail(sq, src, "claim", err, errlen);
  if ((size_t)sqlite3_changes(sq->db) != a->n)
    return omniq__sqlite_errf(OMNIQ_ESTORAGE, err, errlen,
                              "sqlite %s: claim: read %zu tasks but took %d; nothing taken",
                              sq->path, a->n, sqlite3_changes(sq->db));
  for (size_t i = 0; i < a->n; i++) {
    omniq_task_t *t = a->rows[i].t;
    t->status = OMNIQ_RUNNING;
    t->attempts++;
    t->token++;
    t->started_at_ms = a->req->now_ms;
    t->lease_until_ms = a->req->lease_until_ms;
  }
  return OMNIQ_OK;
}

int omniq__sqlite_apply_claim(sq_t *sq, claim_arg_t *a, char *err, size_t errlen) {
  int rc;
  omniq__sqlite_claim_drop(a); /* a retry starts from nothing */
  rc = open_queues(sq, a, err, errlen);
  if (rc != OMNIQ_OK || a->nopen == 0) return rc;
  rc = read_rows(sq, a, err, errlen);
  if (rc == OMNIQ_OK && a->n > 0) rc = take_rows(sq, a, err, errlen);
  if (rc == OMNIQ_OK) rc = spend_windows(sq, a, err, errlen);
  if (rc != OMNIQ_OK) omniq__sqlite_claim_drop(a);
  return rc;
}

static int do_claim(sq_t *sq, void *p, char *err, size_t errlen) {
  claim_arg_t *a = p;
  int rc = omniq__sqlite_begin(sq, err, errlen);
  if (rc == OMNIQ_OK) rc = omniq__sqlite_apply_claim(sq, a, err, errlen);
  if (rc == OMNIQ_OK) rc = omniq__sqlite_commit(sq, err, errlen);
  if (rc != OMNIQ_OK) omniq__sqlite_claim_drop(a);
  return rc;
}

/* Checks req and sets a up for it (its distinct queue names). On error a
 * holds nothing to free. */
static int claim_setup(const omniq_claim_req_t *req, claim_arg_t *a, char *err, size_t errlen) {
  int rc = OMNIQ_OK;
  memset(a, 0, sizeof *a);
  a->req = req;
  if (req == NULL || req->nqueues == 0 || req->queues == NULL)
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "claim: no queue named");
  /* A name given twice would make two arms return the same rows. */
  if ((a->queues = omniq__malloc(req->nqueues * sizeof *a->queues)) == NULL)
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "claim: out of memory");
  for (size_t i = 0; i < req->nqueues && rc == OMNIQ_OK; i++) {
    size_t j = 0;
    if (req->queues[i] == NULL)
      rc = omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "claim: NULL queue name");
    while (rc == OMNIQ_OK && j < a->nq && strcmp(a->queues[j], req->queues[i]) != 0) j++;
    if (rc == OMNIQ_OK && j == a->nq) a->queues[a->nq++] = req->queues[i];
  }
  if (rc == OMNIQ_OK && (a->open = omniq__malloc(a->nq * sizeof *a->open)) == NULL)
    rc = omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "claim: out of memory");
  if (rc != OMNIQ_OK) omniq__free(a->queues);
  return rc;
}

/* Hands the rows over as the caller's task array, in claim order, and
 * frees the rest of a. */
static void claim_take(claim_arg_t *a, omniq_task_t ***out, size_t *n) {
  omniq__free(a->open);
  omniq__free(a->queues);
  if (a->n == 0) {
    omniq__free(a->rows);
    return;
  }
  qsort(a->rows, a->n, sizeof *a->rows, claim_order);
  /* The row array becomes the task array in place, so nothing can fail
   * after the claim committed. Safe front to back: output slot i lies within
   * input rows 0..i, which have been read by then. */
  omniq_task_t **tasks = (omniq_task_t **)(void *)a->rows;
  for (size_t i = 0; i < a->n; i++) tasks[i] = a->rows[i].t;
  *out = tasks;
  *n = a->n;
}

int omniq__sqlite_claim(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                        char *err, size_t errlen) {
  claim_arg_t a;
  *out = NULL;
  *n = 0;
  if (req != NULL && req->max == 0 && req->nqueues > 0 && req->queues != NULL) return OMNIQ_OK;
  int rc = claim_setup(req, &a, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__sqlite_run(backend, do_claim, &a, err, errlen);
  claim_take(&a, out, n); /* nothing on error: do_claim dropped it */
  return rc;
}

/* ---- riding with a finish ----------------------------------------------- */

/* The finish, and the claim in its transaction (group.c). A claim that
 * cannot be set up (a malformed request, no memory) is not made: the
 * finish goes alone and the caller claims as usual. */
int omniq__sqlite_finish_claim(void *backend, const omniq_decision_t *d,
                               const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                               int *claimed, char *err, size_t errlen) {
  claim_arg_t a;
  char ignored[OMNIQ__ERRMSG_MAX];
  int rc = omniq__sqlite_check_finish(d, err, errlen), with = 0;
  *out = NULL;
  *n = 0;
  *claimed = 0;
  if (rc != OMNIQ_OK) return rc;
  if (req == NULL || req->max == 0 || claim_setup(req, &a, ignored, sizeof ignored) != OMNIQ_OK)
    return omniq__sqlite_finish_grouped(backend, d, NULL, NULL, err, errlen);
  rc = omniq__sqlite_finish_grouped(backend, d, &a, &with, err, errlen);
  claim_take(&a, out, n); /* nothing when the claim was not made */
  *claimed = with;
  return rc;
}

/* The finishes, then the claim, in one transaction of the group commit. A
 * claim that cannot be set up is not made, as in finish_claim. */
int omniq__sqlite_finish_many(void *backend, const omniq_decision_t *ds, size_t n, int *rcs,
                              const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                              int *claimed, char *err, size_t errlen) {
  claim_arg_t a;
  char ignored[OMNIQ__ERRMSG_MAX];
  int rc, with = 0;
  *out = NULL;
  *nout = 0;
  *claimed = 0;
  for (size_t i = 0; i < n; i++)
    if ((rc = omniq__sqlite_check_finish(&ds[i], err, errlen)) != OMNIQ_OK) return rc;
  if (n == 0) {
    if (req == NULL || req->max == 0) return OMNIQ_OK;
    rc = omniq__sqlite_claim(backend, req, out, nout, err, errlen);
    *claimed = rc == OMNIQ_OK;
    return rc;
  }
  if (req == NULL || req->max == 0 || claim_setup(req, &a, ignored, sizeof ignored) != OMNIQ_OK)
    return omniq__sqlite_finish_group_many(backend, ds, n, rcs, NULL, NULL, err, errlen);
  rc = omniq__sqlite_finish_group_many(backend, ds, n, rcs, &a, &with, err, errlen);
  claim_take(&a, out, nout); /* nothing when the claim was not made */
  *claimed = with;
  return rc;
}
