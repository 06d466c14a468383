/* SPDX-License-Identifier: MIT */
/* The engine: the one owner of lifecycle policy.
 *
 * Everything that decides what happens to a task lives here, or, for what
 * is decided at enqueue, in core/enqueue.c: defaults at enqueue (the
 * default queue and the queue-name rule among them), what a failed run is
 * called and whether it may retry (the table in core/report.c), the retry
 * predicate (retryable && attempts < max_retries), the backoff, interval
 * re-arming, what a cancel or a lost lease records, and which results are
 * old enough to purge. The storage backend only applies the decisions,
 * each in one atomic step, and rejects any that arrive under a stale claim
 * token; workers only report how a run ended.
 *
 * Limits (omniq.h, docs/errors.md): the engine is the one place that
 * checks them. An instant it stores is in [0, OMNIQ_TIME_MAX_MS] (the last
 * millisecond of 9999: four-digit years, which every backend writes and
 * reads back exactly) and a duration at most OMNIQ_DURATION_MAX_MS, so
 * `now + duration` cannot overflow. The store's clock is read through
 * omniq__engine_clock_now, which refuses a reading outside the instants a
 * store keeps rather than store what cannot be read back; sums that may
 * pass the last instant (a re-arm or a retry near the year 9999) are
 * clamped to it, and sums of values read back from a store saturate
 * (omniq__add_ms), since a row need not be one the engine wrote.
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
#include "base/error.h"
#include "base/records.h"
#include "core/cron.h"
#include "core/engine_shared.h"
#include "core/store.h"
#include "core/wake.h"

#define REAP_PERIOD_MS 1000
#define REAP_BATCH 64
#define RETAIN_PERIOD_MS 60000
#define PURGE_BATCH 500

/* The queue of a task enqueued without one, and of a worker given none. */
const char *const omniq__engine_default_queues[] = {OMNIQ_DEFAULT_QUEUE, NULL};

/* ---- backoff ------------------------------------------------------------- */

int64_t omniq__engine_backoff_ms(int64_t base_ms, int64_t cap_ms, int attempts, double u) {
  double delay = (double)base_ms;
  for (int i = 1; i < attempts && delay < (double)cap_ms; i++) delay *= 2;
  if (delay > (double)cap_ms) delay = (double)cap_ms;
  return (int64_t)(delay * (0.75 + 0.5 * u));
}

/* ---- time ---------------------------------------------------------------- */

/* The store's clock, if it reads an instant a store keeps; else
 * OMNIQ_ECONFIG (nothing is stored or changed). */
int omniq__engine_clock_now(omniq_t *oq, int64_t *now) {
  char text[OMNIQ__ISO_SIZE];
  *now = omniq__now(&oq->settings);
  if (*now >= 0 && *now <= OMNIQ_TIME_MAX_MS) return OMNIQ_OK;
  omniq__iso8601(*now, text);
  return omniq__err(oq->id, OMNIQ_ECONFIG,
                    "the store's clock reads %lld (%s), outside the instants a store keeps "
                    "(1970-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z)",
                    (long long)*now, text);
}

/* at + ms, no later than the last instant a store keeps. */
static int64_t instant_after(int64_t at, int64_t ms) {
  int64_t t = omniq__add_ms(at, ms);
  return t > OMNIQ_TIME_MAX_MS ? OMNIQ_TIME_MAX_MS : t;
}

/* The next match of c after after_ms that a store keeps; OMNIQ_ENOTFOUND
 * past the last instant, as for an expression that never matches again. */
