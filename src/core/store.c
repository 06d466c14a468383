/* The engine's wrappers over the storage table.
 *
 * Each wrapper gives the backend an error buffer and turns a failure into
 * the handle's errmsg: the backend's own text, or the code's description
 * when the backend wrote none. Out-parameters are cleared first, so a
 * caller never sees what a failed backend left in them. */
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
