/* SPDX-License-Identifier: MIT */
/* Contract: purge, counts by status, and everything kept across a reopen. */
#include "suite.h"

#include <stdlib.h>
#include <string.h>

/* Finishes task t (claimed now) with a result finished at finished_at. */
static void finish_with_result(ct_fx_t *fx, const omniq_task_t *t, int64_t finished_at) {
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW);
  omniq_result_t *r = ct_result(t->id, OMNIQ_SUCCESS, "null", NULL, 1, finished_at);
  omniq_decision_t d = ct_decision(c, OMNIQ_SUCCESS);
  d.result = r;
  OK(fx, ct_finish(fx, &d));
  omniq_result_free(r);
  omniq_task_free(c);
}

static void test_purge_removes_exactly_results_older_than_cutoff(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t[4];
  int64_t finished[4] = {NOW + 10, NOW + 20, NOW + 20, NOW + 30};
  for (int i = 0; i < 4; i++) {
    t[i] = ct_task("default", 0, NOW);
    ct_enqueue1(fx, t[i]);
    finish_with_result(fx, t[i], finished[i]);
  }
  int64_t count = -1;
  OK(fx, ct_ops->purge_results(fx->be, NOW + 10, &count, fx->err, ERRLEN));
  assert_int_equal(count, 0); /* finished_at < cutoff, strictly */
  OK(fx, ct_ops->purge_results(fx->be, NOW + 21, &count, fx->err, ERRLEN));
  assert_int_equal(count, 3);
  for (int i = 0; i < 3; i++) ct_assert_no_result(fx, t[i]->id);
  omniq_result_t *kept = ct_get_result(fx, t[3]->id);
  assert_int_equal(kept->finished_at_ms, NOW + 30);
  omniq_result_free(kept);
  OK(fx, ct_ops->purge_results(fx->be, NOW + 21, &count, fx->err, ERRLEN));
  assert_int_equal(count, 0);
  /* Purging results leaves the tasks. */
  omniq_task_t *got = ct_get(fx, t[0]->id);
  assert_int_equal(got->status, OMNIQ_SUCCESS);
  omniq_task_free(got);
  for (int i = 0; i < 4; i++) omniq_task_free(t[i]);
}

static void test_count_by_status_counts_each_status(void **state) {
  ct_fx_t *fx = *state;
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  for (int i = 0; i < OMNIQ_STATUS_COUNT; i++) assert_int_equal(c[i], 0);

  omniq_task_t *t[9];
  for (int i = 0; i < 9; i++) t[i] = ct_task("default", 9 - i, NOW); /* claimed in index order */
  OK(fx, ct_enqueue(fx, t, 9));
  finish_with_result(fx, t[0], NOW + 1); /* SUCCESS */
  finish_with_result(fx, t[1], NOW + 1); /* SUCCESS */
  omniq_task_t *f = ct_claim_one(fx, t[2]->id, NOW);
  omniq_decision_t d = ct_decision(f, OMNIQ_FAILED);
  OK(fx, ct_finish(fx, &d)); /* FAILED */
  omniq_task_t *r1 = ct_claim_one(fx, t[3]->id, NOW), *r2 = ct_claim_one(fx, t[4]->id, NOW);
  OK(fx, ct_cancel(fx, t[5]->id, NOW, NULL)); /* CANCELLED */
  ct_counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], 3);
  assert_int_equal(c[OMNIQ_RUNNING], 2);
  assert_int_equal(c[OMNIQ_SUCCESS], 2);
  assert_int_equal(c[OMNIQ_FAILED], 1);
  assert_int_equal(c[OMNIQ_CANCELLED], 1);
  omniq_task_free(r1);
  omniq_task_free(r2);
  omniq_task_free(f);
  for (int i = 0; i < 9; i++) omniq_task_free(t[i]);
}

static void test_reopen_keeps_everything(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *waiting = ct_task("default", 0, NOW + 500), *done = ct_task("default", 1, NOW),
               *running = ct_task("default", 0, NOW);
  omniq_task_t *all[] = {waiting, done, running};
  OK(fx, ct_enqueue(fx, all, 3));
  omniq_task_t *c = ct_claim_one(fx, done->id, NOW);
  omniq_task_error_t *e = ct_error("Oops", 1, 0);
  omniq_result_t *r = ct_result(done->id, OMNIQ_FAILED, NULL, e, 1, NOW + 7);
  omniq_decision_t d = ct_decision(c, OMNIQ_FAILED);
  d.error = e;
  d.result = r;
  OK(fx, ct_finish(fx, &d));
  omniq_task_t *cr = ct_claim_one(fx, running->id, NOW);

  ct_reopen(fx);

  omniq_task_t *got = ct_get(fx, waiting->id);
  ct_assert_as_enqueued(got, waiting);
  omniq_task_free(got);
  got = ct_get(fx, done->id);
  assert_int_equal(got->status, OMNIQ_FAILED);
  th_assert_error_equal(got->last_error, e);
  omniq_task_free(got);
  omniq_result_t *stored = ct_get_result(fx, done->id);
  th_assert_result_equal(stored, r);
  omniq_result_free(stored);
  got = ct_get(fx, running->id);
  assert_int_equal(got->status, OMNIQ_RUNNING);
  assert_int_equal(got->token, cr->token);
  assert_int_equal(got->lease_until_ms, cr->lease_until_ms);
  omniq_task_free(got);
  /* The running claim is still valid across the reopen, and work goes on. */
  d = ct_decision(cr, OMNIQ_SUCCESS);
  OK(fx, ct_finish(fx, &d));
  omniq_task_t *cw = ct_claim_one(fx, waiting->id, NOW + 500);
  omniq_task_free(cw);
  omniq_task_free(cr);
  omniq_result_free(r);
  omniq_task_error_free(e);
  omniq_task_free(c);
  for (int i = 0; i < 3; i++) omniq_task_free(all[i]);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_purge_removes_exactly_results_older_than_cutoff),
    CT_TEST(test_count_by_status_counts_each_status),
    CT_TEST(test_reopen_keeps_everything),
};

const ct_section_t ct_section_results = {tests, sizeof tests / sizeof tests[0], 2};
