/* SPDX-License-Identifier: MIT */
/* A worker pool's state, shared by the modules that make up the pool:
 * pool.c (runner threads, leader/followers, start and stop), run.c
 * (running one claimed task), setup.c (options, building and freeing a
 * pool), claim.c (the ready ring, claiming ahead, rides, giving back) and
 * batch.c (reports, alone or in batches). Nothing outside src/worker/ includes it: the façade and the
 * engine see only worker/pool.h.
 *
 * Locks: pool->lock guards the pool's counters, flags and in-flight list;
 * it is never held across a storage call or a handler. Order: pool->lock
 * before a job's lock; oq->lock is taken alone, except that
 * omniq__pool_cancelled takes each pool's lock under it. Each function
 * that needs pool->lock held says so.
 */
#ifndef OMNIQ_WORKER_POOL_STATE_H
#define OMNIQ_WORKER_POOL_STATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/clock.h"
#include "core/handle.h"
#include "worker/isolate.h"
#include "worker/job.h"
#include "worker/keeper.h"
#include "worker/zygote.h"

#define MAX_CONCURRENCY 1024
/* Claiming ahead: a claim takes tasks beyond the free slots only while
 * runs are short (a handler that takes no longer than SHORT_RUN_MS, store
 * clock, adds one to the allowance, a longer one resets it to 0), and no
 * more than this many in all: what one claim takes fits one batch of
 * reports (BATCH_MAX, batch.h). */
#define AHEAD_MAX 64
#define SHORT_RUN_MS 5
/* Holding: a runner that claims while runs are very short keeps what it
 * claimed and runs it all itself, waking no other runner (claim.c). "Very
 * short": the last HOLD_AFTER runs each took no longer than HOLD_RUN_US by
 * the pool's clock (omniq__pool_clock_us). docs/workers.md says why 10.
 * One longer run after HOLD_CREDIT short ones in a row does not end a
 * hold: on a busy machine that is a runner descheduled in mid-run, not
 * runs turning long (omniq__hold_count). */
#define HOLD_RUN_US 10
#define HOLD_AFTER 4
#define HOLD_CREDIT (2 * HOLD_AFTER)
/* While runners hold, the keeper looks this often for a held run that has
 * lasted past HOLD_RUN_US, and shares what that runner holds: a run that
 * turns out long (a handler that blocks) delays the tasks held behind it
 * by this much at most. As BATCH_DELAY_MS, the bound on an outcome's wait.
 * The keeper, not the leader: it wakes on that schedule anyway while a
 * batch of outcomes waits (batch.c), where a leader woken for it was one
 * more thread waking 200 times a second beside the holder, which a pool of
 * one runner does not have. */
#define HOLD_LOOK_MS 5

/* An outcome waiting in the pool's batch (batch.c). */
typedef struct omniq__outcome omniq__outcome_t;

typedef struct omniq__runner {
  pthread_t tid;
  int exited;
  struct omniq_worker *pool;
} omniq__runner_t;

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
  int hold_runs;  /* runs in a row no longer than HOLD_RUN_US, up to HOLD_CREDIT
                   * (omniq__hold_count) */
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
  long not_run;  /* claimed tasks not started and not given back: left to lease recovery */
  omniq__unstored_t unstored; /* of those, runs whose outcome the store refused */

  pthread_mutex_t lock;
  pthread_cond_t cond;      /* started/alive changed, stop; the keeper's wake-up */
  pthread_cond_t idle_cond; /* followers wait here for leadership */
  omniq__clock_watch_t clock_watch; /* lock and cond: woken when a test moves a clock */
  int refs;                 /* the owner's, and one per runner thread */
  int started, alive;       /* runner threads started, and not yet exited */
  int go; /* runners wait for it, so "worker.started" is logged first */
  int stopping, drained, has_leader, abandon;
  omniq_job_t *inflight;
  omniq_job_t **ready; /* claimed, not started, for idle runners to take; each is
                        * also on the in-flight list (its lease is kept) */
  int ready_head, nready, ready_cap; /* a ring, in claim order; ready_cap: concurrency,
                                      * + AHEAD_MAX with ahead_ok */
  omniq__outcome_t *pending, **pending_tail; /* the batch: outcomes not yet committed */
  int npending;
  int riding; /* runners committing a batch that a claim rides on */
  int busy; /* runners running a task, or holding (from the hold's start to its end) */
  /* Holding (claim.c). holds[slot]: the tasks on `ready` held for that
   * slot's runner (each such job's `holder` is slot + 1), and whether it
   * holds. Only a holder takes its held tasks; the other runners take the
   * rest (`nready - nheld`). */
  struct omniq__hold {
    int n, on;
    int64_t since; /* the pool clock (us) when its current run started, 0 between runs */
  } *holds;
  int nheld;    /* tasks on `ready` held for some runner */
  int nholders; /* runners holding */
  int hold_riders; /* runners whose report rides a claim they will hold (claim.c) */
  int asking;   /* tasks asked for by claims under way that count free slots
                 * (a leader's, or a ride's made to hold): the others' claims
                 * leave room on `ready` for them */
  uint64_t hold_gen; /* the work wake-up generation read before the latest held claim:
                      * the leader claims while runners hold only once it moves */
  int hold_waiting;  /* the leader waits for new work because runners hold */
  int poll_waiting;  /* the leader waits for work or its poll: runners hold nothing,
                      * or nothing did when its claim found nothing */
  /* The pool's timers, kept by the keeper (its flush_at is the earlier of
   * the two; 0 = none), monotonic ms: when the batch's first outcome has
   * waited BATCH_DELAY_MS, and the next look for held runs that last. */
  int64_t batch_due_ms, look_due_ms;

  omniq__runner_t *runners;
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

/* Sets the keeper's timer for the pool to the earlier of the batch's
 * commit and the next look at holds. Returns 1 if that is sooner than the
 * keeper plans to wake: the caller then broadcasts p->cond. p->lock held. */
static inline int omniq__timers_arm(struct omniq_worker *p) {
  int64_t a = p->batch_due_ms, b = p->look_due_ms;
  p->keeper.flush_at = a == 0 || (b != 0 && b < a) ? b : a;
  return p->keeper.flush_at != 0 && p->keeper.flush_at < p->keeper.wake_ms;
}

/* Whether the leader sleeps on the work wake-up, for any reason: tasks
 * put on `ready` for every runner then bump it (omniq__wake), as followers
 * are woken by idle_cond. p->lock held. */
static inline int omniq__leader_sleeps(const struct omniq_worker *p) {
  return p->hold_waiting || p->poll_waiting;
}

/* Takes job off the in-flight list. p->lock held. */
void omniq__pool_unlink(omniq_worker_t *p, omniq_job_t *job);

#endif
