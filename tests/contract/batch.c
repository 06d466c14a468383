/* SPDX-License-Identifier: MIT */
/* Contract, storage ABI 6: finish_many applies many decisions, each under
 * its own claim token and with every effect finish has, and then the
 * claim, in one step; release gives a claim that never started back.
 * Both operations are optional: a table without them skips these tests.
 * That the step is one transaction is each backend's own test (it needs
 * the backend's internals to see commits). */
#include "suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void need_batches(void) {
  if (ct_ops->finish_many == NULL) skip();
}

/* finish_many of ds (n of them) with a claim of up to max from "default"
 * at now (max 0: no claim); codes to rcs, the claimed tasks to *out. */
static int finish_many(ct_fx_t *fx, const omniq_decision_t *ds, size_t n, int *rcs,
                       int64_t now, size_t max, omniq_task_t ***out, size_t *nout,
                       int *claimed) {
  static const char *const queues[] = {"default"};
  omniq_claim_req_t req = {.now_ms = now,
                           .lease_until_ms = now + LEASE_MS,
                           .queues = queues,
                           .nqueues = 1,
                           .max = max};
  fx->err[0] = '\0';
  return ct_ops->finish_many(fx->be, ds, n, rcs, max > 0 ? &req : NULL, out, nout, claimed,
                             fx->err, ERRLEN);
}

/* n tasks of "default" enqueued and claimed; yours. */
static omniq_task_t **claimed_tasks(ct_fx_t *fx, size_t n) {
  omniq_task_t **got = NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    omniq_task_t *t = ct_task("default", 0, NOW);
    ct_enqueue1(fx, t);
    omniq_task_free(t);
  }
  OK(fx, ct_claim(fx, NOW, n, &got, &k));
  assert_int_equal(k, n);
  return got;
}

/* n tasks, the i-th in queue of[i] ("default" or "mail"), enqueued and
 * all claimed; yours. */
static omniq_task_t **claimed_in(ct_fx_t *fx, const char *const *of, size_t n) {
  static const char *const queues[] = {"default", "mail"};
  omniq_task_t **got = NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    omniq_task_t *t = ct_task(of[i], 0, NOW);
    ct_enqueue1(fx, t);
    omniq_task_free(t);
  }
  OK(fx, ct_claim_q(fx, queues, 2, NOW, n, &got, &k));
  assert_int_equal(k, n);
  return got;
}

static void add_pending(ct_fx_t *fx, size_t n) {
  for (size_t i = 0; i < n; i++) {
    omniq_task_t *t = ct_task("default", -1, NOW); /* behind every claimed one */
    ct_enqueue1(fx, t);
    omniq_task_free(t);
  }
}

/* A success, a stale token, an unknown id and a failure in one batch: each
 * gets its own code, the misses change nothing, the others are stored, and
 * the claim after them takes only tasks that were pending. */
