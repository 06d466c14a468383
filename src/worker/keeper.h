/* SPDX-License-Identifier: MIT */
/* The keeper: one thread per pool that extends the leases of running tasks
 * and enforces their deadlines. It shares the pool's lock, condition
 * variable and in-flight list; the pool owns all three. */
#ifndef OMNIQ_WORKER_KEEPER_H
#define OMNIQ_WORKER_KEEPER_H

#include "worker/job.h"

/* How often (pool ms) the keeper looks at the store's clock while some run
 * has a deadline: the clock may jump (an injectable clock) without telling
 * it. */
#define OMNIQ__KEEPER_TICK_MS 50

typedef struct omniq__keeper {
  omniq_t *oq;
  pthread_mutex_t *lock;       /* guards *inflight, stop, the jobs' bookkeeping */
  pthread_cond_t *cond;        /* monotonic; broadcast when stop is set, or when a run
                                * starts that omniq__keeper_must_wake says needs it */
  omniq_job_t *const *inflight; /* head of the in-flight list */
  int64_t extend_ms;           /* lease/3 */
  int stop;                    /* set under *lock to end omniq__keeper_run */
  int errand;                  /* set under *lock (and cond broadcast) to make
                                * omniq__keeper_run return: the pool needs this
                                * thread for a moment; it clears the flag */
  int64_t wake_ms; /* under *lock: when the keeper next looks (pool ms); INT64_MAX =
                    * not until woken; INT64_MIN = awake, it scans before it sleeps */
  omniq__unstored_t unstored; /* under *lock: timeouts whose report the store refused */
  /* The pool's timers (its batch of outcomes, its look at held runs):
   * under *lock, flush_at is when (pool ms) the keeper calls
   * flush(flush_arg) without the lock; 0 = none. Whoever sets it earlier
   * than wake_ms broadcasts cond. */
  int64_t flush_at;
  void (*flush)(void *arg);
  void *flush_arg;
} omniq__keeper_t;

/* Whether a run that has just joined the in-flight list needs the keeper
 * sooner than it plans to look; if so the caller broadcasts k->cond. Call
 * with *k->lock held, after linking the job, with the job's pool times set;
 * now_ms by omniq__pool_ms. */
int omniq__keeper_must_wake(const omniq__keeper_t *k, const omniq_job_t *job, int64_t now_ms);

/* The keeper's loop; returns once stop or errand is set. Run it on its own
 * thread. */
void omniq__keeper_run(omniq__keeper_t *k);

#endif
