/* SPDX-License-Identifier: MIT */
/* Worker pool: runner threads that claim through the engine, run handlers
 * and report how each run ended, and one keeper thread that extends leases
 * and enforces deadlines. Policy (what a failure is called, retries,
 * delays, re-arming, the default queue) is the engine's; the pool only says
 * what happened.
 *
 * Slots. A pool has `concurrency` runner threads and each runs one task at
 * a time, so at most that many tasks run at once; a runner claims its next
 * task only when its previous one has ended. A handler that overran its
 * timeout keeps its slot until it actually returns: a thread cannot be
 * killed.
 *
 * Claiming: leader/followers. Of the idle runners exactly one, the leader,
 * claims, and takes as many tasks in that one step as the pool has free
 * slots (runners neither running a task nor holding one to run); it puts
 * them on the pool's `ready` list, wakes that many followers and, with
 * leadership given up, takes one itself. A burst of due tasks thus fills
 * every free slot with one claim, not one claim per slot; a runner that
 * finds a task on `ready` runs it before anything else, so a stop never
 * strands a claimed task there. With nothing due, the leader sleeps on the handle's
 * OMNIQ__EV_WORK wake-up (core/wake.c) for up to poll_interval: an enqueue
 * in any process on the store wakes it at once (in this process only, for a
 * store without a wake file); work becoming due by time is found by the
 * next poll. Followers sleep on the pool's idle_cond. An enqueue therefore
 * costs one claim per idle pool, not one per idle thread.
 *
 * Riding claims: where the backend can commit a claim with a report
 * (storage ABI 5 finish_claim; SQLite), a runner whose run ended with
 * nothing on `ready` does not claim after its report: its report carries
 * the claim (see ride_t), so a busy runner commits once per task.
 *
 * Claiming ahead and batched reports: where the backend commits many
 * outcomes with a claim in one step and can give a claim back (storage
 * ABI 6 finish_many and release; SQLite), a claim also asks for as many
 * tasks as runs in a row were short (up to AHEAD_MAX), and a runner whose
 * run ended while a task waits on `ready` hands its outcome to the pool's
 * batch and runs that task (see "batched reports" below). Claimed tasks
 * are jobs from the claim on: on `ready` (a ring, in claim order) and on
 * the in-flight list, so the keeper extends their leases and a cancel
 * ends them before they start; a stop gives them back (give_back).
 *
 * The keeper thread (keeper.c) extends the lease of every running task
 * every lease/3 and enforces deadlines: at a deadline it reports a timeout
 * and marks the job cancelled; a refused extension (task
 * cancelled or taken over) marks it cancelled too. In process isolation the
 * runner kills the child when it sees the flag. A run that starts wakes the
 * keeper only if it needs it before the keeper's planned look
 * (omniq__keeper_must_wake); a run that ends never does. Nothing else waits
 * for the in-flight list to change: stop waits for `alive`.
 *
 * Cancels through the handle: omniq_cancel commits the cancel in the store
 * and then calls omniq__pool_cancelled, which ends a run of that task in
 * any pool of the handle (drains included: they are on oq->workers too,
 * flagged `drain`, for as long as omniq_worker_process runs) and marks its
 * job cancelled before omniq_cancel returns. Waking the keeper to learn of
 * it from a refused extension left a window: the flag went up a storage
 * round-trip later, and never before the next extension for a drain,
 * which the list did not hold.
 *
 * Stopping: stop sets `stopping`, wakes the followers (idle_cond) and the
 * leader (a bump of OMNIQ__EV_WORK), and waits up to shutdown_timeout for
 * every runner to exit; runners exit once their current task is reported.
 * Runs still going at the deadline are ended without a report and marked
 * cancelled (their leases are no longer extended, so another worker
 * recovers them as "WorkerLost"); their runner threads are detached and
 * hold a reference to the pool until they return. oq->threads_alive counts
 * every pool thread, detached ones included, so omniq_close waits for them.
 *
 * omniq_worker_process builds the same pool in drain mode: the caller's
 * thread is one runner (concurrency - 1 more are temporary threads), and a
 * claim that finds nothing, or reaching `limit` claims, ends the run.
 *
 * Locks: pool->lock guards the pool's counters, flags and in-flight list;
 * it is never held across a storage call or a handler. Order: pool->lock
 * before a job's lock; oq->lock is taken alone.
 */
#include "worker/pool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/records.h"
#include "core/engine.h"
#include "core/handlers.h"
#include "core/store.h"
#include "core/wake.h"
#include "worker/isolate.h"
#include "worker/job.h"
#include "worker/keeper.h"
#include "worker/zygote.h"

#define MAX_CONCURRENCY 1024
/* A report the store could not take is tried again after this long,
 * doubling. */
#define REPORT_RETRY_MIN_MS 50
#define REPORT_RETRY_MAX_MS 1000
/* Claiming ahead: at most this many tasks beyond the free slots, and only
 * while runs are short: a handler that takes no longer than SHORT_RUN_MS
 * (store clock) adds one to the allowance, a longer one resets it to 0. */
#define AHEAD_MAX 64
#define SHORT_RUN_MS 5
/* Batched reports: at most this many outcomes wait, none longer than
 * BATCH_DELAY_MS (the keeper commits them then). */
#define BATCH_MAX 64
#define BATCH_DELAY_MS 5

/* A run's outcome waiting in the pool's batch; its job is ended, `held`
 * and still on the in-flight list. */
typedef struct outcome {
  omniq_job_t *job;
  omniq__run_report_t r;
  char buf[160]; /* what r may point into */
  struct outcome *next;
} outcome_t;

typedef struct runner {
  pthread_t tid;
  int exited;
  struct omniq_worker *pool;
} runner_t;

struct omniq_worker {
  omniq_t *oq;
  int concurrency;
  int isolation;
  int drain; /* omniq_worker_process: end when nothing is due */
  int ride;  /* reports carry the next claim: the backend commits both at once */
  int batch; /* outcomes are committed in batches (storage ABI 6 finish_many) */
  int release;  /* claimed tasks not started are given back at a stop (ABI 6 release);
                 * never in drain mode, which runs every task it claimed */
  int ahead_ok; /* may claim ahead of its free slots (batch and release) */
  int short_runs; /* runs in a row no longer than SHORT_RUN_MS, up to AHEAD_MAX */
  int64_t poll_ms, shutdown_ms, extend_ms;
  char *queues[OMNIQ_MAX_QUEUES];
  size_t nqueues;
  char *handler_path; /* the options' copy, or NULL */
  long max_tasks;         /* process isolation: per child, 0 = no limit */
  omniq__limits_t limits; /* process isolation: per task */
  long limit;    /* drain mode: claims allowed, 0 = no limit */
  long claimed;  /* tasks claimed, or asked for by a claim in progress */
  long finished; /* runs ended */
  int error;     /* drain mode: the claim error that ended it */
  omniq__unstored_t unstored; /* of those, runs whose outcome the store refused */

