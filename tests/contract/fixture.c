/* SPDX-License-Identifier: MIT */
/* The contract's fixture, record builders and operation helpers (see
 * suite.h). */
#include "suite.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const omniq_storage_ops_t *ct_ops;
const omniq_contract_env_t *ct_env;

int ct_setup(void **state) {
  ct_fx_t *fx = calloc(1, sizeof *fx);
  if (fx == NULL) return -1;
  omniq_settings_init(&fx->settings);
  snprintf(fx->settings.backend, sizeof fx->settings.backend, "%s", ct_ops->name);
  fx->settings.log_level = OMNIQ_LOG_ERROR;
  fx->settings.lease_ms = LEASE_MS;
  if (ct_env->setup(ct_env->userdata, &fx->settings) != 0) {
    print_error("contract: the environment could not make a store\n");
    free(fx);
    return -1;
  }
  int rc = ct_ops->open(&fx->settings, &fx->be, fx->err, ERRLEN);
  if (rc != OMNIQ_OK) {
    print_error("open %s: %s: %s\n", ct_ops->name, omniq_err_name(rc), fx->err);
    if (ct_env->teardown != NULL) ct_env->teardown(ct_env->userdata, &fx->settings);
    free(fx);
    return -1;
  }
  *state = fx;
  return 0;
}

int ct_teardown(void **state) {
  ct_fx_t *fx = *state;
  if (fx == NULL) return 0;
  if (fx->be != NULL) ct_ops->close(fx->be);
  if (ct_env->teardown != NULL) ct_env->teardown(ct_env->userdata, &fx->settings);
  free(fx);
  return 0;
}

void ct_reopen(ct_fx_t *fx) {
  ct_ops->close(fx->be);
  fx->be = NULL;
  OK(fx, ct_ops->open(&fx->settings, &fx->be, fx->err, ERRLEN));
}

/* ---- records ------------------------------------------------------------- */

void ct_new_id(char out[OMNIQ_ID_SIZE]) {
  static _Atomic unsigned long long next;
  unsigned long long n = atomic_fetch_add(&next, 1);
  /* A UUIDv7 layout at the contract's fixed time, with a counter for the
   * random part: fixed-width lowercase hex, so text order is counter order. */
  snprintf(out, OMNIQ_ID_SIZE, "%08x-%04x-7000-8000-%012llx", (unsigned)(NOW >> 16),
           (unsigned)(NOW & 0xFFFF), n & 0xFFFFFFFFFFFFULL);
}

omniq_task_t *ct_task(const char *queue, int priority, int64_t eta) {
  omniq_task_t tmpl = {.func = "tests.echo",
                       .queue = (char *)queue,
                       .args = "[1,\"two\",{\"three\":3}]",
                       .kwargs = "{\"k\":\"v\"}",
                       .status = OMNIQ_PENDING,
                       .priority = priority,
                       .max_retries = 3,
                       .eta_ms = eta,
                       .timeout_ms = 5000,
                       .created_at_ms = NOW - 1000};
  ct_new_id(tmpl.id);
  omniq_task_t *t = omniq_task_dup(&tmpl); /* the library's allocator, for omniq_task_free */
  assert_non_null(t);
  return t;
}

omniq_task_t *ct_task_keyed(const char *queue, const char *key, int64_t for_ms) {
  omniq_task_t *t = ct_task(queue, 0, NOW);
  omniq_task_t tmpl = *t;
  tmpl.unique_key = (char *)key;
  tmpl.unique_for_ms = for_ms;
  omniq_task_t *k = omniq_task_dup(&tmpl); /* the library's allocator, for omniq_task_free */
  assert_non_null(k);
  omniq_task_free(t);
  return k;
}

omniq_task_error_t *ct_error(const char *type, int retry_count, int retryable) {
  omniq_task_error_t *e = omniq_task_error_new(type, "it went wrong", NOW + 5,
                                               "trace line 1\nline 2", retry_count, retryable);
  assert_non_null(e);
  return e;
}

omniq_result_t *ct_result(const char *id, int status, const char *value,
                          const omniq_task_error_t *error, int attempts, int64_t finished_at) {
  omniq_result_t tmpl = {.status = status,
                         .value = (char *)value,
                         .error = (omniq_task_error_t *)error,
                         .attempts = attempts,
                         .finished_at_ms = finished_at,
                         .last_attempt_at_ms = finished_at - 1};
  memcpy(tmpl.task_id, id, OMNIQ_ID_SIZE);
  omniq_result_t *r = omniq_result_dup(&tmpl);
  assert_non_null(r);
  return r;
}

void ct_tasks_free(omniq_task_t **tasks, size_t n) {
  for (size_t i = 0; i < n; i++) omniq_task_free(tasks[i]);
  free(tasks);
}

void ct_assert_as_enqueued(const omniq_task_t *got, const omniq_task_t *want) {
  th_assert_as_enqueued(got, want);
}

/* ---- operations ---------------------------------------------------------- */

int ct_enqueue(ct_fx_t *fx, omniq_task_t **tasks, size_t n) {
  return ct_ops->enqueue(fx->be, tasks, n, fx->err, ERRLEN);
}

void ct_enqueue1(ct_fx_t *fx, omniq_task_t *t) { OK(fx, ct_enqueue(fx, &t, 1)); }

int ct_claim_q(ct_fx_t *fx, const char *const *queues, size_t nqueues, int64_t now, size_t max,
               omniq_task_t ***out, size_t *n) {
  omniq_claim_req_t req = {.now_ms = now,
                           .lease_until_ms = now + LEASE_MS,
                           .queues = queues,
                           .nqueues = nqueues,
                           .max = max};
  return ct_ops->claim(fx->be, &req, out, n, fx->err, ERRLEN);
}

