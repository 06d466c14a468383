/* SPDX-License-Identifier: MIT */
/* Finishes committed together on PostgreSQL (storage/postgres/group.c).
 *
 * Batching is made certain, not hoped for: the test marks the handle's
 * group as committing, so every finisher queues behind that pretend commit;
 * once all of them are on the list it lets go, and one of them commits
 * the whole list as one batch. That it was one transaction is read from
 * the rows themselves: every row a transaction wrote carries its id
 * (xmin). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/records.h"
#include "storage/postgres/postgres.h"
#include "support/backend.h"
#include "support/gate.h"
#include "support/helpers.h"
#include "support/postgres.h"

#define N 8

static const char *const default_queue[] = {"default"};

/* A claim of up to max tasks of the default queue. */
static omniq_claim_req_t claim_of(th_be_t *f, size_t max) {
  return (omniq_claim_req_t){.now_ms = th_be_now(f),
                             .lease_until_ms = th_be_now(f) + 30000,
                             .queues = default_queue,
                             .nqueues = 1,
                             .max = max};
}

typedef struct {
  th_be_t *f;
  omniq_decision_t d;
  omniq_result_t *r;
  int rc;
  pthread_t tid;
  size_t ride;          /* > 0: finish_claim of up to ride tasks */
  omniq_task_t **next;  /* what the ride claimed */
  size_t n;
  int claimed;
} finisher_t;

static void *finish_main(void *arg) {
  finisher_t *x = arg;
  if (x->ride == 0) {
    x->rc = th_be_finish(x->f, &x->d);
  } else {
    omniq_claim_req_t req = claim_of(x->f, x->ride);
    char err[256];
    x->rc = omniq__pg_finish_claim(x->f->b, &x->d, &req, &x->next, &x->n, &x->claimed, err,
                                    sizeof err);
  }
  return NULL;
}

/* Finishes that joined the group's list, told by its test hook. */
static th_gate_t joined;

static void group_noted(int is_committing) {
  if (!is_committing) th_gate_add(&joined, 1);
}

static int queued(omniq__pg_t *pg) {
  int n = 0;
  pthread_mutex_lock(&pg->group.lock);
  for (omniq__pg_fin_t *f = pg->group.head; f != NULL; f = f->next) n++;
  pthread_mutex_unlock(&pg->group.lock);
  return n;
}

/* A fresh store with N tasks claimed (into *t) and finished from N threads
 * at once, as one batch; decision i is made by adjust(i, &d) after the
 * ordinary SUCCESS. With ride > 0 the store also holds N * ride pending
 * tasks and each finish claims up to ride of them (finish_claim). Checks
 * that SUCCESS and RUNNING hold what they should once all returned. */
static th_be_t *finish_riding_as_one_batch(omniq_task_t ***tp, finisher_t x[N],
                                           void (*adjust)(int i, omniq_decision_t *d),
                                           size_t ride, int64_t success, int64_t running) {
  th_be_t *f = th_be_new("postgres", 1);
  omniq__pg_t *pg = f->b;
  omniq_task_t **t = NULL;
  int64_t counts[OMNIQ_STATUS_COUNT];
  for (int i = 0; i < N; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, N, &t), N);
  for (size_t i = 0; i < N * ride; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  *tp = t;
  for (int i = 0; i < N; i++) {
    x[i] = (finisher_t){.f = f, .ride = ride};
    x[i].r = th_be_result(t[i]->id, OMNIQ_SUCCESS, th_be_now(f));
    x[i].d = (omniq_decision_t){.id = t[i]->id,
                                .token = t[i]->token,
                                .next_status = OMNIQ_SUCCESS,
                                .result = x[i].r,
                                .runs = OMNIQ_RUNS_SUCCEEDED};
    adjust(i, &x[i].d);
  }
  th_gate_init(&joined);
  omniq__pg_set_group_hook(group_noted);
  pthread_mutex_lock(&pg->group.lock);
  pg->group.committing = 1; /* every finisher queues behind this */
  pthread_mutex_unlock(&pg->group.lock);
  for (int i = 0; i < N; i++)
    assert_int_equal(pthread_create(&x[i].tid, NULL, finish_main, &x[i]), 0);
  if (!th_gate_wait(&joined, N, TH_WAIT_MS)) fail_msg("only %d finishes queued", queued(pg));
  assert_int_equal(queued(pg), N);
  pthread_mutex_lock(&pg->group.lock);
  pg->group.committing = 0;
  pthread_cond_broadcast(&pg->group.cond);
  pthread_mutex_unlock(&pg->group.lock);
  for (int i = 0; i < N; i++) pthread_join(x[i].tid, NULL);
  omniq__pg_set_group_hook(NULL);
  th_gate_destroy(&joined);
  assert_int_equal(f->ops->count_by_status(f->b, counts, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_SUCCESS], success);
  assert_int_equal(counts[OMNIQ_RUNNING], running);
  return f;
}

