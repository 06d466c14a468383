/* SPDX-License-Identifier: MIT */
/* Many outcomes and the next claim in one step on PostgreSQL
 * (storage/postgres/batch.c). What every backend must do is the contract's
 * (tests/contract/batch.c); here is what needs the server to see: that the
 * step is one transaction (every row a transaction wrote carries its id,
 * xmin), that a statement the server refuses fails only its own
 * outcome, and that the outcomes' statement looks its rows up by id in a
 * large table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#include "base/records.h"
#include "storage/postgres/postgres.h"
#include "support/backend.h"
#include "support/helpers.h"
#include "support/postgres.h"

#define N 6

static const char *const default_queue[] = {"default"};

/* Runs of f's tasks where cond holds, by a SQL count over its schema. */
static int count_sql(th_be_t *f, const char *what, const char *cond) {
  char sql[256], out[64];
  snprintf(sql, sizeof sql, "SELECT %s FROM %s.tasks WHERE %s", what, f->s.db_schema, cond);
  if (th_pg_sql(&f->s, sql, out, sizeof out) != 0) fail_msg("%s: %s", sql, out);
  return atoi(out);
}

/* A fresh store: N tasks claimed (into *t), `pending` more waiting, and a
 * SUCCESS decision for each claimed one (results into r). */
static th_be_t *batch_setup(omniq_task_t ***t, omniq_decision_t ds[N], omniq_result_t *r[N],
                            int pending) {
  th_be_t *f = th_be_new("postgres", 1);
  for (int i = 0; i < N; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, N, t), N);
  for (int i = 0; i < pending; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  for (int i = 0; i < N; i++) {
    r[i] = th_be_result((*t)[i]->id, OMNIQ_SUCCESS, th_be_now(f));
    ds[i] = (omniq_decision_t){.id = (*t)[i]->id,
                               .token = (*t)[i]->token,
                               .next_status = OMNIQ_SUCCESS,
                               .result = r[i],
                               .runs = OMNIQ_RUNS_SUCCEEDED};
  }
  return f;
}

static void batch_free(th_be_t *f, omniq_task_t **t, omniq_result_t *r[N]) {
  for (int i = 0; i < N; i++) omniq_result_free(r[i]);
  omniq__tasks_free(t, N);
  th_pg_drop(&f->s);
  th_be_free(f);
}

static int finish_many(th_be_t *f, const omniq_decision_t *ds, int *rcs, size_t max,
                       omniq_task_t ***next, size_t *n, int *claimed) {
  omniq_claim_req_t req = {.now_ms = th_be_now(f),
                           .lease_until_ms = th_be_now(f) + 30000,
                           .queues = default_queue,
                           .nqueues = 1,
                           .max = max};
  return f->ops->finish_many(f->b, ds, N, rcs, &req, next, n, claimed, f->err, sizeof f->err);
}

/* A batch with one stale token: the other outcomes and the claim commit,
 * all in one transaction; the stale one changes nothing. */
static void test_a_batch_with_a_stale_token_commits_the_others_and_the_claim_in_one_transaction(
    void **state) {
  (void)state;
  omniq_task_t **t = NULL, **next = NULL;
  omniq_decision_t ds[N];
  omniq_result_t *r[N];
  int rcs[N], claimed = 0;
  size_t n = 0;
  th_be_t *f = batch_setup(&t, ds, r, 3);
  ds[2].token++; /* its claim was taken over */
  assert_int_equal(finish_many(f, ds, rcs, 3, &next, &n, &claimed), OMNIQ_OK);
  for (int i = 0; i < N; i++) assert_int_equal(rcs[i], i == 2 ? OMNIQ_ESTATE : OMNIQ_OK);
  assert_int_equal(claimed, 1);
  assert_int_equal(n, 3);
  assert_int_equal(count_sql(f, "count(*)", "status = 2"), N - 1);
  assert_int_equal(count_sql(f, "count(*)", "status = 1"), 1 + 3);
  /* The finished rows and the claimed ones: one writer. The stale one's
   * row is still the claim's own (an older transaction). */
  char cond[128];
  snprintf(cond, sizeof cond, "status IN (1, 2) AND id <> '%s'", t[2]->id);
  assert_int_equal(count_sql(f, "count(DISTINCT xmin::text)", cond), 1);
  assert_int_equal(count_sql(f, "count(DISTINCT xmin::text)", "status IN (1, 2)"), 2);
  omniq__tasks_free(next, n);
  batch_free(f, t, r);
}

/* One outcome the server refuses (a running-total kind out of range)
 * rolls the batch back; then each outcome commits alone, so only that one
 * fails, and the claim is left to the caller. */