  pthread_mutex_t lock;
  pthread_cond_t cond;      /* started/alive changed, stop; the keeper's wake-up */
  pthread_cond_t idle_cond; /* followers wait here for leadership */
  int refs;                 /* the owner's, and one per runner thread */
  int started, alive;       /* runner threads started, and not yet exited */
  int go; /* runners wait for it, so "worker.started" is logged first */
  int stopping, drained, has_leader, abandon;
  omniq_job_t *inflight;
  omniq_job_t **ready; /* claimed, not started, for idle runners to take; each is
                        * also on the in-flight list (its lease is kept) */
  int ready_head, nready, ready_cap; /* a ring, in claim order; ready_cap: concurrency,
                                      * + AHEAD_MAX with ahead_ok */
  outcome_t *pending, **pending_tail; /* the batch: outcomes not yet committed */
  int npending;
  int busy; /* runners running a task */

  runner_t *runners;
  int nrunners; /* threads created */
  omniq__keeper_t keeper; /* its lock, cond and list are the pool's */
  pthread_t keeper_tid;
  int has_keeper;
  /* Process isolation: the zygote, and one slot per runner (runners[i]
   * has slots[i]; in drain mode the caller has the last). The keeper thread
   * starts, restarts and stops the zygote: it dies with the thread that
   * forked it, and the keeper lives exactly as long as the pool. Under
   * lock: zygote_state is 0 while the keeper (re)starts it, then 1, or -1
   * with zygote_err; zygote_gen counts the zygotes started. */
  omniq__zygote_t zygote;
  int zygote_state, zygote_gen;
  char zygote_err[160];
  omniq__slot_t *slots;
  struct omniq_worker *next; /* oq->workers (drains too, while they run) */
};
typedef struct omniq_worker pool_t;

/* ---- threads and references ---------------------------------------------- */

/* The first job on `ready` (nready > 0): tasks start in the order the
 * claim gave them (priority, then eta). p->lock held, or no other thread. */
static omniq_job_t *take_ready(struct omniq_worker *p) {
  omniq_job_t *job = p->ready[p->ready_head];
  p->ready_head = (p->ready_head + 1) % p->ready_cap;
  p->nready--;
  return job;
}

static void pool_unref(pool_t *p) {
  pthread_mutex_lock(&p->lock);
  int last = --p->refs == 0;
  pthread_mutex_unlock(&p->lock);
  if (!last) return;
  for (size_t i = 0; i < p->nqueues; i++) omniq__free(p->queues[i]);
  omniq__free(p->handler_path);
  if (p->slots != NULL)
    for (int i = 0; i < p->concurrency; i++) omniq__slot_close(&p->slots[i]);
  omniq__free(p->slots);
  omniq__free(p->runners);
  /* Only runners stuck past a stop can leave tasks here: their leases
   * lapse and another worker recovers them. */
  while (p->nready > 0) {
    omniq_job_t *job = take_ready(p);
    omniq__job_returned(job);
    omniq__job_unref(job);
  }
  omniq__free(p->ready);
  pthread_cond_destroy(&p->idle_cond);
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->lock);
  omniq__free(p);
}

static void thread_gone(omniq_t *oq) {
  pthread_mutex_lock(&oq->lock);
  oq->threads_alive--;
  pthread_cond_broadcast(&oq->threads_cond);
  pthread_mutex_unlock(&oq->lock);
}

/* Starts a pool thread with SIGINT and SIGTERM blocked, so they reach the
 * thread that waits for them (omniq_worker_run) or the program's own. */
static int spawn(omniq_t *oq, pthread_t *tid, void *(*fn)(void *), void *arg) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_mutex_lock(&oq->lock);
  oq->threads_alive++;
  pthread_mutex_unlock(&oq->lock);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  int rc = pthread_create(tid, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) thread_gone(oq);
  return rc;
}

/* ---- running one task ------------------------------------------------------ */

/* A storage failure that may pass (the store unreachable, busy): worth
 * trying the report again. */
static int transient(int rc) {
  return rc == OMNIQ_ESTORAGE || rc == OMNIQ_EBUSY || rc == OMNIQ_EIO;
}

/* A claim riding with a report: a runner whose run ended would look for
 * its next task right after its report's transaction, in a claim
 * transaction of its own (as the leader, or a follower that leads next).
 * Instead its report carries that claim, and the backend commits the
 * outcome and the claim together (omniq__engine_finish_claim): one commit
 * per task instead of two. With no leader the rider leads: it asks for
 * its own slot and every free one, as a leader would. With a leader (or
 * another rider leading), it asks for its own slot only, which no leader
 * counts (the rider is busy until its report ends and then takes the task
 * itself, or a follower does), so no slot is ever claimed for twice and
 * concurrent riders' reports and claims commit in one group. */
typedef struct ride {
  size_t room;         /* tasks asked for; 0 = no ride */
  int led;             /* the rider took the lead */
  omniq_task_t **tasks;
  size_t n;
  int claimed;         /* the claim was made (n may be 0: nothing due) */
} ride_t;

static int may_claim(const pool_t *p);
static size_t claim_room(const pool_t *p, int freeing);

/* Jobs for claimed tasks (takes tasks, an array of n, and frees it); *n
 * becomes how many jobs there are. A task with no memory for its job
 * fails at once, as a run with no memory to start. No lock held. */
static omniq_job_t **wrap(pool_t *p, omniq_task_t **tasks, size_t *n) {
  size_t k = 0;
  omniq_job_t **jobs = *n > 0 ? omniq__calloc(*n, sizeof *jobs) : NULL;
  for (size_t i = 0; i < *n; i++) {
    if (jobs != NULL && omniq__job_new(p->oq, tasks[i], &jobs[k]) == OMNIQ_OK) {
      k++;
      continue;
    }
    omniq__run_report_t r = {.kind = OMNIQ__RUN_NO_MEMORY,
                             .message = "out of memory starting the run"};
    omniq__engine_finish(p->oq, tasks[i], &r);
    omniq_task_free(tasks[i]);
  }
  omniq__free(tasks);
  if (k == 0) {
    omniq__free(jobs);
    jobs = NULL;
  }
  *n = k;
  return jobs;
}

/* Puts claimed jobs on `ready` and on the in-flight list, where the keeper
 * extends their leases until they run (or are given back) and a cancel
 * reaches them. Their deadlines start when they do. Takes jobs (frees the
 * array). p->lock held. */
static void put_ready(pool_t *p, omniq_job_t **jobs, size_t n) {
  int64_t now = omniq__mono_ms();
  int wake = 0;
  for (size_t i = 0; i < n; i++) {
    omniq_job_t *job = jobs[i];
    job->deadline_ms = 0;
    atomic_store(&job->mono_lease_until_ms, omniq__add_ms(now, p->oq->settings.lease_ms));
    job->next_extend_ms = now + p->extend_ms;
    job->next = p->inflight;
    if (p->inflight != NULL) p->inflight->prev = job;
    p->inflight = job;
    wake |= omniq__keeper_must_wake(&p->keeper, job, now);
    /* nready + n <= ready_cap: claim_room */
    p->ready[(p->ready_head + p->nready++) % p->ready_cap] = job;
  }
  omniq__free(jobs);
  if (wake) pthread_cond_broadcast(&p->cond);
}

/* Takes job off the in-flight list. p->lock held. */
static void unlink_job(pool_t *p, omniq_job_t *job) {
  if (job->prev != NULL) job->prev->next = job->next;
  else p->inflight = job->next;
  if (job->next != NULL) job->next->prev = job->prev;
  job->next = job->prev = NULL;
}

