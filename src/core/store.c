/* SPDX-License-Identifier: MIT */
/* The engine's wrappers over the storage table.
 *
 * Each wrapper gives the backend an error buffer and turns a failure into
 * the handle's errmsg: the backend's own text, or the code's description
 * when the backend wrote none. Out-parameters are cleared first, so a
 * caller never sees what a failed backend left in them.
 *
 * A table written for storage ABI 2 ends before the ABI 3 operations: the
 * registry accepted it without them, so each ABI 3 wrapper asks
 * omniq__store_supports first and never reads past the table's end. */
#include "core/store.h"

#include "base/error.h"

/* rc, with the backend's message (or the code's text) as oq's errmsg. */
static int said(omniq_t *oq, int rc, const char *err) {
  if (rc == OMNIQ_OK) return OMNIQ_OK;
  return omniq__err(oq->id, rc, "%s", err[0] != '\0' ? err : omniq_strerror(rc));
}

int omniq__store_open(omniq_t *oq) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = oq->ops->open(&oq->settings, &oq->backend, err, sizeof err);
  if (rc != OMNIQ_OK) oq->backend = NULL;
  return said(oq, rc, err);
}

void omniq__store_close(omniq_t *oq) {
  if (oq->backend != NULL) oq->ops->close(oq->backend);
  oq->backend = NULL;
}

int omniq__store_enqueue(omniq_t *oq, omniq_task_t *const *tasks, size_t n) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  return said(oq, oq->ops->enqueue(oq->backend, tasks, n, err, sizeof err), err);
}

int omniq__store_claim(omniq_t *oq, const omniq_claim_req_t *req, omniq_task_t ***out,
                       size_t *n) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  *out = NULL;
  *n = 0;
  return said(oq, oq->ops->claim(oq->backend, req, out, n, err, sizeof err), err);
}

int omniq__store_finish(omniq_t *oq, const omniq_decision_t *d) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  return said(oq, oq->ops->finish(oq->backend, d, err, sizeof err), err);
}

int omniq__store_rides_claims(const omniq_t *oq) {
  return oq->ops->abi_version >= 5 && oq->ops->finish_claim != NULL;
}

int omniq__store_finish_claim(omniq_t *oq, const omniq_decision_t *d, const omniq_claim_req_t *req,
                              omniq_task_t ***out, size_t *n, int *claimed) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  *out = NULL;
  *n = 0;
  *claimed = 0;
  if (!omniq__store_rides_claims(oq)) return omniq__store_finish(oq, d);
  return said(oq, oq->ops->finish_claim(oq->backend, d, req, out, n, claimed, err, sizeof err),
              err);
}

int omniq__store_batches(const omniq_t *oq) {
  return oq->ops->abi_version >= 6 && oq->ops->finish_many != NULL;
}

int omniq__store_releases(const omniq_t *oq) {
  return oq->ops->abi_version >= 6 && oq->ops->release != NULL;
}

int omniq__store_finish_many(omniq_t *oq, const omniq_decision_t *ds, size_t n, int *rcs,
                             const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                             int *claimed) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  *out = NULL;
  *nout = 0;
  *claimed = 0;
  if (!omniq__store_batches(oq)) {
    for (size_t i = 0; i < n; i++) rcs[i] = omniq__store_finish(oq, &ds[i]);
    return OMNIQ_OK;
  }
  int rc = oq->ops->finish_many(oq->backend, ds, n, rcs, req, out, nout, claimed, err,
                                sizeof err);
  for (size_t i = 0; i < n; i++) {
    if (rc != OMNIQ_OK) rcs[i] = rc;
    if (rcs[i] != OMNIQ_OK) { /* the handle's message: the first refusal's */
      said(oq, rcs[i], err);
      break;
    }
  }
  return rc;
}

int omniq__store_release(omniq_t *oq, const char *id, int64_t token) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  if (!omniq__store_releases(oq)) return OMNIQ_ENOTSUP;
  return said(oq, oq->ops->release(oq->backend, id, token, err, sizeof err), err);
}

int omniq__store_extend_lease(omniq_t *oq, const char *id, int64_t token, int64_t lease_until) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  return said(oq, oq->ops->extend_lease(oq->backend, id, token, lease_until, err, sizeof err),
              err);
}

int omniq__store_cancel(omniq_t *oq, const char *id, int64_t finished_at, int *prev_status) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  return said(oq, oq->ops->cancel(oq->backend, id, finished_at, prev_status, err, sizeof err),
              err);
}

int omniq__store_get_task(omniq_t *oq, const char *id, omniq_task_t **out) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  *out = NULL;
  return said(oq, oq->ops->get_task(oq->backend, id, out, err, sizeof err), err);
}

int omniq__store_get_result(omniq_t *oq, const char *id, omniq_result_t **out) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  *out = NULL;
  return said(oq, oq->ops->get_result(oq->backend, id, out, err, sizeof err), err);
}