int omniq__engine_cron_next(const omniq__cron_t *c, int64_t after_ms, int64_t *next_ms) {
  int rc = omniq__cron_next(c, after_ms, next_ms);
  return rc == OMNIQ_OK && *next_ms > OMNIQ_TIME_MAX_MS ? OMNIQ_ENOTFOUND : rc;
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

/* ---- the end of a run --------------------------------------------------- */

/* The decision for a finished run, with the records it points to. */
typedef struct decided {
  omniq_decision_t d;
  omniq_result_t result;
  omniq_task_error_t *error;
  const char *event; /* what to log */
} decided_t;

/* The failure to record for a run the worker reported as r: the failure
 * table's, unless the run was the crash_budget-th crash of the task, which
 * makes it a PoisonTask that is not retried. */
static int failure_of(omniq_t *oq, const omniq_task_t *t, const omniq__run_report_t *r, int64_t now,
                      decided_t *x, int *retryable, int *poisoned) {
  omniq__failure_t f = omniq__report_classify(r);
  int budget = oq->settings.crash_budget;
  char msg[512];
  x->d.crashes = t->crashes + (f.crash ? 1 : 0);
  if (f.crash && budget > 0 && x->d.crashes >= budget) {
    snprintf(msg, sizeof msg, "crashed the run %d times (crash_budget %d); last: %s: %s",
             x->d.crashes, budget, f.error_type, r->message != NULL ? r->message : "");
    x->error = omniq_task_error_new("PoisonTask", msg, now, r->traceback, t->attempts, 0);
    *retryable = 0;
    *poisoned = 1;
  } else {
    x->error = omniq_task_error_new(f.error_type, r->message, now, r->traceback, t->attempts,
                                    f.retryable);
    *retryable = f.retryable;
  }
  if (x->error == NULL) return omniq__err(oq->id, OMNIQ_ENOMEM, "out of memory");
  return OMNIQ_OK;
}

/* When an interval or cron task runs next after a run that ended at now;
 * 0 for a task that does not repeat. A cron text that no longer parses (the
 * record was written by hand) or never matches again ends the task. */
static int64_t next_run(omniq_t *oq, const omniq_task_t *t, int64_t now) {
  char err[OMNIQ__ERRMSG_MAX];
  omniq__cron_t c;
  int64_t next;
  if (t->interval_ms > 0) return instant_after(now, t->interval_ms);
  if (t->cron == NULL) return 0;
  if (omniq__cron_parse(t->cron, &c, err, sizeof err) == OMNIQ_OK &&
      omniq__engine_cron_next(&c, now, &next) == OMNIQ_OK)
    return next;
  omniq__log(&oq->log, OMNIQ_LOG_ERROR, "task.cron_invalid", t->id,
             "cron '%.100s' gives no next run; the task ends here", t->cron);
  return 0;
}

/* Applies DESIGN §3 to a run of `t` that ended at `now` as r reports. A
 * lost run is retried at once: the lease already cost the wait. Interval
 * and cron tasks are re-armed here, on the same path as every other end of
 * a run, unless the run made the task a PoisonTask. */
static int decide(omniq_t *oq, const omniq_task_t *t, const omniq__run_report_t *r, int64_t now,
                  decided_t *x) {
  int ok = r->kind == OMNIQ__RUN_OK, retry = 0, retryable = 0, poisoned = 0;
  memset(x, 0, sizeof *x);
  x->d.id = t->id;
  x->d.token = t->token;
  x->d.crashes = t->crashes;
  x->d.queue = t->queue; /* lets a backend skip reading it back (storage ABI 7) */
  memcpy(x->result.task_id, t->id, OMNIQ_ID_SIZE);
  x->result.attempts = t->attempts;
  x->result.finished_at_ms = now;
  x->result.last_attempt_at_ms = t->started_at_ms;

  if (ok) {
    x->result.status = OMNIQ_SUCCESS;
    x->result.value = (char *)(r->value != NULL ? r->value : "null");
    x->event = "task.succeeded";
    x->d.runs = OMNIQ_RUNS_SUCCEEDED;
  } else {
    int rc = failure_of(oq, t, r, now, x, &retryable, &poisoned);
    if (rc != OMNIQ_OK) return rc;
    x->d.error = x->error;
    retry = retryable && t->attempts < t->max_retries;
    x->result.status = OMNIQ_FAILED;
    x->result.error = x->error;
    x->event = poisoned ? "task.poisoned" : "task.failed";
    x->d.runs = r->kind == OMNIQ__RUN_LOST ? OMNIQ_RUNS_LOST
                : retry                    ? OMNIQ_RUNS_RETRIED
                                           : OMNIQ_RUNS_FAILED;
  }

  if (retry) {
    x->d.next_status = OMNIQ_PENDING;
    x->d.eta_ms = r->kind == OMNIQ__RUN_LOST
                      ? now
                      : instant_after(now, omniq__engine_backoff_ms(oq->settings.retry_base_ms,
                                                                    oq->settings.retry_cap_ms,
                                                                    t->attempts, jitter_draw()));
    x->event = "task.retry";
    return OMNIQ_OK; /* a run that will be retried has no result */
  }
  x->d.result = &x->result;
  int64_t next = poisoned ? 0 : next_run(oq, t, now);
  if (next > 0) {
    x->d.next_status = OMNIQ_PENDING;
    x->d.eta_ms = next;
    x->d.reset_attempts = 1;
    x->d.crashes = 0;
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
    omniq__log(&oq->log, OMNIQ_LOG_INFO, x->event, t->id, "%s run done; next run at %s",
               t->cron != NULL ? "cron" : "interval", eta);
  } else if (x->error != NULL) {
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, x->event, t->id, "attempt %d of %d failed (%s)",
               t->attempts, t->max_retries, x->error->error_type);
  } else {
    omniq__log(&oq->log, OMNIQ_LOG_INFO, x->event, t->id, "attempt %d", t->attempts);
  }
}

