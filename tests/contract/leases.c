/* SPDX-License-Identifier: MIT */
/* Contract: leases are extended only under the current token, and expired
 * ones are listed most overdue first, unchanged. */
#include "suite.h"

#include <stdlib.h>
#include <string.h>

static void test_extend_lease_checks_token(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW);
  OK(fx, ct_ops->extend_lease(fx->be, t->id, c->token, NOW + 77777, fx->err, ERRLEN));
  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->lease_until_ms, NOW + 77777);
  assert_int_equal(got->status, OMNIQ_RUNNING);
  assert_int_equal(got->attempts, 1);
  omniq_task_free(got);
  FAILS(fx, OMNIQ_ESTATE,
        ct_ops->extend_lease(fx->be, t->id, c->token + 1, NOW + 88888, fx->err, ERRLEN));
  FAILS(fx, OMNIQ_ESTATE,
        ct_ops->extend_lease(fx->be, t->id, c->token - 1, NOW + 88888, fx->err, ERRLEN));
  got = ct_get(fx, t->id);
  assert_int_equal(got->lease_until_ms, NOW + 77777);
  omniq_task_free(got);
  omniq_task_free(c);
  omniq_task_free(t);
}

/* A worker whose lease ran out and whose task another worker revived (as
 * the recovery of expired leases does: PENDING again under the old claim,
 * as WorkerLost) comes back to extend it: it is told ESTATE ("no longer
 * yours"), never OK, whether the task waits for its next claim, runs under
 * another's, or has finished; and nothing changes. */
static void test_extend_after_expiry_and_revival_is_refused(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t);
  omniq_task_t *old = ct_claim_one(fx, t->id, NOW);
  omniq_task_t **exp = NULL;
  size_t n = 0;
  OK(fx, ct_ops->expired_leases(fx->be, NOW + LEASE_MS + 1, 10, &exp, &n, fx->err, ERRLEN));
  assert_int_equal(n, 1);
  omniq_task_error_t *lost = ct_error("WorkerLost", 1, 1);
  omniq_decision_t d = ct_decision(exp[0], OMNIQ_PENDING);
  d.eta_ms = NOW + LEASE_MS + 1;
  d.error = lost;
  OK(fx, ct_finish(fx, &d));
  ct_tasks_free(exp, n);

  /* Revived, waiting for a claim. */
  FAILS(fx, OMNIQ_ESTATE, ct_ops->extend_lease(fx->be, t->id, old->token, NOW + 2 * LEASE_MS,
                                               fx->err, ERRLEN));
  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->eta_ms, NOW + LEASE_MS + 1);
  omniq_task_free(got);

  /* Running under another worker's claim. */
  omniq_task_t *cur = ct_claim_one(fx, t->id, NOW + LEASE_MS + 1);
  assert_true(cur->token != old->token);
  FAILS(fx, OMNIQ_ESTATE, ct_ops->extend_lease(fx->be, t->id, old->token, NOW + 3 * LEASE_MS,
                                               fx->err, ERRLEN));
  got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_RUNNING);
  assert_int_equal(got->token, cur->token);
  assert_int_equal(got->lease_until_ms, cur->lease_until_ms);
  omniq_task_free(got);

  /* Finished by that worker. */
  d = ct_decision(cur, OMNIQ_SUCCESS);
  OK(fx, ct_finish(fx, &d));
  FAILS(fx, OMNIQ_ESTATE, ct_ops->extend_lease(fx->be, t->id, old->token, NOW + 3 * LEASE_MS,
                                               fx->err, ERRLEN));
  FAILS(fx, OMNIQ_ESTATE, ct_ops->extend_lease(fx->be, t->id, cur->token, NOW + 3 * LEASE_MS,
                                               fx->err, ERRLEN));
  got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_SUCCESS);
  omniq_task_free(got);
  omniq_task_free(cur);
  omniq_task_error_free(lost);
  omniq_task_free(old);
  omniq_task_free(t);
}

static void assert_expired(ct_fx_t *fx, int64_t now, size_t max, omniq_task_t *const *want,
                           size_t nwant) {
  omniq_task_t **got = NULL;
  size_t n = 99;
  OK(fx, ct_ops->expired_leases(fx->be, now, max, &got, &n, fx->err, ERRLEN));
  assert_int_equal(n, nwant);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(got[i]->id, want[i]->id);
    assert_int_equal(got[i]->status, OMNIQ_RUNNING);
  }
  ct_tasks_free(got, n);
}

static void test_expired_leases_are_running_tasks_past_their_lease(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *a = ct_task("default", 3, NOW), *b = ct_task("default", 2, NOW),
               *c = ct_task("default", 1, NOW), *done = ct_task("default", 0, NOW),
               *pending = ct_task("default", 0, NOW + 10);
  omniq_task_t *all[] = {a, b, c, done, pending};
  OK(fx, ct_enqueue(fx, all, 5));
  omniq_task_t *ca = ct_claim_one(fx, a->id, NOW);       /* lease NOW + L */
  omniq_task_t *cb = ct_claim_one(fx, b->id, NOW + 100); /* lease NOW + L + 100 */
  omniq_task_t *cc = ct_claim_one(fx, c->id, NOW + 200);
  OK(fx, ct_ops->extend_lease(fx->be, c->id, cc->token, NOW + LEASE_MS + 50, fx->err, ERRLEN));
  omniq_task_t *cd = ct_claim_one(fx, done->id, NOW + 300);
  omniq_decision_t d = ct_decision(cd, OMNIQ_SUCCESS);
  OK(fx, ct_finish(fx, &d));

  assert_expired(fx, NOW + LEASE_MS, 10, NULL, 0); /* lease_until < now, strictly */
  assert_expired(fx, NOW + LEASE_MS + 1, 10, (omniq_task_t *[]){a}, 1);
  assert_expired(fx, NOW + LEASE_MS + 101, 10, (omniq_task_t *[]){a, c, b}, 3);
  assert_expired(fx, NOW + LEASE_MS + 101, 2, (omniq_task_t *[]){a, c}, 2);
  assert_expired(fx, INT64_MAX / 2, 10, (omniq_task_t *[]){a, c, b}, 3);

  /* Looking does not change them. */
  omniq_task_t *got = ct_get(fx, a->id);
  assert_int_equal(got->status, OMNIQ_RUNNING);
  assert_int_equal(got->token, ca->token);
  assert_int_equal(got->attempts, 1);
  omniq_task_free(got);
  omniq_task_free(ca);
  omniq_task_free(cb);
  omniq_task_free(cc);
  omniq_task_free(cd);
  for (int i = 0; i < 5; i++) omniq_task_free(all[i]);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_extend_lease_checks_token),
    CT_TEST(test_expired_leases_are_running_tasks_past_their_lease),
    CT_TEST(test_extend_after_expiry_and_revival_is_refused),
};

const ct_section_t ct_section_leases = {tests, sizeof tests / sizeof tests[0], 2};
