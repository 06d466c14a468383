/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: group commit of finishes.
 *
 * The runners of a worker pool share one handle. Each finish alone is a
 * transaction of its own: a round trip, a commit (a WAL flush the runner
 * waits for) and a notification transaction. With many runners those
 * commits queue on the server one behind another. Here a finishing thread
 * puts its statement's parameters on the handle's list; if no thread is
 * committing, it becomes the committer: it takes everything on the list
 * (up to GROUP_MAX), sends all of it as one pipeline (the finish statement
 * once per task, then one sync, so one implicit transaction and one
 * commit; then one notification for the batch) and wakes each owner with
 * its own outcome. Threads that arrived meanwhile wait and form the next
 * batch, committed by one of them.
 *
 * Nothing waits to fill a batch: a lone finish runs at once as its own
 * statement, exactly as before. Each finish returns only once its
 * transaction has committed (synchronous_commit is the server's, untouched),
 * so a run reported OMNIQ_OK is as durable as before. Each statement keeps
 * its own fence: a stale token or a gone task changes no row, and that
 * finish alone gets OMNIQ_ESTATE or OMNIQ_ENOTFOUND (its owner asks which,
 * after the batch) while the rest commits. A statement that fails (a
 * deadlock on a running-total stripe with another host's batch, a bad
 * value) rolls the whole batch back; then each finish runs alone, with the
 * usual repeat after a refused statement, so one bad finish never fails
 * another. A batch whose connection died in flight may or may not have
 * committed: each finish of it fails with that said, as a lone one does,
 * and the claim token makes a later repeat safe.
 *
 * A finish may carry a claim (finish_claim, claim.c): its statement is
 * then the outcome and the claim in one, so a runner reporting a run and
 * taking its next task costs one statement in the batch, not a batch and a
 * claim transaction of its own. Each claim of a batch sees the tasks the
 * earlier ones took (its own transaction's changes) and passes them by. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "storage/postgres/postgres.h"

#define GROUP_MAX 64

typedef omniq__pg_fin_t fin_t;

int omniq__pg_group_init(omniq__pg_group_t *g) {
  g->head = NULL;
  g->tail = &g->head;
  g->committing = 0;
  if (pthread_mutex_init(&g->lock, NULL) != 0) return -1;
  if (pthread_cond_init(&g->cond, NULL) != 0) {
    pthread_mutex_destroy(&g->lock);
    return -1;
  }
  return 0;
}

void omniq__pg_group_destroy(omniq__pg_group_t *g) {
  pthread_cond_destroy(&g->cond);
  pthread_mutex_destroy(&g->lock);
}

/* The channels a set of finishes must notify (NULL-terminated). */
static void channels(omniq__pg_t *pg, const fin_t *batch, const char *notify[3]) {
  int result = 0, work = 0, nn = 0;
  for (const fin_t *f = batch; f != NULL; f = f->next) {
    result |= f->result;
    work |= f->pending;
  }
  if (result) notify[nn++] = pg->ch_result;
  if (work) notify[nn++] = pg->ch_work;
  notify[nn] = NULL;
}

/* Takes a committed statement's result r: how many rows its outcome
 * changed, and a riding claim's rows, kept for the owner. */
static void took(fin_t *f, PGresult *r) {
  f->changed = 0;
  if (f->stmt == OMNIQ__PGS_FINISH) {
    if (PQntuples(r) == 1) f->changed = omniq__pg_i64(r, 0, 0);
    PQclear(r);
    return;
  }
  int kind = PQnfields(r) - 2;
  for (int row = 0; row < PQntuples(r); row++)
    if (omniq__pg_i64(r, row, kind) == OMNIQ__PG_FC_OUTCOME)
      f->changed = omniq__pg_i64(r, row, kind + 1);
  f->res = r;
}

/* One finish as a statement of its own. */
static void commit_alone(omniq__pg_t *pg, fin_t *f) {
  const char *notify[3];
  fin_t *next = f->next;
  PGresult *r;
  f->next = NULL; /* channels() of this one only */
  channels(pg, f, notify);
  f->next = next;
  f->err[0] = '\0';
  f->rc = omniq__pg_exec(&pg->pool, f->stmt, &f->p, OMNIQ__PG_ONCE,
                         notify[0] != NULL ? notify : NULL, "finish", &r, f->err, f->errlen);
  if (f->rc == OMNIQ_OK) took(f, r);
}

/* The batch in one transaction; 0, or -1 if it was rolled back (nothing
 * of it committed). */
static int commit_together(omniq__pg_t *pg, fin_t *batch, size_t n) {
  const omniq__pg_params_t *ps[GROUP_MAX];
  PGresult *res[GROUP_MAX];
  int stmts[GROUP_MAX];
  const char *notify[3];
  size_t i = 0;
  int unknown;
  for (fin_t *f = batch; f != NULL; f = f->next, i++) {
    ps[i] = &f->p;
    stmts[i] = f->stmt;
  }
  channels(pg, batch, notify);
  int rc = omniq__pg_exec_batch(&pg->pool, stmts, ps, n,
                                notify[0] != NULL ? notify : NULL, "finish", res, &unknown,
                                batch->err, batch->errlen);
  if (rc != OMNIQ_OK && !unknown) return -1;
  if (rc != OMNIQ_OK) {
    size_t len = strlen(batch->err);
    snprintf(batch->err + len, batch->errlen - len,
             " (connection lost with the statement in flight: it may or may not have taken "
             "effect)");
  }
  i = 0;
  for (fin_t *f = batch; f != NULL; f = f->next, i++) {
    f->rc = rc;
    if (rc != OMNIQ_OK) {
      if (f != batch) snprintf(f->err, f->errlen, "%s", batch->err);
      continue;
    }
    took(f, res[i]);
  }
  return 0;
}

static void commit_batch(omniq__pg_t *pg, fin_t *batch, size_t n) {
  if (n > 1 && commit_together(pg, batch, n) == 0) return;
  for (fin_t *f = batch; f != NULL; f = f->next) commit_alone(pg, f);
}

static void (*_Atomic group_hook)(int committing);

void omniq__pg_set_group_hook(void (*fn)(int committing)) { atomic_store(&group_hook, fn); }

/* Tells a test's hook what the group just did; g->lock held. */
static void noted(int committing) {
  void (*fn)(int) = atomic_load_explicit(&group_hook, memory_order_relaxed);
  if (fn != NULL) fn(committing);
}

void omniq__pg_finish_grouped(omniq__pg_t *pg, fin_t *me) {
  omniq__pg_group_t *g = &pg->group;
  me->next = NULL;
  me->done = 0;
  pthread_mutex_lock(&g->lock);
  *g->tail = me;
  g->tail = &me->next;
  noted(0);
  while (!me->done) {
    if (g->committing) {
      pthread_cond_wait(&g->cond, &g->lock);
      continue;
    }
    /* Take up to GROUP_MAX from the head; the rest wait for the next. */
    fin_t *batch = g->head, *last = batch;
    size_t n = 1;
    for (; n < GROUP_MAX && last->next != NULL; n++) last = last->next;
    g->head = last->next;
    if (g->head == NULL) g->tail = &g->head;
    last->next = NULL;
    g->committing = 1;
    noted(1);
    pthread_mutex_unlock(&g->lock);

    commit_batch(pg, batch, n);

    pthread_mutex_lock(&g->lock);
    for (fin_t *f = batch; f != NULL;) {
      fin_t *next = f->next; /* f may return (and its frame go) once done is seen */
      f->done = 1;
      f = next;
    }
    g->committing = 0;
    pthread_cond_broadcast(&g->cond);
  }
  pthread_mutex_unlock(&g->lock);
}