/* A claim of up to max tasks from queues at now (nqueues 0: the default
 * queue); queues is borrowed for as long as req is used. */
static omniq_claim_req_t claim_req(omniq_t *oq, const char *const *queues, size_t nqueues,
                                   size_t max, int64_t now) {
  return (omniq_claim_req_t){
      .now_ms = now,
      .lease_until_ms = instant_after(now, oq->settings.lease_ms),
      .queues = nqueues > 0 ? queues : omniq__engine_default_queues,
      .nqueues = nqueues > 0 ? nqueues : 1,
      .max = max,
  };
}

static void log_claimed(omniq_t *oq, omniq_task_t *const *tasks, size_t n) {
  for (size_t i = 0; i < n; i++)
    omniq__log(&oq->log, OMNIQ_LOG_DEBUG, "task.claimed", tasks[i]->id, "attempt %d",
               tasks[i]->attempts);
}

/* The end of a run at now; with req, the claim that rides with it
 * (omniq__engine_finish_claim). */
static int finish_at(omniq_t *oq, const omniq_task_t *t, const omniq__run_report_t *r, int64_t now,
                     const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n, int *claimed) {
  decided_t x;
  int rc = decide(oq, t, r, now, &x);
  if (rc != OMNIQ_OK) return rc;
  rc = req != NULL ? omniq__store_finish_claim(oq, &x.d, req, out, n, claimed)
                   : omniq__store_finish(oq, &x.d);
  if (rc == OMNIQ_OK) {
    log_decision(oq, t, &x);
    if (x.d.result != NULL) omniq__wake(oq, OMNIQ__EV_RESULT);
    if (x.d.next_status == OMNIQ_PENDING) omniq__wake(oq, OMNIQ__EV_WORK);
    if (req != NULL) log_claimed(oq, *out, *n);
  }
  omniq_task_error_free(x.error);
  return rc;
}

int omniq__engine_finish(omniq_t *oq, const omniq_task_t *task, const omniq__run_report_t *r) {
  int64_t now;
  int rc = omniq__engine_clock_now(oq, &now);
  return rc == OMNIQ_OK ? finish_at(oq, task, r, now, NULL, NULL, NULL, NULL) : rc;
}

static void maybe_reap(omniq_t *oq, int64_t now);
static void maybe_retain(omniq_t *oq, int64_t now);

/* The chores a claim does first (lost leases, retention), then the claim's
 * request again from the clock read after them. A reap can wait long: on
 * PostgreSQL a lost task's row stays locked by the session of a host that
 * vanished mid-transaction until the server drops it (tcp_user_timeout).
 * Leases counted from before the chores were over, or nearly, when the
 * claim committed; the tasks were then recovered again at once, a second
 * lost run that made a task lost once before a PoisonTask. */
static void chores_then(omniq_t *oq, omniq_claim_req_t *req) {
  int64_t now;
  maybe_reap(oq, req->now_ms);
  maybe_retain(oq, req->now_ms);
  if (omniq__engine_clock_now(oq, &now) == OMNIQ_OK && now > req->now_ms)
    *req = claim_req(oq, req->queues, req->nqueues, req->max, now);
}

int omniq__engine_finish_claim(omniq_t *oq, const omniq_task_t *task, const omniq__run_report_t *r,
                               const char *const *queues, size_t nqueues, size_t max,
                               omniq_task_t ***out, size_t *n, int *claimed) {
  int64_t now;
  *out = NULL;
  *n = 0;
  *claimed = 0;
  int rc = omniq__engine_clock_now(oq, &now);
  if (rc != OMNIQ_OK) return rc;
  if (max == 0) return finish_at(oq, task, r, now, NULL, NULL, NULL, NULL);
  omniq_claim_req_t req = claim_req(oq, queues, nqueues, max, now);
  chores_then(oq, &req);
  return finish_at(oq, task, r, now, &req, out, n, claimed);
}

