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
 * Holding: with claiming ahead, while runs are very short (HOLD_AFTER runs
 * in a row of at most HOLD_RUN_US, the pool's microsecond clock, one
 * longer run forgiven after HOLD_CREDIT short ones), the
 * runner that claims holds its claim: the jobs stay on `ready` marked with
 * its slot, only it takes them, and no other runner is woken for them (a
 * wake-up and a hand-off to another core cost more than such a run, and
 * the store commits one writer at a time). A holder counts as busy from
 * the hold's start to its end. The leader meanwhile claims only once the
 * work wake-up generation moves past the one read before the latest held
 * claim (pool.c, lead): new work starts at once beside the holder. Runs
 * over HOLD_RUN_US (omniq__hold_count), a stop, or a held run the keeper
 * finds still going past HOLD_RUN_US (it looks every HOLD_LOOK_MS while
 * anyone holds, omniq__hold_look, on the timer it keeps for the batch)
 * share what is held with every runner. Held jobs are on `ready` and on
 * the in-flight list like any claimed job: leases, cancels, the lease
 * margin and give-back treat them alike.
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
#include "core/wake.h"

typedef struct omniq_worker pool_t;

/* The first job on `ready` that slot may take (see claim.h): tasks start in
 * the order the claim gave them (priority, then eta). A job taken from
 * inside the ring moves the ones before it up one place: the ring holds a
 * few claims at most. p->lock held, or no other thread. */
omniq_job_t *omniq__ready_take(pool_t *p, int slot) {
  int want = slot < 0 ? -1 : p->holds[slot].n > 0 ? slot + 1 : 0;
  int i = 0;
  if (want >= 0)
    while (i < p->nready && p->ready[(p->ready_head + i) % p->ready_cap]->holder != want) i++;
  if (i == p->nready) return NULL;
  omniq_job_t *job = p->ready[(p->ready_head + i) % p->ready_cap];
  for (; i > 0; i--)
    p->ready[(p->ready_head + i) % p->ready_cap] =
        p->ready[(p->ready_head + i - 1) % p->ready_cap];
  p->ready_head = (p->ready_head + 1) % p->ready_cap;
  p->nready--;
  if (job->holder > 0) {
    p->holds[job->holder - 1].n--;
    p->nheld--;
    job->holder = 0;
  }
  return job;
}

int omniq__ready_for(const pool_t *p, int slot) {
  return p->holds[slot].n > 0 ? p->holds[slot].n : p->nready - p->nheld;
}

int omniq__hold_count(int runs, int64_t us) {
  if (us <= HOLD_RUN_US) return runs < HOLD_CREDIT ? runs + 1 : HOLD_CREDIT;
  /* One run over the threshold after HOLD_CREDIT short ones in a row keeps
   * HOLD_AFTER: holding goes on, and a second before HOLD_AFTER more short
   * runs ends it. Under load a runner descheduled in the middle of a
   * run of a few microseconds makes that run look long; ending the hold
   * for it woke every runner, handed the held tasks around and moved the
   * next hold to another thread, up to ten times per 100,000 no-op
   * tasks with four runners. A handler that blocks is shared all the
   * same by the keeper's look (omniq__hold_look), and runs that are long
   * end holding at the second. */
  return runs >= HOLD_CREDIT ? HOLD_AFTER : 0;
}

int omniq__hold_short(const pool_t *p) {
  return p->ahead_ok && p->hold_runs >= HOLD_AFTER;
}

int omniq__hold_share(pool_t *p, int slot) {
  struct omniq__hold *h = &p->holds[slot];
  int shared = h->n;
  for (int i = 0; h->n > 0 && i < p->nready; i++) {
    omniq_job_t *job = p->ready[(p->ready_head + i) % p->ready_cap];
    if (job->holder != slot + 1) continue;
    job->holder = 0;
    h->n--;
    p->nheld--;
  }
  if (shared > 0) pthread_cond_broadcast(&p->idle_cond);
  return shared;
}

