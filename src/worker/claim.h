/* SPDX-License-Identifier: MIT */
/* A pool's claimed tasks before they run: the ready ring, the claim-ahead
 * allowance, claims riding with reports, giving back at a stop (claim.c). */
#ifndef OMNIQ_WORKER_CLAIM_H
#define OMNIQ_WORKER_CLAIM_H

#include "worker/pool_state.h"

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
typedef struct omniq__ride {
  size_t room;         /* tasks asked for; 0 = no ride */
  int led;             /* the rider took the lead */
  int ahead;           /* it asked as a leader does (led, or to hold): counted in `asking` */
  int to_hold;         /* asked to hold, not leading: counted in hold_riders */
  int slot;            /* the rider's slot, which holds what it claims (runs short) */
  uint64_t gen;        /* the work wake-up generation read before the claim */
  omniq_task_t **tasks;
  size_t n;
  int claimed;         /* the claim was made (n may be 0: nothing due) */
  int64_t asked_ms;    /* pool clock (ms) read before the report's storage call:
                        * the store's leases of what it claims begin later */
} omniq__ride_t;

/* May the pool claim at all now (not stopping, not drained, under the
 * limit, no refused outcome in drain mode)? p->lock held. */
int omniq__may_claim(const omniq_worker_t *p);

/* How many tasks a claim may ask for now; `freeing` busy slots count as
 * free. p->lock held. */
size_t omniq__claim_room(const omniq_worker_t *p, int freeing);

/* Jobs for claimed tasks: takes tasks (an array of *n), returns the jobs
 * (*n of them, NULL when 0) for omniq__ready_put. No lock held. */
omniq_job_t **omniq__claim_wrap(omniq_worker_t *p, omniq_task_t **tasks, size_t *n);

/* Puts jobs on `ready` and on the in-flight list; takes jobs. asked_ms is
 * the pool clock read before the storage call that claimed them
 * (before the engine read the claim's "now"): their leases are counted
 * from it, so this pool's count of a lease never ends after the store's.
 * slot is the claimer's (-1: none); while runs are very short it holds
 * them (returns 1): no other runner takes them. gen: the work wake-up
 * generation read before the claim. p->lock held. */
int omniq__ready_put(omniq_worker_t *p, omniq_job_t **jobs, size_t n, int64_t asked_ms, int slot,
                     uint64_t gen);

/* Takes the first job on `ready` that slot's runner may run: its held
 * ones while it holds, else one nobody holds; slot -1 takes any. NULL if
 * none. p->lock held, or no other thread. */
omniq_job_t *omniq__ready_take(omniq_worker_t *p, int slot);

/* How many jobs on `ready` slot's runner may take now. p->lock held. */
int omniq__ready_for(const omniq_worker_t *p, int slot);

/* The count of short runs (pool->hold_runs) after a run of `us`
 * microseconds by the pool clock: one more if it took no longer than
 * HOLD_RUN_US (up to HOLD_CREDIT), else HOLD_AFTER if it came after
 * HOLD_CREDIT short ones in a row (holding goes on), else 0. */
int omniq__hold_count(int runs, int64_t us);

/* Are runs short enough to hold what a claim brings? p->lock held. */
int omniq__hold_short(const omniq_worker_t *p);

/* What slot's runner holds goes to every runner; its hold ends when it
 * next looks (omniq__hold_end). Returns how many tasks. p->lock held. */
int omniq__hold_share(omniq_worker_t *p, int slot);

/* Ends slot's hold: what it still holds goes to every runner. Returns 1
 * when it shared tasks while a leader waits for work: the leader must be
 * woken (omniq__wake) to run them. p->lock held. */
int omniq__hold_end(omniq_worker_t *p, int slot);

/* Shares what runners hold whose current run has lasted past HOLD_RUN_US
 * by the pool clock. Returns 1 if it shared any. p->lock held. */
int omniq__hold_share_stalled(omniq_worker_t *p);

/* The keeper's look for held runs that last (every HOLD_LOOK_MS while
 * anyone holds): shares them, and sets when it looks next (look_due_ms; 0
 * once no one holds). Returns 1 when it shared while the leader sleeps
 * (for new work or its poll), or found holding over while the leader
 * waits for new work because runners held: the caller wakes it
 * (omniq__wake) without the lock. p->lock held. */
int omniq__hold_look(omniq_worker_t *p, int64_t now_ms);

/* Gives back (ABI 6 release) or leaves to lease recovery a claimed task
 * whose lease ran short before it started; its job is ended. No lock
 * held. */
void omniq__not_started(omniq_worker_t *p, omniq_job_t *job);

/* Starts a ride for a report about to be made (ride->room 0: none; called
 * before the storage call that carries it, see asked_ms), and ends it:
 * what it claimed goes on `ready`, a lead it took is given up.
 * A report rides a claim when nothing is left on `ready`, or, with full
 * set (a full batch of outcomes), when no one else is claiming: its
 * claim then tops `ready` up instead of a commit of its own following.
 * omniq__ride_end is idempotent. No lock held. */
void omniq__ride_begin(omniq_worker_t *p, omniq__ride_t *ride, int full, int slot);
void omniq__ride_end(omniq_worker_t *p, omniq__ride_t *ride);

/* Gives every task on `ready` back to the store (ABI 6 release). No lock
 * held. */
void omniq__give_back(omniq_worker_t *p);

#endif
