/* SPDX-License-Identifier: MIT */
/* SQLite backend: group commit of finishes.
 *
 * The runners of a pool share one handle, and so one connection: their
 * finishes are serialised by the connection lock anyway, and each paid a
 * transaction of its own (BEGIN IMMEDIATE, the writes, COMMIT appending
 * its pages to the WAL). Here a finishing thread puts its decision on the
 * handle's list; if no thread is committing, it becomes the committer: it
 * takes everything on the list (up to GROUP_MAX), applies it in one
 * transaction and wakes each owner with its own code. Threads that arrived
 * meanwhile wait and form the next batch, committed by one of them.
 *
 * Nothing waits to fill a batch: a lone finish starts its transaction at
 * once, as before. A finish that arrives while a batch is committing waits
 * for that commit and then for its own batch's, so the delay it can suffer
 * is bounded by two transactions of GROUP_MAX finishes (about a
 * millisecond on this machine kind); with no concurrency there is none.
 *
 * Each finish returns only once its transaction is committed, so a run
 * reported OMNIQ_OK is as durable as before. Each decision keeps its own
 * fence: a stale token or a gone task changes nothing (the UPDATE that
 * misses writes nothing) and gets its own OMNIQ_ESTATE or OMNIQ_ENOTFOUND
 * while the rest of the batch commits. Any other failure (busy, I/O, out
 * of memory) rolls the batch back and applies each decision in a
 * transaction of its own, with the usual busy retries, so one bad finish
 * never fails another.
 *
 * A finish may carry a claim (finish_claim: a runner reporting its run and
 * taking its next tasks). The claim runs after the batch's finishes, in
 * the same transaction, if its own finish applied: a lone runner then
 * pays one commit per task instead of two, and the pages the finish and
 * the claim both touch (the task table's last leaf, the lease and listing
 * indexes' status boundaries) go to the WAL once. A claim that fails
 * rolls the batch back like any other failure; the fallback applies the
 * finishes alone and the claim is not made (the caller claims as usual).
 *
 * A worker may also hand over many finishes at once (finish_many: the
 * outcomes a pool collected while its runners went on to tasks they had
 * already claimed). They join the list together, in order, so they go
 * into one transaction unless the list already holds others (then at most
 * GROUP_MAX per transaction, as always); their claim is attached to the
 * last and is made if the transaction commits, whichever of them applied.
 * The caller returns once every one of them is committed.
 *
 * A batch's finishes that name their queue are applied many to a
 * statement (omniq__sqlite_finish_rows), each alone again if that
 * statement misses any of them.
 *
 * A batch's runs are added to the running totals once per queue and kind,
 * just before the commit, not by one upsert per finish: the totals of a
 * batch of 64 no-op runs of one queue cost one statement instead of 64
 * (docs/benchmarks.md). A finish that missed adds nothing, and a batch
 * rolled back takes its counts with it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "base/alloc.h"
#include "base/error.h"

#include "storage/sqlite/backend.h"

#define GROUP_MAX OMNIQ__SQLITE_GROUP_MAX

typedef omniq__sqlite_t sq_t;
typedef omniq__sqlite_fin_t fin_t;

int omniq__sqlite_group_init(omniq__sqlite_group_t *g) {
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

void omniq__sqlite_group_destroy(omniq__sqlite_group_t *g) {
  pthread_cond_destroy(&g->cond);
  pthread_mutex_destroy(&g->lock);
}

static int misses(int rc) { return rc == OMNIQ_ESTATE || rc == OMNIQ_ENOTFOUND; }

/* Applies f alone into tally; 1, or 0 if the batch must roll back. */
static int apply_one(sq_t *sq, fin_t *f, omniq__sqlite_tally_t *tally) {
  f->rc = omniq__sqlite_apply_finish(sq, f->d, tally, f->err, f->errlen);
  return f->rc == OMNIQ_OK || misses(f->rc);
}

/* Applies the finishes from *at on: the longest run of them naming their
 * queue (at most GROUP_MAX) as one statement of 2^lg rows if it has two
 * or more, each alone if that statement misses any (finish.c), else the
 * one at *at alone. Moves *at past what it applied; 1, or 0 if the batch
 * must roll back. */
