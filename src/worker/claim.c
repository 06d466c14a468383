/* SPDX-License-Identifier: MIT */
/* Claimed tasks before they run: the pool's ready ring, how many tasks a
 * claim may ask for (claiming ahead), claims riding with reports, and
 * giving unstarted tasks back at a stop. The leader that claims and the
 * runners that take from `ready` are pool.c's.
 *
 * The ready ring. Claimed tasks are jobs from the claim on: on `ready` (a
 * ring, in claim order) and on the in-flight list, so the keeper extends
 * their leases and a cancel ends them before they start.
 *
 * Claiming ahead: where the backend commits many outcomes with a claim in
 * one step and can give a claim back (storage ABI 6 finish_many and
 * release; SQLite, PostgreSQL, the file backend), a claim also asks for
 * as many tasks as runs in a row were short (up to AHEAD_MAX): a burst of
 * short tasks then costs one claim per batch of them, not one per free
 * slot.
 *
 * Riding claims: where the backend can commit a claim with a report
 * (storage ABI 5 finish_claim; SQLite, PostgreSQL), a runner whose run
 * ended with nothing on `ready` does not claim after its report: its
 * report carries the claim (see omniq__ride_t), so a busy runner commits
 * once per task.
 *
 * Giving back: a stop gives the tasks on `ready` back to the store (ABI 6
 * release) rather than running them or leaving them to lease expiry;
 * never in drain mode, which runs every task it claimed.
 *
 * Locks: every function here that reads or changes the ring, the counters
 * or the in-flight list does so under pool->lock, as its comment says;
 * none holds it across a storage call.
 */
#include "worker/claim.h"

#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "core/engine.h"
#include "core/store.h"

typedef struct omniq_worker pool_t;

/* The first job on `ready` (nready > 0): tasks start in the order the
 * claim gave them (priority, then eta). p->lock held, or no other thread. */
omniq_job_t *omniq__ready_take(pool_t *p) {
  omniq_job_t *job = p->ready[p->ready_head];
  p->ready_head = (p->ready_head + 1) % p->ready_cap;
  p->nready--;
  return job;
}

int omniq__may_claim(const pool_t *p) {
  if (p->drain && (p->unstored.n > 0 || p->keeper.unstored.n > 0)) return 0;
  return !p->stopping && !p->drained && !(p->limit > 0 && p->claimed >= p->limit);
}

/* How many tasks the leader may claim now: the free slots (counting
 * `freeing` busy ones as free), and in drain mode no more than the limit
 * leaves. Under p->lock. */
size_t omniq__claim_room(const pool_t *p, int freeing) {
  long room = p->concurrency - p->busy + freeing - p->nready;
  /* Claiming ahead: as many more as runs in a row were short, but no more
   * than AHEAD_MAX in all. A claim of more than a batch of reports holds
   * (BATCH_MAX) would end in a full batch committed alone and one more
   * commit for the rest: two transactions where one does. */
  if (p->ahead_ok && p->short_runs > 0 && room < AHEAD_MAX)
    room = room + p->short_runs < AHEAD_MAX ? room + p->short_runs : AHEAD_MAX;
  if (room > p->ready_cap - p->nready) room = p->ready_cap - p->nready;
  if (p->limit > 0 && p->limit - p->claimed < room) room = p->limit - p->claimed;
  return room > 0 ? (size_t)room : 0;
}

/* Jobs for claimed tasks (takes tasks, an array of n, and frees it); *n
 * becomes how many jobs there are. A task with no memory for its job
 * fails at once, as a run with no memory to start. No lock held. */
omniq_job_t **omniq__claim_wrap(pool_t *p, omniq_task_t **tasks, size_t *n) {
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
 * array). p->lock held.
 *
 * Lease clocks. The store's lease of a claimed task began at the "now" the
 * engine read inside the claiming call, which may be long before that call
 * returned: the statement waited in a group commit behind others, the
 * server was slow to commit, the host was descheduled. Counted from the
 * return, this pool's lease would outlast the store's by that much, and
 * omniq__run_task's margin (a start needs extend_ms of lease left) would no
 * longer keep a start before the moment another worker may recover the
 * task. So each lease is counted from asked_ms, read before the call: never
 * later than the store's own start. */
void omniq__ready_put(pool_t *p, omniq_job_t **jobs, size_t n, int64_t asked_ms) {
  int64_t now = omniq__mono_ms();
  int wake = 0;
  for (size_t i = 0; i < n; i++) {
    omniq_job_t *job = jobs[i];
    job->deadline_ms = 0;
    atomic_store(&job->mono_lease_until_ms, omniq__add_ms(asked_ms, p->oq->settings.lease_ms));
    /* A claim that came back late is extended at once, on the store's
     * schedule rather than the return's. */
    job->next_extend_ms = asked_ms + p->extend_ms;
    job->next = p->inflight;
    if (p->inflight != NULL) p->inflight->prev = job;
    p->inflight = job;
    wake |= omniq__keeper_must_wake(&p->keeper, job, now);
    /* nready + n <= ready_cap: omniq__claim_room */
    p->ready[(p->ready_head + p->nready++) % p->ready_cap] = job;
  }
  omniq__free(jobs);
  if (wake) pthread_cond_broadcast(&p->cond);
}

