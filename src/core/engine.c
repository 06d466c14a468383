/* The engine: the one owner of lifecycle policy.
 *
 * Everything that decides what happens to a task lives here: defaults at
 * enqueue (the default queue and the queue-name rule among them), what a
 * failed run is called and whether it may retry (the table in
 * core/report.c), the retry predicate (retryable && attempts < max_retries),
 * the backoff, interval re-arming, what a cancel or a lost lease records,
 * and which results are old enough to purge. The storage backend only
 * applies the decisions, each in one atomic step, and rejects any that
 * arrive under a stale claim token; workers only report how a run ended.
 *
 * Lost leases are recovered lazily: a claim first looks for RUNNING tasks
 * whose lease expired (at most once per second of store time per handle, so
 * the hot path stays one statement) and records each as a failed run with
 * error_type "WorkerLost". Two handles reaping the same task race safely:
 * the token check lets exactly one of them win.
 */
#include "core/engine.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/error.h"
#include "base/ids.h"
#include "base/notify.h"
#include "base/records.h"
#include "core/store.h"

#define REAP_PERIOD_MS 1000
#define REAP_BATCH 64

/* The queue of a task enqueued without one, and of a worker given none. */
static const char *const default_queues[] = {OMNIQ_DEFAULT_QUEUE, NULL};

/* ---- backoff ------------------------------------------------------------- */

int64_t omniq__engine_backoff_ms(int64_t base_ms, int64_t cap_ms, int attempts, double u) {
  double delay = (double)base_ms;
  for (int i = 1; i < attempts && delay < (double)cap_ms; i++) delay *= 2;
  if (delay > (double)cap_ms) delay = (double)cap_ms;
  return (int64_t)(delay * (0.75 + 0.5 * u));
}

/* A uniform [0, 1) draw for the jitter; per thread, seeded from getrandom. */
static double jitter_draw(void) {
  static _Thread_local uint64_t state;
  if (state == 0 && getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state)
    state = (uint64_t)(uintptr_t)&state ^ (uint64_t)omniq__mono_ms();
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return (double)(state >> 11) / 9007199254740992.0; /* 2^53 */
}

/* ---- enqueue ------------------------------------------------------------- */

void omniq_enqueue_opts_init(omniq_enqueue_opts_t *o) {
  if (o == NULL) return;
  memset(o, 0, sizeof *o);
  o->max_retries = -1; /* the settings' default_max_retries */
  o->timeout_ms = -1;  /* the settings' default_timeout_ms */
}

/* Queue names are short identifiers: they appear in logs, and a backend may
 * use them in file names. */
static int queue_name_valid(const char *q) {
  size_t n = strlen(q);
  if (n == 0 || n >= OMNIQ_NAME_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = q[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-' || c == '.'))
      return 0;
  }
  return 1;
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
  t->func = omniq__strdup(item->func);
  t->queue = omniq__strdup(o->queue != NULL ? o->queue : default_queues[0]);
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
  *out = t;
  return OMNIQ_OK;
}

int omniq__engine_enqueue(omniq_t *oq, const omniq_enqueue_item_t *items, size_t n,
                          char (*ids_out)[OMNIQ_ID_SIZE]) {
  int64_t now = omniq__now(&oq->settings);
  omniq_task_t **tasks;
  int rc = OMNIQ_OK;
  size_t built = 0;

  if (n == 0) return OMNIQ_OK;
  tasks = omniq__calloc(n, sizeof *tasks);
  if (tasks == NULL) return omniq__err(oq->id, OMNIQ_ENOMEM, "out of memory");
  for (; built < n && rc == OMNIQ_OK; built++)
    rc = build_task(oq, &items[built], built, now, &tasks[built]);
  if (rc == OMNIQ_OK) rc = omniq__store_enqueue(oq, tasks, n);
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
    omniq__notify(OMNIQ__EV_WORK);
  }
  omniq__tasks_free(tasks, built);
  return rc;
}

/* ---- the end of a run --------------------------------------------------- */

/* The decision for a finished run, with the records it points to. */
typedef struct decided {
  omniq_decision_t d;
  omniq_result_t result;
  omniq_task_error_t *error;
  const char *event; /* what to log */
} decided_t;

/* Applies DESIGN §3 to a run of `t` that ended at `now` as r reports. A
 * lost run is retried at once: the lease already cost the wait. */