static int apply_some(sq_t *sq, fin_t **at, omniq__sqlite_tally_t *tally) {
  const omniq_decision_t *ds[GROUP_MAX];
  fin_t *run = *at, *f = run;
  size_t k = 0;
  int all = 0;
  for (; f != NULL && k < GROUP_MAX && f->d->queue != NULL; f = f->next) ds[k++] = f->d;
  if (k < 2) {
    *at = run->next;
    return apply_one(sq, run, tally);
  }
  int lg = omniq__sqlite_rows_lg(k);
  size_t m = (size_t)1 << lg;
  int rc = omniq__sqlite_finish_rows(sq, ds, lg, tally, &all, run->err, run->errlen);
  if (rc != OMNIQ_OK) {
    run->rc = rc;
    return 0;
  }
  f = run;
  for (size_t i = 0; i < m; i++, f = f->next) {
    if (!all && !apply_one(sq, f, tally)) return 0;
    if (all) f->rc = OMNIQ_OK;
  }
  *at = f;
  return 1;
}

/* One transaction for the batch; 0, or -1 if it was rolled back. */
static int commit_together(sq_t *sq, fin_t *batch) {
  omniq__sqlite_tally_t tally = {0};
  int ok;
  pthread_mutex_lock(&sq->lock);
  ok = omniq__sqlite_begin(sq, batch->err, batch->errlen) == OMNIQ_OK;
  for (fin_t *f = batch; ok && f != NULL;) ok = apply_some(sq, &f, &tally);
  if (ok) ok = omniq__sqlite_tally_write(sq, &tally, batch->err, batch->errlen) == OMNIQ_OK;
  omniq__sqlite_tally_free(&tally);
  for (fin_t *f = batch; ok && f != NULL; f = f->next)
    if (f->claim != NULL && (f->rc == OMNIQ_OK || f->claim_any))
      ok = (f->claimed = omniq__sqlite_apply_claim(sq, f->claim, f->err, f->errlen) == OMNIQ_OK);
  if (ok) ok = omniq__sqlite_commit(sq, batch->err, batch->errlen) == OMNIQ_OK;
  if (!ok && !sqlite3_get_autocommit(sq->db)) omniq__sqlite_step_done(sq->st[OMNIQ__SQ_ROLLBACK]);
  pthread_mutex_unlock(&sq->lock);
  return ok ? 0 : -1;
}

static void commit_batch(sq_t *sq, fin_t *batch) {
  if ((batch->next != NULL || batch->claim != NULL) && commit_together(sq, batch) == 0) return;
  for (fin_t *f = batch; f != NULL; f = f->next) {
    if (f->claim != NULL) omniq__sqlite_claim_drop(f->claim);
    f->claimed = 0;
    f->err[0] = '\0';
    f->rc = omniq__sqlite_run(sq, omniq__sqlite_do_finish, (void *)f->d, f->err, f->errlen);
  }
}

static void (*_Atomic group_hook)(int committing);

void omniq__sqlite_set_group_hook(void (*fn)(int committing)) { atomic_store(&group_hook, fn); }

/* Tells a test's hook what the group just did; g->lock held. */
static void noted(int committing) {
  void (*fn)(int) = atomic_load_explicit(&group_hook, memory_order_relaxed);
  if (fn != NULL) fn(committing);
}

/* Puts fins[0..n) on the list and commits batches until every one is
 * done (each f->rc set). */