static void ride_begin(pool_t *p, ride_t *ride) {
  memset(ride, 0, sizeof *ride);
  if (!p->ride) return; /* the report and the claim would be two steps anyway */
  pthread_mutex_lock(&p->lock);
  if (p->nready == 0 && may_claim(p)) {
    ride->led = !p->has_leader;
    /* Its own slot, counted free (it is once the report ends); a leader's
     * room also counts the free ones. The limit caps both. */
    ride->room = ride->led ? claim_room(p, 1) : (p->limit > 0 && p->claimed >= p->limit ? 0 : 1);
    if (ride->room == 0) ride->led = 0;
    if (ride->led) p->has_leader = 1;
    p->claimed += (long)ride->room;
  }
  pthread_mutex_unlock(&p->lock);
}

/* Puts what the ride claimed on `ready` and, if it led, gives the lead up
 * as lead() does; in drain mode a claim that found nothing ends the drain.
 * Idempotent. */
static void ride_end(pool_t *p, ride_t *ride) {
  if (ride->room == 0) return; /* no ride, or already ended */
  size_t got = ride->n;
  omniq_job_t **jobs = wrap(p, ride->tasks, &got); /* got <= n <= room */
  pthread_mutex_lock(&p->lock);
  p->claimed -= (long)(ride->room - ride->n);
  put_ready(p, jobs, got);
  if (p->drain && ride->claimed && ride->n == 0) p->drained = 1;
  if (ride->led) p->has_leader = 0;
  pthread_cond_broadcast(&p->idle_cond);
  pthread_mutex_unlock(&p->lock);
  ride->room = 0;
  ride->n = 0;
}

/* Reports how the run ended unless someone ended it first. A
 * store that cannot take the report (a server restarting, a network down)
 * is tried again, backing off, for as long as the lease is known to hold:
 * until then nobody else may run the task, so the outcome is still the one
 * that counts. After it, another worker may have taken the task over; the
 * report is dropped and the run ends as a lost lease. Returns OMNIQ_OK
 * when the outcome is stored or rightly dropped (the run was ended by
 * someone else, or its claim is no longer valid), else the store's code:
 * the run is then not done. */
static int retry_report(pool_t *p, omniq_job_t *job, const omniq__run_report_t *r, int rc);

static int report(pool_t *p, omniq_job_t *job, int handler_rc, ride_t *ride) {
  omniq_t *oq = p->oq;
  omniq__run_report_t r;
  char buf[160];
  if (!omniq__job_end(job)) {
    omniq__log(&oq->log, OMNIQ_LOG_DEBUG, "task.outcome_dropped", job->task->id,
               "run already ended (timeout, cancel, lost lease or stop); late report ignored");
    ride_end(p, ride);
    return OMNIQ_OK;
  }
  omniq__job_report(job, handler_rc, &r, buf, sizeof buf);
  int rc = ride->room > 0
               ? omniq__engine_finish_claim(oq, job->task, &r, (const char *const *)p->queues,
                                            p->nqueues, ride->room, &ride->tasks, &ride->n,
                                            &ride->claimed)
               : omniq__engine_finish(oq, job->task, &r);
  ride_end(p, ride); /* retries below hold no lead */
  rc = retry_report(p, job, &r, rc);
  omniq__job_log_report(job, &r, rc);
  return rc == OMNIQ_ESTATE ? OMNIQ_OK : rc;
}

/* Tries a report the store could not take (rc) again, backing off, while
 * the lease holds (see report); returns the last code. */
static int retry_report(pool_t *p, omniq_job_t *job, const omniq__run_report_t *r, int rc) {
  omniq_t *oq = p->oq;
  int64_t delay = REPORT_RETRY_MIN_MS;
  for (int tries = 1; transient(rc); tries++) {
    int64_t left = atomic_load(&job->mono_lease_until_ms) - omniq__mono_ms();
    if (left <= 0) break;
    if (tries == 1)
      omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.report_retry", job->task->id,
                 "%s: %s; trying again until the lease ends in %lld ms", omniq_err_name(rc),
                 omniq__errmsg(oq->id), (long long)left);
    struct timespec ts = {.tv_sec = (delay < left ? delay : left) / 1000,
                          .tv_nsec = (long)((delay < left ? delay : left) % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    delay = delay * 2 < REPORT_RETRY_MAX_MS ? delay * 2 : REPORT_RETRY_MAX_MS;
    rc = omniq__engine_finish(oq, job->task, r);
  }
  return rc;
}

/* ---- batched reports --------------------------------------------------------
 *
 * Where the backend commits many outcomes in one step (storage ABI 6
 * finish_many; SQLite), a runner does not wait for its run's report: it
 * puts the outcome on the pool's batch (`pending`) and goes on to the next
 * task on `ready`. The batch is committed, in one transaction with the
 * next claim riding on it, when a runner has nothing more to run (no task
 * on `ready`), when BATCH_MAX outcomes wait, or BATCH_DELAY_MS after the
 * first one joined (the keeper commits it then): a lone run's outcome is
 * committed at once, as before, and none waits longer than the bound. An
 * outcome counts as reported only once committed: until then its job stays
 * on the in-flight list, `held`, and the keeper extends its lease; a crash
 * before the commit leaves the task RUNNING and another worker runs it
 * again after its lease. Each outcome keeps its own claim-token check (a
 * stale one is dropped, the others commit) and its own retries. */

static int count_run_locked(pool_t *p, omniq_job_t *job, int rc);

/* Puts the outcome of a run that just ended on the batch; 1 if it did. 0
 * when someone else ended the run first (its report is dropped) or there
 * is no memory for the entry: then *rc is what to count, the run reported
 * alone if needed. */
static int hold(pool_t *p, omniq_job_t *job, int handler_rc, int *rc) {
  ride_t none = {0};
  outcome_t *o = omniq__calloc(1, sizeof *o);
  if (o == NULL) {
    *rc = report(p, job, handler_rc, &none);
    return 0;
  }
  if (!omniq__job_end(job)) {
    omniq__free(o);
    *rc = report(p, job, handler_rc, &none); /* logs the drop */
    return 0;
  }
  o->job = job;
  omniq__job_report(job, handler_rc, &o->r, o->buf, sizeof o->buf);
  pthread_mutex_lock(&p->lock);
  job->held = 1;
  *p->pending_tail = o;
  p->pending_tail = &o->next;
  if (p->npending++ == 0) {
    p->keeper.flush_at = omniq__mono_ms() + BATCH_DELAY_MS;
    if (p->keeper.flush_at < p->keeper.wake_ms) pthread_cond_broadcast(&p->cond);
  }
  pthread_mutex_unlock(&p->lock);
  return 1;
}

/* Takes the whole batch to commit it. p->lock held. */
static outcome_t *take_pending(pool_t *p) {
  outcome_t *list = p->pending;
  p->pending = NULL;
  p->pending_tail = &p->pending;
  p->npending = 0;
  p->keeper.flush_at = 0;
  return list;
}

/* Tries the outcomes of a batch that the store could not take (rcs[i]
 * transient) again, together, backing off, each for as long as its own
 * lease holds: the keeper no longer extends them from here on, so a store
 * that stays away ends them as report() would. Updates rcs. */
static void retry_batch(pool_t *p, outcome_t **os, int *rcs, size_t n) {
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
    int64_t wait = delay, now = omniq__mono_ms();
    for (size_t i = 0; i < n; i++) {
      int64_t left = atomic_load(&os[i]->job->mono_lease_until_ms) - now;
      if (!transient(rcs[i]) || left <= 0) continue;
      if (tries == 1)
        omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.report_retry", os[i]->job->task->id,
                   "%s: %s; trying again until the lease ends in %lld ms",
                   omniq_err_name(rcs[i]), omniq__errmsg(oq->id), (long long)left);
      if (left < wait) wait = left;
      tasks[k] = os[i]->job->task;
      rs[k] = &os[i]->r;
      at[k++] = i;
    }
    if (k == 0) return;
    struct timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (long)(wait % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    delay = delay * 2 < REPORT_RETRY_MAX_MS ? delay * 2 : REPORT_RETRY_MAX_MS;
    omniq_task_t **none = NULL;
    size_t got = 0;
    int claimed = 0;
    omniq__engine_finish_many(oq, tasks, rs, k, again, NULL, 0, 0, &none, &got, &claimed);
    for (size_t j = 0; j < k; j++) rcs[at[j]] = again[j];
  }
}