static void test_finish_many_applies_each_decision_under_its_own_token(void **state) {
  ct_fx_t *fx = *state;
  need_batches();
  omniq_task_t **t = claimed_tasks(fx, 3), **next = NULL;
  add_pending(fx, 3);
  char unknown[OMNIQ_ID_SIZE];
  ct_new_id(unknown);
  omniq_task_error_t *e = ct_error("Boom", 1, 0);
  /* Quotes, backslashes, braces and commas: stored as they are. */
  omniq_result_t *ok =
      ct_result(t[0]->id, OMNIQ_SUCCESS, "{\"s\":\"a \\\"b\\\\ {c}, NULL\"}", NULL, 1,
                NOW + 10);
  omniq_result_t *bad = ct_result(t[2]->id, OMNIQ_FAILED, NULL, e, 1, NOW + 10);
  omniq_decision_t ds[4] = {ct_decision(t[0], OMNIQ_SUCCESS), ct_decision(t[1], OMNIQ_SUCCESS),
                            ct_decision(t[0], OMNIQ_SUCCESS), ct_decision(t[2], OMNIQ_FAILED)};
  ds[0].result = ok;
  ds[0].runs = OMNIQ_RUNS_SUCCEEDED;
  ds[1].token++; /* its claim was taken over */
  ds[1].result = ok;
  ds[2].id = unknown;
  ds[2].result = ok;
  ds[3].result = bad;
  ds[3].error = e;
  ds[3].runs = OMNIQ_RUNS_FAILED;
  int rcs[4] = {-1, -1, -1, -1}, claimed = 0;
  size_t n = 0;
  OK(fx, finish_many(fx, ds, 4, rcs, NOW + 10, 2, &next, &n, &claimed));
  assert_int_equal(rcs[0], OMNIQ_OK);
  assert_int_equal(rcs[1], OMNIQ_ESTATE);
  assert_int_equal(rcs[2], OMNIQ_ENOTFOUND);
  assert_int_equal(rcs[3], OMNIQ_OK);
  assert_non_null(strstr(fx->err, t[1]->id)); /* the first refusal's message */
  assert_int_equal(claimed, 1);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(next[i]->status, OMNIQ_RUNNING);
    assert_int_equal(next[i]->attempts, 1);
    for (int j = 0; j < 3; j++) assert_string_not_equal(next[i]->id, t[j]->id);
  }
  omniq_result_t *stored = ct_get_result(fx, t[0]->id);
  th_assert_result_equal(stored, ok);
  omniq_result_free(stored);
  stored = ct_get_result(fx, t[2]->id);
  th_assert_result_equal(stored, bad);
  omniq_result_free(stored);
  ct_assert_no_result(fx, t[1]->id);
  omniq_task_t *kept = ct_get(fx, t[1]->id);
  assert_int_equal(kept->status, OMNIQ_RUNNING);
  assert_int_equal(kept->token, t[1]->token);
  omniq_task_free(kept);
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  assert_int_equal(c[OMNIQ_SUCCESS], 1);
  assert_int_equal(c[OMNIQ_FAILED], 1);
  assert_int_equal(c[OMNIQ_RUNNING], 3); /* the stale one's and the two claimed */
  assert_int_equal(c[OMNIQ_PENDING], 1);
  ct_tasks_free(next, n);
  omniq_result_free(ok);
  omniq_result_free(bad);
  omniq_task_error_free(e);
  ct_tasks_free(t, 3);
}

/* A retry, an interval's re-arm and a keyed success in one batch: each as
 * finish would leave it (eta, attempts, last_error, the result, the
 * key's hold, finished_at) and one more run in each running total. */
