/* SPDX-License-Identifier: MIT */
/* The keeper thread of a pool.
 *
 * Its times are the pool's clock (omniq__pool_ms: CLOCK_MONOTONIC, or a
 * test's). It sleeps until the next thing due: a lease extension (every
 * lease/3 per run) or a deadline, and while some run has a deadline at
 * most OMNIQ__KEEPER_TICK_MS, because a deadline is also passed when the
 * store's clock reaches started_at + timeout, and that clock can jump. A
 * test that moves either clock wakes it at once (omniq__pool_clock_moved). A
 * run that starts wakes it only when it needs the keeper before its planned
 * look (wake_ms): waking it for every run cost two context switches per
 * task, most of a short task's overhead, for a keeper that then found
 * nothing to do. A run that ends does not wake it; at worst it wakes once
 * for a job that is gone.
 *
 * A deadline passes when either the store's clock reaches it or as much
 * of the pool's clock as the timeout has gone by since the run started:
 * the first follows the store's time, the second keeps a real timeout
 * honest when the store's clock stands still. The keeper then ends the
 * run, reports a timeout (the engine names it and applies the retry
 * policy) and only then marks the job cancelled, so a handler that sees the
 * flag knows the failure is stored. In process isolation the runner kills
 * the child when it sees the flag.
 *
 * An extension refused with OMNIQ_ESTATE means the task was cancelled or
 * taken over: the run is ended without a report and the job marked
 * cancelled.
 *
 * Ended runs are skipped: their report is taken, and after a stop gave up
 * on them their leases must run out so another worker recovers them.
 *
 * Locks: the scan runs under the pool's lock (then each job's, in that
 * order); storage calls run without it, on jobs the scan referenced.
 */
#include "worker/keeper.h"

#include <stdio.h>

#include "base/clock.h"
#include "base/error.h"
#include "core/engine.h"

#define ACT_EXTEND 1
#define ACT_TIMEOUT 2

static void keeper_timeout(omniq__keeper_t *k, omniq_job_t *job) {
  char msg[96];
  if (!omniq__job_end(job)) return;
  snprintf(msg, sizeof msg, "run exceeded its timeout of %lld ms",
           (long long)job->task->timeout_ms);
  omniq__run_report_t r = {.kind = OMNIQ__RUN_TIMEOUT, .message = msg};
  int rc = omniq__engine_finish(k->oq, job->task, &r);
  /* A refused report is counted before the flag goes up, so a drain whose
   * runner sees the run end also sees the refusal and claims no more. */
  pthread_mutex_lock(k->lock);
  omniq__unstored_add(&k->unstored, rc, omniq__errmsg(k->oq->id));
  pthread_mutex_unlock(k->lock);
  omniq__job_cancel(job); /* after the failure is stored: what the handler sees is final */
  omniq__job_log_report(job, &r, rc);
}

static void keeper_extend(omniq__keeper_t *k, omniq_job_t *job) {
  omniq_t *oq = k->oq;
  int64_t asked = omniq__pool_ms();
  int rc = omniq__engine_extend(oq, job->task);
  if (rc == OMNIQ_OK) {
    atomic_store(&job->mono_lease_until_ms, asked + oq->settings.lease_ms);
  } else if (rc != OMNIQ_ESTATE && asked >= atomic_load(&job->mono_lease_until_ms)) {
    /* The store could not be reached for a whole lease: another worker
     * may already run this task, so this run must not go on as if it
     * still owned it. */
    if (omniq__job_end(job)) {
      omniq__job_cancel(job);
      omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.lease_lost", job->task->id,
                 "lease ran out while the store was unreachable (%s); the run is cancelled "
                 "and its report will be ignored",
                 omniq_err_name(rc));
    }
  } else if (rc == OMNIQ_ESTATE) {
    if (omniq__job_end(job)) {
      omniq__job_cancel(job);
      omniq__log(&oq->log, OMNIQ_LOG_INFO, "task.claim_lost", job->task->id,
                 "cancelled or taken over while running; its report will be ignored");
    }
  } else if (rc != OMNIQ_OK) {
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.extend_failed", job->task->id, "%s: %s",
               omniq_err_name(rc), omniq__errmsg(oq->id));
    pthread_mutex_lock(k->lock); /* try again soon, the lease is running out */
    job->next_extend_ms = omniq__pool_ms() + (k->extend_ms < 1000 ? k->extend_ms : 1000);
    pthread_mutex_unlock(k->lock);
  }
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

