/* SPDX-License-Identifier: MIT */
/* Reports and the batch: how a pool tells the store how each run ended.
 * The pool only says what happened; the engine decides what it means.
 *
 * One report at a time: a runner reports its run's outcome itself, a claim
 * riding on it where the backend allows (claim.c, omniq__ride_t), retried
 * while the lease holds (see omniq__report).
 *
 * Batched reports: where the backend commits many outcomes in one step
 * (storage ABI 6 finish_many; SQLite, PostgreSQL, the file backend), a
 * runner does not wait for its run's report: it puts the outcome on the
 * pool's batch (`pending`) and goes on to the next task on `ready`. The
 * batch is committed, in one transaction with the next claim riding on
 * it, when a runner has nothing more to run (no task
 * on `ready`), when BATCH_MAX outcomes wait, or BATCH_DELAY_MS after the
 * first one joined (the keeper commits it then): a lone run's outcome is
 * committed at once, as before, and none waits longer than the bound. An
 * outcome counts as reported only once committed: until then its job stays
 * on the in-flight list, `held`, and the keeper extends its lease; a crash
 * before the commit leaves the task RUNNING and another worker runs it
 * again after its lease. Each outcome keeps its own claim-token check (a
 * stale one is dropped, the others commit) and its own retries.
 *
 * Locks: the batch (`pending`, `npending`, a job's `held`) and the run
 * counters are under pool->lock; no storage call is made with it held.
 */
#include "worker/batch.h"

#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "core/engine.h"
#include "core/wake.h"

/* A report the store could not take is tried again after this long,
 * doubling. */
#define REPORT_RETRY_MIN_MS 50
#define REPORT_RETRY_MAX_MS 1000
/* Batched reports: no outcome waits longer than this (the keeper commits
 * the batch then). */
#define BATCH_DELAY_MS 5

/* What one claim takes fits one batch of reports (claim.c). */
_Static_assert(AHEAD_MAX <= BATCH_MAX, "a claim must fit one batch of reports");

typedef struct omniq_worker pool_t;

/* A run's outcome waiting in the pool's batch; its job is ended, `held`
 * and still on the in-flight list. */
struct omniq__outcome {
  omniq_job_t *job;
  omniq__run_report_t r;
  char buf[160]; /* what r may point into */
  omniq__outcome_t *next;
};

/* A storage failure that may pass (the store unreachable, busy): worth
 * trying the report again. */
static int transient(int rc) {
  return rc == OMNIQ_ESTORAGE || rc == OMNIQ_EBUSY || rc == OMNIQ_EIO;
}

static int retry_report(pool_t *p, omniq_job_t *job, const omniq__run_report_t *r, int rc,
                        int64_t tried_ms);

/* Reports how the run ended unless someone ended it first. A
 * store that cannot take the report (a server restarting, a network down)
 * is tried again, backing off, for as long as the lease is known to hold:
 * until then nobody else may run the task, so the outcome is still the one
 * that counts. After it, another worker may have taken the task over; the
 * report is dropped and the run ends as a lost lease. Returns OMNIQ_OK
 * when the outcome is stored or rightly dropped (the run was ended by
 * someone else, or its claim is no longer valid), else the store's code:
 * the run is then not done. */
int omniq__report(pool_t *p, omniq_job_t *job, int handler_rc, omniq__ride_t *ride) {
  omniq_t *oq = p->oq;
  omniq__run_report_t r;
  char buf[160];
  if (!omniq__job_end(job)) {
    omniq__log(&oq->log, OMNIQ_LOG_DEBUG, "task.outcome_dropped", job->task->id,
               "run already ended (timeout, cancel, lost lease or stop); late report ignored");
    omniq__ride_end(p, ride);
    return OMNIQ_OK;
  }
  omniq__job_report(job, handler_rc, &r, buf, sizeof buf);
  int64_t tried = omniq__pool_ms();
  int rc = ride->room > 0
               ? omniq__engine_finish_claim(oq, job->task, &r, (const char *const *)p->queues,
                                            p->nqueues, ride->room, &ride->tasks, &ride->n,
                                            &ride->claimed)
               : omniq__engine_finish(oq, job->task, &r);
  omniq__ride_end(p, ride); /* retries below hold no lead */
  rc = retry_report(p, job, &r, rc, tried);
  omniq__job_log_report(job, &r, rc);
  return rc == OMNIQ_ESTATE ? OMNIQ_OK : rc;
}

/* Waits until the pool's clock reaches until_ms, on the pool's condition
 * variable: a broadcast for something else does not cut it short, and a
 * test that moves the pool's clock ends it at once. No lock held. */