static void test_finish_many_has_every_effect_finish_has(void **state) {
  ct_fx_t *fx = *state;
  need_batches();
  omniq_task_t *keyed = ct_task_keyed("default", "k1", 5000), *every = ct_task("default", 0, NOW),
               *flaky = ct_task("default", 0, NOW), **got = NULL, **none = NULL;
  every->interval_ms = 1000;
  ct_enqueue1(fx, keyed);
  ct_enqueue1(fx, every);
  ct_enqueue1(fx, flaky);
  size_t k = 0, n = 0;
  OK(fx, ct_claim(fx, NOW, 3, &got, &k));
  assert_int_equal(k, 3);
  omniq_decision_t ds[3];
  omniq_task_error_t *e = ct_error("Flaky", 1, 1);
  omniq_result_t *rs[3] = {NULL, NULL, NULL};
  for (size_t i = 0; i < k; i++) {
    const char *id = got[i]->id;
    if (strcmp(id, flaky->id) == 0) {
      ds[i] = ct_decision(got[i], OMNIQ_PENDING);
      ds[i].eta_ms = NOW + 2000;
      ds[i].error = e;
      ds[i].crashes = 1;
      ds[i].runs = OMNIQ_RUNS_RETRIED;
    } else {
      rs[i] = ct_result(id, OMNIQ_SUCCESS, "1", NULL, 1, NOW + 100);
      ds[i] = ct_decision(got[i], strcmp(id, every->id) == 0 ? OMNIQ_PENDING : OMNIQ_SUCCESS);
      ds[i].result = rs[i];
      ds[i].runs = OMNIQ_RUNS_SUCCEEDED;
      if (strcmp(id, every->id) == 0) {
        ds[i].eta_ms = NOW + 1000;
        ds[i].reset_attempts = 1;
      }
    }
  }
  int rcs[3], claimed = 1;
  OK(fx, finish_many(fx, ds, 3, rcs, NOW + 100, 0, &none, &n, &claimed));
  for (int i = 0; i < 3; i++) assert_int_equal(rcs[i], OMNIQ_OK);
  assert_int_equal(claimed, 0);
  assert_int_equal(n, 0);

  omniq_task_t *f = ct_get(fx, flaky->id);
  assert_int_equal(f->status, OMNIQ_PENDING);
  assert_int_equal(f->eta_ms, NOW + 2000);
  assert_int_equal(f->attempts, 1);
  assert_int_equal(f->crashes, 1);
  assert_non_null(f->last_error);
  assert_string_equal(f->last_error->error_type, "Flaky");
  ct_assert_no_result(fx, flaky->id);
  omniq_task_t *ev = ct_get(fx, every->id);
  assert_int_equal(ev->status, OMNIQ_PENDING);
  assert_int_equal(ev->eta_ms, NOW + 1000);
  assert_int_equal(ev->attempts, 0);
  assert_int_equal(ev->finished_at_ms, 0);
  omniq_result_t *r = ct_get_result(fx, every->id);
  assert_int_equal(r->status, OMNIQ_SUCCESS);
  omniq_result_free(r);
  omniq_task_t *kd = ct_get(fx, keyed->id);
  assert_int_equal(kd->status, OMNIQ_SUCCESS);
  assert_int_equal(kd->finished_at_ms, NOW + 100);
  /* The re-arm comes due again, the retry later. */
  ct_assert_nothing_due(fx, NOW + 999);
  omniq_task_t *c = ct_claim_one(fx, every->id, NOW + 1000);
  omniq_task_free(c);
  /* The key is held until finished_at + unique_for_ms, then free. */
  omniq_task_t *again = ct_task_keyed("default", "k1", 0);
  char holder[1][OMNIQ_ID_SIZE];
  again->created_at_ms = NOW + 100 + 4999;
  FAILS(fx, OMNIQ_EEXISTS, ct_ops->enqueue_unique(fx->be, &again, 1, holder, fx->err, ERRLEN));
  assert_string_equal(holder[0], keyed->id);
  again->created_at_ms = NOW + 100 + 5000;
  OK(fx, ct_ops->enqueue_unique(fx->be, &again, 1, holder, fx->err, ERRLEN));
  omniq_queue_info_t q = ct_queue(fx, "default", NOW + 100);
  assert_int_equal(q.runs[OMNIQ_RUNS_SUCCEEDED], 2);
  assert_int_equal(q.runs[OMNIQ_RUNS_RETRIED], 1);
  omniq_task_free(again);
  omniq_task_free(kd);
  omniq_task_free(ev);
  omniq_task_free(f);
  for (int i = 0; i < 3; i++) omniq_result_free(rs[i]);
  omniq_task_error_free(e);
  ct_tasks_free(got, k);
  omniq_task_free(keyed);
  omniq_task_free(every);
  omniq_task_free(flaky);
}

/* More outcomes than one statement of a backend may carry (SQLite writes
 * a transaction's results 64, 32, ... rows per statement): every result is
 * stored with every field of its own. */
#define MANY_RESULTS 71

