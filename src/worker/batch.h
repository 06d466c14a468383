/* SPDX-License-Identifier: MIT */
/* How a pool's runs are reported to the store: one at a time, a claim
 * riding on each, or in batches committed with the next claim; retried
 * while each lease holds (batch.c). */
#ifndef OMNIQ_WORKER_BATCH_H
#define OMNIQ_WORKER_BATCH_H

#include "worker/claim.h"
#include "worker/pool_state.h"

/* Batched reports: at most this many outcomes wait for one commit. */
#define BATCH_MAX 64

/* Reports how the run ended, with the claim `ride` began (room 0: none),
 * unless someone ended the run first. Returns OMNIQ_OK when the outcome is
 * stored or rightly dropped, else the store's code (the run is not done).
 * Ends the ride. No lock held. */
int omniq__report(omniq_worker_t *p, omniq_job_t *job, int handler_rc, omniq__ride_t *ride);

/* Puts a run's outcome on the batch: 1 if it did (it is counted when the
 * batch commits), else 0 with *rc what to count. No lock held. */
int omniq__batch_hold(omniq_worker_t *p, omniq_job_t *job, int handler_rc, int *rc);

/* Takes the whole batch to commit it. p->lock held. */
omniq__outcome_t *omniq__batch_take(omniq_worker_t *p);

/* Commits a batch from omniq__batch_take (a claim riding on it for the
 * runner of slot; -1: none), retries, ends and counts each run, frees the
 * list. No lock held. */
void omniq__batch_flush(omniq_worker_t *p, omniq__outcome_t *list, int slot);

/* The pool's timers, which the keeper runs (omniq__keeper_t.flush) at the
 * time omniq__timers_arm set: commits the batch once it has waited its
 * delay, and looks for held runs that last (omniq__hold_look). arg is the
 * pool. No lock held. */
void omniq__batch_timers(void *arg);

/* A run's end: its job leaves the in-flight list and the run is counted
 * (as unstored if rc says its report failed). p->lock held. Returns rc. */
int omniq__pool_count_run(omniq_worker_t *p, omniq_job_t *job, int rc);

#endif
