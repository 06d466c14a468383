/* Queue engine: the single owner of lifecycle policy (defaults, the retry
 * predicate, backoff, interval re-arming, cancellation, lost-lease
 * recovery). Workers and the façade call it; it calls storage. */
#ifndef OMNIQ_QUEUE_H
#define OMNIQ_QUEUE_H

#include "core/handle.h"

/* How a run ended, as a worker saw it. */
typedef struct omniq__run {
  int ok;                 /* 1 = success */
  const char *value;      /* success: JSON text or NULL (= null) */
  const char *error_type; /* failure: e.g. "Error", "TimeoutError", "Crash" */
  const char *message;
  const char *traceback;  /* may be NULL */
  int retryable;
} omniq__run_t;

/* Validates, fills defaults, stores n tasks in one transaction. */
int omniq__queue_enqueue(omniq_t *oq, const omniq_enqueue_item_t *items, size_t n,
                         char (*ids_out)[OMNIQ_ID_SIZE]);
/* Recovers lost leases when due, then claims up to max due tasks from the
 * queues (NULL/0 = "default"). *out yours: omniq__tasks_free(*out, *n). */
int omniq__queue_claim(omniq_t *oq, const char *const *queues, size_t nqueues, size_t max,
                       omniq_task_t ***out, size_t *n);
/* Records the end of the run `task` was claimed for: success (result, or
 * interval re-arm), retry with backoff, or final failure. OMNIQ_ESTATE if the
 * claim is no longer valid (cancelled, timed out, lease lost): nothing
 * changed. */
int omniq__queue_finish(omniq_t *oq, const omniq_task_t *task, const omniq__run_t *run);
/* Extends the lease of a run; OMNIQ_ESTATE if the claim is no longer valid. */
int omniq__queue_extend(omniq_t *oq, const omniq_task_t *task);
int omniq__queue_cancel(omniq_t *oq, const char *id);
/* Records every RUNNING task whose lease expired as a lost run
 * ("WorkerLost"). Called by claim at most once per second of store time;
 * *recovered (may be NULL) counts them. */
int omniq__queue_reap(omniq_t *oq, int *recovered);

/* The retry delay after a failed run that was attempt number `attempts`:
 * min(base * 2^(attempts-1), cap) * (0.75 + 0.5 * u), u in [0, 1). */
int64_t omniq__queue_backoff_ms(int64_t base_ms, int64_t cap_ms, int attempts, double u);

#endif