static void test_finish_many_of_many_results_stores_each_result_whole(void **state) {
  ct_fx_t *fx = *state;
  need_batches();
  omniq_task_t **got = claimed_tasks(fx, MANY_RESULTS), **none = NULL;
  omniq_decision_t ds[MANY_RESULTS];
  omniq_result_t *rs[MANY_RESULTS];
  omniq_task_error_t *e = ct_error("Broken", 2, 0);
  char value[32];
  for (int i = 0; i < MANY_RESULTS; i++) {
    int failed = i % 5 == 3;
    snprintf(value, sizeof value, "[%d]", i);
    rs[i] = ct_result(got[i]->id, failed ? OMNIQ_FAILED : OMNIQ_SUCCESS,
                      failed || i % 7 == 0 ? NULL : value, failed ? e : NULL, 1 + i % 3,
                      NOW + 100 + i);
    rs[i]->last_attempt_at_ms = NOW + 50 + i;
    ds[i] = ct_decision(got[i], rs[i]->status);
    ds[i].result = rs[i];
    ds[i].runs = failed ? OMNIQ_RUNS_FAILED : OMNIQ_RUNS_SUCCEEDED;
  }
  int rcs[MANY_RESULTS], claimed = 1;
  size_t n = 0;
  OK(fx, finish_many(fx, ds, MANY_RESULTS, rcs, NOW + 200, 0, &none, &n, &claimed));
  for (int i = 0; i < MANY_RESULTS; i++) {
    assert_int_equal(rcs[i], OMNIQ_OK);
    omniq_result_t *r = ct_get_result(fx, got[i]->id);
    th_assert_result_equal(r, rs[i]);
    omniq_result_free(r);
    omniq_result_free(rs[i]);
  }
  omniq_task_error_free(e);
  ct_tasks_free(got, MANY_RESULTS);
}

/* The claim comes after the decisions: a retry due at once is claimed
 * again in the same step, and a task the batch finished is not. */
static void test_finish_many_claims_after_its_decisions(void **state) {
  ct_fx_t *fx = *state;
  need_batches();
  omniq_task_t **t = claimed_tasks(fx, 2), **next = NULL;
  omniq_result_t *r = ct_result(t[0]->id, OMNIQ_SUCCESS, "1", NULL, 1, NOW + 5);
  omniq_decision_t ds[2] = {ct_decision(t[0], OMNIQ_SUCCESS), ct_decision(t[1], OMNIQ_PENDING)};
  ds[0].result = r;
  ds[1].eta_ms = NOW + 5;
  ds[1].runs = OMNIQ_RUNS_RETRIED;
  int rcs[2], claimed = 0;
  size_t n = 0;
  OK(fx, finish_many(fx, ds, 2, rcs, NOW + 5, 2, &next, &n, &claimed));
  assert_int_equal(claimed, 1);
  assert_int_equal(n, 1);
  assert_string_equal(next[0]->id, t[1]->id);
  assert_int_equal(next[0]->attempts, 2);
  assert_int_equal(next[0]->token, t[1]->token + 1);
  ct_tasks_free(next, n);
  omniq_result_free(r);
  ct_tasks_free(t, 2);
}

/* The running totals of a batch spanning two queues and two kinds: each
 * applied run counts once in its own queue and kind, and a decision under
 * a stale token counts nowhere. */
