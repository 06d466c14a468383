/* Process isolation: one forked child per run, its report back over a
 * pipe, the child killed when the run is cancelled (deadline, lost claim,
 * stop). */
#ifndef OMNIQ_WORKER_ISOLATE_H
#define OMNIQ_WORKER_ISOLATE_H

#include "worker/job.h"

/* How often (ms) a waiting parent looks at the job's cancelled flag and at
 * a child that closed its pipes. */
#define OMNIQ__ISOLATE_TICK_MS 50

/* Runs fn(job, userdata) in a forked child (no exec) and records on job
 * what happened as if the handler had run here: the value it returned, its
 * omniq_job_fail() or error code, or a crash when the child died or exited
 * without reporting (message names the signal or exit status; traceback is
 * the tail of its stderr), or that it could not be started. Returns
 * OMNIQ_OK when the child ended on its own, OMNIQ_ECLOSED when it was
 * killed because the job was cancelled (whoever cancelled it owns the run).
 * Blocks until the child is reaped. */
int omniq__isolate_run(omniq_job_t *job, omniq_handler_fn fn, void *userdata);

#endif