/* Commits a batch taken from `pending` in one storage step, with a claim
 * riding on it if `ride` (a runner with nothing left to run; not the
 * keeper), then ends each run as report() would. The keeper extends the
 * outcomes' leases until this first attempt returns. */
static void flush(pool_t *p, outcome_t *list, int ride_ok) {
  omniq_t *oq = p->oq;
  omniq_task_t *tasks[BATCH_MAX];
  const omniq__run_report_t *rs[BATCH_MAX];
  outcome_t *os[BATCH_MAX];
  int rcs[BATCH_MAX];
  while (list != NULL) {
    size_t n = 0;
    for (; list != NULL && n < BATCH_MAX; list = list->next, n++) {
      os[n] = list;
      tasks[n] = list->job->task;
      rs[n] = &list->r;
    }
    ride_t ride;
    memset(&ride, 0, sizeof ride);
    if (ride_ok && list == NULL) ride_begin(p, &ride);
    omniq__engine_finish_many(oq, tasks, rs, n, rcs, (const char *const *)p->queues,
                              p->nqueues, ride.room, &ride.tasks, &ride.n, &ride.claimed);
    ride_end(p, &ride);
    retry_batch(p, os, rcs, n);
    for (size_t i = 0; i < n; i++) {
      omniq__job_log_report(os[i]->job, &os[i]->r, rcs[i]);
      pthread_mutex_lock(&p->lock);
      count_run_locked(p, os[i]->job, rcs[i] == OMNIQ_ESTATE ? OMNIQ_OK : rcs[i]);
      pthread_mutex_unlock(&p->lock);
      omniq__job_unref(os[i]->job);
      omniq__free(os[i]);
    }
  }
}

/* The keeper's errand when the batch has waited BATCH_DELAY_MS. */
static void flush_pending(void *arg) {
  pool_t *p = arg;
  pthread_mutex_lock(&p->lock);
  outcome_t *list = take_pending(p);
  pthread_mutex_unlock(&p->lock);
  flush(p, list, 0);
}

/* A stop gives claimed tasks that have not started back to the store
 * (ABI 6 release): PENDING again, their attempts undone, at once for any
 * worker, instead of running them (claiming ahead can hold many) or
 * leaving them to lease expiry. A cancel that already ended one leaves
 * nothing to give back. */
static void give_back(pool_t *p) {
  for (;;) {
    pthread_mutex_lock(&p->lock);
    if (p->nready == 0) {
      pthread_mutex_unlock(&p->lock);
      return;
    }
    omniq_job_t *job = take_ready(p);
    pthread_mutex_unlock(&p->lock);
    if (omniq__job_end(job)) {
      int rc = omniq__engine_release(p->oq, job->task);
      if (rc != OMNIQ_OK && rc != OMNIQ_ESTATE)
        omniq__log(&p->oq->log, OMNIQ_LOG_WARNING, "task.release_failed", job->task->id,
                   "%s: %s; left to lease expiry", omniq_err_name(rc), omniq__errmsg(p->oq->id));
    }
    omniq__job_returned(job);
    pthread_mutex_lock(&p->lock);
    unlink_job(p, job);
    pthread_mutex_unlock(&p->lock);
    omniq__job_unref(job);
  }
}

/* Counts a run that ended, and as unstored too if its report failed with
 * rc (a drain then stops claiming rather than strand more tasks RUNNING).
 * p->lock held. */
static void count_run(pool_t *p, int rc) {
  p->finished++; /* no broadcast: nothing waits for a run to end (see the design note) */
  omniq__unstored_add(&p->unstored, rc, omniq__errmsg(p->oq->id));
}

/* A run's end: its job leaves the in-flight list and the run is counted.
 * p->lock held; the caller drops its reference to job after. Returns rc. */
static int count_run_locked(pool_t *p, omniq_job_t *job, int rc) {
  unlink_job(p, job);
  count_run(p, rc);
  return rc;
}

/* A slot whose zygote has exited (killed from outside: its children died
 * with it) moves to the next one, which the keeper forks; the first slot to
 * notice asks for it. */
static void renew_slot(pool_t *p, int i) {
  omniq__slot_t *s = &p->slots[i];
  pthread_mutex_lock(&p->lock);
  if (p->zygote_gen == s->gen && p->zygote_state != 0 && !p->stopping) {
    p->zygote_state = 0;
    p->keeper.errand = 1;
    pthread_cond_broadcast(&p->cond);
  }
  while (p->zygote_state == 0 && !p->keeper.stop) pthread_cond_wait(&p->cond, &p->lock);
  int ctl = -1, gen = p->zygote_gen;
  if (p->zygote_state > 0 && gen != s->gen) {
    ctl = p->zygote.ctl[i];
    p->zygote.ctl[i] = -1; /* the slot's now */
  }
  pthread_mutex_unlock(&p->lock);
  if (ctl < 0) return; /* the restart failed: this run fails as unable to fork */
  omniq__slot_close(s);
  omniq__slot_init(s, ctl, p->max_tasks, &p->limits);
  s->gen = gen;
}

/* Runs the handler in this thread or in the slot's child; returns what to
 * report. */
static int call_handler(pool_t *p, int slot, omniq_job_t *job) {
  omniq_handler_fn fn;
  void *userdata;
  char err[OMNIQ__ERRMSG_MAX];
  if (omniq__handlers_resolve(p->oq, job->task->func, p->handler_path, &fn, &userdata, err,
                              sizeof err) != OMNIQ_OK) {
    omniq__job_fail(job, OMNIQ__RUN_NO_HANDLER, NULL, err, NULL, 0);
    omniq__job_returned(job);
    return OMNIQ_EHANDLER;
  }
  if (p->isolation == OMNIQ_ISOLATION_PROCESS) {
    if (!omniq__slot_usable(&p->slots[slot])) renew_slot(p, slot);
    /* The child resolves func again, in its own copy of the registry. */
    omniq__isolate_run(&p->slots[slot], job); /* a killed child's run was ended by its killer */
    omniq__job_returned(job);
    return OMNIQ_OK;
  }
  int rc = fn(job, userdata);
  if (rc == OMNIQ_DEFERRED)
    omniq__job_wait_deferred(job); /* omniq_job_complete gives the other reference back */
  else
    omniq__job_returned(job);
  return rc;
}