static void test_finish_many_counts_each_run_in_its_own_queue_and_kind(void **state) {
  ct_fx_t *fx = *state;
  need_batches();
  const char *of[5] = {"mail", "mail", "mail", "default", "default"};
  omniq_task_t **none = NULL;
  size_t k = 5, n = 0;
  omniq_task_t **got = claimed_in(fx, of, k);
  omniq_decision_t ds[5];
  size_t mail = 0, other = 0;
  for (size_t i = 0; i < k; i++) {
    ds[i] = ct_decision(got[i], OMNIQ_PENDING); /* a retry: no result to store */
    ds[i].eta_ms = NOW + 1000;
    if (strcmp(got[i]->queue, "mail") == 0) {
      ds[i].runs = mail++ == 0 ? OMNIQ_RUNS_RETRIED : OMNIQ_RUNS_LOST;
    } else {
      ds[i].runs = OMNIQ_RUNS_RETRIED;
      if (other++ == 0) ds[i].token++; /* its claim was taken over */
    }
  }
  int rcs[5], claimed = 1;
  OK(fx, finish_many(fx, ds, 5, rcs, NOW + 10, 0, &none, &n, &claimed));
  int stale = 0;
  for (size_t i = 0; i < k; i++) stale += rcs[i] == OMNIQ_ESTATE;
  assert_int_equal(stale, 1);
  omniq_queue_info_t q = ct_queue(fx, "mail", NOW + 10);
  assert_int_equal(q.runs[OMNIQ_RUNS_RETRIED], 1);
  assert_int_equal(q.runs[OMNIQ_RUNS_LOST], 2);
  assert_int_equal(q.runs[OMNIQ_RUNS_SUCCEEDED], 0);
  q = ct_queue(fx, "default", NOW + 10);
  assert_int_equal(q.runs[OMNIQ_RUNS_RETRIED], 1);
  assert_int_equal(q.runs[OMNIQ_RUNS_LOST], 0);
  ct_tasks_free(got, k);
}

/* The queues decisions name (storage ABI 7) in one batch: a foreign queue
 * and a queue of no task under current tokens finish their tasks and
 * count each run in the task's own queue; a stale token changes nothing,
 * whichever queue it names. */
static void test_finish_many_counts_runs_in_the_tasks_queues_whatever_they_name(void **state) {
  ct_fx_t *fx = *state;
  need_batches();
  const char *of[3] = {"mail", "mail", "default"};
  omniq_task_t **none = NULL, *a = NULL, *b = NULL, *c = NULL;
  size_t k = 3, n = 0;
  omniq_task_t **got = claimed_in(fx, of, k);
  for (size_t i = 0; i < k; i++) {
    if (strcmp(got[i]->queue, "default") == 0)
      c = got[i];
    else if (a == NULL)
      a = got[i];
    else
      b = got[i];
  }
  assert_non_null(b);
  assert_non_null(c);
  omniq_result_t *ra = ct_result(a->id, OMNIQ_SUCCESS, "1", NULL, 1, NOW + 10);
  omniq_result_t *rb = ct_result(b->id, OMNIQ_SUCCESS, "2", NULL, 1, NOW + 10);
  omniq_result_t *rc = ct_result(c->id, OMNIQ_SUCCESS, "3", NULL, 1, NOW + 10);
  omniq_decision_t ds[4] = {ct_decision(a, OMNIQ_SUCCESS), ct_decision(b, OMNIQ_SUCCESS),
                            ct_decision(b, OMNIQ_SUCCESS), ct_decision(c, OMNIQ_SUCCESS)};
  ds[0].queue = "default"; /* foreign */
  ds[0].result = ra;
  ds[1].token++; /* stale, its own queue */
  ds[1].result = rb;
  ds[2].token++; /* stale, a foreign queue */
  ds[2].queue = "default";
  ds[2].result = rb;
  ds[3].queue = "nosuch"; /* no task's queue */
  ds[3].result = rc;
  for (size_t i = 0; i < 4; i++) ds[i].runs = OMNIQ_RUNS_SUCCEEDED;
  int rcs[4] = {-1, -1, -1, -1}, claimed = 1;
  OK(fx, finish_many(fx, ds, 4, rcs, NOW + 10, 0, &none, &n, &claimed));
  assert_int_equal(rcs[0], OMNIQ_OK);
  assert_int_equal(rcs[1], OMNIQ_ESTATE);
  assert_int_equal(rcs[2], OMNIQ_ESTATE);
  assert_int_equal(rcs[3], OMNIQ_OK);
  omniq_result_t *stored = ct_get_result(fx, a->id);
  th_assert_result_equal(stored, ra);
  omniq_result_free(stored);
  stored = ct_get_result(fx, c->id);
  th_assert_result_equal(stored, rc);
  omniq_result_free(stored);
  ct_assert_no_result(fx, b->id);
  omniq_task_t *kept = ct_get(fx, b->id);
  assert_int_equal(kept->status, OMNIQ_RUNNING);
  assert_int_equal(kept->token, b->token);
  omniq_task_free(kept);
  assert_int_equal(ct_queue(fx, "mail", NOW + 10).runs[OMNIQ_RUNS_SUCCEEDED], 1);
  assert_int_equal(ct_queue(fx, "default", NOW + 10).runs[OMNIQ_RUNS_SUCCEEDED], 1);
  omniq_result_free(ra);
  omniq_result_free(rb);
  omniq_result_free(rc);
  ct_tasks_free(got, k);
}

