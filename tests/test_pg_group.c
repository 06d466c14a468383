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

#include "storage/postgres/postgres.h"
#include "support/backend.h"
#include "support/gate.h"
#include "support/helpers.h"
#include "support/postgres.h"

#define N 8

typedef struct {
  th_be_t *f;
  omniq_decision_t d;
  omniq_result_t *r;
  int rc;
  pthread_t tid;
} finisher_t;

static void *finish_main(void *arg) {
  finisher_t *x = arg;
  x->rc = th_be_finish(x->f, &x->d);
  return NULL;
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
 * ordinary SUCCESS. Checks that SUCCESS and RUNNING hold what they should
 * once all returned. */
static th_be_t *finish_as_one_batch(omniq_task_t ***tp, finisher_t x[N],
                                    void (*adjust)(int i, omniq_decision_t *d), int64_t success,
                                    int64_t running) {
  th_be_t *f = th_be_new("postgres", 1);
  omniq__pg_t *pg = f->b;
  omniq_task_t **t = NULL;
  int64_t counts[OMNIQ_STATUS_COUNT];
  for (int i = 0; i < N; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, N, &t), N);
  *tp = t;
  for (int i = 0; i < N; i++) {
    x[i] = (finisher_t){.f = f};
    x[i].r = th_be_result(t[i]->id, OMNIQ_SUCCESS, th_be_now(f));
    x[i].d = (omniq_decision_t){.id = t[i]->id,
                                .token = t[i]->token,
                                .next_status = OMNIQ_SUCCESS,
                                .result = x[i].r,
                                .runs = OMNIQ_RUNS_SUCCEEDED};
    adjust(i, &x[i].d);
  }
  pthread_mutex_lock(&pg->group.lock);
  pg->group.committing = 1; /* every finisher queues behind this */
  pthread_mutex_unlock(&pg->group.lock);
  for (int i = 0; i < N; i++)
    assert_int_equal(pthread_create(&x[i].tid, NULL, finish_main, &x[i]), 0);
  const struct timespec tick = {0, 200000};
  for (int w = 0; queued(pg) < N; w++) {
    if (w > TH_WAIT_MS * 5) fail_msg("only %d finishes queued", queued(pg));
    nanosleep(&tick, NULL);
  }
  pthread_mutex_lock(&pg->group.lock);
  pg->group.committing = 0;
  pthread_cond_broadcast(&pg->group.cond);
  pthread_mutex_unlock(&pg->group.lock);
  for (int i = 0; i < N; i++) pthread_join(x[i].tid, NULL);
  assert_int_equal(f->ops->count_by_status(f->b, counts, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_SUCCESS], success);
  assert_int_equal(counts[OMNIQ_RUNNING], running);
  return f;
}

/* Distinct transactions that wrote the SUCCESS rows of f's schema. */
static int writers_of_successes(th_be_t *f) {
  char sql[256], out[64];
  snprintf(sql, sizeof sql,
           "SELECT count(DISTINCT xmin::text) FROM %s.tasks WHERE status = %d",
           f->s.db_schema, OMNIQ_SUCCESS);
  if (th_pg_sql(&f->s, sql, out, sizeof out) != 0) fail_msg("%s: %s", sql, out);
  return atoi(out);
}

static void free_all(th_be_t *f, omniq_task_t **t, finisher_t x[N]) {
  for (int i = 0; i < N; i++) {
    omniq_result_free(x[i].r);
    omniq_task_free(t[i]);
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
  assert_int_equal(writers_of_successes(f), 1);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          test_finishes_queued_together_commit_in_one_transaction_each_with_its_own_outcome),
      cmocka_unit_test(test_a_failing_finish_fails_alone_and_the_rest_of_its_batch_is_stored),
  };
  return cmocka_run_group_tests_name("postgres group commit", tests, NULL, NULL);
}