/* Runs a claimed job taken from `ready` (it is on the in-flight list). One
 * that a cancel ended while it waited never starts. */
static void run_task(pool_t *p, int slot, omniq_job_t *job) {
  omniq_t *oq = p->oq;
  omniq_task_t *task = job->task;
  int rc = OMNIQ_OK;
  if (omniq__job_ended(job)) {
    omniq__job_returned(job);
    pthread_mutex_lock(&p->lock);
    unlink_job(p, job);
    pthread_mutex_unlock(&p->lock);
    omniq__job_unref(job);
    return;
  }
  int64_t now = omniq__mono_ms(), store_start = omniq__now(&oq->settings);
  pthread_mutex_lock(&p->lock);
  int skip = p->abandon; /* claimed while a stop gave up: nobody keeps its lease */
  /* The timeout counts from the handler's start, not from the claim: a
   * task claimed ahead may have waited on `ready`. */
  job->mono_started_ms = now;
  if (task->timeout_ms > 0) {
    job->mono_deadline_ms = omniq__add_ms(now, task->timeout_ms);
    job->deadline_ms = omniq__add_ms(
        store_start > task->started_at_ms ? store_start : task->started_at_ms, task->timeout_ms);
  }
  if (omniq__keeper_must_wake(&p->keeper, job, now)) pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);

  if (skip) {
    omniq__job_end(job);
    omniq__job_cancel(job);
    omniq__job_returned(job);
  } else {
    omniq__log(&oq->log, OMNIQ_LOG_DEBUG, "task.started", task->id, "func=%s attempt=%d",
               task->func, task->attempts);
    int handler_rc = call_handler(p, slot, job);
    int64_t took = omniq__now(&oq->settings) - store_start;
    pthread_mutex_lock(&p->lock);
    p->short_runs = took > SHORT_RUN_MS        ? 0
                    : p->short_runs < AHEAD_MAX ? p->short_runs + 1
                                                : AHEAD_MAX;
    pthread_mutex_unlock(&p->lock);
    if (p->batch) {
      if (hold(p, job, handler_rc, &rc)) return; /* counted when its batch commits */
    } else {
      ride_t ride;
      ride_begin(p, &ride);
      rc = report(p, job, handler_rc, &ride);
    }
  }

  pthread_mutex_lock(&p->lock);
  count_run_locked(p, job, rc);
  pthread_mutex_unlock(&p->lock);
  omniq__job_unref(job);
}

/* ---- claiming -------------------------------------------------------------- */

static int may_claim(const pool_t *p) {
  if (p->drain && (p->unstored.n > 0 || p->keeper.unstored.n > 0)) return 0;
  return !p->stopping && !p->drained && !(p->limit > 0 && p->claimed >= p->limit);
}

/* How many tasks the leader may claim now: the free slots (counting
 * `freeing` busy ones as free), and in drain mode no more than the limit
 * leaves. Under p->lock. */
static size_t claim_room(const pool_t *p, int freeing) {
  /* Claiming ahead: as many more as runs in a row were short. */
  long ahead = p->ahead_ok ? p->short_runs : 0;
  long room = p->concurrency - p->busy + freeing - p->nready + ahead;
  if (room > p->ready_cap - p->nready) room = p->ready_cap - p->nready;
  if (p->limit > 0 && p->limit - p->claimed < room) room = p->limit - p->claimed;
  return room > 0 ? (size_t)room : 0;
}

/* The leader's loop: claims until it gets tasks, the pool stops, or (in
 * drain mode) nothing is due; what it gets goes on `ready`. Called and
 * returns with p->lock held; gives leadership up before returning. */
static void lead(pool_t *p) {
  for (;;) {
    /* Read the generation before looking at `stopping`: a stop sets it and
     * then bumps the generation, so the wait below cannot miss the stop. */
    pthread_mutex_unlock(&p->lock);
    uint64_t gen = omniq__wake_gen(p->oq, OMNIQ__EV_WORK);
    pthread_mutex_lock(&p->lock);
    size_t room = claim_room(p, 0);
    if (!may_claim(p) || room == 0) break;
    p->claimed += (long)room;
    pthread_mutex_unlock(&p->lock);

    omniq_task_t **tasks = NULL;
    size_t n = 0;
    int rc =
        omniq__engine_claim(p->oq, (const char *const *)p->queues, p->nqueues, room, &tasks, &n);
    if (rc != OMNIQ_OK)
      omniq__log(&p->oq->log, OMNIQ_LOG_WARNING, "worker.claim_failed", NULL, "%s: %s",
                 omniq_err_name(rc), omniq__errmsg(p->oq->id));
    size_t got = rc == OMNIQ_OK ? n : 0;
    omniq_job_t **jobs = NULL;
    if (got > 0)
      jobs = wrap(p, tasks, &got); /* got <= n <= room */
    else
      omniq__tasks_free(tasks, n);
    pthread_mutex_lock(&p->lock);
    p->claimed -= (long)(room - (rc == OMNIQ_OK ? n : 0));
    if (got > 0) {
      put_ready(p, jobs, got);
      break;
    }
    if (p->drain) {
      if (rc != OMNIQ_OK && p->error == OMNIQ_OK) p->error = rc;
      p->drained = 1;
      break;
    }
    pthread_mutex_unlock(&p->lock);
    omniq__wake_wait(p->oq, OMNIQ__EV_WORK, gen, p->poll_ms);
    pthread_mutex_lock(&p->lock);
  }
  p->has_leader = 0;
  /* Followers take the tasks on `ready`, and one of the rest leads. */
  pthread_cond_broadcast(&p->idle_cond);
}

/* A runner: takes a task a leader queued for it, or leads, or waits. A
 * claimed task is always run, even once the pool is stopping: it holds a
 * lease that nobody else would release. */
static void runner_loop(pool_t *p, int slot) {
  pthread_mutex_lock(&p->lock);
  for (;;) {
    /* Nothing more to run here (or a full batch): the batch commits now,
     * with this runner's next claim riding on it. */
    if (p->npending > 0 && (p->nready == 0 || p->npending >= BATCH_MAX)) {
      outcome_t *list = take_pending(p);
      p->busy++; /* its slot is claimed for by its ride, not by a leader */
      pthread_mutex_unlock(&p->lock);
      flush(p, list, 1);
      pthread_mutex_lock(&p->lock);
      p->busy--;
      if (!p->has_leader) pthread_cond_signal(&p->idle_cond);
      continue;
    }
    if (p->stopping && p->release && p->nready > 0) {
      pthread_mutex_unlock(&p->lock);
      give_back(p);
      pthread_mutex_lock(&p->lock);
      continue;
    }
    if (p->nready > 0) {
      omniq_job_t *job = take_ready(p);
      p->busy++;
      pthread_mutex_unlock(&p->lock);
      run_task(p, slot, job);
      pthread_mutex_lock(&p->lock);
      p->busy--;
      /* A slot came free: an idle follower may lead again if no one is. */
      if (!p->has_leader) pthread_cond_signal(&p->idle_cond);
      continue;
    }
    /* A claim under way may bring this runner a task: its tasks count
     * against the limit before they are on `ready`, so only once no one
     * leads does a limit reached (or a stop) end the runner. */
    if (p->has_leader) {
      pthread_cond_wait(&p->idle_cond, &p->lock);
      continue;
    }
    if (!may_claim(p)) break;
    p->has_leader = 1;
    lead(p);
  }
  /* Whatever ended this runner (stop, drained, limit) ends the followers
   * too; they must look again rather than wait for a leader. */
  pthread_cond_broadcast(&p->idle_cond);
  pthread_mutex_unlock(&p->lock);
}