int omniq__engine_finish_many(omniq_t *oq, omniq_task_t *const *tasks,
                              const omniq__run_report_t *const *rs, size_t n, int *rcs,
                              const char *const *queues, size_t nqueues, size_t max,
                              omniq_task_t ***out, size_t *nout, int *claimed) {
  int64_t now;
  *out = NULL;
  *nout = 0;
  *claimed = 0;
  int rc = omniq__engine_clock_now(oq, &now);
  if (rc != OMNIQ_OK) return rc;
  decided_t *xs = omniq__calloc(n > 0 ? n : 1, sizeof *xs);
  omniq_decision_t *ds = omniq__calloc(n > 0 ? n : 1, sizeof *ds);
  size_t *at = omniq__calloc(n > 0 ? n : 1, sizeof *at); /* ds[k] is the run at[k] */
  int *drc = omniq__calloc(n > 0 ? n : 1, sizeof *drc);
  if (xs == NULL || ds == NULL || at == NULL || drc == NULL) {
    rc = omniq__err(oq->id, OMNIQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) rcs[i] = rc;
    goto done;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if ((rcs[i] = decide(oq, tasks[i], rs[i], now, &xs[i])) != OMNIQ_OK) continue;
    ds[k] = xs[i].d;
    at[k++] = i;
  }
  omniq_claim_req_t req = claim_req(oq, queues, nqueues, max, now);
  if (max > 0) chores_then(oq, &req);
  rc = omniq__store_finish_many(oq, ds, k, drc, max > 0 ? &req : NULL, out, nout, claimed);
  int results = 0, work = 0;
  for (size_t j = 0; j < k; j++) {
    size_t i = at[j];
    rcs[i] = drc[j];
    if (rcs[i] != OMNIQ_OK) continue;
    log_decision(oq, tasks[i], &xs[i]);
    results |= xs[i].d.result != NULL;
    work |= xs[i].d.next_status == OMNIQ_PENDING;
  }
  if (results) omniq__wake(oq, OMNIQ__EV_RESULT);
  if (work) omniq__wake(oq, OMNIQ__EV_WORK);
  if (*claimed) log_claimed(oq, *out, *nout);
done:
  for (size_t i = 0; xs != NULL && i < n; i++) omniq_task_error_free(xs[i].error);
  omniq__free(xs);
  omniq__free(ds);
  omniq__free(at);
  omniq__free(drc);
  return rc;
}

int omniq__engine_release(omniq_t *oq, const omniq_task_t *task) {
  int rc = omniq__store_release(oq, task->id, task->token);
  if (rc != OMNIQ_OK) return rc;
  omniq__log(&oq->log, OMNIQ_LOG_DEBUG, "task.released", task->id,
             "claimed but not started; given back (attempt %d undone)", task->attempts);
  omniq__wake(oq, OMNIQ__EV_WORK); /* due again, for any worker */
  return OMNIQ_OK;
}

int omniq__engine_extend(omniq_t *oq, const omniq_task_t *task) {
  int64_t now;
  int rc = omniq__engine_clock_now(oq, &now);
  if (rc != OMNIQ_OK) return rc;
  return omniq__store_extend_lease(oq, task->id, task->token,
                                   instant_after(now, oq->settings.lease_ms));
}

/* ---- lost leases and claims ---------------------------------------------- */

int omniq__engine_reap(omniq_t *oq, int *recovered) {
  int64_t now;
  int count = 0, rc;
  size_t n;
  if (recovered != NULL) *recovered = 0;
  if ((rc = omniq__engine_clock_now(oq, &now)) != OMNIQ_OK) return rc;
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
      if (finish_at(oq, lost[i], &r, now, NULL, NULL, NULL, NULL) == OMNIQ_OK) count++;
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
    names = omniq__engine_default_queues;
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
  int64_t now;
  *out = NULL;
  *n = 0;
  if (max == 0) return OMNIQ_OK;
  int rc = omniq__engine_clock_now(oq, &now);
  if (rc != OMNIQ_OK) return rc;
  omniq_claim_req_t req = claim_req(oq, queues, nqueues, max, now);
  chores_then(oq, &req);
  rc = omniq__store_claim(oq, &req, out, n);
  if (rc == OMNIQ_OK) log_claimed(oq, *out, *n);
  return rc;
}

/* ---- cancel and retention ------------------------------------------------ */

/* One storage step: the backend reads the task, cancels it and stores its
 * result (with the attempts it has at that moment) atomically. Reading the
 * task first here would let a claim land between the read and the cancel
 * and the result count one attempt too few. */
