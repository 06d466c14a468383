/* SPDX-License-Identifier: MIT */
/* The engine's wrappers over the storage table. Core code calls these,
 * never oq->ops itself, so a backend's message always becomes the handle's
 * errmsg. The registry checked the table when it was registered, so every
 * operation is present. */
#ifndef OMNIQ_CORE_STORE_H
#define OMNIQ_CORE_STORE_H

#include "core/handle.h"

/* Opens oq->ops on oq->settings into oq->backend. */
int omniq__store_open(omniq_t *oq);
void omniq__store_close(omniq_t *oq);
int omniq__store_enqueue(omniq_t *oq, omniq_task_t *const *tasks, size_t n);
int omniq__store_claim(omniq_t *oq, const omniq_claim_req_t *req, omniq_task_t ***out,
                       size_t *n);
int omniq__store_finish(omniq_t *oq, const omniq_decision_t *d);
/* finish(d), with claim(req) in the same step where the backend can
 * (ABI 5 finish_claim); *claimed says whether the claim was made. Else
 * the finish alone, *claimed 0. */
/* Whether the backend makes a claim in a finish's step (ABI 5). */
int omniq__store_rides_claims(const omniq_t *oq);
int omniq__store_finish_claim(omniq_t *oq, const omniq_decision_t *d, const omniq_claim_req_t *req,
                              omniq_task_t ***out, size_t *n, int *claimed);
/* Whether the backend applies many outcomes (and a claim) in one step
 * (ABI 6 finish_many), and gives back a claimed task that never started
 * (ABI 6 release). */
int omniq__store_batches(const omniq_t *oq);
int omniq__store_releases(const omniq_t *oq);
/* ABI 6 finish_many; rcs[i] gets each decision's code. Without it, each
 * decision is finished alone and *claimed is 0. */
int omniq__store_finish_many(omniq_t *oq, const omniq_decision_t *ds, size_t n, int *rcs,
                             const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                             int *claimed);
/* ABI 6 release; OMNIQ_ENOTSUP without it. */
int omniq__store_release(omniq_t *oq, const char *id, int64_t token);
int omniq__store_extend_lease(omniq_t *oq, const char *id, int64_t token, int64_t lease_until);
int omniq__store_cancel(omniq_t *oq, const char *id, int64_t finished_at, int *prev_status);
int omniq__store_get_task(omniq_t *oq, const char *id, omniq_task_t **out);
int omniq__store_get_result(omniq_t *oq, const char *id, omniq_result_t **out);
int omniq__store_purge_results(omniq_t *oq, int64_t older_than, int64_t *count);
int omniq__store_count_by_status(omniq_t *oq, int64_t counts[OMNIQ_STATUS_COUNT]);
int omniq__store_expired_leases(omniq_t *oq, int64_t now, size_t max, omniq_task_t ***out,
                                size_t *n);

/* ABI 3. Each returns OMNIQ_ENOTSUP, naming `what` the caller wanted done,
 * when the backend's table is written for ABI 2. */
int omniq__store_supports(omniq_t *oq, const char *what);
int omniq__store_enqueue_unique(omniq_t *oq, omniq_task_t *const *tasks, size_t n,
                                char (*holders)[OMNIQ_ID_SIZE]);
int omniq__store_list(omniq_t *oq, const omniq_list_req_t *req, omniq_task_t ***out, size_t *n);
int omniq__store_retry(omniq_t *oq, const char *id, int64_t eta, int64_t now, int *prev_status,
                       char holder[OMNIQ_ID_SIZE]);
int omniq__store_delete(omniq_t *oq, const char *id, int *prev_status);
int omniq__store_purge_tasks(omniq_t *oq, int64_t before, size_t max, int64_t *count);
int omniq__store_set_paused(omniq_t *oq, const char *queue, int paused);
int omniq__store_set_rate(omniq_t *oq, const char *queue, int64_t limit, int64_t period_ms);
int omniq__store_queue_stats(omniq_t *oq, const char *queue, int64_t now, omniq_queue_info_t **out,
                             size_t *n);
int omniq__store_claim_chore(omniq_t *oq, const char *chore, int64_t now, int64_t next, int *won);

/* ABI 4. The store's wake file into path; OMNIQ_ENOTSUP (no errmsg set)
 * when the backend names none. */
int omniq__store_wake_path(omniq_t *oq, char *path, size_t len);

#endif
