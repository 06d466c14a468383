/* SPDX-License-Identifier: MIT */
/* Contract: a claim counts one attempt and one token, takes due tasks of the
 * named queues only, in priority, eta and insertion order, at most max. */
#include "suite.h"

#include <stdlib.h>
#include <string.h>

static void test_claim_counts_one_attempt_and_one_token(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW - 10);
  ct_enqueue1(fx, t);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW);
  assert_int_equal(c->status, OMNIQ_RUNNING);
  assert_int_equal(c->attempts, 1);
  assert_int_equal(c->started_at_ms, NOW);
  assert_int_equal(c->lease_until_ms, NOW + LEASE_MS);
  assert_string_equal(c->args, t->args);
  assert_string_equal(c->kwargs, t->kwargs);
  assert_string_equal(c->func, t->func);

  /* What the claim returned is what was stored. */
  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_RUNNING);
  assert_int_equal(got->attempts, 1);
  assert_int_equal(got->token, c->token);
  assert_int_equal(got->started_at_ms, NOW);
  assert_int_equal(got->lease_until_ms, NOW + LEASE_MS);
  ct_assert_nothing_due(fx, NOW + 1000); /* a running task is not claimed again */

  /* A second run after a retry counts exactly one more, with a new token. */
  omniq_decision_t d = ct_decision(c, OMNIQ_PENDING);
  d.eta_ms = NOW + 50;
  OK(fx, ct_finish(fx, &d));
  omniq_task_t *again = ct_get(fx, t->id);
  assert_int_equal(again->attempts, 1); /* failing does not count */
  omniq_task_t *c2 = ct_claim_one(fx, t->id, NOW + 50);
  assert_int_equal(c2->attempts, 2);
  assert_int_equal(c2->token, c->token + 1);
  assert_int_equal(c2->started_at_ms, NOW + 50);
  omniq_task_free(c2);
  omniq_task_free(again);
  omniq_task_free(got);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_claim_respects_eta(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW + 5000);
  ct_enqueue1(fx, t);
  ct_assert_nothing_due(fx, NOW);
  ct_assert_nothing_due(fx, NOW + 4999);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW + 5000);
  omniq_task_free(c);
  omniq_task_free(t);
}

typedef struct {
  int priority;
  int64_t eta;
  size_t index;
} order_key_t;

static int order_cmp(const void *pa, const void *pb) {
  const order_key_t *a = pa, *b = pb;
  if (a->priority != b->priority) return a->priority > b->priority ? -1 : 1;
  if (a->eta != b->eta) return a->eta < b->eta ? -1 : 1;
  return (a->index > b->index) - (a->index < b->index);
}

#define ORDER_N 1000
#define ORDER_BATCH 7

static void test_claim_order_is_priority_then_eta_then_insertion(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t **tasks = calloc(ORDER_N, sizeof *tasks);
  order_key_t *due = calloc(ORDER_N, sizeof *due);
  size_t ndue = 0, nclaimed = 0;
  uint64_t rng = 0x9E3779B97F4A7C15ULL;
  assert_true(tasks && due);
  for (size_t i = 0; i < ORDER_N; i++) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    int priority = (int)(rng % 5) - 2;
    /* Few distinct etas so ties reach the insertion-order rule; one task in
     * ten is not yet due and must be left alone. */
    int64_t eta =
        i % 10 == 3 ? NOW + 1 + (int64_t)(rng >> 20) % 100 : NOW - (int64_t)((rng >> 8) % 4) * 1000;
    tasks[i] = ct_task("default", priority, eta);
    if (eta <= NOW) due[ndue++] = (order_key_t){priority, eta, i};
  }
  OK(fx, ct_enqueue(fx, tasks, ORDER_N));
  qsort(due, ndue, sizeof *due, order_cmp);

  for (;;) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    OK(fx, ct_claim(fx, NOW, ORDER_BATCH, &got, &n));
    assert_true(n <= ORDER_BATCH);
    for (size_t i = 0; i < n; i++, nclaimed++) {
      assert_true(nclaimed < ndue);
      if (strcmp(got[i]->id, tasks[due[nclaimed].index]->id) != 0)
        fail_msg(
            "claim %zu: got %s (priority %d, eta %lld), expected task %zu (priority %d, "
            "eta %lld)",
            nclaimed, got[i]->id, got[i]->priority, (long long)got[i]->eta_ms, due[nclaimed].index,
            due[nclaimed].priority, (long long)due[nclaimed].eta);
    }
    ct_tasks_free(got, n);
    if (n == 0) break;
  }
  assert_int_equal(nclaimed, ndue);
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], ORDER_N - ndue);
  assert_int_equal(c[OMNIQ_RUNNING], ndue);
  for (size_t i = 0; i < ORDER_N; i++) omniq_task_free(tasks[i]);
  free(tasks);
  free(due);
}

