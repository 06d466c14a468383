/* SPDX-License-Identifier: MIT */
/* Façade: the public entry points of omniq.h that are not workers.
 *
 * Each function checks its arguments, then hands over to the engine
 * (anything that changes a task, and retention) or reads through the
 * engine's storage wrappers (lookups). Data flows one way: façade -> engine
 * -> storage. The façade may call every layer; nothing calls the façade.
 *
 * Waiting for a result: a waiter re-reads storage whenever a result lands
 * in any process on the store (core/wake.c: the store's wake file, or this
 * process's notifications for a store without one) and otherwise polls,
 * starting at POLL_MIN_MS and backing off to POLL_MAX_MS, the fallback for
 * results no wake-up announces.
 */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "core/engine.h"
#include "core/handle.h"
#include "core/handlers.h"
#include "core/listing.h"
#include "core/settings.h"
#include "core/store.h"
#include "core/wake.h"
#include "worker/pool.h"

#define POLL_MIN_MS 10
#define POLL_MAX_MS 250

#define CHECK_HANDLE(oq) \
  if ((oq) == NULL) return omniq__err(0, OMNIQ_EINVAL, "%s: handle is NULL", __func__)

const char *omniq_errmsg(const omniq_t *oq) { return omniq__errmsg(oq != NULL ? oq->id : 0); }

/* ---- open / close -------------------------------------------------------- */

int omniq_open(omniq_t **out, const omniq_settings_t *settings) {
  char err[OMNIQ__ERRMSG_MAX];
  omniq_settings_t s;
  omniq_t *oq;
  int rc;

  if (out == NULL) return omniq__err(0, OMNIQ_EINVAL, "omniq_open: out is NULL");
  *out = NULL;
  omniq__err_clear(0);
  if (settings != NULL) {
    s = *settings;
  } else {
    omniq_settings_init(&s);
    if ((rc = omniq_settings_from_env(&s)) != OMNIQ_OK) return rc;
  }
  if ((rc = omniq__settings_validate(&s, err, sizeof err)) != OMNIQ_OK)
    return omniq__err(0, rc, "%s", err);

  oq = omniq__calloc(1, sizeof *oq);
  if (oq == NULL) return omniq__err(0, OMNIQ_ENOMEM, "omniq_open: out of memory");
  oq->id = omniq__handle_id_next();
  oq->settings = s;
  omniq__log_init(&oq->log, &oq->settings);
  oq->ops = omniq_storage_find(s.backend);
  pthread_mutex_init(&oq->lock, NULL);
  pthread_mutex_init(&oq->reap_lock, NULL);
  omniq__cond_init_monotonic(&oq->threads_cond);
  if (oq->ops == NULL) {
    rc = omniq__err(0, OMNIQ_ECONFIG, "backend '%s' is not registered", s.backend);
  } else if ((rc = omniq__store_open(oq)) != OMNIQ_OK) {
    omniq__err(0, rc, "open %s store: %s", s.backend, omniq__errmsg(oq->id));
  }
  if (rc != OMNIQ_OK) {
    omniq__err_clear(oq->id);
    pthread_mutex_destroy(&oq->lock);
    pthread_mutex_destroy(&oq->reap_lock);
    pthread_cond_destroy(&oq->threads_cond);
    omniq__free(oq);
    return rc;
  }
  omniq__wake_open(oq);
  omniq__log(&oq->log, OMNIQ_LOG_DEBUG, "store.opened", NULL, "backend=%s", s.backend);
  *out = oq;
  return OMNIQ_OK;
}

void omniq_close(omniq_t *oq) {
  if (oq == NULL) return;
  omniq__pool_close_all(oq);
  omniq__wake_close(oq);
  omniq__store_close(oq);
  omniq__handlers_free(oq);
  omniq__err_clear(oq->id);
  pthread_mutex_destroy(&oq->lock);
  pthread_mutex_destroy(&oq->reap_lock);
  pthread_cond_destroy(&oq->threads_cond);
  omniq__free(oq);
}

