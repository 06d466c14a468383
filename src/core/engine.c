/* Queue engine: the one owner of lifecycle policy.
 *
 * Everything that decides what happens to a task lives here: defaults at
 * enqueue, the retry predicate (retryable && attempts < max_retries), the
 * backoff, interval re-arming, what a cancel or a lost lease records. The
 * storage backend only applies the decisions, each in one atomic step, and
 * rejects any that arrive under a stale claim token; workers only report how
 * a run ended.
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
#include "base/records.h"
#include "base/notify.h"
#include "core/store.h"

#define REAP_PERIOD_MS 1000
#define REAP_BATCH 64

/* ---- backoff ------------------------------------------------------------- */

int64_t omniq__queue_backoff_ms(int64_t base_ms, int64_t cap_ms, int attempts, double u) {
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
  t->queue = omniq__strdup(o->queue != NULL ? o->queue : OMNIQ_DEFAULT_QUEUE);
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

int omniq__queue_enqueue(omniq_t *oq, const omniq_enqueue_item_t *items, size_t n,
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

/* ---- outcomes ------------------------------------------------------------ */

/* The decision for a finished run, with the records it points to. */
typedef struct decision {
  omniq_outcome_t outcome;
  omniq_result_t result;
  omniq_task_error_t *error;
  const char *event; /* what to log */
} decision_t;

/* Applies DESIGN §3 to a run of `t` that ended at `now`. lost = the worker
 * died: a retry then runs at once, the lease already cost the wait. */
static int decide(omniq_t *oq, const omniq_task_t *t, const omniq__run_t *run, int64_t now,
                  int lost, decision_t *d) {
  int retry = 0;
  memset(d, 0, sizeof *d);
  d->outcome.id = t->id;
  d->outcome.token = t->token;
  memcpy(d->result.task_id, t->id, OMNIQ_ID_SIZE);
  d->result.attempts = t->attempts;
  d->result.finished_at_ms = now;
  d->result.last_attempt_at_ms = t->started_at_ms;

  if (run->ok) {
    d->result.status = OMNIQ_SUCCESS;
    d->result.value = (char *)(run->value != NULL ? run->value : "null");
    d->event = "task.succeeded";
  } else {
    d->error = omniq_task_error_new(run->error_type, run->message, now, run->traceback,
                                    t->attempts, run->retryable);
    if (d->error == NULL) return omniq__err(oq->id, OMNIQ_ENOMEM, "out of memory");
    d->outcome.error = d->error;
    retry = run->retryable && t->attempts < t->max_retries;
    d->result.status = OMNIQ_FAILED;
    d->result.error = d->error;
    d->event = "task.failed";
  }

  if (retry) {
    d->outcome.next_status = OMNIQ_PENDING;
    d->outcome.eta_ms =
        lost ? now
             : now + omniq__queue_backoff_ms(oq->settings.retry_base_ms,
                                             oq->settings.retry_cap_ms, t->attempts,
                                             jitter_draw());
    d->event = "task.retry";
    return OMNIQ_OK; /* a run that will be retried has no result */
  }
  d->outcome.result = &d->result;
  if (t->interval_ms > 0) {
    d->outcome.next_status = OMNIQ_PENDING;
    d->outcome.eta_ms = now + t->interval_ms;
    d->outcome.reset_attempts = 1;
    d->event = run->ok ? "task.succeeded" : "task.failed";
  } else {
    d->outcome.next_status = run->ok ? OMNIQ_SUCCESS : OMNIQ_FAILED;
  }
  return OMNIQ_OK;
}

static void log_decision(omniq_t *oq, const omniq_task_t *t, const decision_t *d) {
  char eta[OMNIQ__ISO_SIZE];
  if (d->outcome.next_status == OMNIQ_PENDING) omniq__iso8601(d->outcome.eta_ms, eta);
  if (d->outcome.result == NULL) {
    omniq__log(&oq->log, OMNIQ_LOG_INFO, d->event, t->id,
               "attempt %d of %d failed (%s); retry at %s", t->attempts, t->max_retries,
               d->error->error_type, eta);
  } else if (d->outcome.next_status == OMNIQ_PENDING) {
    omniq__log(&oq->log, OMNIQ_LOG_INFO, d->event, t->id, "interval run done; next run at %s",
               eta);
  } else if (d->error != NULL) {
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, d->event, t->id, "attempt %d of %d failed (%s)",
               t->attempts, t->max_retries, d->error->error_type);
  } else {
    omniq__log(&oq->log, OMNIQ_LOG_INFO, d->event, t->id, "attempt %d", t->attempts);
  }
}

static int apply(omniq_t *oq, const omniq_task_t *t, const omniq__run_t *run, int64_t now,
                 int lost) {
  decision_t d;
  int rc = decide(oq, t, run, now, lost, &d);
  if (rc != OMNIQ_OK) return rc;
  rc = run->ok ? omniq__store_complete(oq, &d.outcome) : omniq__store_fail(oq, &d.outcome);
  if (rc == OMNIQ_OK) {
    log_decision(oq, t, &d);
    if (d.outcome.result != NULL) omniq__notify(OMNIQ__EV_RESULT);
    if (d.outcome.next_status == OMNIQ_PENDING) omniq__notify(OMNIQ__EV_WORK);
  }
  omniq_task_error_free(d.error);
  return rc;
}

int omniq__queue_finish(omniq_t *oq, const omniq_task_t *task, const omniq__run_t *run) {
  return apply(oq, task, run, omniq__now(&oq->settings), 0);
}

int omniq__queue_extend(omniq_t *oq, const omniq_task_t *task) {
  int64_t until = omniq__now(&oq->settings) + oq->settings.lease_ms;
  return omniq__store_extend_lease(oq, task->id, task->token, until);
}

/* ---- lost leases and claims ---------------------------------------------- */

int omniq__queue_reap(omniq_t *oq, int *recovered) {
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
      omniq__run_t run = {.ok = 0, .error_type = "WorkerLost", .message = msg, .retryable = 1};
      /* ESTATE: another reaper or the worker itself got there first. */
      if (apply(oq, lost[i], &run, now, 1) == OMNIQ_OK) count++;
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
  if (due) omniq__queue_reap(oq, NULL);
}

int omniq__queue_claim(omniq_t *oq, const char *const *queues, size_t nqueues, size_t max,
                       omniq_task_t ***out, size_t *n) {
  static const char *const default_queue[] = {OMNIQ_DEFAULT_QUEUE};
  int64_t now = omniq__now(&oq->settings);
  omniq_claim_req_t req = {
      .now_ms = now,
      .lease_until_ms = now + oq->settings.lease_ms,
      .queues = nqueues > 0 ? queues : default_queue,
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

/* ---- cancel -------------------------------------------------------------- */

int omniq__queue_cancel(omniq_t *oq, const char *id) {
  omniq_task_t *t = NULL;
  omniq_result_t r;
  int rc = omniq__store_get_task(oq, id, &t);
  if (rc != OMNIQ_OK) return rc;
  if (omniq_status_is_terminal(t->status)) {
    rc = omniq__err(oq->id, OMNIQ_ESTATE, "task %s is %s and cannot be cancelled", id,
                    omniq_status_name(t->status));
    omniq_task_free(t);
    return rc;
  }
  memset(&r, 0, sizeof r);
  memcpy(r.task_id, t->id, OMNIQ_ID_SIZE);
  r.status = OMNIQ_CANCELLED;
  r.attempts = t->attempts;
  r.finished_at_ms = omniq__now(&oq->settings);
  r.last_attempt_at_ms = t->started_at_ms;
  rc = omniq__store_cancel(oq, id, &r);
  if (rc == OMNIQ_OK) {
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "task.cancelled", id, "was %s",
               omniq_status_name(t->status));
    omniq__notify(OMNIQ__EV_RESULT);
  }
  omniq_task_free(t);
  return rc;
}