int omniq__hold_end(pool_t *p, int slot) {
  struct omniq__hold *h = &p->holds[slot];
  if (!h->on) return 0;
  int shared = omniq__hold_share(p, slot);
  h->on = 0;
  p->busy--;
  p->nholders--;
  return shared > 0 && p->has_leader;
}

int omniq__hold_share_stalled(pool_t *p) {
  int shared = 0;
  int64_t now = omniq__pool_clock_us();
  for (int i = 0; i < p->concurrency && p->nheld > 0; i++) {
    struct omniq__hold *h = &p->holds[i];
    if (h->on && h->n > 0 && h->since > 0 && now - h->since > HOLD_RUN_US)
      shared |= omniq__hold_share(p, i) > 0;
  }
  return shared;
}

int omniq__hold_look(pool_t *p, int64_t now_ms) {
  if (p->concurrency < 2) { /* no other runner could take what is held */
    p->look_due_ms = 0;
    return 0;
  }
  if (p->nholders + p->hold_riders == 0 && p->riding == 0) {
    /* Holding is over (a batch committing may still ride to a hold: one
     * more look). A leader that waits for new work because runners held
     * must look again now: a holder whose batch the keeper had already
     * committed ends its hold with nothing to ride and goes idle, and
     * tasks due before its claim wake no one. No look until a hold
     * starts. */
    p->look_due_ms = 0;
    return p->hold_waiting;
  }
  p->look_due_ms = now_ms + HOLD_LOOK_MS;
  /* What it shares wakes the idle followers (idle_cond) and the leader
   * whatever it waits for: new work while runners hold, or its poll (it
   * claimed nothing before this hold began, and a hold whose claim rode
   * on a batch and took tasks due by time moved no wake-up). */
  return omniq__hold_share_stalled(p) && omniq__leader_sleeps(p);
}

int omniq__may_claim(const pool_t *p) {
  if (p->drain && (p->unstored.n > 0 || p->keeper.unstored.n > 0)) return 0;
  return !p->stopping && !p->drained && !(p->limit > 0 && p->claimed >= p->limit);
}

/* How many tasks the leader may claim now: the free slots (counting
 * `freeing` busy ones as free), and in drain mode no more than the limit
 * leaves. Under p->lock. */
size_t omniq__claim_room(const pool_t *p, int freeing) {
  /* A holder counts as busy, and what it holds is its own to run. */
  long room = p->concurrency - p->busy + freeing - (p->nready - p->nheld);
  /* Claiming ahead: as many more as runs in a row were short, but no more
   * than AHEAD_MAX in all. A claim of more than a batch of reports holds
   * (BATCH_MAX) would end in a full batch committed alone and one more
   * commit for the rest: two transactions where one does. */
  if (p->ahead_ok && p->short_runs > 0 && room < AHEAD_MAX)
    room = room + p->short_runs < AHEAD_MAX ? room + p->short_runs : AHEAD_MAX;
  /* Claims under way that count free slots (a leader's, a ride made to
   * hold) may bring that many more. */
  long cap = p->ready_cap - p->nready - p->asking;
  if (room > cap) room = cap;
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
int omniq__ready_put(pool_t *p, omniq_job_t **jobs, size_t n, int64_t asked_ms, int slot,
                     uint64_t gen) {
  int64_t now = omniq__pool_ms();
  int wake = 0;
  /* Holding: while runs are very short, the claimer runs what it claimed
   * itself; a wake-up of another runner and the hand-off to another core
   * would cost more than the run. */
  int hold = n > 0 && slot >= 0 && !p->holds[slot].on && !p->stopping && omniq__hold_short(p);
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
    job->holder = hold ? slot + 1 : 0;
    /* nready + n <= ready_cap: omniq__claim_room */
    p->ready[(p->ready_head + p->nready++) % p->ready_cap] = job;
  }
  omniq__free(jobs);
  if (wake) pthread_cond_broadcast(&p->cond);
  if (hold) {
    p->holds[slot] = (struct omniq__hold){.n = (int)n, .on = 1};
    p->nheld += (int)n;
    p->nholders++;
    p->busy++; /* until the hold ends: its slot is taken */
    p->hold_gen = gen;
    /* The keeper looks for held runs that last from now on. */
    if (p->look_due_ms == 0 && p->concurrency > 1) {
      p->look_due_ms = now + HOLD_LOOK_MS;
      if (omniq__timers_arm(p)) pthread_cond_broadcast(&p->cond);
    }
  }
  return hold;
}