static void test_claim_returns_at_most_max(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *tasks[10];
  for (int i = 0; i < 10; i++) tasks[i] = ct_task("default", 0, NOW);
  OK(fx, ct_enqueue(fx, tasks, 10));
  size_t sizes[] = {3, 1, 4, 10, 10}, want[] = {3, 1, 4, 2, 0};
  for (size_t k = 0; k < 5; k++) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    OK(fx, ct_claim(fx, NOW, sizes[k], &got, &n));
    assert_int_equal(n, want[k]);
    ct_tasks_free(got, n);
  }
  for (int i = 0; i < 10; i++) omniq_task_free(tasks[i]);
}

static void test_claim_takes_only_named_queues(void **state) {
  ct_fx_t *fx = *state;
  static const char *const names[] = {"alpha", "beta", "gamma"};
  omniq_task_t *tasks[9];
  for (int i = 0; i < 9; i++) tasks[i] = ct_task(names[i % 3], i, NOW);
  OK(fx, ct_enqueue(fx, tasks, 9));

  static const char *const ag[] = {"alpha", "gamma"};
  omniq_task_t **got = NULL;
  size_t n = 0;
  OK(fx, ct_claim_q(fx, ag, 2, NOW, 100, &got, &n));
  /* Priority order across both queues: tasks 8, 6, 5, 3, 2, 0. */
  static const int want[] = {8, 6, 5, 3, 2, 0};
  assert_int_equal(n, 6);
  for (size_t i = 0; i < n; i++) assert_string_equal(got[i]->id, tasks[want[i]]->id);
  ct_tasks_free(got, n);

  static const char *const nobody[] = {"delta"};
  OK(fx, ct_claim_q(fx, nobody, 1, NOW, 100, &got, &n));
  assert_int_equal(n, 0);
  ct_tasks_free(got, n);
  ct_assert_nothing_due(fx, NOW); /* nothing is in "default" */

  static const char *const b[] = {"beta"};
  OK(fx, ct_claim_q(fx, b, 1, NOW, 100, &got, &n));
  assert_int_equal(n, 3);
  for (size_t i = 0; i < n; i++) assert_string_equal(got[i]->queue, "beta");
  ct_tasks_free(got, n);
  for (int i = 0; i < 9; i++) omniq_task_free(tasks[i]);
}

/* The engine always names its queues (the default one included): a claim
 * naming none is a caller's mistake, not "claim from the default queue". */
static void test_claim_naming_no_queue_is_invalid_and_claims_nothing(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  omniq_task_t **got = NULL;
  size_t n = 0;
  ct_enqueue1(fx, t);
  FAILS(fx, OMNIQ_EINVAL, ct_claim_q(fx, NULL, 0, NOW, 10, &got, &n));
  assert_int_equal(n, 0);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW); /* still there */
  omniq_task_free(c);
  omniq_task_free(t);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_claim_counts_one_attempt_and_one_token),
    CT_TEST(test_claim_respects_eta),
    CT_TEST(test_claim_order_is_priority_then_eta_then_insertion),
    CT_TEST(test_claim_returns_at_most_max),
    CT_TEST(test_claim_takes_only_named_queues),
    CT_TEST(test_claim_naming_no_queue_is_invalid_and_claims_nothing),
};

const ct_section_t ct_section_claim = {tests, sizeof tests / sizeof tests[0], 2};