static void *runner_main(void *arg) {
  runner_t *r = arg;
  pool_t *p = r->pool;
  omniq_t *oq = p->oq;
  pthread_mutex_lock(&p->lock);
  p->started++;
  pthread_cond_broadcast(&p->cond);
  while (!p->go && !p->stopping) pthread_cond_wait(&p->cond, &p->lock);
  pthread_mutex_unlock(&p->lock);

  int slot = (int)(r - p->runners);
  runner_loop(p, slot);
  if (p->slots != NULL) omniq__slot_close(&p->slots[slot]);

  pthread_mutex_lock(&p->lock);
  r->exited = 1;
  p->alive--;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  pool_unref(p); /* may free p and r */
  thread_gone(oq);
  return NULL;
}

/* ---- building and tearing down ------------------------------------------------ */

void omniq_worker_opts_init(omniq_worker_opts_t *o) {
  if (o == NULL) return;
  memset(o, 0, sizeof *o);
  o->concurrency = OMNIQ_DEFAULT_CONCURRENCY;
  o->poll_interval_ms = OMNIQ_DEFAULT_POLL_INTERVAL_MS;
  o->shutdown_timeout_ms = OMNIQ_DEFAULT_SHUTDOWN_TIMEOUT_MS;
  o->isolation = OMNIQ_ISOLATION_THREAD;
  o->max_tasks_per_child = OMNIQ_DEFAULT_MAX_TASKS_PER_CHILD;
  o->memory_limit_bytes = OMNIQ_DEFAULT_MEMORY_LIMIT_BYTES;
  o->cpu_limit_ms = OMNIQ_DEFAULT_CPU_LIMIT_MS;
  o->files_limit = OMNIQ_DEFAULT_FILES_LIMIT;
}

static int check_opts(omniq_t *oq, const char *fn, const omniq_worker_opts_t *o) {
  if (o->concurrency < 1 || o->concurrency > MAX_CONCURRENCY)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: concurrency must be 1..%d (got %d)", fn,
                      MAX_CONCURRENCY, o->concurrency);
  if (o->poll_interval_ms <= 0)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: poll_interval_ms must be > 0 (got %lld)", fn,
                      (long long)o->poll_interval_ms);
  if (o->shutdown_timeout_ms < 0)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: shutdown_timeout_ms must be >= 0 (got %lld)",
                      fn, (long long)o->shutdown_timeout_ms);
  if (o->isolation != OMNIQ_ISOLATION_THREAD && o->isolation != OMNIQ_ISOLATION_PROCESS)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: isolation must be thread or process (got %d)",
                      fn, o->isolation);
  const struct {
    const char *name;
    int64_t value;
  } per_child[] = {{"max_tasks_per_child", o->max_tasks_per_child},
                   {"memory_limit_bytes", o->memory_limit_bytes},
                   {"cpu_limit_ms", o->cpu_limit_ms},
                   {"files_limit", o->files_limit}};
  for (size_t i = 0; i < sizeof per_child / sizeof per_child[0]; i++) {
    if (per_child[i].value < 0)
      return omniq__err(oq->id, OMNIQ_EINVAL, "%s: %s must be >= 0 (got %lld)", fn,
                        per_child[i].name, (long long)per_child[i].value);
    if (per_child[i].value > 0 && o->isolation != OMNIQ_ISOLATION_PROCESS)
      return omniq__err(oq->id, OMNIQ_EINVAL,
                        "%s: %s needs isolation = OMNIQ_ISOLATION_PROCESS (a thread cannot be "
                        "limited or replaced)",
                        fn, per_child[i].name);
  }
  return OMNIQ_OK;
}

/* Frees what pool_new allocated before it failed (no lock or thread yet). */
static void pool_discard(pool_t *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->nqueues; i++) omniq__free(p->queues[i]);
  omniq__free(p->handler_path);
  omniq__free(p->slots);
  omniq__free(p->runners);
  omniq__free(p->ready);
  omniq__free(p);
}

static int pool_new(omniq_t *oq, const char *fn, const omniq_worker_opts_t *opts, pool_t **out) {
  omniq_worker_opts_t defaults;
  int rc;
  *out = NULL;
  if (oq == NULL) return OMNIQ_EINVAL;
  if (opts == NULL) {
    omniq_worker_opts_init(&defaults);
    opts = &defaults;
  }
  if ((rc = check_opts(oq, fn, opts)) != OMNIQ_OK) return rc;
  pool_t *p = omniq__calloc(1, sizeof *p);
  if (p == NULL ||
      (p->runners = omniq__calloc((size_t)opts->concurrency, sizeof *p->runners)) == NULL ||
      (p->ready = omniq__calloc((size_t)opts->concurrency + AHEAD_MAX, sizeof *p->ready)) ==
          NULL)
    goto nomem;
  if (opts->handler_path != NULL && (p->handler_path = omniq__strdup(opts->handler_path)) == NULL)
    goto nomem;
  if (opts->isolation == OMNIQ_ISOLATION_PROCESS) {
    if ((p->slots = omniq__calloc((size_t)opts->concurrency, sizeof *p->slots)) == NULL) goto nomem;
    for (int i = 0; i < opts->concurrency; i++)
      p->slots[i].ctl = p->slots[i].sock = p->slots[i].err = -1; /* nothing to close yet */
  }
  if ((rc = omniq__engine_listen_queues(oq, fn, opts->queues, p->queues, &p->nqueues)) !=
      OMNIQ_OK) {
    pool_discard(p);
    return rc;
  }
  if (pthread_mutex_init(&p->lock, NULL) != 0) goto nomem;
  if (omniq__cond_init_monotonic(&p->cond) != 0) {
    pthread_mutex_destroy(&p->lock);
    goto nomem;
  }
  if (omniq__cond_init_monotonic(&p->idle_cond) != 0) {
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    goto nomem;
  }
  p->oq = oq;
  p->concurrency = opts->concurrency;
  p->isolation = opts->isolation;
  p->poll_ms = opts->poll_interval_ms;
  p->ride = omniq__store_rides_claims(oq);
  p->batch = omniq__store_batches(oq);
  p->release = omniq__store_releases(oq);
  p->ahead_ok = p->batch && p->release;
  p->ready_cap = opts->concurrency + (p->ahead_ok ? AHEAD_MAX : 0);
  p->pending_tail = &p->pending;
  p->shutdown_ms = opts->shutdown_timeout_ms;
  p->max_tasks = opts->max_tasks_per_child;
  p->limits = (omniq__limits_t){opts->memory_limit_bytes, opts->cpu_limit_ms, opts->files_limit};
  p->extend_ms = oq->settings.lease_ms / 3 > 0 ? oq->settings.lease_ms / 3 : 1;
  p->refs = 1;
  *out = p;
  return OMNIQ_OK;
nomem:
  pool_discard(p);
  return omniq__err(oq->id, OMNIQ_ENOMEM, "%s: out of memory", fn);
}