/* No decisions: just the claim. */
static void test_finish_many_of_no_decisions_claims(void **state) {
  ct_fx_t *fx = *state;
  need_batches();
  omniq_task_t **next = NULL;
  add_pending(fx, 2);
  int claimed = 0;
  size_t n = 0;
  OK(fx, finish_many(fx, NULL, 0, NULL, NOW, 5, &next, &n, &claimed));
  assert_int_equal(claimed, 1);
  assert_int_equal(n, 2);
  ct_tasks_free(next, n);
}

/* release: RUNNING under the token back to PENDING, the attempt undone,
 * eta as it was; the old claim is void (neither finish nor extend_lease
 * nor a second release take it), and the next claim counts one attempt. */
static void test_release_returns_a_claimed_task_to_pending_with_its_attempt_undone(void **state) {
  ct_fx_t *fx = *state;
  if (ct_ops->release == NULL) skip();
  omniq_task_t *t = ct_task("default", 0, NOW - 50);
  ct_enqueue1(fx, t);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW);
  FAILS(fx, OMNIQ_ESTATE, ct_ops->release(fx->be, t->id, c->token + 1, fx->err, ERRLEN));
  OK(fx, ct_ops->release(fx->be, t->id, c->token, fx->err, ERRLEN));
  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->attempts, 0);
  assert_int_equal(got->eta_ms, NOW - 50);
  omniq_task_free(got);
  omniq_decision_t d = ct_decision(c, OMNIQ_SUCCESS);
  omniq_result_t *r = ct_result(t->id, OMNIQ_SUCCESS, "1", NULL, 1, NOW + 1);
  d.result = r;
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &d));
  FAILS(fx, OMNIQ_ESTATE,
        ct_ops->extend_lease(fx->be, t->id, c->token, NOW + LEASE_MS, fx->err, ERRLEN));
  FAILS(fx, OMNIQ_ESTATE, ct_ops->release(fx->be, t->id, c->token, fx->err, ERRLEN));
  omniq_task_t *again = ct_claim_one(fx, t->id, NOW + 1);
  assert_int_equal(again->attempts, 1);
  assert_true(again->token > c->token);
  omniq_task_free(again);
  omniq_result_free(r);
  omniq_task_free(c);
  omniq_task_free(t);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_finish_many_applies_each_decision_under_its_own_token),
    CT_TEST(test_finish_many_has_every_effect_finish_has),
    CT_TEST(test_finish_many_of_many_results_stores_each_result_whole),
    CT_TEST(test_finish_many_claims_after_its_decisions),
    CT_TEST(test_finish_many_counts_each_run_in_its_own_queue_and_kind),
    CT_TEST(test_finish_many_counts_runs_in_the_tasks_queues_whatever_they_name),
    CT_TEST(test_finish_many_of_no_decisions_claims),
    CT_TEST(test_release_returns_a_claimed_task_to_pending_with_its_attempt_undone),
};

const ct_section_t ct_section_batch = {tests, sizeof tests / sizeof tests[0], 6};
