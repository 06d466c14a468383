/* SPDX-License-Identifier: MIT */
/* Contract (storage ABI 3): what finish and cancel now keep (finished_at,
 * crashes), retry by hand, delete, and retention (purge_tasks). */
#include "suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_finish_keeps_crashes_and_sets_finished_at_only_when_terminal(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), OMNIQ_RUNNING, NOW + 1);
  omniq_decision_t d = ct_decision(t, OMNIQ_PENDING);
  d.eta_ms = NOW + 5;
  d.crashes = 1;
  d.runs = OMNIQ_RUNS_LOST;
  OK(fx, ct_finish(fx, &d));
  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->crashes, 1);
  assert_int_equal(got->finished_at_ms, 0);
  omniq_task_t *again = ct_claim_one(fx, t->id, NOW + 5);
  assert_int_equal(again->crashes, 1); /* a claim keeps it */
  omniq_result_t *r = ct_result(t->id, OMNIQ_FAILED, NULL, NULL, 2, NOW + 9);
  d = ct_decision(again, OMNIQ_FAILED);
  d.result = r;
  d.crashes = 2;
  d.runs = OMNIQ_RUNS_FAILED;
  OK(fx, ct_finish(fx, &d));
  omniq_task_free(got);
  got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_FAILED);
  assert_int_equal(got->crashes, 2);
  assert_int_equal(got->finished_at_ms, NOW + 9);
  omniq_task_free(got);
  omniq_result_free(r);
  omniq_task_free(again);
  omniq_task_free(t);
}

static void test_cancel_sets_finished_at(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), OMNIQ_CANCELLED, NOW + 77);
  assert_int_equal(t->status, OMNIQ_CANCELLED);
  assert_int_equal(t->finished_at_ms, NOW + 77);
  omniq_task_free(t);
}

/* Retry by hand: same id, fresh budget, the new eta; the token, the last
 * error and the stored result stay until the next run replaces them. */
static void test_retry_brings_a_failed_task_back_with_a_fresh_budget(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), OMNIQ_FAILED, NOW + 10);
  omniq_result_t *before = ct_get_result(fx, t->id);
  int prev = -1;
  char holder[OMNIQ_ID_SIZE] = "x";
  OK(fx, ct_ops->retry(fx->be, t->id, NOW + 500, NOW + 20, &prev, holder, fx->err, ERRLEN));
  assert_int_equal(prev, OMNIQ_FAILED);
  assert_string_equal(holder, "");
  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->attempts, 0);
  assert_int_equal(got->crashes, 0);
  assert_int_equal(got->finished_at_ms, 0);
  assert_int_equal(got->eta_ms, NOW + 500);
  assert_int_equal(got->token, t->token);
  th_assert_error_equal(got->last_error, t->last_error);
  omniq_result_t *kept = ct_get_result(fx, t->id);
  th_assert_result_equal(kept, before);
  ct_assert_nothing_due(fx, NOW + 499);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW + 500);
  assert_int_equal(c->attempts, 1);
  assert_int_equal(c->token, t->token + 1);
  omniq_task_free(c);
  omniq_task_free(got);
  omniq_result_free(kept);
  omniq_result_free(before);
  omniq_task_free(t);
}

static void test_retry_brings_a_cancelled_task_back(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), OMNIQ_CANCELLED, NOW + 10);
  int prev = -1;
  OK(fx, ct_ops->retry(fx->be, t->id, NOW + 11, NOW + 11, &prev, NULL, fx->err, ERRLEN));
  assert_int_equal(prev, OMNIQ_CANCELLED);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW + 11);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_retry_refuses_what_is_not_failed_or_cancelled(void **state) {
  ct_fx_t *fx = *state;
  const int sts[] = {OMNIQ_PENDING, OMNIQ_RUNNING, OMNIQ_SUCCESS};
  for (size_t i = 0; i < 3; i++) {
    omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), sts[i], NOW + 1);
    int prev = -1;
    FAILS(fx, OMNIQ_ESTATE,
          ct_ops->retry(fx->be, t->id, NOW + 2, NOW + 2, &prev, NULL, fx->err, ERRLEN));
    assert_int_equal(prev, sts[i]);
    omniq_task_t *got = ct_get(fx, t->id);
    assert_int_equal(got->status, sts[i]);
    assert_int_equal(got->token, t->token);
    omniq_task_free(got);
    omniq_task_free(t);
  }
  char unknown[OMNIQ_ID_SIZE];
  ct_new_id(unknown);
  FAILS(fx, OMNIQ_ENOTFOUND,
        ct_ops->retry(fx->be, unknown, NOW, NOW, NULL, NULL, fx->err, ERRLEN));
}