static void test_a_refused_outcome_fails_alone_and_the_rest_of_its_batch_is_stored(
    void **state) {
  (void)state;
  omniq_task_t **t = NULL, **next = NULL;
  omniq_decision_t ds[N];
  omniq_result_t *r[N];
  int rcs[N], claimed = 1;
  size_t n = 5;
  th_be_t *f = batch_setup(&t, ds, r, 2);
  ds[N - 1].runs = 1 << 20;
  assert_int_equal(finish_many(f, ds, rcs, 2, &next, &n, &claimed), OMNIQ_OK);
  for (int i = 0; i < N; i++) assert_int_equal(rcs[i], i == N - 1 ? OMNIQ_EINVAL : OMNIQ_OK);
  assert_int_equal(claimed, 0);
  assert_int_equal(n, 0);
  assert_null(next);
  assert_int_equal(count_sql(f, "count(*)", "status = 2"), N - 1);
  assert_int_equal(count_sql(f, "count(*)", "status = 1"), 1);
  assert_int_equal(count_sql(f, "count(*)", "status = 0"), 2);
  batch_free(f, t, r);
}

/* A paused queue: the outcomes commit, the claim takes nothing and says
 * it did not claim, so the caller's own claim decides. */
static void test_a_batch_claiming_from_a_paused_queue_stores_the_outcomes_and_leaves_the_claim(
    void **state) {
  (void)state;
  omniq_task_t **t = NULL, **next = NULL;
  omniq_decision_t ds[N];
  omniq_result_t *r[N];
  int rcs[N], claimed = 1;
  size_t n = 5;
  th_be_t *f = batch_setup(&t, ds, r, 2);
  assert_int_equal(f->ops->set_paused(f->b, "default", 1, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(finish_many(f, ds, rcs, 2, &next, &n, &claimed), OMNIQ_OK);
  for (int i = 0; i < N; i++) assert_int_equal(rcs[i], OMNIQ_OK);
  assert_int_equal(claimed, 0);
  assert_int_equal(n, 0);
  assert_int_equal(count_sql(f, "count(*)", "status = 2"), N);
  assert_int_equal(count_sql(f, "count(*)", "status = 0"), 2);
  batch_free(f, t, r);
}

#define PLAN_TASKS 20000

/* The outcomes' statement over 20,000 tasks, analyzed, with the plan a
 * prepared statement settles on (generic) and the first one (custom):
 * the task rows are looked up by id in an index (the primary key, or the
 * running tasks' partial index), never found by reading the table. */
static void test_the_outcomes_statement_looks_its_rows_up_by_id(void **state) {
  (void)state;
  th_be_t *f = th_be_new("postgres", 1);
  omniq_task_t *batch[1000];
  char plan[4096], *sql = NULL;
  for (int done = 0; done < PLAN_TASKS; done += 1000) {
    for (int i = 0; i < 1000; i++) batch[i] = th_be_task(f, NULL, 0, th_be_now(f));
    assert_int_equal(f->ops->enqueue(f->b, batch, 1000, f->err, sizeof f->err), OMNIQ_OK);
    for (int i = 0; i < 1000; i++) omniq_task_free(batch[i]);
  }
  char analyze[128];
  snprintf(analyze, sizeof analyze, "ANALYZE %s.tasks", f->s.db_schema);
  if (th_pg_sql(&f->s, analyze, plan, sizeof plan) != 0) fail_msg("%s: %s", analyze, plan);
  char *stmt = omniq__pg_sql(omniq__pg_finish_many_sql, f->s.db_schema);
  assert_non_null(stmt);
  for (int generic = 0; generic < 2; generic++) {
    assert_true(asprintf(&sql,
                         "SET plan_cache_mode = %s; PREPARE m AS %s; EXPLAIN EXECUTE m("
                         "'{00000000-0000-4000-8000-000000000001}', '{1}', '{2}', '{0}', '{0}',"
                         " '{f}', '{NULL}', '{2}', '{NULL}', '{NULL}', '{1}', '{0}', '{0}',"
                         " '{0}', '{0}', '{0}')",
                         generic ? "force_generic_plan" : "force_custom_plan", stmt) > 0);
    if (th_pg_sql(&f->s, sql, plan, sizeof plan) != 0) fail_msg("%s: %s", sql, plan);
    free(sql);
    if (strstr(plan, "Index Cond: (id = ANY") == NULL || strstr(plan, "Seq Scan on tasks") != NULL)
      fail_msg("%s plan does not find the rows by their ids through an index:\n%s",
               generic ? "generic" : "custom", plan);
  }
  omniq__free(stmt);
  th_pg_drop(&f->s);
  th_be_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          test_a_batch_with_a_stale_token_commits_the_others_and_the_claim_in_one_transaction),
      cmocka_unit_test(test_a_refused_outcome_fails_alone_and_the_rest_of_its_batch_is_stored),
      cmocka_unit_test(
          test_a_batch_claiming_from_a_paused_queue_stores_the_outcomes_and_leaves_the_claim),
      cmocka_unit_test(test_the_outcomes_statement_looks_its_rows_up_by_id),
  };
  return cmocka_run_group_tests_name("postgres finish_many", tests, NULL, NULL);
}