int omniq__engine_cancel(omniq_t *oq, const char *id) {
  int was = -1;
  int64_t now;
  int rc = omniq__engine_clock_now(oq, &now);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__store_cancel(oq, id, now, &was);
  if (rc == OMNIQ_ESTATE)
    return omniq__err(oq->id, OMNIQ_ESTATE, "task %s is %s and cannot be cancelled", id,
                      omniq_status_name(was));
  if (rc != OMNIQ_OK) return rc;
  omniq__log(&oq->log, OMNIQ_LOG_INFO, "task.cancelled", id, "was %s", omniq_status_name(was));
  omniq__wake(oq, OMNIQ__EV_RESULT);
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
  int64_t now;
  int rc = omniq__engine_clock_now(oq, &now);
  *count = 0;
  return rc == OMNIQ_OK ? omniq__engine_purge(oq, now - oq->settings.result_ttl_ms, count) : rc;
}

/* ---- by hand: retry and delete ------------------------------------------- */

/* The policy of a retry by hand: a fresh budget (the backend zeroes
 * attempts and crashes), due at eta (now when 0), same id. The task's key,
 * if it has one, must be free or still its own. */
int omniq__engine_retry(omniq_t *oq, const char *id, int64_t eta_ms) {
  int64_t now;
  char holder[OMNIQ_ID_SIZE];
  int was = -1;
  if (eta_ms < 0 || eta_ms > OMNIQ_TIME_MAX_MS)
    return omniq__err(oq->id, OMNIQ_EINVAL,
                      "retry %s: eta_ms %lld is out of range (0 = now; at most %lld, "
                      "9999-12-31T23:59:59.999Z)",
                      id, (long long)eta_ms, (long long)OMNIQ_TIME_MAX_MS);
  int rc = omniq__engine_clock_now(oq, &now);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__store_retry(oq, id, eta_ms > 0 ? eta_ms : now, now, &was, holder);
  if (rc == OMNIQ_ESTATE)
    return omniq__err(oq->id, rc, "task %s is %s; only FAILED and CANCELLED tasks are retried",
                      id, omniq_status_name(was));
  if (rc == OMNIQ_EEXISTS)
    return omniq__err(oq->id, rc, "task %s: its unique key is held by task %s now", id, holder);
  if (rc != OMNIQ_OK) return rc;
  omniq__log(&oq->log, OMNIQ_LOG_INFO, "task.retried", id, "by hand; was %s",
             omniq_status_name(was));
  omniq__wake(oq, OMNIQ__EV_WORK);
  return OMNIQ_OK;
}

int omniq__engine_delete(omniq_t *oq, const char *id) {
  int was = -1;
  int rc = omniq__store_delete(oq, id, &was);
  if (rc == OMNIQ_ESTATE)
    return omniq__err(oq->id, rc, "task %s is %s; cancel it before deleting it", id,
                      omniq_status_name(was));
  if (rc == OMNIQ_OK)
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "task.deleted", id, "was %s", omniq_status_name(was));
  return rc;
}

/* ---- retention of tasks --------------------------------------------------- */

int omniq__engine_purge_tasks(omniq_t *oq, int64_t before_ms, int64_t *count) {
  int64_t got = 0;
  int rc;
  *count = 0;
  do { /* batches keep each step short, so claims go on meanwhile */
    rc = omniq__store_purge_tasks(oq, before_ms, PURGE_BATCH, &got);
    if (rc == OMNIQ_OK) *count += got;
  } while (rc == OMNIQ_OK && got == PURGE_BATCH);
  if (*count > 0)
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "tasks.purged", NULL,
               "%lld finished task(s) older than the task ttl, with their results",
               (long long)*count);
  return rc;
}

int omniq__engine_purge_expired_tasks(omniq_t *oq, int64_t *count) {
  int64_t now;
  *count = 0;
  if (oq->settings.task_ttl_ms == 0) return OMNIQ_OK; /* kept forever */
  int rc = omniq__engine_clock_now(oq, &now);
  return rc == OMNIQ_OK ? omniq__engine_purge_tasks(oq, now - oq->settings.task_ttl_ms, count)
                        : rc;
}

/* Retention while workers run: this handle looks at most once a minute of
 * store time, and the store's chore lets one process of all that share it
 * do the work in each minute. */
static void maybe_retain(omniq_t *oq, int64_t now) {
  int due, won = 0;
  int64_t count;
  if (oq->settings.task_ttl_ms == 0 || oq->ops->abi_version < 3) return;
  pthread_mutex_lock(&oq->reap_lock);
  due = now >= oq->next_retain_ms;
  if (due) oq->next_retain_ms = now + RETAIN_PERIOD_MS;
  pthread_mutex_unlock(&oq->reap_lock);
  if (due && omniq__store_claim_chore(oq, "retention", now, now + RETAIN_PERIOD_MS, &won) ==
                 OMNIQ_OK &&
      won)
    omniq__engine_purge_tasks(oq, now - oq->settings.task_ttl_ms, &count);
}
