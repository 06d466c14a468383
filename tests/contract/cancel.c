/* SPDX-License-Identifier: MIT */
/* Contract: cancel moves PENDING or RUNNING to CANCELLED and stores its
 * result, with the attempts counted at that same step, and says what the
 * task was. */
#include "suite.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The result a cancel stores: CANCELLED, no value, no error, the given
 * finished_at, and the task's attempts and started_at as they were. */
static void assert_cancel_result(ct_fx_t *fx, const omniq_task_t *as_was, int64_t finished_at) {
  omniq_result_t want = {.status = OMNIQ_CANCELLED,
                         .attempts = as_was->attempts,
                         .finished_at_ms = finished_at,
                         .last_attempt_at_ms = as_was->started_at_ms};
  memcpy(want.task_id, as_was->id, OMNIQ_ID_SIZE);
  omniq_result_t *stored = ct_get_result(fx, as_was->id);
  th_assert_result_equal(stored, &want);
  omniq_result_free(stored);
}

static void test_cancel_pending_and_running_stores_result(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *p = ct_task("default", 0, NOW + 100), *run = ct_task("default", 0, NOW);
  ct_enqueue1(fx, p);
  ct_enqueue1(fx, run);
  omniq_task_t *c = ct_claim_one(fx, run->id, NOW + 7);

  const omniq_task_t *as_was[2] = {p, c}; /* never claimed; claimed once at NOW + 7 */
  const int was[2] = {OMNIQ_PENDING, OMNIQ_RUNNING};
  for (int i = 0; i < 2; i++) {
    int prev = -1;
    OK(fx, ct_cancel(fx, as_was[i]->id, NOW + 50, &prev));
    assert_int_equal(prev, was[i]);
    omniq_task_t *got = ct_get(fx, as_was[i]->id);
    assert_int_equal(got->status, OMNIQ_CANCELLED);
    assert_int_equal(got->attempts, as_was[i]->attempts);
    assert_cancel_result(fx, as_was[i], NOW + 50);
    omniq_task_free(got);
  }
  /* The running handler's report is discarded. */
  omniq_result_t *late = ct_result(run->id, OMNIQ_SUCCESS, "1", NULL, 1, NOW + 9);
  omniq_decision_t d = ct_decision(c, OMNIQ_SUCCESS);
  d.result = late;
  FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &d));
  FAILS(fx, OMNIQ_ESTATE,
        ct_ops->extend_lease(fx->be, run->id, c->token, NOW + 1, fx->err, ERRLEN));
  assert_cancel_result(fx, c, NOW + 50);
  omniq_task_t *got = ct_get(fx, run->id);
  assert_int_equal(got->status, OMNIQ_CANCELLED);
  omniq_task_free(got);
  omniq_result_free(late);
  omniq_task_free(c);
  omniq_task_free(p);
  omniq_task_free(run);
}

static void test_cancel_terminal_is_state_error_and_says_its_status(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t);
  omniq_task_t *c = ct_claim_one(fx, t->id, NOW);
  omniq_result_t *done = ct_result(t->id, OMNIQ_SUCCESS, "true", NULL, 1, NOW + 1);
  omniq_decision_t d = ct_decision(c, OMNIQ_SUCCESS);
  d.result = done;
  OK(fx, ct_finish(fx, &d));
  int prev = -1;
  FAILS(fx, OMNIQ_ESTATE, ct_cancel(fx, t->id, NOW + 2, &prev));
  assert_int_equal(prev, OMNIQ_SUCCESS);
  omniq_result_t *stored = ct_get_result(fx, t->id);
  th_assert_result_equal(stored, done); /* the cancel stored nothing */
  omniq_task_t *got = ct_get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_SUCCESS);

  /* Cancelling twice: the second finds a terminal task. */
  omniq_task_t *t2 = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t2);
  OK(fx, ct_cancel(fx, t2->id, NOW + 3, NULL));
  FAILS(fx, OMNIQ_ESTATE, ct_cancel(fx, t2->id, NOW + 4, &prev));
  assert_int_equal(prev, OMNIQ_CANCELLED);
  assert_cancel_result(fx, t2, NOW + 3); /* the first cancel's */
  omniq_task_free(t2);
  omniq_task_free(got);
  omniq_result_free(stored);
  omniq_result_free(done);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_cancelled_task_is_never_claimed(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 5, NOW), *other = ct_task("default", 0, NOW);
  ct_enqueue1(fx, t);
  ct_enqueue1(fx, other);
  OK(fx, ct_cancel(fx, t->id, NOW, NULL));
  omniq_task_t *c = ct_claim_one(fx, other->id, NOW + 100000);
  ct_assert_nothing_due(fx, NOW + 100000);
  int64_t cnt[OMNIQ_STATUS_COUNT];
  ct_counts(fx, cnt);
  assert_int_equal(cnt[OMNIQ_CANCELLED], 1);
  assert_int_equal(cnt[OMNIQ_RUNNING], 1);
  omniq_task_free(c);
  omniq_task_free(other);
  omniq_task_free(t);
}

/* ---- a cancel racing a claim ---------------------------------------------
 *
 * Each round enqueues one task; then a claimer thread (its own backend on
 * the same store, like another worker) and this thread cancel it, released
 * together by a barrier. Whichever lands first, the stored result must
 * count exactly the attempts the task has: 0 when the cancel won, 1 when
 * the claim did. A cancel that read the task before applying itself would
 * sometimes store 0 for a task that ran. */

