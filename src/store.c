/* Storage registry and wrappers.
 *
 * Backends register by name; the built-ins once, on first use. The core
 * calls the wrappers below, never the table, so a backend's message always
 * becomes the handle's errmsg and a missing operation is an error, not a
 * crash. */
#include "store.h"

#include <pthread.h>
#include <string.h>

#include "error.h"

#define MAX_BACKENDS 16

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const omniq_storage_ops_t *registry[MAX_BACKENDS];
static size_t registry_len;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static const omniq_storage_ops_t *find_locked(const char *name) {
  for (size_t i = 0; i < registry_len; i++)
    if (strcmp(registry[i]->name, name) == 0) return registry[i];
  return NULL;
}

static int register_ops(const omniq_storage_ops_t *ops) {
  int rc = OMNIQ_OK;
  if (ops == NULL || ops->name == NULL || ops->name[0] == '\0' || ops->abi_version < 1 ||
      ops->open == NULL || ops->close == NULL)
    return OMNIQ_EINVAL;
  pthread_mutex_lock(&registry_lock);
  if (find_locked(ops->name) != NULL || registry_len == MAX_BACKENDS)
    rc = OMNIQ_EINVAL;
  else
    registry[registry_len++] = ops;
  pthread_mutex_unlock(&registry_lock);
  return rc;
}

static void register_builtins(void) {
  register_ops(&omniq__sqlite_ops);
  register_ops(&omniq__file_ops);
  register_ops(&omniq__postgres_ops);
}

void omniq__store_builtin_init(void) { pthread_once(&builtin_once, register_builtins); }

int omniq_storage_register(const omniq_storage_ops_t *ops) {
  omniq__store_builtin_init();
  int rc = register_ops(ops);
  if (rc != OMNIQ_OK)
    return omniq__err(0, rc, "storage backend %s: incomplete table or name already taken",
                      ops && ops->name ? ops->name : "(null)");
  return rc;
}

const omniq_storage_ops_t *omniq_storage_find(const char *name) {
  const omniq_storage_ops_t *ops;
  if (name == NULL) return NULL;
  omniq__store_builtin_init();
  pthread_mutex_lock(&registry_lock);
  ops = find_locked(name);
  pthread_mutex_unlock(&registry_lock);
  return ops;
}

/* ---- wrappers ------------------------------------------------------------ */

/* Runs one backend call with an error buffer and reports its message. */
#define CALL(oq, op, ...)                                                          \
  do {                                                                             \
    char err_[OMNIQ__ERRMSG_MAX] = "";                                             \
    int rc_;                                                                       \
    if ((oq)->ops->op == NULL)                                                     \
      return omniq__err((oq)->id, OMNIQ_ESTORAGE, "backend %s has no " #op,        \
                        (oq)->ops->name);                                          \
    rc_ = (oq)->ops->op((oq)->backend, __VA_ARGS__, err_, sizeof err_);            \
    if (rc_ != OMNIQ_OK)                                                           \
      return omniq__err((oq)->id, rc_, "%s", err_[0] ? err_ : omniq_strerror(rc_)); \
    return OMNIQ_OK;                                                               \
  } while (0)

int omniq__store_open(omniq_t *oq) {
  char err[OMNIQ__ERRMSG_MAX] = "";
  int rc = oq->ops->open(&oq->settings, &oq->backend, err, sizeof err);
  if (rc != OMNIQ_OK) {
    oq->backend = NULL;
    return omniq__err(oq->id, rc, "%s", err[0] ? err : omniq_strerror(rc));
  }
  return OMNIQ_OK;
}

void omniq__store_close(omniq_t *oq) {
  if (oq->backend != NULL) oq->ops->close(oq->backend);
  oq->backend = NULL;
}

int omniq__store_enqueue(omniq_t *oq, omniq_task_t *const *tasks, size_t n) {
  CALL(oq, enqueue, tasks, n);
}

int omniq__store_claim(omniq_t *oq, const omniq_claim_req_t *req, omniq_task_t ***out,
                       size_t *n) {
  *out = NULL;
  *n = 0;
  CALL(oq, claim, req, out, n);
}

int omniq__store_complete(omniq_t *oq, const omniq_outcome_t *o) { CALL(oq, complete, o); }

int omniq__store_fail(omniq_t *oq, const omniq_outcome_t *o) { CALL(oq, fail, o); }

int omniq__store_extend_lease(omniq_t *oq, const char *id, int64_t token, int64_t lease_until) {
  CALL(oq, extend_lease, id, token, lease_until);
}

int omniq__store_cancel(omniq_t *oq, const char *id, const omniq_result_t *result) {
  CALL(oq, cancel, id, result);
}

int omniq__store_get_task(omniq_t *oq, const char *id, omniq_task_t **out) {
  *out = NULL;
  CALL(oq, get_task, id, out);
}

int omniq__store_get_result(omniq_t *oq, const char *id, omniq_result_t **out) {
  *out = NULL;
  CALL(oq, get_result, id, out);
}

int omniq__store_purge_results(omniq_t *oq, int64_t older_than, int64_t *count) {
  CALL(oq, purge_results, older_than, count);
}

int omniq__store_count_by_status(omniq_t *oq, int64_t counts[OMNIQ_STATUS_COUNT]) {
  CALL(oq, count_by_status, counts);
}

int omniq__store_expired_leases(omniq_t *oq, int64_t now, size_t max, omniq_task_t ***out,
                                size_t *n) {
  *out = NULL;
  *n = 0;
  CALL(oq, expired_leases, now, max, out, n);
}
