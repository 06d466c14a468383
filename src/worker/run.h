/* SPDX-License-Identifier: MIT */
/* Running one claimed task (run.c), for the pool's runners. */
#ifndef OMNIQ_WORKER_RUN_H
#define OMNIQ_WORKER_RUN_H

#include "worker/pool_state.h"

/* Runs job, a task a runner took from `ready` (on the in-flight list since
 * its claim), in slot `slot`, reports how the run ended and counts it, or
 * holds its outcome in the pool's batch; drops the runner's reference to
 * job. Takes p->lock, never across the handler or a storage call. */
void omniq__run_task(omniq_worker_t *p, int slot, omniq_job_t *job);

#endif
