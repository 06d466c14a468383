/* Storage registry and the thin wrappers the core calls instead of the ops
 * table. Each wrapper turns a backend's message into the handle's errmsg. */
#ifndef OMNIQ_STORE_H
#define OMNIQ_STORE_H

#include "core.h"

/* Registers the built-in backends once (thread-safe). */
void omniq__store_builtin_init(void);

int omniq__store_open(omniq_t *oq);
void omniq__store_close(omniq_t *oq);
int omniq__store_enqueue(omniq_t *oq, omniq_task_t *const *tasks, size_t n);
int omniq__store_claim(omniq_t *oq, const omniq_claim_req_t *req, omniq_task_t ***out,
                       size_t *n);
int omniq__store_complete(omniq_t *oq, const omniq_outcome_t *o);
int omniq__store_fail(omniq_t *oq, const omniq_outcome_t *o);
int omniq__store_extend_lease(omniq_t *oq, const char *id, int64_t token, int64_t lease_until);
int omniq__store_cancel(omniq_t *oq, const char *id, const omniq_result_t *result);
int omniq__store_get_task(omniq_t *oq, const char *id, omniq_task_t **out);
int omniq__store_get_result(omniq_t *oq, const char *id, omniq_result_t **out);
int omniq__store_purge_results(omniq_t *oq, int64_t older_than, int64_t *count);
int omniq__store_count_by_status(omniq_t *oq, int64_t counts[OMNIQ_STATUS_COUNT]);
int omniq__store_expired_leases(omniq_t *oq, int64_t now, size_t max, omniq_task_t ***out,
                                size_t *n);

/* The built-in tables. */
extern const omniq_storage_ops_t omniq__sqlite_ops;
extern const omniq_storage_ops_t omniq__file_ops;
extern const omniq_storage_ops_t omniq__postgres_ops;

#endif
