/* SPDX-License-Identifier: MIT */
/* Contract: finish applies the engine's decision for a run atomically,
 * and only under the claim's current token. */
#include "suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_finish_success_stores_a_readable_result(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW);
  ct_assert_no_result(fx, t->id);
  omniq_result_t *r = ct_result(t->id, OMNIQ_SUCCESS, "{\"answer\":42}", NULL, 1, NOW + 100);
  omniq_decision_t d = ct_decision(c, OMNIQ_SUCCESS);
  d.result = r;
  OK(fx, ct_finish(fx, &d));

  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_SUCCESS);
  assert_int_equal(got->attempts, 1);
  omniq_result_t *stored = ct_get_result(fx, t->id);
  th_assert_result_equal(stored, r);
  ct_assert_nothing_due(fx, NOW + 100000);
  /* A finished run cannot be finished twice. */
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &d));
  omniq_result_free(stored);
  omniq_task_free(got);
  omniq_result_free(r);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_finish_rearm_keeps_id_and_replaces_result(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  t->interval_ms = 1000;
  ct_enqueue1(fx, t);

  omniq_task_t *c1 = ct_claim_one(fx, t->id, NOW);
  omniq_result_t *r1 = ct_result(t->id, OMNIQ_SUCCESS, "1", NULL, 1, NOW + 10);
  omniq_decision_t d = ct_decision(c1, OMNIQ_PENDING);
  d.eta_ms = NOW + 1010;
  d.reset_attempts = 1;
  d.result = r1;
  OK(fx, ct_finish(fx, &d));
  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->eta_ms, NOW + 1010);
  assert_int_equal(got->attempts, 0);
  assert_int_equal(got->interval_ms, 1000);
  omniq_result_t *stored = ct_get_result(fx, t->id);
  th_assert_result_equal(stored, r1);
  omniq_result_free(stored);
  omniq_task_free(got);

  ct_assert_nothing_due(fx, NOW + 1009);
  omniq_task_t *c2 = ct_claim_one(fx, t->id, NOW + 1010);
  assert_int_equal(c2->attempts, 1); /* counted from the re-arm */
  assert_true(c2->token > c1->token);
  omniq_result_t *r2 = ct_result(t->id, OMNIQ_SUCCESS, "2", NULL, 1, NOW + 1020);
  d = ct_decision(c2, OMNIQ_PENDING);
  d.eta_ms = NOW + 2020;
  d.reset_attempts = 1;
  d.result = r2;
  OK(fx, ct_finish(fx, &d));
  stored = ct_get_result(fx, t->id);
  th_assert_result_equal(stored, r2);
  got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->eta_ms, NOW + 2020);
  omniq_task_free(got);
  omniq_result_free(stored);
  omniq_result_free(r2);
  omniq_task_free(c2);
  omniq_result_free(r1);
  omniq_task_free(c1);
  omniq_task_free(t);
}

static void test_finish_retry_requeues_with_last_error_and_no_result(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW);
  omniq_task_error_t *e = ct_error("ValueError", 1, 1);
  omniq_decision_t d = ct_decision(c, OMNIQ_PENDING);
  d.eta_ms = NOW + 2000;
  d.error = e;
  OK(fx, ct_finish(fx, &d));

  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->eta_ms, NOW + 2000);
  assert_int_equal(got->attempts, 1);
  th_assert_error_equal(got->last_error, e);
  ct_assert_no_result(fx, t->id);
  ct_assert_nothing_due(fx, NOW + 1999);
  omniq_task_t *c2 = ct_claim_one(fx, t->id, NOW + 2000);
  assert_int_equal(c2->attempts, 2);
  th_assert_error_equal(c2->last_error, e);
  omniq_task_free(c2);
  omniq_task_free(got);
  omniq_task_error_free(e);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_finish_final_failure_is_failed_with_result(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  t->max_retries = 1;
  ct_enqueue1(fx, t);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW);
  omniq_task_error_t *e = ct_error("Crash", 1, 0);
  omniq_result_t *r = ct_result(t->id, OMNIQ_FAILED, NULL, e, 1, NOW + 30);
  omniq_decision_t d = ct_decision(c, OMNIQ_FAILED);
  d.error = e;
  d.result = r;
  OK(fx, ct_finish(fx, &d));

  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_FAILED);
  assert_int_equal(got->attempts, 1);
  th_assert_error_equal(got->last_error, e);
  omniq_result_t *stored = ct_get_result(fx, t->id);
  th_assert_result_equal(stored, r);
  assert_null(stored->value);
  ct_assert_nothing_due(fx, NOW + 100000);
  omniq_result_free(stored);
  omniq_task_free(got);
  omniq_result_free(r);
  omniq_task_error_free(e);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_finish_without_error_keeps_last_error(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW);
  omniq_task_error_t *e = ct_error("Flaky", 1, 1);
  omniq_decision_t d = ct_decision(c, OMNIQ_PENDING);
  d.eta_ms = NOW;
  d.error = e;
  OK(fx, ct_finish(fx, &d));
  omniq_task_t *c2 = ct_claim_one(fx, t->id, NOW);
  d = ct_decision(c2, OMNIQ_SUCCESS);
  OK(fx, ct_finish(fx, &d));
  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_SUCCESS);
  th_assert_error_equal(got->last_error, e);
  omniq_task_free(got);
  omniq_task_free(c2);
  omniq_task_error_free(e);
  omniq_task_free(c);
  omniq_task_free(t);
}