/* Stops the zygote (every child dies with it) and closes the channels no
 * slot has taken. The keeper thread only, with no slot waiting for it. */
static void drop_zygote(pool_t *p) {
  for (int i = 0; p->zygote.ctl != NULL && i < p->concurrency; i++)
    if (p->zygote.ctl[i] >= 0) close(p->zygote.ctl[i]);
  omniq__zygote_stop(&p->zygote);
}

/* (Re)starts the zygote; publishes it, its state and generation under the
 * pool's lock. The keeper thread only: the zygote dies with the thread that
 * forked it. */
static void start_zygote(pool_t *p) {
  omniq_t *oq = p->oq;
  omniq__zygote_t z;
  char err[sizeof p->zygote_err];
  drop_zygote(p); /* one that exited: reaped */
  int rc = omniq__zygote_start(&z, oq, p->handler_path, p->concurrency, err, sizeof err);
  pthread_mutex_lock(&p->lock);
  if (rc == OMNIQ_OK) {
    p->zygote = z;
    p->zygote_gen++;
  } else {
    memcpy(p->zygote_err, err, sizeof err);
  }
  int gen = p->zygote_gen;
  p->zygote_state = rc == OMNIQ_OK ? 1 : -1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  if (rc != OMNIQ_OK)
    omniq__log(&oq->log, OMNIQ_LOG_ERROR, "worker.zygote_failed", NULL, "%s", err);
  else if (gen > 1)
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, "worker.zygote_restarted", NULL,
               "the process that forks handler processes had exited; pid %d replaces it",
               (int)z.pid);
}

static void *keeper_main(void *arg) {
  pool_t *p = arg; /* outlives this thread: shutdown joins it */
  if (p->isolation == OMNIQ_ISOLATION_PROCESS) start_zygote(p);
  for (;;) {
    omniq__keeper_run(&p->keeper);
    pthread_mutex_lock(&p->lock);
    int restart = !p->keeper.stop && p->keeper.errand;
    p->keeper.errand = 0;
    pthread_mutex_unlock(&p->lock);
    if (!restart) break;
    start_zygote(p);
  }
  /* Every child dies with the zygote: runners that outlived a stop see
   * their child end. */
  drop_zygote(p);
  thread_gone(p->oq);
  return NULL;
}

/* Starts the keeper (which starts the zygote in process isolation) and n
 * runner threads. On error the handle's message says why, after fn. */
static int pool_spawn(pool_t *p, int n, const char *fn) {
  omniq_t *oq = p->oq;
  p->keeper = (omniq__keeper_t){.oq = p->oq, .lock = &p->lock, .cond = &p->cond,
                                .inflight = &p->inflight, .extend_ms = p->extend_ms,
                                .wake_ms = INT64_MIN, .flush = flush_pending, .flush_arg = p};
  if (spawn(p->oq, &p->keeper_tid, keeper_main, p) != 0)
    return omniq__err(oq->id, OMNIQ_ENOMEM, "%s: cannot start a thread", fn);
  p->has_keeper = 1;
  if (p->isolation == OMNIQ_ISOLATION_PROCESS) {
    pthread_mutex_lock(&p->lock);
    while (p->zygote_state == 0) pthread_cond_wait(&p->cond, &p->lock);
    int state = p->zygote_state;
    pthread_mutex_unlock(&p->lock);
    if (state < 0) return omniq__err(oq->id, OMNIQ_EIO, "%s: %s", fn, p->zygote_err);
    /* Each slot asks for its child now: they fork while the runners start. */
    for (int i = 0; i < p->concurrency; i++) {
      omniq__slot_init(&p->slots[i], p->zygote.ctl[i], p->max_tasks, &p->limits);
      p->slots[i].gen = p->zygote_gen;
      p->zygote.ctl[i] = -1; /* the slot's now */
    }
  }
  for (int i = 0; i < n; i++) {
    runner_t *r = &p->runners[i];
    r->pool = p;
    pthread_mutex_lock(&p->lock);
    p->refs++;
    p->alive++;
    pthread_mutex_unlock(&p->lock);
    if (spawn(p->oq, &r->tid, runner_main, r) != 0) {
      pthread_mutex_lock(&p->lock);
      p->refs--;
      p->alive--;
      pthread_mutex_unlock(&p->lock);
      return omniq__err(oq->id, OMNIQ_ENOMEM, "%s: cannot start a thread", fn);
    }
    p->nrunners++;
  }
  return OMNIQ_OK;
}

/* Stops claiming and waits up to timeout_ms (< 0 = forever) for the runners
 * to exit; then gives up on runs still going, joins the runners that exited,
 * detaches the others and joins the keeper. Returns how many runners were
 * left running. */
static int pool_shutdown(pool_t *p, int64_t timeout_ms) {
  omniq_t *oq = p->oq;
  pthread_mutex_lock(&p->lock);
  p->stopping = 1;
  pthread_cond_broadcast(&p->idle_cond);
  pthread_mutex_unlock(&p->lock);
  omniq__wake(oq, OMNIQ__EV_WORK); /* wakes the leader; other waiters just re-check */
  if (p->release) give_back(p); /* runners give back what claims still bring */

  struct timespec ts = omniq__mono_deadline(timeout_ms);
  pthread_mutex_lock(&p->lock);
  while (p->alive > 0) {
    int rc = timeout_ms < 0 ? pthread_cond_wait(&p->cond, &p->lock)
                            : pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    if (rc == ETIMEDOUT) break;
  }
  int left = p->alive;
  if (left > 0 && p->release) {
    /* What claims brought since the stop began goes back too. */
    pthread_mutex_unlock(&p->lock);
    give_back(p);
    pthread_mutex_lock(&p->lock);
    left = p->alive;
  }
  if (left > 0) {
    p->abandon = 1;
    for (omniq_job_t *j = p->inflight; j != NULL; j = j->next) {
      if (!omniq__job_end(j)) continue;
      omniq__job_cancel(j);
      omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.abandoned", j->task->id,
                 "still running after shutdown_timeout; left to lease expiry");
    }
  }
  int nrunners = p->nrunners;
  int exited[MAX_CONCURRENCY];
  for (int i = 0; i < nrunners; i++) exited[i] = p->runners[i].exited;
  pthread_mutex_unlock(&p->lock);

  for (int i = 0; i < nrunners; i++) {
    if (exited[i])
      pthread_join(p->runners[i].tid, NULL);
    else
      pthread_detach(p->runners[i].tid);
  }
  if (p->has_keeper) {
    pthread_mutex_lock(&p->lock);
    p->keeper.stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->keeper_tid, NULL);
    p->has_keeper = 0;
  }
  return left;
}

/* ---- public API ------------------------------------------------------------ */

static void pool_list_add(omniq_t *oq, pool_t *p) {
  pthread_mutex_lock(&oq->lock);
  p->next = oq->workers;
  oq->workers = p;
  pthread_mutex_unlock(&oq->lock);
}