static int decide(omniq_t *oq, const omniq_task_t *t, const omniq__run_report_t *r, int64_t now,
                  decided_t *x) {
  int ok = r->kind == OMNIQ__RUN_OK, retry = 0;
  memset(x, 0, sizeof *x);
  x->d.id = t->id;
  x->d.token = t->token;
  memcpy(x->result.task_id, t->id, OMNIQ_ID_SIZE);
  x->result.attempts = t->attempts;
  x->result.finished_at_ms = now;
  x->result.last_attempt_at_ms = t->started_at_ms;

  if (ok) {
    x->result.status = OMNIQ_SUCCESS;
    x->result.value = (char *)(r->value != NULL ? r->value : "null");
    x->event = "task.succeeded";
  } else {
    omniq__failure_t f = omniq__report_classify(r);
    x->error = omniq_task_error_new(f.error_type, r->message, now, r->traceback, t->attempts,
                                    f.retryable);
    if (x->error == NULL) return omniq__err(oq->id, OMNIQ_ENOMEM, "out of memory");
    x->d.error = x->error;
    retry = f.retryable && t->attempts < t->max_retries;
    x->result.status = OMNIQ_FAILED;
    x->result.error = x->error;
    x->event = "task.failed";
  }

  if (retry) {
    x->d.next_status = OMNIQ_PENDING;
    x->d.eta_ms = r->kind == OMNIQ__RUN_LOST
                      ? now
                      : now + omniq__engine_backoff_ms(oq->settings.retry_base_ms,
                                                       oq->settings.retry_cap_ms, t->attempts,
                                                       jitter_draw());
    x->event = "task.retry";
    return OMNIQ_OK; /* a run that will be retried has no result */
  }
  x->d.result = &x->result;
  if (t->interval_ms > 0) {
    x->d.next_status = OMNIQ_PENDING;
    x->d.eta_ms = now + t->interval_ms;
    x->d.reset_attempts = 1;
  } else {
    x->d.next_status = ok ? OMNIQ_SUCCESS : OMNIQ_FAILED;
  }
  return OMNIQ_OK;
}

static void log_decision(omniq_t *oq, const omniq_task_t *t, const decided_t *x) {
  char eta[OMNIQ__ISO_SIZE];
  if (x->d.next_status == OMNIQ_PENDING) omniq__iso8601(x->d.eta_ms, eta);
  if (x->d.result == NULL) {
    omniq__log(&oq->log, OMNIQ_LOG_INFO, x->event, t->id,
               "attempt %d of %d failed (%s); retry at %s", t->attempts, t->max_retries,
               x->error->error_type, eta);
  } else if (x->d.next_status == OMNIQ_PENDING) {
    omniq__log(&oq->log, OMNIQ_LOG_INFO, x->event, t->id, "interval run done; next run at %s",
               eta);
  } else if (x->error != NULL) {
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, x->event, t->id, "attempt %d of %d failed (%s)",
               t->attempts, t->max_retries, x->error->error_type);
  } else {
    omniq__log(&oq->log, OMNIQ_LOG_INFO, x->event, t->id, "attempt %d", t->attempts);
  }
}

static int finish_at(omniq_t *oq, const omniq_task_t *t, const omniq__run_report_t *r,
                     int64_t now) {
  decided_t x;
  int rc = decide(oq, t, r, now, &x);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__store_finish(oq, &x.d);
  if (rc == OMNIQ_OK) {
    log_decision(oq, t, &x);
    if (x.d.result != NULL) omniq__notify(OMNIQ__EV_RESULT);
    if (x.d.next_status == OMNIQ_PENDING) omniq__notify(OMNIQ__EV_WORK);
  }
  omniq_task_error_free(x.error);
  return rc;
}

int omniq__engine_finish(omniq_t *oq, const omniq_task_t *task, const omniq__run_report_t *r) {
  return finish_at(oq, task, r, omniq__now(&oq->settings));
}

int omniq__engine_extend(omniq_t *oq, const omniq_task_t *task) {
  int64_t until = omniq__now(&oq->settings) + oq->settings.lease_ms;
  return omniq__store_extend_lease(oq, task->id, task->token, until);
}

/* ---- lost leases and claims ---------------------------------------------- */