static th_be_t *finish_as_one_batch(omniq_task_t ***tp, finisher_t x[N],
                                    void (*adjust)(int i, omniq_decision_t *d), int64_t success,
                                    int64_t running) {
  return finish_riding_as_one_batch(tp, x, adjust, 0, success, running);
}

/* Distinct transactions that wrote the rows of f's tasks where cond holds
 * (every row a transaction wrote carries its id, xmin). */
static int writers(th_be_t *f, const char *cond) {
  char sql[256], out[64];
  snprintf(sql, sizeof sql, "SELECT count(DISTINCT xmin::text) FROM %s.tasks WHERE %s",
           f->s.db_schema, cond);
  if (th_pg_sql(&f->s, sql, out, sizeof out) != 0) fail_msg("%s: %s", sql, out);
  return atoi(out);
}

/* Tasks of f where cond holds. */
static int count_where(th_be_t *f, const char *cond) {
  char sql[256], out[64];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.tasks WHERE %s", f->s.db_schema, cond);
  if (th_pg_sql(&f->s, sql, out, sizeof out) != 0) fail_msg("%s: %s", sql, out);
  return atoi(out);
}

static void free_all(th_be_t *f, omniq_task_t **t, finisher_t x[N]) {
  for (int i = 0; i < N; i++) {
    omniq_result_free(x[i].r);
    omniq_task_free(t[i]);
    omniq__tasks_free(x[i].next, x[i].n);
  }
  free(t);
  th_pg_drop(&f->s);
  th_be_free(f);
}

static void stale_middle(int i, omniq_decision_t *d) {
  if (i == N / 2) d->token++; /* a claim taken over meanwhile */
}

/* N runs end at once, one under a stale token: the rest commit in one
 * transaction; the stale one alone is refused and changes nothing. */
static void test_finishes_queued_together_commit_in_one_transaction_each_with_its_own_outcome(
    void **state) {
  (void)state;
  omniq_task_t **t;
  finisher_t x[N];
  char err[256];
  th_be_t *f = finish_as_one_batch(&t, x, stale_middle, N - 1, 1);
  assert_int_equal(writers(f, "status = 2"), 1);
  for (int i = 0; i < N; i++) {
    omniq_result_t *r = NULL;
    int rc = f->ops->get_result(f->b, t[i]->id, &r, err, sizeof err);
    if (i == N / 2) {
      assert_int_equal(x[i].rc, OMNIQ_ESTATE);
      assert_int_equal(rc, OMNIQ_ENOTFOUND);
    } else {
      assert_int_equal(x[i].rc, OMNIQ_OK);
      assert_int_equal(rc, OMNIQ_OK);
      assert_int_equal(r->status, OMNIQ_SUCCESS);
    }
    omniq_result_free(r);
  }
  free_all(f, t, x);
}

static void bad_last(int i, omniq_decision_t *d) {
  if (i == N - 1) d->runs = 1 << 20; /* out of the running total's kind's range */
}

/* One finish of a batch fails in the server: the batch is rolled back and
 * every finish runs alone, so only the bad one fails and the others are
 * stored. */
