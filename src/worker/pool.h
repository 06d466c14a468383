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

/* Tells oq's started pools that task id was cancelled, so a handler running
 * it sees omniq_job_cancelled() now rather than at its next lease
 * extension: the keeper is woken to extend that lease at once, the
 * extension is refused, and the job is marked cancelled. Takes oq->lock,
 * then each pool's lock. */
void omniq__pool_cancelled(omniq_t *oq, const char *id);

#endif