void omniq__ride_begin(pool_t *p, omniq__ride_t *ride, int full) {
  memset(ride, 0, sizeof *ride);
  if (!p->ride) return; /* the report and the claim would be two steps anyway */
  pthread_mutex_lock(&p->lock);
  /* A full batch while tasks still wait on `ready` (several runners drain
   * it, so outcomes fill a batch before it empties): without a claim here
   * the batch commits alone and the runner that empties `ready` commits a
   * few outcomes with the claim, two commits per batch where one does.
   * claim_room counts what is on `ready`, so the claim only tops it up. */
  if ((p->nready == 0 || (full && !p->has_leader)) && omniq__may_claim(p)) {
    ride->led = !p->has_leader;
    /* Its own slot, counted free (it is once the report ends); a leader's
     * room also counts the free ones. The limit caps both. */
    ride->room = ride->led ? omniq__claim_room(p, 1)
                           : (p->limit > 0 && p->claimed >= p->limit ? 0 : 1);
    if (ride->room == 0) ride->led = 0;
    if (ride->led) p->has_leader = 1;
    p->claimed += (long)ride->room;
  }
  pthread_mutex_unlock(&p->lock);
  ride->asked_ms = omniq__mono_ms(); /* before the call that claims (omniq__ready_put) */
}

/* Puts what the ride claimed on `ready` and, if it led, gives the lead up
 * as lead() does; in drain mode a claim that found nothing ends the drain.
 * Idempotent. */
void omniq__ride_end(pool_t *p, omniq__ride_t *ride) {
  if (ride->room == 0) return; /* no ride, or already ended */
  size_t got = ride->n;
  omniq_job_t **jobs = omniq__claim_wrap(p, ride->tasks, &got); /* got <= n <= room */
  pthread_mutex_lock(&p->lock);
  p->claimed -= (long)(ride->room - ride->n);
  omniq__ready_put(p, jobs, got, ride->asked_ms);
  if (p->drain && ride->claimed && ride->n == 0) p->drained = 1;
  if (ride->led) p->has_leader = 0;
  pthread_cond_broadcast(&p->idle_cond);
  pthread_mutex_unlock(&p->lock);
  ride->room = 0;
  ride->n = 0;
}

/* A claimed task whose lease ran short before it started (omniq__run_task)
 * is not run here. Where the store can take a claim back (ABI 6 release) it
 * is given back at once, its attempt undone, for this or any worker to
 * claim afresh, and it no longer counts against a drain's limit, so a
 * drain claims again for it. The claim token fences the give-back: a task
 * another worker has recovered meanwhile is left alone. Otherwise, or if
 * the store cannot be reached, it comes back through lease recovery, and
 * is counted as not run. The job is ended already. */
void omniq__not_started(pool_t *p, omniq_job_t *job) {
  omniq_t *oq = p->oq;
  int rc = omniq__store_releases(oq) ? omniq__engine_release(oq, job->task) : OMNIQ_ENOTSUP;
  if (rc == OMNIQ_OK) {
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.not_started", job->task->id,
               "lease running short before the run started; given back to the store");
    pthread_mutex_lock(&p->lock);
    p->claimed--;
    pthread_mutex_unlock(&p->lock);
    return;
  }
  omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.lease_lost", job->task->id,
             "lease running out before the run started (the store could not be reached "
             "to extend it); not run here, it is recovered once its lease has expired");
  /* A drain must not end as if it had run every task it claimed: it says
   * so (omniq_worker_process). */
  pthread_mutex_lock(&p->lock);
  p->not_run++;
  pthread_mutex_unlock(&p->lock);
}

/* A stop gives claimed tasks that have not started back to the store
 * (ABI 6 release): PENDING again, their attempts undone, at once for any
 * worker, instead of running them (claiming ahead can hold many) or
 * leaving them to lease expiry. A cancel that already ended one leaves
 * nothing to give back. */
void omniq__give_back(pool_t *p) {
  for (;;) {
    pthread_mutex_lock(&p->lock);
    if (p->nready == 0) {
      pthread_mutex_unlock(&p->lock);
      return;
    }
    omniq_job_t *job = omniq__ready_take(p);
    pthread_mutex_unlock(&p->lock);
    if (omniq__job_end(job)) {
      int rc = omniq__engine_release(p->oq, job->task);
      if (rc != OMNIQ_OK && rc != OMNIQ_ESTATE)
        omniq__log(&p->oq->log, OMNIQ_LOG_WARNING, "task.release_failed", job->task->id,
                   "%s: %s; left to lease expiry", omniq_err_name(rc), omniq__errmsg(p->oq->id));
    }
    omniq__job_returned(job);
    pthread_mutex_lock(&p->lock);
    omniq__pool_unlink(p, job);
    pthread_mutex_unlock(&p->lock);
    omniq__job_unref(job);
  }
}