void omniq__ride_begin(pool_t *p, omniq__ride_t *ride, int full, int slot) {
  memset(ride, 0, sizeof *ride);
  ride->slot = slot;
  if (!p->ride) return; /* the report and the claim would be two steps anyway */
  /* Before the claim: the leader, waiting while runners hold, claims for
   * what is enqueued after this (omniq__ready_put). */
  ride->gen = omniq__wake_gen(p->oq, OMNIQ__EV_WORK);
  pthread_mutex_lock(&p->lock);
  /* A full batch while tasks still wait on `ready` (several runners drain
   * it, so outcomes fill a batch before it empties): without a claim here
   * the batch commits alone and the runner that empties `ready` commits a
   * few outcomes with the claim, two commits per batch where one does.
   * claim_room counts what is on `ready`, so the claim only tops it up. */
  /* A holder that commits a full batch before its hold ends has its next
   * tasks already: no ride. Nor while another runner holds and runs are
   * very short: one holder runs them all, and this runner idles (leads,
   * waiting for new work, or follows) rather than hold a claim beside it
   * and split the batches. */
  int holding = slot >= 0 && p->holds[slot].on;
  int beside = omniq__hold_short(p) && p->nholders + p->hold_riders > 0;
  if (!holding && !beside && (p->nready - p->nheld == 0 || (full && !p->has_leader)) &&
      omniq__may_claim(p)) {
    ride->led = !p->has_leader;
    /* While runs are very short a rider asks as a leader would, leader or
     * not: it holds what it gets, and the leader waits for new work. */
    ride->ahead = ride->led || (slot >= 0 && omniq__hold_short(p));
    /* Its own slot, counted free (it is once the report ends); a leader's
     * room also counts the free ones. The limit caps both. */
    ride->room = ride->ahead ? omniq__claim_room(p, 1)
                             : (p->limit > 0 && p->claimed >= p->limit ? 0 : 1);
    if (ride->room == 0) ride->led = ride->ahead = 0;
    if (ride->led) p->has_leader = 1;
    if (ride->ahead) p->asking += (int)ride->room;
    /* The leader, waiting for new work while runners hold, counts it as
     * holding: a hold that ends and rides its next claim goes on. */
    ride->to_hold = ride->ahead && !ride->led;
    p->hold_riders += ride->to_hold;
    p->claimed += (long)ride->room;
  }
  pthread_mutex_unlock(&p->lock);
  ride->asked_ms = omniq__pool_ms(); /* before the call that claims (omniq__ready_put) */
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
  if (ride->ahead) p->asking -= (int)ride->room;
  p->hold_riders -= ride->to_hold;
  int held = omniq__ready_put(p, jobs, got, ride->asked_ms, ride->slot, ride->gen);
  if (p->drain && ride->claimed && ride->n == 0) p->drained = 1;
  /* A leader waiting for new work while runners hold learns of the
   * drain's end, or of tasks for every runner; one waiting for its poll,
   * of tasks for every runner beyond the one this rider takes (a ride
   * made to hold that could not). */
  int wake = ((p->drained || (!held && got > 0)) && p->hold_waiting) ||
             (!held && got > 1 && !ride->led && p->poll_waiting);
  if (ride->led) p->has_leader = 0;
  /* What it holds is its own: no other runner need wake, but one must
   * lead if it gave the lead up. */
  if (!held) pthread_cond_broadcast(&p->idle_cond);
  else if (ride->led) pthread_cond_signal(&p->idle_cond);
  pthread_mutex_unlock(&p->lock);
  ride->room = 0;
  ride->n = 0;
  if (wake) omniq__wake(p->oq, OMNIQ__EV_WORK);
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
    omniq_job_t *job = omniq__ready_take(p, -1);
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