static void test_a_failing_finish_fails_alone_and_the_rest_of_its_batch_is_stored(
    void **state) {
  (void)state;
  omniq_task_t **t;
  finisher_t x[N];
  th_be_t *f = finish_as_one_batch(&t, x, bad_last, N - 1, 1);
  for (int i = 0; i < N; i++) assert_int_equal(x[i].rc, i == N - 1 ? OMNIQ_EINVAL : OMNIQ_OK);
  free_all(f, t, x);
}

static void as_is(int i, omniq_decision_t *d) { (void)i, (void)d; }

/* One lone ride: a fresh store with `pending` tasks, one of them claimed
 * and ended SUCCESS, reported with finish_claim of up to max tasks. */
typedef struct {
  th_be_t *f;
  omniq_task_t **t;      /* the claimed task */
  omniq_result_t *r;
  omniq_decision_t d;
  omniq_task_t **next;   /* what the ride claimed */
  size_t n;
  int claimed;
  char err[256];
} ride_t;

static void ride_setup(ride_t *x, int pending) {
  memset(x, 0, sizeof *x);
  x->f = th_be_new("postgres", 1);
  x->n = 5;
  x->claimed = -1;
  for (int i = 0; i < pending; i++) th_be_add(x->f, NULL, 0, th_be_now(x->f), NULL);
  assert_int_equal(th_be_claim(x->f, 1, &x->t), 1);
  x->r = th_be_result(x->t[0]->id, OMNIQ_SUCCESS, th_be_now(x->f));
  x->d = (omniq_decision_t){.id = x->t[0]->id, .token = x->t[0]->token,
                            .next_status = OMNIQ_SUCCESS, .result = x->r,
                            .runs = OMNIQ_RUNS_SUCCEEDED};
}

static int ride(ride_t *x, size_t max) {
  omniq_claim_req_t req = claim_of(x->f, max);
  return omniq__pg_finish_claim(x->f->b, &x->d, &req, &x->next, &x->n, &x->claimed, x->err,
                                 sizeof x->err);
}

static void ride_free(ride_t *x) {
  omniq__tasks_free(x->next, x->n);
  omniq_result_free(x->r);
  omniq__tasks_free(x->t, 1);
  th_pg_drop(&x->f->s);
  th_be_free(x->f);
}

/* A run's outcome carries the runner's next claim: both are one
 * transaction (the finished row and the claimed ones carry one xmin), the
 * claimed tasks come back RUNNING, and the finished one is not among them. */
static void test_finish_claim_stores_the_outcome_and_claims_the_next_in_one_transaction(
    void **state) {
  (void)state;
  ride_t x;
  omniq_result_t *stored = NULL;
  ride_setup(&x, 3);
  assert_int_equal(ride(&x, 2), OMNIQ_OK);
  assert_int_equal(x.claimed, 1);
  assert_int_equal(x.n, 2);
  for (size_t i = 0; i < x.n; i++) {
    assert_string_not_equal(x.next[i]->id, x.t[0]->id);
    assert_int_equal(x.next[i]->status, OMNIQ_RUNNING);
    assert_int_equal(x.next[i]->attempts, 1);
  }
  assert_int_equal(writers(x.f, "status IN (1, 2)"), 1);
  assert_int_equal(count_where(x.f, "status = 2"), 1);
  assert_int_equal(count_where(x.f, "status = 1"), 2);
  assert_int_equal(x.f->ops->get_result(x.f->b, x.t[0]->id, &stored, x.err, sizeof x.err),
                   OMNIQ_OK);
  assert_int_equal(stored->status, OMNIQ_SUCCESS);
  omniq_result_free(stored);
  ride_free(&x);
}

/* The claim rides only on an outcome that applies: under a stale token the
 * outcome is refused and nothing is claimed, so no task is left RUNNING
 * that the caller does not know of. */
