/* SPDX-License-Identifier: MIT */
/* Running one claimed task: the checks before it starts, its deadline, the
 * handler called in the runner's thread or in its slot's child, and the
 * report of how the run ended. A runner (pool.c) takes a job from `ready`
 * and hands it here; the job is on the pool's in-flight list from its
 * claim until its run is counted.
 *
 * A handler that overran its timeout keeps its slot until it actually
 * returns: a thread cannot be killed. In process isolation a slot whose
 * zygote has exited moves to the next zygote before the run (renew_slot);
 * the keeper thread forks it (pool.c).
 *
 * Locks: as in pool.c; pool->lock is never held across a storage call or a
 * handler.
 */
#include "worker/run.h"

#include "base/clock.h"
#include "base/error.h"
#include "core/handlers.h"
#include "worker/batch.h"
#include "worker/claim.h"
#include "worker/isolate.h"
#include "worker/job.h"
#include "worker/keeper.h"

typedef struct omniq_worker pool_t;

/* Takes job off the in-flight list. p->lock held. */
void omniq__pool_unlink(pool_t *p, omniq_job_t *job) {
  if (job->prev != NULL) job->prev->next = job->next;
  else p->inflight = job->next;
  if (job->next != NULL) job->next->prev = job->prev;
  job->next = job->prev = NULL;
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
 * that a cancel ended while it waited never starts, nor one whose lease
 * has less than an extension period left: the keeper extends every lease
 * each extend_ms, so such a lease has missed an extension (the store
 * unreachable, the call hanging on a dead link) and is running out, or has:
 * another worker may claim the task any moment. This pool counts a lease
 * from a moment read before the call that claimed it (omniq__ready_put),
 * never later than the store's own start, however late the claim came
 * back: so a start with extend_ms left here has at least that much of the
 * store's lease left (less only the error of mapping this host's clock
 * onto the store's), and cannot overlap another worker's run. The task is
 * given back, or left to be recovered (omniq__not_started). */
void omniq__run_task(pool_t *p, int slot, omniq_job_t *job) {
  omniq_t *oq = p->oq;
  omniq_task_t *task = job->task;
  int rc = OMNIQ_OK;
  if (atomic_load(&job->mono_lease_until_ms) - omniq__pool_ms() < p->extend_ms &&
      omniq__job_end(job)) {
    omniq__job_cancel(job);
    omniq__not_started(p, job);
  }
  if (omniq__job_ended(job)) {
    omniq__job_returned(job);
    pthread_mutex_lock(&p->lock);
    omniq__pool_unlink(p, job);
    pthread_mutex_unlock(&p->lock);
    omniq__job_unref(job);
    return;
  }
  int64_t now = omniq__pool_ms(), store_start = omniq__now(&oq->settings);
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
    int64_t us = omniq__pool_clock_us();
    int handler_rc = call_handler(p, slot, job);
    us = omniq__pool_clock_us() - us;
    int64_t took = omniq__now(&oq->settings) - store_start;
    pthread_mutex_lock(&p->lock);
    p->short_runs = took > SHORT_RUN_MS        ? 0
                    : p->short_runs < AHEAD_MAX ? p->short_runs + 1
                                                : AHEAD_MAX;
    p->hold_runs = omniq__hold_count(p->hold_runs, us);
    pthread_mutex_unlock(&p->lock);
    if (p->batch) {
      if (omniq__batch_hold(p, job, handler_rc, &rc)) return; /* counted when its batch commits */
    } else {
      omniq__ride_t ride;
      omniq__ride_begin(p, &ride, 0, slot);
      rc = omniq__report(p, job, handler_rc, &ride);
    }
  }

  pthread_mutex_lock(&p->lock);
  omniq__pool_count_run(p, job, rc);
  pthread_mutex_unlock(&p->lock);
  omniq__job_unref(job);
}