/* A worker presumed dead comes back with the token of an old claim. */
static void test_stale_token_changes_nothing(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t);
  omniq_task_t *old = ct_claim_one(fx, t->id, NOW);
  omniq_task_error_t *lost = ct_error("WorkerLost", 1, 1);
  omniq_decision_t d = ct_decision(old, OMNIQ_PENDING);
  d.eta_ms = NOW + 10;
  d.error = lost;
  OK(fx, ct_finish(fx, &d));
  omniq_task_t *cur = ct_claim_one(fx, t->id, NOW + 10);
  omniq_task_t *before = ct_get(fx, t->id);

  omniq_task_error_t *e = ct_error("Late", 1, 0);
  omniq_result_t *r = ct_result(t->id, OMNIQ_SUCCESS, "\"late\"", NULL, 1, NOW + 20);
  omniq_decision_t stale = ct_decision(old, OMNIQ_SUCCESS);
  stale.result = r;
  stale.error = e;
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &stale));
  stale.next_status = OMNIQ_FAILED;
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &stale));
  stale.next_status = OMNIQ_PENDING;
  stale.eta_ms = NOW + 99999;
  stale.reset_attempts = 1;
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &stale));
  FAILS(fx, OMNIQ_ESTATE,
        ct_ops->extend_lease(fx->be, t->id, old->token, NOW + 999999, fx->err, ERRLEN));

  omniq_task_t *after = ct_get(fx, t->id);
  assert_int_equal(after->status, OMNIQ_RUNNING);
  assert_int_equal(after->token, before->token);
  assert_int_equal(after->attempts, 2);
  assert_int_equal(after->eta_ms, before->eta_ms);
  assert_int_equal(after->lease_until_ms, before->lease_until_ms);
  assert_int_equal(after->started_at_ms, before->started_at_ms);
  th_assert_error_equal(after->last_error, lost);
  ct_assert_no_result(fx, t->id);

  /* The current claim still finishes. */
  d = ct_decision(cur, OMNIQ_SUCCESS);
  OK(fx, ct_finish(fx, &d));
  omniq_task_free(after);
  omniq_result_free(r);
  omniq_task_error_free(e);
  omniq_task_free(before);
  omniq_task_free(cur);
  omniq_task_error_free(lost);
  omniq_task_free(old);
  omniq_task_free(t);
}

/* The queue a decision names (storage ABI 7) is a hint a backend may use to
 * skip reading the task's row; it never changes the outcome. Under a stale
 * token nothing changes, whether it names the task's queue or another;
 * under the current token a foreign queue still finishes the task, and
 * its run counts in the task's own queue. */