static void sleep_until(pool_t *p, int64_t until_ms) {
  pthread_mutex_lock(&p->lock);
  while (omniq__pool_ms() < until_ms) omniq__pool_clock_wait(&p->cond, &p->lock, until_ms);
  pthread_mutex_unlock(&p->lock);
}

/* Tries a report the store could not take (rc) again, backing off, while
 * the lease holds (see report); returns the last code. Each try comes a
 * backoff period after the one before began (tried_ms: the first's start,
 * by the pool's clock), so a refusal that was slow to come has waited
 * already. */
static int retry_report(pool_t *p, omniq_job_t *job, const omniq__run_report_t *r, int rc,
                        int64_t tried_ms) {
  omniq_t *oq = p->oq;
  int64_t delay = REPORT_RETRY_MIN_MS;
  for (int tries = 1; transient(rc); tries++) {
    int64_t lease_end = atomic_load(&job->mono_lease_until_ms);
    int64_t left = lease_end - omniq__pool_ms();
    if (left <= 0) break;
    if (tries == 1)
      omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.report_retry", job->task->id,
                 "%s: %s; trying again until the lease ends in %lld ms", omniq_err_name(rc),
                 omniq__errmsg(oq->id), (long long)left);
    int64_t next = omniq__add_ms(tried_ms, delay);
    sleep_until(p, next < lease_end ? next : lease_end);
    delay = delay * 2 < REPORT_RETRY_MAX_MS ? delay * 2 : REPORT_RETRY_MAX_MS;
    tried_ms = omniq__pool_ms();
    rc = omniq__engine_finish(oq, job->task, r);
  }
  return rc;
}

/* Puts the outcome of a run that just ended on the batch; 1 if it did. 0
 * when someone else ended the run first (its report is dropped) or there
 * is no memory for the entry: then *rc is what to count, the run reported
 * alone if needed. */
int omniq__batch_hold(pool_t *p, omniq_job_t *job, int handler_rc, int *rc) {
  omniq__ride_t none = {0};
  omniq__outcome_t *o = omniq__calloc(1, sizeof *o);
  if (o == NULL) {
    *rc = omniq__report(p, job, handler_rc, &none);
    return 0;
  }
  if (!omniq__job_end(job)) {
    omniq__free(o);
    *rc = omniq__report(p, job, handler_rc, &none); /* logs the drop */
    return 0;
  }
  o->job = job;
  omniq__job_report(job, handler_rc, &o->r, o->buf, sizeof o->buf);
  int wake = 0;
  pthread_mutex_lock(&p->lock);
  job->held = 1;
  *p->pending_tail = o;
  p->pending_tail = &o->next;
  if (p->npending++ == 0) {
    p->batch_due_ms = omniq__pool_ms() + BATCH_DELAY_MS;
    wake = omniq__timers_arm(p);
  }
  pthread_mutex_unlock(&p->lock);
  /* After the unlock: woken under it, the keeper would block at once on
   * the lock this runner holds, two switches where one does. */
  if (wake) pthread_cond_broadcast(&p->cond);
  return 1;
}

/* Takes the whole batch to commit it. p->lock held. */
omniq__outcome_t *omniq__batch_take(pool_t *p) {
  omniq__outcome_t *list = p->pending;
  p->pending = NULL;
  p->pending_tail = &p->pending;
  p->npending = 0;
  /* The keeper's timer stays set: it wakes then, finds nothing due and
   * sets it for the next batch. Cleared here, a keeper that woke while
   * a batch commits (a ride's commit is most of a cycle of short runs)
   * slept until the next batch's first outcome woke it: two wake-ups
   * every BATCH_DELAY_MS where one does. */
  p->batch_due_ms = 0;
  return list;
}

/* Tries the outcomes of a batch that the store could not take (rcs[i]
 * transient) again, together, backing off, each for as long as its own
 * lease holds: the keeper no longer extends them from here on, so a store
 * that stays away ends them as omniq__report() would. Each try comes a
 * backoff period after the one before began (tried_ms, the first's).
 * Updates rcs. */