const omniq_settings_t *omniq_settings(const omniq_t *oq) {
  return oq != NULL ? &oq->settings : NULL;
}

/* ---- enqueue ------------------------------------------------------------- */

int omniq_enqueue(omniq_t *oq, const char *func, const char *args_json, const char *kwargs_json,
                  const omniq_enqueue_opts_t *opts, char id_out[OMNIQ_ID_SIZE]) {
  omniq_enqueue_item_t item = {func, args_json, kwargs_json, opts};
  char ids[1][OMNIQ_ID_SIZE];
  CHECK_HANDLE(oq);
  int rc = omniq__engine_enqueue(oq, &item, 1, ids);
  /* OMNIQ_EEXISTS: the id of the task that holds the key. */
  if ((rc == OMNIQ_OK || rc == OMNIQ_EEXISTS) && id_out != NULL)
    memcpy(id_out, ids[0], OMNIQ_ID_SIZE);
  return rc;
}

int omniq_enqueue_many(omniq_t *oq, const omniq_enqueue_item_t *items, size_t n,
                       char (*ids_out)[OMNIQ_ID_SIZE]) {
  CHECK_HANDLE(oq);
  if (items == NULL && n > 0)
    return omniq__err(oq->id, OMNIQ_EINVAL, "omniq_enqueue_many: items is NULL");
  return omniq__engine_enqueue(oq, items, n, ids_out);
}

/* ---- lookups ------------------------------------------------------------- */

static int check_id(omniq_t *oq, const char *id) {
  if (!omniq_id_valid(id))
    return omniq__err(oq->id, OMNIQ_EINVAL, "'%.40s' is not a task id", id ? id : "(null)");
  return OMNIQ_OK;
}

int omniq_get_task(omniq_t *oq, const char *id, omniq_task_t **out) {
  CHECK_HANDLE(oq);
  if (out == NULL) return omniq__err(oq->id, OMNIQ_EINVAL, "omniq_get_task: out is NULL");
  *out = NULL;
  int rc = check_id(oq, id);
  return rc != OMNIQ_OK ? rc : omniq__store_get_task(oq, id, out);
}

/* Whether a task exists at all: waiting for the result of an unknown id
 * would never end. */
static int task_exists(omniq_t *oq, const char *id) {
  omniq_task_t *t = NULL;
  int rc = omniq__store_get_task(oq, id, &t);
  omniq_task_free(t);
  return rc;
}

int omniq_get_result(omniq_t *oq, const char *id, double wait_seconds, omniq_result_t **out) {
  CHECK_HANDLE(oq);
  if (out == NULL) return omniq__err(oq->id, OMNIQ_EINVAL, "omniq_get_result: out is NULL");
  *out = NULL;
  int rc = check_id(oq, id);
  if (rc != OMNIQ_OK) return rc;
  if (isnan(wait_seconds))
    return omniq__err(oq->id, OMNIQ_EINVAL, "omniq_get_result: wait_seconds is NaN");

  /* A wait longer than the longest duration OmniQ keeps (100 years,
   * INFINITY included) is forever: it could not end before the program
   * does, and its milliseconds would not fit the deadline's arithmetic. */
  const int forever =
      wait_seconds < 0 || wait_seconds > (double)OMNIQ_DURATION_MAX_MS / 1000.0;
  const int64_t deadline = omniq__mono_ms() + (forever ? 0 : (int64_t)(wait_seconds * 1000));
  int64_t poll = POLL_MIN_MS;
  for (int first = 1;; first = 0) {
    uint64_t gen = omniq__wake_gen(oq, OMNIQ__EV_RESULT);
    rc = omniq__store_get_result(oq, id, out);
    if (rc != OMNIQ_ENOTFOUND) return rc;
    if (first && (rc = task_exists(oq, id)) != OMNIQ_OK) return rc;
    if (wait_seconds == 0)
      return omniq__err(oq->id, OMNIQ_ENOTFOUND, "task %s has no result yet", id);
    int64_t left = deadline - omniq__mono_ms();
    if (!forever && left <= 0)
      return omniq__err(oq->id, OMNIQ_ETIMEDOUT, "no result for task %s within %.3f s", id,
                        wait_seconds);
    omniq__wake_wait(oq, OMNIQ__EV_RESULT, gen, forever || left > poll ? poll : left);
    if (poll < POLL_MAX_MS) poll *= 2;
  }
}

