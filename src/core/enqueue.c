/* SPDX-License-Identifier: MIT */
/* Enqueue: the engine's policy at the moment tasks are stored. It checks
 * each item (func, the queue-name rule, the unique key, cron, the codec's
 * check of args and kwargs) and fills the defaults (the default queue, the
 * settings' max_retries and timeout, the first eta, a cron task's first
 * match), then stores the batch in one transaction, with unique keys
 * through the store's unique enqueue. Nothing is stored unless every item
 * passes.
 *
 * Limits (omniq.h, docs/errors.md) are checked here as in core/engine.c: an
 * eta is an instant a store keeps, a delay, interval or timeout at most
 * OMNIQ_DURATION_MAX_MS, read against the store's clock through
 * omniq__engine_clock_now (core/engine_shared.h). Everything decided after
 * a task is stored is core/engine.c's.
 */
#include "core/engine.h"

#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/error.h"
#include "base/ids.h"
#include "base/records.h"
#include "core/cron.h"
#include "core/engine_shared.h"
#include "core/store.h"
#include "core/wake.h"

void omniq_enqueue_opts_init(omniq_enqueue_opts_t *o) {
  if (o == NULL) return;
  memset(o, 0, sizeof *o);
  o->max_retries = -1; /* the settings' default_max_retries */
  o->timeout_ms = -1;  /* the settings' default_timeout_ms */
}

/* Queue names are short identifiers: they appear in logs, and a backend may
 * use them in file names. */