static void retry_batch(pool_t *p, omniq__outcome_t **os, int *rcs, size_t n,
                        int64_t tried_ms) {
  omniq_t *oq = p->oq;
  omniq_task_t *tasks[BATCH_MAX];
  const omniq__run_report_t *rs[BATCH_MAX];
  int again[BATCH_MAX];
  size_t at[BATCH_MAX];
  int64_t delay = REPORT_RETRY_MIN_MS;
  pthread_mutex_lock(&p->lock);
  for (size_t i = 0; i < n; i++) os[i]->job->held = 0;
  pthread_mutex_unlock(&p->lock);
  for (int tries = 1;; tries++) {
    size_t k = 0;
    int64_t until = omniq__add_ms(tried_ms, delay), now = omniq__pool_ms();
    for (size_t i = 0; i < n; i++) {
      int64_t lease_end = atomic_load(&os[i]->job->mono_lease_until_ms);
      if (!transient(rcs[i]) || lease_end - now <= 0) continue;
      if (tries == 1)
        omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.report_retry", os[i]->job->task->id,
                   "%s: %s; trying again until the lease ends in %lld ms",
                   omniq_err_name(rcs[i]), omniq__errmsg(oq->id), (long long)(lease_end - now));
      if (lease_end < until) until = lease_end;
      tasks[k] = os[i]->job->task;
      rs[k] = &os[i]->r;
      at[k++] = i;
    }
    if (k == 0) return;
    sleep_until(p, until);
    delay = delay * 2 < REPORT_RETRY_MAX_MS ? delay * 2 : REPORT_RETRY_MAX_MS;
    tried_ms = omniq__pool_ms();
    omniq_task_t **none = NULL;
    size_t got = 0;
    int claimed = 0;
    omniq__engine_finish_many(oq, tasks, rs, k, again, NULL, 0, 0, &none, &got, &claimed);
    for (size_t j = 0; j < k; j++) rcs[at[j]] = again[j];
  }
}

/* Commits a batch taken from `pending` in one storage step, with a claim
 * riding on it if `ride` (a runner with nothing left to run; not the
 * keeper), then ends each run as omniq__report() would. The keeper extends the
 * outcomes' leases until this first attempt returns. slot: the rider's
 * (-1: the keeper, no ride). */
void omniq__batch_flush(pool_t *p, omniq__outcome_t *list, int slot) {
  omniq_t *oq = p->oq;
  omniq_task_t *tasks[BATCH_MAX];
  const omniq__run_report_t *rs[BATCH_MAX];
  omniq__outcome_t *os[BATCH_MAX];
  int rcs[BATCH_MAX];
  while (list != NULL) {
    size_t n = 0;
    for (; list != NULL && n < BATCH_MAX; list = list->next, n++) {
      os[n] = list;
      tasks[n] = list->job->task;
      rs[n] = &list->r;
    }
    omniq__ride_t ride;
    memset(&ride, 0, sizeof ride);
    if (slot >= 0 && list == NULL) omniq__ride_begin(p, &ride, n == BATCH_MAX, slot);
    int64_t tried = omniq__pool_ms();
    omniq__engine_finish_many(oq, tasks, rs, n, rcs, (const char *const *)p->queues,
                              p->nqueues, ride.room, &ride.tasks, &ride.n, &ride.claimed);
    omniq__ride_end(p, &ride);
    retry_batch(p, os, rcs, n, tried);
    for (size_t i = 0; i < n; i++) {
      omniq__job_log_report(os[i]->job, &os[i]->r, rcs[i]);
      pthread_mutex_lock(&p->lock);
      omniq__pool_count_run(p, os[i]->job, rcs[i] == OMNIQ_ESTATE ? OMNIQ_OK : rcs[i]);
      pthread_mutex_unlock(&p->lock);
      omniq__job_unref(os[i]->job);
      omniq__free(os[i]);
    }
  }
}

/* The pool's timers, run by the keeper: commits the batch once it has
 * waited BATCH_DELAY_MS, and looks for held runs that last (claim.c). */
void omniq__batch_timers(void *arg) {
  pool_t *p = arg;
  omniq__outcome_t *list = NULL;
  pthread_mutex_lock(&p->lock);
  int64_t now = omniq__pool_ms();
  if (p->batch_due_ms != 0 && now >= p->batch_due_ms) list = omniq__batch_take(p);
  int wake = omniq__hold_look(p, now);
  omniq__timers_arm(p); /* the keeper is awake: it reads this before it sleeps */
  pthread_mutex_unlock(&p->lock);
  if (wake) omniq__wake(p->oq, OMNIQ__EV_WORK); /* the leader, for what was shared */
  if (list != NULL) omniq__batch_flush(p, list, -1);
}

/* Counts a run that ended, and as unstored too if its report failed with
 * rc (a drain then stops claiming rather than strand more tasks RUNNING).
 * p->lock held. */
static void count_run(pool_t *p, int rc) {
  p->finished++; /* no broadcast: nothing waits for a run to end (see pool.c) */
  omniq__unstored_add(&p->unstored, rc, omniq__errmsg(p->oq->id));
}

/* A run's end: its job leaves the in-flight list and the run is counted.
 * p->lock held; the caller drops its reference to job after. Returns rc. */
int omniq__pool_count_run(pool_t *p, omniq_job_t *job, int rc) {
  omniq__pool_unlink(p, job);
  count_run(p, rc);
  return rc;
}