/* ---- control ------------------------------------------------------------- */

int omniq_cancel(omniq_t *oq, const char *id) {
  CHECK_HANDLE(oq);
  int rc = check_id(oq, id);
  if (rc == OMNIQ_OK) rc = omniq__engine_cancel(oq, id);
  /* Workers on this handle hear of it at once; any other worker at its next
   * lease extension. */
  if (rc == OMNIQ_OK) omniq__pool_cancelled(oq, id);
  return rc;
}

int omniq_purge_results(omniq_t *oq, int64_t older_than_ms, int64_t *count) {
  int64_t n = 0;
  CHECK_HANDLE(oq);
  int rc = omniq__engine_purge(oq, older_than_ms, &n);
  if (count != NULL) *count = rc == OMNIQ_OK ? n : 0;
  return rc;
}

int omniq_purge_expired_results(omniq_t *oq, int64_t *count) {
  int64_t n = 0;
  CHECK_HANDLE(oq);
  int rc = omniq__engine_purge_expired(oq, &n);
  if (count != NULL) *count = rc == OMNIQ_OK ? n : 0;
  return rc;
}

int omniq_count_by_status(omniq_t *oq, int64_t counts[OMNIQ_STATUS_COUNT]) {
  CHECK_HANDLE(oq);
  if (counts == NULL) return omniq__err(oq->id, OMNIQ_EINVAL, "counts is NULL");
  memset(counts, 0, sizeof(int64_t) * OMNIQ_STATUS_COUNT);
  return omniq__store_count_by_status(oq, counts);
}

int omniq_retry(omniq_t *oq, const char *id, int64_t eta_ms) {
  CHECK_HANDLE(oq);
  int rc = check_id(oq, id);
  return rc != OMNIQ_OK ? rc : omniq__engine_retry(oq, id, eta_ms);
}

int omniq_retry_many(omniq_t *oq, const omniq_list_opts_t *filter, int64_t eta_ms,
                     int64_t *count) {
  int64_t n = 0;
  CHECK_HANDLE(oq);
  int rc = omniq__engine_retry_many(oq, filter, eta_ms, &n);
  if (count != NULL) *count = n; /* a sweep that failed midway still retried these */
  return rc;
}

int omniq_delete(omniq_t *oq, const char *id) {
  CHECK_HANDLE(oq);
  int rc = check_id(oq, id);
  return rc != OMNIQ_OK ? rc : omniq__engine_delete(oq, id);
}

int omniq_purge_expired(omniq_t *oq, int64_t *count) {
  int64_t n = 0;
  CHECK_HANDLE(oq);
  int rc = omniq__store_supports(oq, "omniq_purge_expired");
  if (rc == OMNIQ_OK) rc = omniq__engine_purge_expired_tasks(oq, &n);
  if (count != NULL) *count = n;
  return rc;
}

/* ---- handlers ------------------------------------------------------------ */

int omniq_register(omniq_t *oq, const char *name, omniq_handler_fn fn, void *userdata) {
  CHECK_HANDLE(oq);
  return omniq__handlers_set(oq, name, fn, userdata);
}

int omniq_register_fallback(omniq_t *oq, omniq_handler_fn fn, void *userdata) {
  CHECK_HANDLE(oq);
  omniq__handlers_set_fallback(oq, fn, userdata);
  return OMNIQ_OK;
}