static void group_run(sq_t *sq, fin_t *fins, size_t n) {
  omniq__sqlite_group_t *g = &sq->group;
  pthread_mutex_lock(&g->lock);
  for (size_t i = 0; i < n; i++) {
    fins[i].next = NULL;
    *g->tail = &fins[i];
    g->tail = &fins[i].next;
  }
  noted(0);
  while (!fins[n - 1].done) { /* the list is FIFO: the last is done last */
    if (g->committing) {
      pthread_cond_wait(&g->cond, &g->lock);
      continue;
    }
    /* Take up to GROUP_MAX from the head; the rest wait for the next. */
    fin_t *batch = g->head, *last = batch;
    for (int k = 1; k < GROUP_MAX && last->next != NULL; k++) last = last->next;
    g->head = last->next;
    if (g->head == NULL) g->tail = &g->head;
    last->next = NULL;
    g->committing = 1;
    noted(1);
    pthread_mutex_unlock(&g->lock);

    commit_batch(sq, batch);

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

int omniq__sqlite_finish_grouped(sq_t *sq, const omniq_decision_t *d,
                                 omniq__sqlite_claim_t *claim, int *claimed, char *err,
                                 size_t errlen) {
  fin_t me = {.d = d, .claim = claim, .err = err, .errlen = errlen};
  group_run(sq, &me, 1);
  if (claimed != NULL) *claimed = me.claimed;
  return me.rc;
}

int omniq__sqlite_finish_group_many(sq_t *sq, const omniq_decision_t *ds, size_t n, int *rcs,
                                    omniq__sqlite_claim_t *claim, int *claimed, char *err,
                                    size_t errlen) {
  fin_t *fins = omniq__calloc(n, sizeof *fins);
  /* Not zeroed: a message is written before any failure is reported, and
   * zeroing n whole buffers cost more than the rest of the hand-over. */
  char(*errs)[OMNIQ__ERRMSG_MAX] = omniq__malloc(n * sizeof *errs);
  if (fins == NULL || errs == NULL) {
    omniq__free(fins);
    omniq__free(errs);
    return omniq__sqlite_errf(OMNIQ_ENOMEM, err, errlen, "%s", "finish_many: out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    errs[i][0] = '\0';
    fins[i] = (fin_t){.d = &ds[i], .err = errs[i], .errlen = sizeof errs[i]};
  }
  fins[n - 1].claim = claim;
  fins[n - 1].claim_any = 1;
  group_run(sq, fins, n);
  int said = 0;
  for (size_t i = 0; i < n; i++) {
    rcs[i] = fins[i].rc;
    if (rcs[i] != OMNIQ_OK && !said) {
      snprintf(err, errlen, "%s", errs[i]);
      said = 1;
    }
  }
  if (claimed != NULL) *claimed = fins[n - 1].claimed;
  omniq__free(fins);
  omniq__free(errs);
  return OMNIQ_OK;
}

/* ---- release ------------------------------------------------------------- */

typedef struct {
  const char *id;
  int64_t token;
} release_arg_t;

/* The claim undone: the attempt it counted, and its token moved on so the
 * claim is void. Rate windows keep counting the start (a window is a
 * limit on starts, and the claim was one). */
static int do_release(sq_t *sq, void *p, char *err, size_t errlen) {
  const release_arg_t *a = p;
  sqlite3_stmt *s;
  int rc = omniq__sqlite_lazy(sq, OMNIQ__SQLITE_LAZY_RELEASE,
                              "UPDATE tasks SET status = 0, attempts = attempts - 1,"
                              " token = token + 1, lease_until = 0"
                              " WHERE id = ?1 AND status = 1 AND token = ?2",
                              &s, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, a->token);
  int src = omniq__sqlite_step_done(s);
  sqlite3_clear_bindings(s);
  if (src != SQLITE_OK) return omniq__sqlite_fail(sq, src, "release", err, errlen);
  if (sqlite3_changes(sq->db) == 0)
    return omniq__sqlite_errf(OMNIQ_ESTATE, err, errlen,
                              "release %s: not running under claim token %lld; nothing changed",
                              a->id, (long long)a->token);
  return OMNIQ_OK;
}

int omniq__sqlite_release(void *backend, const char *id, int64_t token, char *err,
                          size_t errlen) {
  release_arg_t a = {id, token};
  if (!omniq_id_valid(id))
    return omniq__sqlite_errf(OMNIQ_EINVAL, err, errlen, "%s", "release: malformed task id");
  return omniq__sqlite_run(backend, do_release, &a, err, errlen);
}