static void test_finish_naming_a_foreign_queue_counts_in_the_tasks_own_queue(void **state) {
  ct_fx_t *fx = *state;
  if (ct_ops->abi_version < 3) skip(); /* no queues to count runs in */
  static const char *const mail[] = {"mail"};
  omniq_task_t *t = ct_task("mail", 0, NOW), *o = ct_task("default", 0, NOW), **got = NULL;
  size_t n = 0;
  ct_enqueue1(fx, t);
  ct_enqueue1(fx, o);
  OK(fx, ct_claim_q(fx, mail, 1, NOW, 1, &got, &n));
  assert_int_equal(n, 1);
  omniq_result_t *r = ct_result(t->id, OMNIQ_SUCCESS, "1", NULL, 1, NOW + 10);
  omniq_decision_t d = ct_decision(got[0], OMNIQ_SUCCESS);
  d.result = r;
  d.runs = OMNIQ_RUNS_SUCCEEDED;
  d.token++; /* a claim taken over, naming the task's queue */
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &d));
  d.queue = "default"; /* and naming another */
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &d));
  omniq_task_t *kept = ct_get(fx, t->id);
  assert_int_equal(kept->status, OMNIQ_RUNNING);
  assert_int_equal(kept->token, got[0]->token);
  ct_assert_no_result(fx, t->id);
  omniq_task_free(kept);

  d.token--; /* the current claim, naming a queue that is not the task's */
  OK(fx, ct_finish(fx, &d));
  omniq_task_t *done = ct_get(fx, t->id);
  assert_int_equal(done->status, OMNIQ_SUCCESS);
  assert_string_equal(done->queue, "mail");
  omniq_result_t *stored = ct_get_result(fx, t->id);
  th_assert_result_equal(stored, r);
  omniq_result_free(stored);
  omniq_task_free(done);
  assert_int_equal(ct_queue(fx, "mail", NOW + 10).runs[OMNIQ_RUNS_SUCCEEDED], 1);
  assert_int_equal(ct_queue(fx, "default", NOW + 10).runs[OMNIQ_RUNS_SUCCEEDED], 0);
  omniq_result_free(r);
  ct_tasks_free(got, n);
  omniq_task_free(o);
  omniq_task_free(t);
}

/* Finishes two tasks claimed alike (queue "mail", one unique key each) with
 * the same decision, one naming no queue and one naming the task's own:
 * a backend that takes the hint skips a read, and must store exactly what
 * it stores without it. Every way a run ends: a success, a retry with its
 * error and crash count, a final failure, an interval re-arm. */
static void test_finish_naming_its_queue_stores_what_it_stores_without(void **state) {
  ct_fx_t *fx = *state;
  if (ct_ops->abi_version < 3) skip(); /* no queues, keys or totals */
  static const char *const mail[] = {"mail"};
  const int ends[4] = {OMNIQ_SUCCESS, OMNIQ_PENDING, OMNIQ_FAILED, OMNIQ_PENDING};
  const int kinds[4] = {OMNIQ_RUNS_SUCCEEDED, OMNIQ_RUNS_RETRIED, OMNIQ_RUNS_FAILED,
                        OMNIQ_RUNS_SUCCEEDED};
  int64_t want[OMNIQ_RUNS_KINDS] = {0};
  omniq_task_error_t *e = ct_error("ValueError", 1, 1);
  for (int end = 0; end < 4; end++) {
    omniq_task_t *ts[2], **got = NULL;
    omniq_result_t *rs[2];
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
      char key[32];
      snprintf(key, sizeof key, "k%d-%d", end, i);
      ts[i] = ct_task_keyed("mail", key, 5000);
      ct_enqueue1(fx, ts[i]);
      OK(fx, ct_claim_q(fx, mail, 1, NOW, 1, &got, &n));
      assert_int_equal(n, 1);
      assert_string_equal(got[0]->id, ts[i]->id);
      int final = ends[end] != OMNIQ_PENDING, rearm = end == 3;
      omniq_decision_t d = ct_decision(got[0], ends[end]);
      d.queue = i == 0 ? NULL : got[0]->queue; /* the hint, or none */
      d.runs = kinds[end];
      d.crashes = end == 1 ? 1 : 0;
      d.error = end == 1 ? e : NULL; /* a retry keeps its error */
      d.eta_ms = ends[end] == OMNIQ_PENDING ? NOW + 1000 : 0;
      d.reset_attempts = rearm;
      rs[i] = final || rearm ? ct_result(ts[i]->id, end == 2 ? OMNIQ_FAILED : OMNIQ_SUCCESS,
                                         end == 2 ? NULL : "\"v\"", end == 2 ? e : NULL, 1,
                                         NOW + 10)
                             : NULL;
      d.result = rs[i];
      OK(fx, ct_finish(fx, &d));
      ct_tasks_free(got, n);
    }
    want[kinds[end]] += 2;
    omniq_task_t *a = ct_get(fx, ts[0]->id), *b = ct_get(fx, ts[1]->id);
    assert_int_equal(a->status, ends[end]);
    assert_int_equal(b->status, a->status);
    assert_string_equal(b->queue, a->queue);
    assert_int_equal(b->attempts, a->attempts);
    assert_int_equal(b->eta_ms, a->eta_ms);
    assert_int_equal(b->token, a->token);
    assert_int_equal(b->crashes, a->crashes);
    assert_int_equal(b->finished_at_ms, a->finished_at_ms);
    assert_int_equal(b->unique_for_ms, a->unique_for_ms);
    th_assert_error_equal(b->last_error, a->last_error);
    if (rs[0] == NULL) {
      ct_assert_no_result(fx, ts[0]->id);
      ct_assert_no_result(fx, ts[1]->id);
    } else {
      omniq_result_t *ra = ct_get_result(fx, ts[0]->id), *rb = ct_get_result(fx, ts[1]->id);
      th_assert_result_equal(ra, rs[0]);
      th_assert_result_equal(rb, rs[1]);
      omniq_result_free(ra);
      omniq_result_free(rb);
    }
    omniq_task_free(a);
    omniq_task_free(b);
    for (int i = 0; i < 2; i++) {
      omniq_result_free(rs[i]);
      omniq_task_free(ts[i]);
    }
  }
  /* Each run counted once, in the task's queue, with or without the hint. */
  omniq_queue_info_t q = ct_queue(fx, "mail", NOW + 10);
  for (int k = 0; k < OMNIQ_RUNS_KINDS; k++) assert_int_equal(q.runs[k], want[k]);
  omniq_task_error_free(e);
}