int ct_claim(ct_fx_t *fx, int64_t now, size_t max, omniq_task_t ***out, size_t *n) {
  static const char *const def[] = {OMNIQ_DEFAULT_QUEUE};
  return ct_claim_q(fx, def, 1, now, max, out, n);
}

omniq_task_t *ct_claim_one(ct_fx_t *fx, const char *id, int64_t now) {
  omniq_task_t **got = NULL;
  size_t n = 0;
  OK(fx, ct_claim(fx, now, 1, &got, &n));
  assert_int_equal(n, 1);
  assert_string_equal(got[0]->id, id);
  omniq_task_t *t = got[0];
  free(got);
  return t;
}

void ct_assert_nothing_due(ct_fx_t *fx, int64_t now) {
  omniq_task_t **got = NULL;
  size_t n = 99;
  OK(fx, ct_claim(fx, now, 10, &got, &n));
  assert_int_equal(n, 0);
  ct_tasks_free(got, n);
}

omniq_task_t *ct_get(ct_fx_t *fx, const char *id) {
  omniq_task_t *t = NULL;
  OK(fx, ct_ops->get_task(fx->be, id, &t, fx->err, ERRLEN));
  assert_non_null(t);
  return t;
}

omniq_result_t *ct_get_result(ct_fx_t *fx, const char *id) {
  omniq_result_t *r = NULL;
  OK(fx, ct_ops->get_result(fx->be, id, &r, fx->err, ERRLEN));
  assert_non_null(r);
  return r;
}

void ct_assert_no_result(ct_fx_t *fx, const char *id) {
  omniq_result_t *r = NULL;
  FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->get_result(fx->be, id, &r, fx->err, ERRLEN));
  assert_null(r);
}

omniq_decision_t ct_decision(const omniq_task_t *claimed, int next_status) {
  /* The queue as the engine names it (storage ABI 7): from the claim. */
  omniq_decision_t d = {.id = claimed->id,
                        .token = claimed->token,
                        .next_status = next_status,
                        .queue = claimed->queue};
  return d;
}

int ct_finish(ct_fx_t *fx, const omniq_decision_t *d) {
  return ct_ops->finish(fx->be, d, fx->err, ERRLEN);
}

int ct_cancel(ct_fx_t *fx, const char *id, int64_t finished_at, int *prev_status) {
  return ct_ops->cancel(fx->be, id, finished_at, prev_status, fx->err, ERRLEN);
}

void ct_counts(ct_fx_t *fx, int64_t c[OMNIQ_STATUS_COUNT]) {
  OK(fx, ct_ops->count_by_status(fx->be, c, fx->err, ERRLEN));
}

/* ---- storage ABI 3 --------------------------------------------------------- */

void ct_end_run(ct_fx_t *fx, const omniq_task_t *claimed, int next_status, int64_t at, int runs) {
  omniq_decision_t d = ct_decision(claimed, next_status);
  omniq_task_error_t *e = next_status == OMNIQ_SUCCESS ? NULL : ct_error("E", claimed->attempts, 1);
  omniq_result_t *r = NULL;
  if (next_status == OMNIQ_PENDING) {
    d.eta_ms = at;
  } else {
    r = ct_result(claimed->id, next_status, next_status == OMNIQ_SUCCESS ? "1" : NULL, e,
                  claimed->attempts, at);
    d.result = r;
  }
  d.error = e;
  d.runs = runs;
  OK(fx, ct_finish(fx, &d));
  omniq_result_free(r);
  omniq_task_error_free(e);
}

omniq_task_t *ct_bring(ct_fx_t *fx, omniq_task_t *t, int status, int64_t at) {
  char id[OMNIQ_ID_SIZE];
  const char *q[1] = {t->queue};
  static int bumped;
  t->priority = 1000000 + ++bumped; /* claimed before anything else due in its queue */
  memcpy(id, t->id, OMNIQ_ID_SIZE);
  ct_enqueue1(fx, t);
  if (status == OMNIQ_CANCELLED) OK(fx, ct_cancel(fx, id, at, NULL));
  if (status == OMNIQ_RUNNING || status == OMNIQ_SUCCESS || status == OMNIQ_FAILED) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    OK(fx, ct_claim_q(fx, q, 1, at, 1, &got, &n));
    assert_int_equal(n, 1);
    assert_string_equal(got[0]->id, id);
    if (status != OMNIQ_RUNNING)
      ct_end_run(fx, got[0], status, at,
                 status == OMNIQ_SUCCESS ? OMNIQ_RUNS_SUCCEEDED : OMNIQ_RUNS_FAILED);
    ct_tasks_free(got, n);
  }
  omniq_task_free(t);
  return ct_get(fx, id);
}

int ct_list(ct_fx_t *fx, const omniq_list_req_t *req, omniq_task_t ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  return ct_ops->list(fx->be, req, out, n, fx->err, ERRLEN);
}

omniq_queue_info_t ct_queue(ct_fx_t *fx, const char *queue, int64_t now) {
  omniq_queue_info_t *q = NULL, copy;
  size_t n = 0;
  OK(fx, ct_ops->queue_stats(fx->be, queue, now, &q, &n, fx->err, ERRLEN));
  assert_int_equal(n, 1);
  assert_string_equal(q->name, queue);
  copy = *q;
  free(q);
  return copy;
}