static void test_delete_removes_a_terminal_task_and_its_result(void **state) {
  ct_fx_t *fx = *state;
  const int sts[] = {OMNIQ_SUCCESS, OMNIQ_FAILED, OMNIQ_CANCELLED};
  for (size_t i = 0; i < 3; i++) {
    omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), sts[i], NOW + 1);
    omniq_task_t *got = NULL;
    int prev = -1;
    OK(fx, ct_ops->delete_task(fx->be, t->id, &prev, fx->err, ERRLEN));
    assert_int_equal(prev, sts[i]);
    FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->get_task(fx->be, t->id, &got, fx->err, ERRLEN));
    ct_assert_no_result(fx, t->id);
    FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->delete_task(fx->be, t->id, NULL, fx->err, ERRLEN));
    omniq_task_free(t);
  }
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  for (int st = 0; st < OMNIQ_STATUS_COUNT; st++) assert_int_equal(c[st], 0);
}

static void test_delete_refuses_pending_and_running_tasks(void **state) {
  ct_fx_t *fx = *state;
  const int sts[] = {OMNIQ_PENDING, OMNIQ_RUNNING};
  for (size_t i = 0; i < 2; i++) {
    omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), sts[i], NOW + 1);
    int prev = -1;
    FAILS(fx, OMNIQ_ESTATE, ct_ops->delete_task(fx->be, t->id, &prev, fx->err, ERRLEN));
    assert_int_equal(prev, sts[i]);
    omniq_task_t *got = ct_get(fx, t->id);
    assert_int_equal(got->status, sts[i]);
    omniq_task_free(got);
    omniq_task_free(t);
  }
}

/* Retention: exactly the terminal tasks that finished before the cutoff,
 * with their results, in batches of max; everything else stays. */
static void test_purge_tasks_removes_exactly_terminal_tasks_finished_before_cutoff(void **state) {
  ct_fx_t *fx = *state;
  enum { OLD = 7 };
  char old[OLD][OMNIQ_ID_SIZE];
  const int sts[] = {OMNIQ_SUCCESS, OMNIQ_FAILED, OMNIQ_CANCELLED};
  for (int i = 0; i < OLD; i++) {
    omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), sts[i % 3], NOW + 100 + i);
    memcpy(old[i], t->id, OMNIQ_ID_SIZE);
    omniq_task_free(t);
  }
  /* Finished at the cutoff: stays. Not finished: stays. */
  omniq_task_t *edge = ct_bring(fx, ct_task("default", 0, NOW), OMNIQ_SUCCESS, NOW + 200);
  omniq_task_t *running = ct_bring(fx, ct_task("default", 0, NOW), OMNIQ_RUNNING, NOW + 1);
  omniq_task_t *pending = ct_bring(fx, ct_task("default", 0, NOW), OMNIQ_PENDING, NOW + 1);
  int64_t n = -1, total = 0;
  OK(fx, ct_ops->purge_tasks(fx->be, NOW + 200, 3, &n, fx->err, ERRLEN));
  assert_int_equal(n, 3); /* a batch of max */
  total += n;
  do {
    OK(fx, ct_ops->purge_tasks(fx->be, NOW + 200, 3, &n, fx->err, ERRLEN));
    total += n;
  } while (n == 3);
  assert_int_equal(total, OLD);
  for (int i = 0; i < OLD; i++) {
    omniq_task_t *gone = NULL;
    FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->get_task(fx->be, old[i], &gone, fx->err, ERRLEN));
    ct_assert_no_result(fx, old[i]);
  }
  omniq_task_t *kept[3] = {ct_get(fx, edge->id), ct_get(fx, running->id), ct_get(fx, pending->id)};
  omniq_result_t *r = ct_get_result(fx, edge->id);
  OK(fx, ct_ops->purge_tasks(fx->be, NOW + 200, 3, &n, fx->err, ERRLEN));
  assert_int_equal(n, 0);
  OK(fx, ct_ops->purge_tasks(fx->be, NOW + 201, 3, &n, fx->err, ERRLEN));
  assert_int_equal(n, 1); /* now the edge one */
  omniq_result_free(r);
  for (int i = 0; i < 3; i++) omniq_task_free(kept[i]);
  omniq_task_free(edge);
  omniq_task_free(running);
  omniq_task_free(pending);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_finish_keeps_crashes_and_sets_finished_at_only_when_terminal),
    CT_TEST(test_cancel_sets_finished_at),
    CT_TEST(test_retry_brings_a_failed_task_back_with_a_fresh_budget),
    CT_TEST(test_retry_brings_a_cancelled_task_back),
    CT_TEST(test_retry_refuses_what_is_not_failed_or_cancelled),
    CT_TEST(test_delete_removes_a_terminal_task_and_its_result),
    CT_TEST(test_delete_refuses_pending_and_running_tasks),
    CT_TEST(test_purge_tasks_removes_exactly_terminal_tasks_finished_before_cutoff),
};

const ct_section_t ct_section_manage = {tests, sizeof tests / sizeof tests[0], 3};
