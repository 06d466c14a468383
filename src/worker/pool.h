/* SPDX-License-Identifier: MIT */
/* Worker pool: threads that claim through the engine, run handlers and
 * report how each run ended. The façade calls only this. */
#ifndef OMNIQ_WORKER_POOL_H
#define OMNIQ_WORKER_POOL_H

#include "core/handle.h"

/* Stops every worker still started on oq, then waits until every worker
 * thread of oq has exited, including handlers that outlived a stop's
 * shutdown_timeout. Called by omniq_close. */
void omniq__pool_close_all(omniq_t *oq);

/* Tells oq's pools (started ones and omniq_worker_process drains) that
 * task id was cancelled in the store: a run of it is ended without a
 * report and its job marked cancelled before this returns, so the handler
 * sees omniq_job_cancelled() at once, whenever the next lease extension
 * would have come. Call only after the cancel committed. Takes oq->lock,
 * then each pool's lock, then the job's. */
void omniq__pool_cancelled(omniq_t *oq, const char *id);

#endif
