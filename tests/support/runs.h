/* SPDX-License-Identifier: MIT */
/* Acting as a worker through the engine's own calls, for the tests of
 * lifecycle policy: claim a task, end its run as a worker would report it,
 * look at a task. Time is the store's manual clock. Uses the internals. */
#ifndef OMNIQ_TEST_RUNS_H
#define OMNIQ_TEST_RUNS_H

#include "core/report.h"
#include "support/helpers.h"

/* Enqueues "work" with opts (NULL = defaults); the id goes to id. */
void th_enqueue(th_store_t *st, const omniq_enqueue_opts_t *opts, char id[OMNIQ_ID_SIZE]);
/* Claims at most one task of queue (NULL = the default queue) at the
 * clock's now; NULL when nothing is due. Yours: omniq_task_free. */
omniq_task_t *th_claim(th_store_t *st, const char *queue);
/* Ends the run t was claimed for as a worker reporting `kind`: OK (value
 * "1"), HANDLER_FAILED (a retryable "ValueError"), or any other kind with
 * a message. Returns omniq__engine_finish's code. */
int th_end(th_store_t *st, const omniq_task_t *t, omniq__run_kind_t kind);
/* The task's status, and the task itself (yours). */
int th_status(th_store_t *st, const char *id);
omniq_task_t *th_task(th_store_t *st, const char *id);

#endif
