/* SPDX-License-Identifier: MIT */
/* The engine: the one owner of lifecycle policy (defaults, the default
 * queue and the queue-name rule, failure classification through
 * core/report.h, the retry predicate, backoff, interval re-arming,
 * cancellation, lost-lease recovery, result retention). The façade and the
 * workers call it; it calls storage through core/store.h. */
#ifndef OMNIQ_CORE_ENGINE_H
#define OMNIQ_CORE_ENGINE_H

#include "core/handle.h"
#include "core/report.h"

/* Validates, fills defaults, stores n tasks in one transaction. */
int omniq__engine_enqueue(omniq_t *oq, const omniq_enqueue_item_t *items, size_t n,
                          char (*ids_out)[OMNIQ_ID_SIZE]);

/* The queues a worker listens to: copies of the names in `names` (up to
 * OMNIQ_MAX_QUEUES, NULL-terminated), or the default queue when there are
 * none. OMNIQ_EINVAL (message names fn) for an empty name, OMNIQ_ENOMEM.
 * On OMNIQ_OK out[0..*n) are yours: free each with omniq__free. */
int omniq__engine_listen_queues(omniq_t *oq, const char *fn, const char *const *names,
                                char *out[OMNIQ_MAX_QUEUES], size_t *n);
/* Recovers lost leases when due, then claims up to max due tasks from the
 * queues (nqueues 0 = the default queue). *out yours:
 * omniq__tasks_free(*out, *n). */
int omniq__engine_claim(omniq_t *oq, const char *const *queues, size_t nqueues, size_t max,
                        omniq_task_t ***out, size_t *n);
/* Records the end of the run `task` was claimed for, as a worker reported
 * it: success (result, or interval re-arm), retry with backoff, or final
 * failure. OMNIQ_ESTATE if the claim is no longer valid (cancelled, timed
 * out, lease lost): nothing changed. */
int omniq__engine_finish(omniq_t *oq, const omniq_task_t *task, const omniq__run_report_t *r);
/* omniq__engine_finish, and in the same storage step (where the backend
 * can) the claim omniq__engine_claim would make next: a worker reporting a
 * run and taking up to max next tasks with one commit. *claimed = 1 when
 * the claim was made (*out, *n as omniq__engine_claim gives them; *n may
 * be 0: nothing was due), else 0 with nothing claimed: claim as usual. */
int omniq__engine_finish_claim(omniq_t *oq, const omniq_task_t *task, const omniq__run_report_t *r,
                               const char *const *queues, size_t nqueues, size_t max,
                               omniq_task_t ***out, size_t *n, int *claimed);
/* The ends of n runs (tasks[i] reported as rs[i]) in one storage step where
 * the backend can (ABI 6 finish_many; else one finish each), and with max >
 * 0 the claim omniq__engine_claim would make next, in that step, as
 * omniq__engine_finish_claim does (*claimed says whether it was made).
 * rcs[i] gets what omniq__engine_finish would have returned for run i.
 * Returns OMNIQ_OK, or a code that every rcs[i] then repeats. */
int omniq__engine_finish_many(omniq_t *oq, omniq_task_t *const *tasks,
                              const omniq__run_report_t *const *rs, size_t n, int *rcs,
                              const char *const *queues, size_t nqueues, size_t max,
                              omniq_task_t ***out, size_t *nout, int *claimed);
/* Gives a claimed task that never started back to the store (ABI 6
 * release): PENDING again, its attempt undone. OMNIQ_ENOTSUP without it. */
int omniq__engine_release(omniq_t *oq, const omniq_task_t *task);
/* Extends the lease of a run; OMNIQ_ESTATE if the claim is no longer valid. */
int omniq__engine_extend(omniq_t *oq, const omniq_task_t *task);
/* PENDING or RUNNING -> CANCELLED with its result; OMNIQ_ESTATE if the task
 * is terminal, OMNIQ_ENOTFOUND if unknown. */
int omniq__engine_cancel(omniq_t *oq, const char *id);
/* Records every RUNNING task whose lease expired as a lost run
 * ("WorkerLost"). Called by claim at most once per second of store time;
 * *recovered (may be NULL) counts them. */
int omniq__engine_reap(omniq_t *oq, int *recovered);
/* Deletes results finished before older_than_ms; *count gets how many. */
int omniq__engine_purge(omniq_t *oq, int64_t older_than_ms, int64_t *count);
/* The same with the cutoff the settings' result_ttl gives: now - ttl. */
int omniq__engine_purge_expired(omniq_t *oq, int64_t *count);

/* OMNIQ_OK for a valid queue name; else OMNIQ_EINVAL with a message that
 * starts with what. */
int omniq__engine_check_queue(omniq_t *oq, const char *what, const char *queue);

/* Retry by hand (FAILED or CANCELLED -> PENDING, fresh budget, due at eta_ms
 * or now when 0) and delete of a terminal task; see omniq_retry and
 * omniq_delete for the errors. */
int omniq__engine_retry(omniq_t *oq, const char *id, int64_t eta_ms);
int omniq__engine_delete(omniq_t *oq, const char *id);
/* Deletes terminal tasks that finished before before_ms, with their
 * results, in batches; *count gets how many. */
int omniq__engine_purge_tasks(omniq_t *oq, int64_t before_ms, int64_t *count);
/* The same with the cutoff task_ttl gives (nothing when task_ttl is 0).
 * Claims also run it, at most once a minute per store (one process). */
int omniq__engine_purge_expired_tasks(omniq_t *oq, int64_t *count);

/* The retry delay after a failed run that was attempt number `attempts`:
 * min(base * 2^(attempts-1), cap) * (0.75 + 0.5 * u), u in [0, 1). */
int64_t omniq__engine_backoff_ms(int64_t base_ms, int64_t cap_ms, int attempts, double u);

#endif