static void test_finish_claim_under_a_stale_token_claims_nothing(void **state) {
  (void)state;
  ride_t x;
  ride_setup(&x, 2);
  x.d.token++;
  assert_int_equal(ride(&x, 1), OMNIQ_ESTATE);
  assert_int_equal(x.claimed, 0);
  assert_int_equal(x.n, 0);
  assert_null(x.next);
  assert_int_equal(count_where(x.f, "status = 1"), 1);
  assert_int_equal(count_where(x.f, "status = 0"), 1);
  ride_free(&x);
}

/* A paused queue: the outcome is stored, the ride takes nothing and says
 * it did not claim, so the caller's own claim decides (and keeps the
 * pause). */
static void test_finish_claim_of_a_paused_queue_stores_the_outcome_and_leaves_the_claim(
    void **state) {
  (void)state;
  ride_t x;
  ride_setup(&x, 2);
  assert_int_equal(x.f->ops->set_paused(x.f->b, "default", 1, x.err, sizeof x.err), OMNIQ_OK);
  assert_int_equal(ride(&x, 1), OMNIQ_OK);
  assert_int_equal(x.claimed, 0);
  assert_int_equal(x.n, 0);
  assert_int_equal(count_where(x.f, "status = 2"), 1);
  assert_int_equal(count_where(x.f, "status = 0"), 1);
  ride_free(&x);
}

/* An outcome that makes its task due again at once (a retry without
 * delay) does not ride: the claim's snapshot could not see the task
 * pending, and a drain would end with it left behind. The outcome is
 * stored, nothing is claimed, and the caller's own claim finds the task. */
static void test_finish_claim_of_a_retry_due_now_leaves_the_claim_to_the_caller(
    void **state) {
  (void)state;
  ride_t x;
  omniq_task_t **again = NULL;
  ride_setup(&x, 1);
  x.d.next_status = OMNIQ_PENDING;
  x.d.result = NULL;
  x.d.eta_ms = th_be_now(x.f);
  x.d.runs = OMNIQ_RUNS_RETRIED;
  assert_int_equal(ride(&x, 1), OMNIQ_OK);
  assert_int_equal(x.claimed, 0);
  assert_int_equal(x.n, 0);
  assert_int_equal(th_be_claim(x.f, 1, &again), 1);
  assert_string_equal(again[0]->id, x.t[0]->id);
  omniq__tasks_free(again, 1);
  ride_free(&x);
}

/* N runners report and claim at once: one transaction for all of it, and
 * each pending task goes to exactly one of them. */
static void test_riding_claims_of_one_batch_take_distinct_tasks_in_one_transaction(
    void **state) {
  (void)state;
  omniq_task_t **t;
  finisher_t x[N];
  th_be_t *f = finish_riding_as_one_batch(&t, x, as_is, 2, N, 2 * N);
  assert_int_equal(writers(f, "status IN (1, 2)"), 1);
  for (int i = 0; i < N; i++) {
    assert_int_equal(x[i].rc, OMNIQ_OK);
    assert_int_equal(x[i].claimed, 1);
    assert_int_equal(x[i].n, 2);
    for (int j = 0; j <= i; j++)
      for (size_t a = 0; a < x[i].n; a++)
        for (size_t b = 0; b < x[j].n; b++)
          if (j < i || a != b) assert_string_not_equal(x[i].next[a]->id, x[j].next[b]->id);
  }
  free_all(f, t, x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          test_finishes_queued_together_commit_in_one_transaction_each_with_its_own_outcome),
      cmocka_unit_test(test_a_failing_finish_fails_alone_and_the_rest_of_its_batch_is_stored),
      cmocka_unit_test(test_finish_claim_stores_the_outcome_and_claims_the_next_in_one_transaction),
      cmocka_unit_test(test_finish_claim_under_a_stale_token_claims_nothing),
      cmocka_unit_test(
          test_finish_claim_of_a_paused_queue_stores_the_outcome_and_leaves_the_claim),
      cmocka_unit_test(test_finish_claim_of_a_retry_due_now_leaves_the_claim_to_the_caller),
      cmocka_unit_test(test_riding_claims_of_one_batch_take_distinct_tasks_in_one_transaction),
  };
  return cmocka_run_group_tests_name("postgres group commit", tests, NULL, NULL);
}