static void test_finish_of_an_unclaimed_task_is_state_error(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t);
  omniq_decision_t d = ct_decision(t, OMNIQ_SUCCESS); /* token 0: never claimed */
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &d));
  d.next_status = OMNIQ_FAILED;
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &d));
  FAILS(fx, OMNIQ_ESTATE, ct_ops->extend_lease(fx->be, t->id, 0, NOW + 1, fx->err, ERRLEN));
  omniq_task_t *got = ct_get(fx, t->id);
  ct_assert_as_enqueued(got, t);
  omniq_task_free(got);
  omniq_task_free(t);
}

static void test_unknown_id_is_not_found(void **state) {
  ct_fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  ct_new_id(id);
  omniq_decision_t d = {.id = id, .token = 1, .next_status = OMNIQ_SUCCESS};
  omniq_task_t *t = NULL;
  FAILS(fx, OMNIQ_ENOTFOUND, ct_finish(fx, &d));
  d.next_status = OMNIQ_FAILED;
  FAILS(fx, OMNIQ_ENOTFOUND, ct_finish(fx, &d));
  FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->extend_lease(fx->be, id, 1, NOW, fx->err, ERRLEN));
  FAILS(fx, OMNIQ_ENOTFOUND, ct_cancel(fx, id, NOW, NULL));
  FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->get_task(fx->be, id, &t, fx->err, ERRLEN));
  assert_null(t);
  ct_assert_no_result(fx, id); /* and cancel stored no result */
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_finish_success_stores_a_readable_result),
    CT_TEST(test_finish_rearm_keeps_id_and_replaces_result),
    CT_TEST(test_finish_retry_requeues_with_last_error_and_no_result),
    CT_TEST(test_finish_final_failure_is_failed_with_result),
    CT_TEST(test_finish_without_error_keeps_last_error),
    CT_TEST(test_stale_token_changes_nothing),
    CT_TEST(test_finish_naming_a_foreign_queue_counts_in_the_tasks_own_queue),
    CT_TEST(test_finish_naming_its_queue_stores_what_it_stores_without),
    CT_TEST(test_finish_of_an_unclaimed_task_is_state_error),
    CT_TEST(test_unknown_id_is_not_found),
};

const ct_section_t ct_section_finish = {tests, sizeof tests / sizeof tests[0], 2};