#define RACE_ROUNDS 1000

typedef struct race {
  const omniq_storage_ops_t *ops;
  void *be; /* the claimer's backend */
  pthread_barrier_t go, done;
  atomic_int stop;
  int rc;
  long claimed;
  char err[ERRLEN];
} race_t;

static void *claimer(void *arg) {
  race_t *r = arg;
  static const char *const def[] = {OMNIQ_DEFAULT_QUEUE};
  omniq_claim_req_t req = {NOW, NOW + LEASE_MS, def, 1, 1};
  for (;;) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    pthread_barrier_wait(&r->go);
    if (atomic_load(&r->stop)) break;
    int rc = r->ops->claim(r->be, &req, &got, &n, r->err, ERRLEN);
    if (rc != OMNIQ_OK && r->rc == OMNIQ_OK) r->rc = rc;
    r->claimed += (long)n;
    ct_tasks_free(got, n);
    pthread_barrier_wait(&r->done);
  }
  return NULL;
}

/* One round: a task, a claim and a cancel released together. NULL if the
 * stored result counts the attempts of the task as it was cancelled, else
 * what went wrong (in buf). *pending: the cancel found it PENDING. */
static const char *race_round(ct_fx_t *fx, race_t *r, int *pending, char *buf, size_t len) {
  omniq_task_t *t = ct_task("default", 0, NOW), *got = NULL;
  omniq_result_t *res = NULL;
  int prev = -1, rc;
  const char *why = NULL;
  if ((rc = ct_enqueue(fx, &t, 1)) != OMNIQ_OK) {
    omniq_task_free(t);
    snprintf(buf, len, "enqueue: %s: %.400s", omniq_err_name(rc), fx->err);
    return buf;
  }
  pthread_barrier_wait(&r->go);
  rc = ct_cancel(fx, t->id, NOW + 1, &prev);
  pthread_barrier_wait(&r->done);
  *pending = prev == OMNIQ_PENDING;
  if (rc == OMNIQ_OK && (rc = ct_ops->get_task(fx->be, t->id, &got, fx->err, ERRLEN)) == OMNIQ_OK)
    rc = ct_ops->get_result(fx->be, t->id, &res, fx->err, ERRLEN);
  if (rc != OMNIQ_OK)
    snprintf(buf, len, "%s: %.400s", omniq_err_name(rc), fx->err), why = buf;
  else if (got->status != OMNIQ_CANCELLED || got->attempts != (*pending ? 0 : 1))
    snprintf(buf, len, "the task is %s after %d attempt(s), cancelled while %s",
             omniq_status_name(got->status), got->attempts, omniq_status_name(prev)), why = buf;
  else if (res->status != OMNIQ_CANCELLED || res->attempts != got->attempts ||
           res->last_attempt_at_ms != got->started_at_ms || res->finished_at_ms != NOW + 1)
    snprintf(buf, len,
             "the result counts %d attempt(s) (last at %lld) for a task with %d (last at %lld)",
             res->attempts, (long long)res->last_attempt_at_ms, got->attempts,
             (long long)got->started_at_ms), why = buf;
  omniq_result_free(res);
  omniq_task_free(got);
  omniq_task_free(t);
  return why;
}

static void test_cancel_racing_a_claim_stores_the_attempts_of_the_task_it_cancelled(void **state) {
  ct_fx_t *fx = *state;
  race_t r = {.ops = ct_ops};
  pthread_t th;
  long cancel_first = 0;
  int round = 0, pending = 0;
  char buf[ERRLEN + 128];
  const char *why = NULL;
  OK(fx, ct_ops->open(&fx->settings, &r.be, fx->err, ERRLEN));
  atomic_init(&r.stop, 0);
  assert_int_equal(pthread_barrier_init(&r.go, NULL, 2), 0);
  assert_int_equal(pthread_barrier_init(&r.done, NULL, 2), 0);
  assert_int_equal(pthread_create(&th, NULL, claimer, &r), 0);
  for (; round < RACE_ROUNDS && why == NULL; round++) {
    why = race_round(fx, &r, &pending, buf, sizeof buf);
    cancel_first += pending;
  }
  atomic_store(&r.stop, 1);
  pthread_barrier_wait(&r.go); /* releases the claimer to see stop */
  pthread_join(th, NULL);
  ct_ops->close(r.be);
  pthread_barrier_destroy(&r.go);
  pthread_barrier_destroy(&r.done);
  if (why != NULL) fail_msg("round %d: %s", round - 1, why);
  if (r.rc != OMNIQ_OK) fail_msg("claim -> %s: %s", omniq_err_name(r.rc), r.err);
  /* Every round's task was either claimed (then cancelled while running) or
   * cancelled while pending: never both, never neither. */
  assert_int_equal(r.claimed + cancel_first, RACE_ROUNDS);
  print_message("%ld of %d rounds cancelled a pending task, %ld a running one\n", cancel_first,
                RACE_ROUNDS, r.claimed);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_cancel_pending_and_running_stores_result),
    CT_TEST(test_cancel_terminal_is_state_error_and_says_its_status),
    CT_TEST(test_cancelled_task_is_never_claimed),
    CT_TEST(test_cancel_racing_a_claim_stores_the_attempts_of_the_task_it_cancelled),
};

const ct_section_t ct_section_cancel = {tests, sizeof tests / sizeof tests[0], 2};