int omniq__store_purge_results(omniq_t *oq, int64_t older_than, int64_t *count) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  *count = 0;
  return said(oq, oq->ops->purge_results(oq->backend, older_than, count, err, sizeof err), err);
}

int omniq__store_count_by_status(omniq_t *oq, int64_t counts[OMNIQ_STATUS_COUNT]) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  return said(oq, oq->ops->count_by_status(oq->backend, counts, err, sizeof err), err);
}

int omniq__store_expired_leases(omniq_t *oq, int64_t now, size_t max, omniq_task_t ***out,
                                size_t *n) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  *out = NULL;
  *n = 0;
  return said(oq, oq->ops->expired_leases(oq->backend, now, max, out, n, err, sizeof err), err);
}

/* ---- ABI 3 ------------------------------------------------------------------ */

int omniq__store_supports(omniq_t *oq, const char *what) {
  if (oq->ops->abi_version >= 3) return OMNIQ_OK;
  return omniq__err(oq->id, OMNIQ_ENOTSUP,
                    "%s: the %s backend is written for storage ABI %u, which cannot (ABI 3 can)",
                    what, oq->ops->name, (unsigned)oq->ops->abi_version);
}

int omniq__store_enqueue_unique(omniq_t *oq, omniq_task_t *const *tasks, size_t n,
                                char (*holders)[OMNIQ_ID_SIZE]) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = omniq__store_supports(oq, "unique tasks");
  if (rc != OMNIQ_OK) return rc;
  return said(oq, oq->ops->enqueue_unique(oq->backend, tasks, n, holders, err, sizeof err), err);
}

int omniq__store_list(omniq_t *oq, const omniq_list_req_t *req, omniq_task_t ***out, size_t *n) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = omniq__store_supports(oq, "listing tasks");
  *out = NULL;
  *n = 0;
  if (rc != OMNIQ_OK) return rc;
  return said(oq, oq->ops->list(oq->backend, req, out, n, err, sizeof err), err);
}

int omniq__store_retry(omniq_t *oq, const char *id, int64_t eta, int64_t now, int *prev_status,
                       char holder[OMNIQ_ID_SIZE]) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = omniq__store_supports(oq, "retry");
  if (rc != OMNIQ_OK) return rc;
  holder[0] = '\0';
  return said(oq, oq->ops->retry(oq->backend, id, eta, now, prev_status, holder, err, sizeof err),
              err);
}

int omniq__store_delete(omniq_t *oq, const char *id, int *prev_status) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = omniq__store_supports(oq, "delete");
  if (rc != OMNIQ_OK) return rc;
  return said(oq, oq->ops->delete_task(oq->backend, id, prev_status, err, sizeof err), err);
}

int omniq__store_purge_tasks(omniq_t *oq, int64_t before, size_t max, int64_t *count) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = omniq__store_supports(oq, "removing expired tasks");
  *count = 0;
  if (rc != OMNIQ_OK) return rc;
  return said(oq, oq->ops->purge_tasks(oq->backend, before, max, count, err, sizeof err), err);
}

int omniq__store_set_paused(omniq_t *oq, const char *queue, int paused) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = omniq__store_supports(oq, paused ? "pause" : "resume");
  if (rc != OMNIQ_OK) return rc;
  return said(oq, oq->ops->set_paused(oq->backend, queue, paused, err, sizeof err), err);
}

int omniq__store_set_rate(omniq_t *oq, const char *queue, int64_t limit, int64_t period_ms) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = omniq__store_supports(oq, "rate limits");
  if (rc != OMNIQ_OK) return rc;
  return said(oq, oq->ops->set_rate(oq->backend, queue, limit, period_ms, err, sizeof err), err);
}

int omniq__store_queue_stats(omniq_t *oq, const char *queue, int64_t now, omniq_queue_info_t **out,
                             size_t *n) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = omniq__store_supports(oq, "queue statistics");
  *out = NULL;
  *n = 0;
  if (rc != OMNIQ_OK) return rc;
  return said(oq, oq->ops->queue_stats(oq->backend, queue, now, out, n, err, sizeof err), err);
}

int omniq__store_claim_chore(omniq_t *oq, const char *chore, int64_t now, int64_t next, int *won) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = omniq__store_supports(oq, chore);
  *won = 0;
  if (rc != OMNIQ_OK) return rc;
  return said(oq, oq->ops->claim_chore(oq->backend, chore, now, next, won, err, sizeof err), err);
}

/* ---- ABI 4 ------------------------------------------------------------------ */

int omniq__store_wake_path(omniq_t *oq, char *path, size_t len) {
  if (oq->ops->abi_version < 4 || oq->ops->wake_path == NULL) return OMNIQ_ENOTSUP;
  path[0] = '\0';
  int rc = oq->ops->wake_path(oq->backend, path, len);
  return rc == OMNIQ_OK && path[0] != '\0' ? OMNIQ_OK : OMNIQ_ENOTSUP;
}