int omniq__keeper_must_wake(const omniq__keeper_t *k, const omniq_job_t *job, int64_t now_ms) {
  /* The first moment scan() would act on this job, or look at the store's
   * clock for it; the same terms as the wait scan() computes. */
  int64_t need = job->next_extend_ms;
  if (job->mono_deadline_ms > 0) need = min64(need, job->mono_deadline_ms);
  if (job->deadline_ms > 0) need = min64(need, now_ms + OMNIQ__KEEPER_TICK_MS);
  return need < k->wake_ms;
}

/* Picks the jobs needing the keeper now (referenced, linked by knext) and
 * how long it may sleep otherwise (-1 = until woken). k->lock held. */
static omniq_job_t *scan(omniq__keeper_t *k, int64_t *wait_ms) {
  int64_t now = omniq__pool_ms(), store_now = omniq__now(&k->oq->settings);
  omniq_job_t *todo = NULL;
  *wait_ms = -1;
  for (omniq_job_t *j = *k->inflight; j != NULL; j = j->next) {
    int held = j->held; /* ended, but its outcome is not committed yet */
    if (!held && omniq__job_ended(j)) continue;
    int act = 0;
    if (!held && ((j->mono_deadline_ms > 0 && now >= j->mono_deadline_ms) ||
                  (j->deadline_ms > 0 && store_now >= j->deadline_ms))) {
      act = ACT_TIMEOUT;
    } else if (now >= j->next_extend_ms) {
      act = ACT_EXTEND;
      j->next_extend_ms = now + k->extend_ms;
    }
    if (act) {
      j->keeper_action = act;
      omniq__job_ref(j);
      j->knext = todo;
      todo = j;
      continue;
    }
    int64_t w = j->next_extend_ms - now;
    if (!held && j->mono_deadline_ms > 0) w = min64(w, j->mono_deadline_ms - now);
    if (!held && j->deadline_ms > 0) w = min64(w, OMNIQ__KEEPER_TICK_MS);
    *wait_ms = *wait_ms < 0 ? w : min64(*wait_ms, w);
  }
  return todo;
}

void omniq__keeper_run(omniq__keeper_t *k) {
  pthread_mutex_lock(k->lock);
  while (!k->stop && !k->errand) {
    k->wake_ms = INT64_MIN; /* runs that start from now on are seen by the scan below */
    int64_t wait_ms;
    if (k->flush_at > 0 && omniq__pool_ms() >= k->flush_at) {
      k->flush_at = 0;
      pthread_mutex_unlock(k->lock);
      k->flush(k->flush_arg);
      pthread_mutex_lock(k->lock);
      continue;
    }
    omniq_job_t *todo = scan(k, &wait_ms);
    if (k->flush_at > 0) {
      int64_t w = k->flush_at - omniq__pool_ms();
      wait_ms = wait_ms < 0 || w < wait_ms ? (w > 0 ? w : 0) : wait_ms;
    }
    if (todo != NULL) {
      pthread_mutex_unlock(k->lock);
      while (todo != NULL) {
        omniq_job_t *j = todo;
        todo = j->knext;
        if (j->keeper_action == ACT_TIMEOUT)
          keeper_timeout(k, j);
        else
          keeper_extend(k, j);
        omniq__job_unref(j);
      }
      pthread_mutex_lock(k->lock);
      continue;
    }
    /* Published under the lock the wait releases, so a run that starts
     * while the keeper sleeps reads the time it will wake. */
    k->wake_ms = wait_ms < 0 ? INT64_MAX : omniq__pool_ms() + wait_ms;
    omniq__pool_clock_wait(k->cond, k->lock, k->wake_ms);
  }
  pthread_mutex_unlock(k->lock);
}