static int queue_name_valid(const char *q) {
  size_t n = q != NULL ? strlen(q) : 0;
  if (n == 0 || n >= OMNIQ_NAME_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = q[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-' || c == '.'))
      return 0;
  }
  return 1;
}

int omniq__engine_check_queue(omniq_t *oq, const char *what, const char *queue) {
  if (queue_name_valid(queue)) return OMNIQ_OK;
  return omniq__err(oq->id, OMNIQ_EINVAL, "%s: queue name must be 1-%d characters of [A-Za-z0-9_.-]",
                    what, OMNIQ_NAME_MAX - 1);
}

/* A unique key is text a backend may store as JSON: 1..255 bytes of UTF-8
 * (jansson refuses anything else), no control characters. */
static int unique_key_valid(const char *key) {
  size_t n = strlen(key);
  if (n == 0 || n > OMNIQ_UNIQUE_KEY_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f) return 0;
  return omniq__codec_is_utf8(key, n);
}

/* The options of the operations of storage ABI 3: unique keys and cron.
 * Fills t's fields (the first eta of a cron task included). */
static int build_schedule(omniq_t *oq, const omniq_enqueue_opts_t *o, size_t index, int64_t base,
                          omniq_task_t *t) {
  char err[OMNIQ__ERRMSG_MAX];
  omniq__cron_t cron;
  int rc;
  if (o->unique_key == NULL && o->cron == NULL) return OMNIQ_OK;
  if ((rc = omniq__store_supports(oq, o->cron != NULL ? "cron tasks" : "unique tasks")) !=
      OMNIQ_OK)
    return rc;
  if (o->unique_key != NULL) {
    if (!unique_key_valid(o->unique_key))
      return omniq__err(oq->id, OMNIQ_EINVAL,
                        "task %zu: unique_key must be 1-%d bytes of UTF-8 without control "
                        "characters",
                        index, OMNIQ_UNIQUE_KEY_MAX);
    if (o->unique_for_ms < 0 || o->unique_for_ms > OMNIQ_DURATION_MAX_MS)
      return omniq__err(oq->id, OMNIQ_EINVAL, "task %zu: unique_for_ms must be 0 to %lld",
                        index, (long long)OMNIQ_DURATION_MAX_MS);
    if ((t->unique_key = omniq__strdup(o->unique_key)) == NULL)
      return omniq__err(oq->id, OMNIQ_ENOMEM, "task %zu: out of memory", index);
    t->unique_for_ms = o->unique_for_ms;
  }
  if (o->cron != NULL) {
    if (o->interval_ms > 0)
      return omniq__err(oq->id, OMNIQ_EINVAL, "task %zu: cron and interval_ms exclude each other",
                        index);
    if (omniq__cron_parse(o->cron, &cron, err, sizeof err) != OMNIQ_OK)
      return omniq__err(oq->id, OMNIQ_EINVAL, "task %zu: cron '%.100s': %s", index, o->cron, err);
    /* The first match at or after the given start. */
    if (omniq__engine_cron_next(&cron, base - 1, &t->eta_ms) != OMNIQ_OK)
      return omniq__err(oq->id, OMNIQ_EINVAL,
                        "task %zu: cron '%.100s' has no match in %d years or before "
                        "9999-12-31T23:59:59.999Z",
                        index, o->cron, OMNIQ__CRON_HORIZON_YEARS);
    if ((t->cron = omniq__strdup(o->cron)) == NULL)
      return omniq__err(oq->id, OMNIQ_ENOMEM, "task %zu: out of memory", index);
  }
  return OMNIQ_OK;
}

/* Checks one item and builds its task; on error *out is NULL and the
 * handle's message names the item. */
static int build_task(omniq_t *oq, const omniq_enqueue_item_t *item, size_t index, int64_t now,
                      omniq_task_t **out) {
  const omniq_settings_t *s = &oq->settings;
  omniq_enqueue_opts_t defaults;
  const omniq_enqueue_opts_t *o = item->opts;
  char err[OMNIQ__ERRMSG_MAX];
  const char *args = item->args_json != NULL ? item->args_json : "[]";
  const char *kwargs = item->kwargs_json != NULL ? item->kwargs_json : "{}";
  int rc;

  *out = NULL;
  if (o == NULL) {
    omniq_enqueue_opts_init(&defaults);
    o = &defaults;
  }
  if (item->func == NULL || item->func[0] == '\0')
    return omniq__err(oq->id, OMNIQ_EINVAL, "task %zu: func is NULL or empty", index);
  if (strlen(item->func) >= OMNIQ_PATH_MAX)
    return omniq__err(oq->id, OMNIQ_EINVAL, "task %zu: func is longer than %d bytes", index,
                      OMNIQ_PATH_MAX - 1);
  if (o->eta_ms < 0 || o->delay_ms < 0 || o->interval_ms < 0 || o->timeout_ms < -1 ||
      o->max_retries < -1)
    return omniq__err(oq->id, OMNIQ_EINVAL,
                      "task %zu: eta, delay, interval, timeout and max_retries must not be "
                      "negative (-1 = default for timeout and max_retries)",
                      index);
  if (o->eta_ms > OMNIQ_TIME_MAX_MS)
    return omniq__err(oq->id, OMNIQ_EINVAL,
                      "task %zu: eta_ms %lld is past %lld (9999-12-31T23:59:59.999Z), the "
                      "last instant a store keeps",
                      index, (long long)o->eta_ms, (long long)OMNIQ_TIME_MAX_MS);
  if (o->delay_ms > OMNIQ_DURATION_MAX_MS || o->interval_ms > OMNIQ_DURATION_MAX_MS ||
      o->timeout_ms > OMNIQ_DURATION_MAX_MS)
    return omniq__err(oq->id, OMNIQ_EINVAL,
                      "task %zu: delay, interval and timeout must be at most %lld ms (100 years)",
                      index, (long long)OMNIQ_DURATION_MAX_MS);
  if (o->eta_ms == 0 && now + o->delay_ms > OMNIQ_TIME_MAX_MS)
    return omniq__err(oq->id, OMNIQ_EINVAL,
                      "task %zu: now + delay_ms is past 9999-12-31T23:59:59.999Z, the last "
                      "instant a store keeps",
                      index);
  if (o->queue != NULL && !queue_name_valid(o->queue))
    return omniq__err(oq->id, OMNIQ_EINVAL,
                      "task %zu: queue name must be 1-%d characters of [A-Za-z0-9_.-]", index,
                      OMNIQ_NAME_MAX - 1);
  if ((rc = omniq__codec_check(s->serializer, OMNIQ__JSON_ARGS, args, err, sizeof err)) ||
      (rc = omniq__codec_check(s->serializer, OMNIQ__JSON_KWARGS, kwargs, err, sizeof err)))
    return omniq__err(oq->id, rc, "task %zu: %s", index, err);

  omniq_task_t *t = omniq_task_new();
  if (t == NULL) return omniq__err(oq->id, OMNIQ_ENOMEM, "task %zu: out of memory", index);
  omniq__id_new(now, t->id);
  t->id_fresh = 1; /* no store can hold it: the backend may skip looking (storage ABI 8) */
  t->func = omniq__strdup(item->func);
  t->queue = omniq__strdup(o->queue != NULL ? o->queue : omniq__engine_default_queues[0]);
  t->args = omniq__strdup(args);
  t->kwargs = omniq__strdup(kwargs);
  if (!t->func || !t->queue || !t->args || !t->kwargs) {
    omniq_task_free(t);
    return omniq__err(oq->id, OMNIQ_ENOMEM, "task %zu: out of memory", index);
  }
  t->status = OMNIQ_PENDING;
  t->priority = o->priority;
  t->max_retries = o->max_retries >= 0 ? o->max_retries : s->default_max_retries;
  t->timeout_ms = o->timeout_ms >= 0 ? o->timeout_ms : s->default_timeout_ms;
  t->interval_ms = o->interval_ms;
  t->eta_ms = o->eta_ms > 0 ? o->eta_ms : now + o->delay_ms;
  t->created_at_ms = now;
  if ((rc = build_schedule(oq, o, index, t->eta_ms, t)) != OMNIQ_OK) {
    omniq_task_free(t);
    return rc;
  }
  *out = t;
  return OMNIQ_OK;
}

/* A queue and key given twice in one batch would hold themselves. */
static int check_batch_keys(omniq_t *oq, omniq_task_t **tasks, size_t n, int *any) {
  *any = 0;
  for (size_t i = 0; i < n; i++) {
    if (tasks[i]->unique_key == NULL) continue;
    *any = 1;
    for (size_t k = 0; k < i; k++)
      if (tasks[k]->unique_key != NULL && strcmp(tasks[k]->unique_key, tasks[i]->unique_key) == 0 &&
          strcmp(tasks[k]->queue, tasks[i]->queue) == 0)
        return omniq__err(oq->id, OMNIQ_EINVAL,
                          "task %zu: unique key of queue %s given twice in the batch (task %zu)",
                          i, tasks[i]->queue, k);
  }
  return OMNIQ_OK;
}

/* Stores a batch whose tasks carry unique keys: on OMNIQ_EEXISTS every
 * item gets its holder's id (or "") and the message names the first. */
static int store_unique(omniq_t *oq, omniq_task_t **tasks, size_t n,
                        char (*ids_out)[OMNIQ_ID_SIZE]) {
  char(*holders)[OMNIQ_ID_SIZE] = omniq__calloc(n, sizeof *holders);
  if (holders == NULL) return omniq__err(oq->id, OMNIQ_ENOMEM, "out of memory");
  int rc = omniq__store_enqueue_unique(oq, tasks, n, holders);
  if (rc == OMNIQ_EEXISTS) {
    size_t first = n;
    for (size_t i = 0; i < n; i++) {
      if (ids_out != NULL) memcpy(ids_out[i], holders[i], OMNIQ_ID_SIZE);
      if (first == n && holders[i][0] != '\0') first = i;
    }
    if (first < n)
      omniq__err(oq->id, OMNIQ_EEXISTS, "task %zu: unique key of queue %s is held by task %s",
                 first, tasks[first]->queue, holders[first]);
  }
  omniq__free(holders);
  return rc;
}

int omniq__engine_enqueue(omniq_t *oq, const omniq_enqueue_item_t *items, size_t n,
                          char (*ids_out)[OMNIQ_ID_SIZE]) {
  int64_t now;
  omniq_task_t **tasks;
  int rc = OMNIQ_OK;
  size_t built = 0;

  if (n == 0) return OMNIQ_OK;
  if ((rc = omniq__engine_clock_now(oq, &now)) != OMNIQ_OK) return rc;
  tasks = omniq__calloc(n, sizeof *tasks);
  if (tasks == NULL) return omniq__err(oq->id, OMNIQ_ENOMEM, "out of memory");
  int keyed = 0;
  for (; built < n && rc == OMNIQ_OK; built++)
    rc = build_task(oq, &items[built], built, now, &tasks[built]);
  if (rc == OMNIQ_OK) rc = check_batch_keys(oq, tasks, n, &keyed);
  if (rc == OMNIQ_OK)
    rc = keyed ? store_unique(oq, tasks, n, ids_out) : omniq__store_enqueue(oq, tasks, n);
  if (rc == OMNIQ_OK) {
    /* A batch logs one INFO line, not one per task: producers that enqueue
     * thousands at once would otherwise flood the log. */
    int level = n == 1 ? OMNIQ_LOG_INFO : OMNIQ_LOG_DEBUG;
    for (size_t i = 0; i < n; i++) {
      if (ids_out != NULL) memcpy(ids_out[i], tasks[i]->id, OMNIQ_ID_SIZE);
      omniq__log(&oq->log, level, "task.enqueued", tasks[i]->id, "func=%s queue=%s",
                 tasks[i]->func, tasks[i]->queue);
    }
    if (n > 1) omniq__log(&oq->log, OMNIQ_LOG_INFO, "batch.enqueued", NULL, "%zu tasks", n);
    omniq__wake(oq, OMNIQ__EV_WORK);
  }
  omniq__tasks_free(tasks, built);
  return rc;
}