int omniq__engine_reap(omniq_t *oq, int *recovered) {
  int64_t now = omniq__now(&oq->settings);
  int count = 0, rc;
  size_t n;
  do {
    omniq_task_t **lost;
    rc = omniq__store_expired_leases(oq, now, REAP_BATCH, &lost, &n);
    if (rc != OMNIQ_OK) break;
    for (size_t i = 0; i < n; i++) {
      char msg[160], until[OMNIQ__ISO_SIZE];
      omniq__iso8601(lost[i]->lease_until_ms, until);
      snprintf(msg, sizeof msg, "lease expired at %s; the worker running attempt %d is presumed dead",
               until, lost[i]->attempts);
      omniq__run_report_t r = {.kind = OMNIQ__RUN_LOST, .message = msg};
      /* ESTATE: another reaper or the worker itself got there first. */
      if (finish_at(oq, lost[i], &r, now) == OMNIQ_OK) count++;
    }
    omniq__tasks_free(lost, n);
  } while (n == REAP_BATCH);
  if (recovered != NULL) *recovered = count;
  if (count > 0)
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, "lease.recovered", NULL,
               "%d task(s) whose worker stopped renewing its lease", count);
  return rc;
}

static void maybe_reap(omniq_t *oq, int64_t now) {
  int due;
  pthread_mutex_lock(&oq->reap_lock);
  due = now >= oq->next_reap_ms;
  if (due) oq->next_reap_ms = now + REAP_PERIOD_MS;
  pthread_mutex_unlock(&oq->reap_lock);
  if (due) omniq__engine_reap(oq, NULL);
}

int omniq__engine_listen_queues(omniq_t *oq, const char *fn, const char *const *names,
                                char *out[OMNIQ_MAX_QUEUES], size_t *n) {
  size_t k = 0;
  *n = 0;
  for (; k < OMNIQ_MAX_QUEUES && names != NULL && names[k] != NULL; k++)
    if (names[k][0] == '\0')
      return omniq__err(oq->id, OMNIQ_EINVAL, "%s: queues[%zu] is empty", fn, k);
  if (k == 0) {
    names = default_queues;
    k = 1;
  }
  for (size_t i = 0; i < k; i++) {
    if ((out[i] = omniq__strdup(names[i])) == NULL) {
      while (i > 0) omniq__free(out[--i]);
      return omniq__err(oq->id, OMNIQ_ENOMEM, "%s: out of memory", fn);
    }
  }
  *n = k;
  return OMNIQ_OK;
}

int omniq__engine_claim(omniq_t *oq, const char *const *queues, size_t nqueues, size_t max,
                        omniq_task_t ***out, size_t *n) {
  int64_t now = omniq__now(&oq->settings);
  omniq_claim_req_t req = {
      .now_ms = now,
      .lease_until_ms = now + oq->settings.lease_ms,
      .queues = nqueues > 0 ? queues : default_queues,
      .nqueues = nqueues > 0 ? nqueues : 1,
      .max = max,
  };
  *out = NULL;
  *n = 0;
  if (max == 0) return OMNIQ_OK;
  maybe_reap(oq, now);
  int rc = omniq__store_claim(oq, &req, out, n);
  for (size_t i = 0; rc == OMNIQ_OK && i < *n; i++)
    omniq__log(&oq->log, OMNIQ_LOG_DEBUG, "task.claimed", (*out)[i]->id, "attempt %d",
               (*out)[i]->attempts);
  return rc;
}

/* ---- cancel and retention ------------------------------------------------ */

/* One storage step: the backend reads the task, cancels it and stores its
 * result (with the attempts it has at that moment) atomically. Reading the
 * task first here would let a claim land between the read and the cancel
 * and the result count one attempt too few. */
int omniq__engine_cancel(omniq_t *oq, const char *id) {
  int was = -1;
  int rc = omniq__store_cancel(oq, id, omniq__now(&oq->settings), &was);
  if (rc == OMNIQ_ESTATE)
    return omniq__err(oq->id, OMNIQ_ESTATE, "task %s is %s and cannot be cancelled", id,
                      omniq_status_name(was));
  if (rc != OMNIQ_OK) return rc;
  omniq__log(&oq->log, OMNIQ_LOG_INFO, "task.cancelled", id, "was %s", omniq_status_name(was));
  omniq__notify(OMNIQ__EV_RESULT);
  return OMNIQ_OK;
}

int omniq__engine_purge(omniq_t *oq, int64_t older_than_ms, int64_t *count) {
  int rc = omniq__store_purge_results(oq, older_than_ms, count);
  if (rc == OMNIQ_OK && *count > 0)
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "results.purged", NULL, "%lld result(s)",
               (long long)*count);
  return rc;
}

int omniq__engine_purge_expired(omniq_t *oq, int64_t *count) {
  return omniq__engine_purge(oq, omniq__now(&oq->settings) - oq->settings.result_ttl_ms, count);
}