static void pool_list_remove(omniq_t *oq, pool_t *p) {
  pthread_mutex_lock(&oq->lock);
  for (pool_t **pp = &oq->workers; *pp != NULL; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  pthread_mutex_unlock(&oq->lock);
}

int omniq_worker_start(omniq_t *oq, const omniq_worker_opts_t *opts, omniq_worker_t **out) {
  pool_t *p;
  int rc;
  if (out != NULL) *out = NULL;
  if (oq == NULL || out == NULL) return OMNIQ_EINVAL;
  if ((rc = pool_new(oq, "omniq_worker_start", opts, &p)) != OMNIQ_OK) return rc;
  if ((rc = pool_spawn(p, p->concurrency, "omniq_worker_start")) != OMNIQ_OK) {
    pool_shutdown(p, -1);
    pool_unref(p);
    return rc;
  }
  pthread_mutex_lock(&p->lock);
  while (p->started < p->nrunners) pthread_cond_wait(&p->cond, &p->lock);
  pthread_mutex_unlock(&p->lock);

  pool_list_add(oq, p);

  char queues[OMNIQ_MAX_QUEUES * (OMNIQ_NAME_MAX + 1)] = "";
  for (size_t i = 0; i < p->nqueues; i++)
    snprintf(queues + strlen(queues), sizeof queues - strlen(queues), "%s%s", i ? "," : "",
             p->queues[i]);
  char per_child[160] = "";
  if (p->isolation == OMNIQ_ISOLATION_PROCESS)
    snprintf(per_child, sizeof per_child,
             " max_tasks_per_child=%ld memory_limit_bytes=%lld cpu_limit_ms=%lld files_limit=%lld",
             p->max_tasks, (long long)p->limits.memory_bytes, (long long)p->limits.cpu_ms,
             (long long)p->limits.files);
  omniq__log(&oq->log, OMNIQ_LOG_INFO, "worker.started", NULL,
             "concurrency=%d isolation=%s poll_interval_ms=%lld queues=%s%s", p->concurrency,
             p->isolation == OMNIQ_ISOLATION_PROCESS ? "process" : "thread",
             (long long)p->poll_ms, queues, per_child);
  pthread_mutex_lock(&p->lock);
  p->go = 1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  *out = p;
  return OMNIQ_OK;
}

int omniq_worker_stop(omniq_worker_t *w) {
  if (w == NULL) return OMNIQ_OK;
  omniq_t *oq = w->oq;
  pool_list_remove(oq, w);

  int left = pool_shutdown(w, w->shutdown_ms);
  if (left > 0)
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, "worker.stopped", NULL,
               "%d handler(s) still running after shutdown_timeout; their tasks are left to "
               "lease expiry",
               left);
  else
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "worker.stopped", NULL, "all in-flight tasks finished");
  pool_unref(w);
  if (left > 0)
    return omniq__err(oq->id, OMNIQ_ETIMEDOUT,
                      "omniq_worker_stop: %d handler(s) outlived shutdown_timeout", left);
  return OMNIQ_OK;
}

int omniq_worker_process(omniq_t *oq, const omniq_worker_opts_t *opts, long limit,
                         long *done) {
  pool_t *p;
  int rc;
  if (done != NULL) *done = 0;
  if (oq == NULL) return OMNIQ_EINVAL;
  if (limit < 0)
    return omniq__err(oq->id, OMNIQ_EINVAL, "omniq_worker_process: limit must be >= 0");
  if ((rc = pool_new(oq, "omniq_worker_process", opts, &p)) != OMNIQ_OK) return rc;
  p->drain = 1;
  /* A drain ends when nothing is due or the limit is reached, with runs
   * still going on other runners and their rides' claims landing: those
   * tasks are run, not given back (the count it returns would miss them). */
  p->release = 0;
  p->limit = limit;
  p->go = 1;
  pool_list_add(oq, p); /* so a cancel through oq reaches its runs */
  /* The caller is one runner (with the last slot); the others are
   * temporary threads. */
  rc = pool_spawn(p, p->concurrency - 1, "omniq_worker_process");
  if (rc == OMNIQ_OK) {
    runner_loop(p, p->concurrency - 1);
    if (p->slots != NULL) omniq__slot_close(&p->slots[p->concurrency - 1]);
  }
  pool_shutdown(p, -1);
  pool_list_remove(oq, p);
  /* A run whose outcome the store refused is not done (the keeper's count
   * is final: it has been joined). */
  long unstored = p->unstored.n + p->keeper.unstored.n;
  if (done != NULL) *done = p->finished - unstored;
  if (unstored > 0) { /* said before any claim error: it is the worse news */
    const omniq__unstored_t *first = p->unstored.n > 0 ? &p->unstored : &p->keeper.unstored;
    rc = omniq__err(oq->id, first->rc,
                    "omniq_worker_process: %ld run(s) ended but the store refused their "
                    "outcome (%s); their tasks stay RUNNING until their leases expire",
                    unstored, first->msg);
  } else if (rc == OMNIQ_OK) {
    rc = p->error;
  }
  pool_unref(p);
  return rc;
}

int omniq_worker_run(omniq_t *oq, const omniq_worker_opts_t *opts) {
  sigset_t set, old;
  omniq_worker_t *w;
  int sig = 0;
  if (oq == NULL) return OMNIQ_EINVAL;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  /* Blocked here (and so in every pool thread), the signals stay pending
   * until sigwait takes them: no handler runs in a random thread. */
  pthread_sigmask(SIG_BLOCK, &set, &old);
  int rc = omniq_worker_start(oq, opts, &w);
  if (rc == OMNIQ_OK) {
    while (sigwait(&set, &sig) != 0) {
    }
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "worker.signal", NULL, "%s received; stopping",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = omniq_worker_stop(w);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

void omniq__pool_cancelled(omniq_t *oq, const char *id) {
  int ended = 0;
  pthread_mutex_lock(&oq->lock); /* pools on oq->workers are not freed under it */
  for (pool_t *p = oq->workers; p != NULL; p = p->next) {
    pthread_mutex_lock(&p->lock);
    /* The store holds the task CANCELLED: whatever claim a run here holds
     * is void, so the run ends with nothing to report, as a refused
     * extension would end it, but now. */
    for (omniq_job_t *j = p->inflight; j != NULL; j = j->next)
      if (strcmp(j->task->id, id) == 0 && omniq__job_end(j)) {
        omniq__job_cancel(j);
        ended++;
      }
    pthread_mutex_unlock(&p->lock);
  }
  pthread_mutex_unlock(&oq->lock);
  if (ended > 0)
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "task.claim_lost", id,
               "cancelled through this handle while running; its report will be ignored");
}

void omniq__pool_close_all(omniq_t *oq) {
  for (;;) {
    pthread_mutex_lock(&oq->lock);
    pool_t *w = oq->workers;
    while (w != NULL && w->drain) w = w->next; /* its caller ends it */
    pthread_mutex_unlock(&oq->lock);
    if (w == NULL) break;
    omniq_worker_stop(w);
  }
  pthread_mutex_lock(&oq->lock);
  while (oq->threads_alive > 0) pthread_cond_wait(&oq->threads_cond, &oq->lock);
  pthread_mutex_unlock(&oq->lock);
}
