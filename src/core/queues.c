/* SPDX-License-Identifier: MIT */
/* Queues as a whole: pause and resume, rate limits, and what the store
 * knows of each queue (omniq_queue_info, omniq_stats).
 *
 * The settings of a queue live in the store, never in a handle, so every
 * process sharing it obeys them: a claim reads them inside its own atomic
 * step (storage ABI 3). This module checks the arguments and words the
 * log; the backend does the rest.
 *
 * Reading: a backend reports, per queue, its counts by status, the eta of
 * its oldest due task and its running totals, as one record
 * (omniq_queue_info_t, in omniq/storage.h). The engine stamps each with the
 * time of the reading, so omniq_queue_info_oldest_due_ms is an age the
 * caller can show as is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "core/engine.h"
#include "core/handle.h"
#include "core/store.h"
#include "core/wake.h"

#define RATE_PERIOD_MAX_MS INT64_C(86400000)

struct omniq_stats {
  omniq_queue_info_t *q;
  size_t n;
};

static int set_paused(omniq_t *oq, const char *queue, int paused) {
  const char *what = paused ? "omniq_queue_pause" : "omniq_queue_resume";
  int rc;
  if (oq == NULL) return omniq__err(0, OMNIQ_EINVAL, "%s: handle is NULL", what);
  if ((rc = omniq__engine_check_queue(oq, what, queue)) != OMNIQ_OK) return rc;
  if ((rc = omniq__store_set_paused(oq, queue, paused)) != OMNIQ_OK) return rc;
  omniq__log(&oq->log, OMNIQ_LOG_INFO, paused ? "queue.paused" : "queue.resumed", NULL, "queue=%s",
             queue);
  if (!paused) omniq__wake(oq, OMNIQ__EV_WORK); /* its due tasks may be claimed now */
  return OMNIQ_OK;
}

int omniq_queue_pause(omniq_t *oq, const char *queue) { return set_paused(oq, queue, 1); }

int omniq_queue_resume(omniq_t *oq, const char *queue) { return set_paused(oq, queue, 0); }

int omniq_queue_set_rate(omniq_t *oq, const char *queue, int64_t limit, int64_t period_ms) {
  const char *what = "omniq_queue_set_rate";
  int rc;
  if (oq == NULL) return omniq__err(0, OMNIQ_EINVAL, "%s: handle is NULL", what);
  if ((rc = omniq__engine_check_queue(oq, what, queue)) != OMNIQ_OK) return rc;
  if (limit < 0 || limit > INT32_MAX)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: limit %lld is not 0 (none) to %d", what,
                      (long long)limit, INT32_MAX);
  if (limit > 0 && (period_ms < 1 || period_ms > RATE_PERIOD_MAX_MS))
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: period_ms %lld is not 1 to %lld (one day)",
                      what, (long long)period_ms, (long long)RATE_PERIOD_MAX_MS);
  if (limit == 0) period_ms = 0;
  if ((rc = omniq__store_set_rate(oq, queue, limit, period_ms)) != OMNIQ_OK) return rc;
  omniq__wake(oq, OMNIQ__EV_WORK); /* a raised or removed limit may let tasks start now */
  if (limit > 0)
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "queue.rate_set", NULL,
               "queue=%s limit=%lld period_ms=%lld", queue, (long long)limit,
               (long long)period_ms);
  else
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "queue.rate_removed", NULL, "queue=%s", queue);
  return OMNIQ_OK;
}

/* ---- reading ---------------------------------------------------------------- */

int omniq_queue_info(omniq_t *oq, const char *queue, omniq_queue_info_t **out) {
  const char *what = "omniq_queue_info";
  int64_t now;
  size_t n = 0;
  int rc;
  if (oq == NULL) return omniq__err(0, OMNIQ_EINVAL, "%s: handle is NULL", what);
  if (out == NULL) return omniq__err(oq->id, OMNIQ_EINVAL, "%s: out is NULL", what);
  *out = NULL;
  if ((rc = omniq__engine_check_queue(oq, what, queue)) != OMNIQ_OK) return rc;
  now = omniq__now(&oq->settings);
  if ((rc = omniq__store_queue_stats(oq, queue, now, out, &n)) != OMNIQ_OK) return rc;
  if (n != 1 || strcmp((*out)->name, queue) != 0) {
    free(*out);
    *out = NULL;
    return omniq__err(oq->id, OMNIQ_ESTORAGE, "%s: the %s backend did not report queue %s", what,
                      oq->ops->name, queue);
  }
  (*out)->as_of_ms = now;
  return OMNIQ_OK;
}

void omniq_queue_info_free(omniq_queue_info_t *q) { free(q); }

const char *omniq_queue_info_name(const omniq_queue_info_t *q) { return q ? q->name : NULL; }
int omniq_queue_info_paused(const omniq_queue_info_t *q) { return q ? q->paused : 0; }

int64_t omniq_queue_info_count(const omniq_queue_info_t *q, int status) {
  return q != NULL && status >= 0 && status < OMNIQ_STATUS_COUNT ? q->counts[status] : 0;
}

int64_t omniq_queue_info_oldest_due_ms(const omniq_queue_info_t *q) {
  if (q == NULL || q->oldest_due_eta_ms == 0 || q->as_of_ms < q->oldest_due_eta_ms) return 0;
  return q->as_of_ms - q->oldest_due_eta_ms;
}

int64_t omniq_queue_info_rate_limit(const omniq_queue_info_t *q) { return q ? q->rate_limit : 0; }
int64_t omniq_queue_info_rate_period_ms(const omniq_queue_info_t *q) {
  return q ? q->rate_period_ms : 0;
}

int64_t omniq_queue_info_runs(const omniq_queue_info_t *q, int runs) {
  return q != NULL && runs >= 0 && runs < OMNIQ_RUNS_KINDS ? q->runs[runs] : 0;
}

int omniq_stats(omniq_t *oq, omniq_stats_t **out) {
  omniq_stats_t *s;
  int64_t now;
  int rc;
  if (oq == NULL) return omniq__err(0, OMNIQ_EINVAL, "omniq_stats: handle is NULL");
  if (out == NULL) return omniq__err(oq->id, OMNIQ_EINVAL, "omniq_stats: out is NULL");
  *out = NULL;
  if ((s = omniq__calloc(1, sizeof *s)) == NULL)
    return omniq__err(oq->id, OMNIQ_ENOMEM, "omniq_stats: out of memory");
  now = omniq__now(&oq->settings);
  if ((rc = omniq__store_queue_stats(oq, NULL, now, &s->q, &s->n)) != OMNIQ_OK) {
    omniq__free(s);
    return rc;
  }
  for (size_t i = 0; i < s->n; i++) s->q[i].as_of_ms = now;
  *out = s;
  return OMNIQ_OK;
}

size_t omniq_stats_count(const omniq_stats_t *s) { return s != NULL ? s->n : 0; }

const omniq_queue_info_t *omniq_stats_queue(const omniq_stats_t *s, size_t i) {
  return s != NULL && i < s->n ? &s->q[i] : NULL;
}

void omniq_stats_free(omniq_stats_t *s) {
  if (s == NULL) return;
  free(s->q);
  omniq__free(s);
}
