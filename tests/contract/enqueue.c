/* SPDX-License-Identifier: MIT */
/* Contract: enqueue stores every field, and a batch is all or none. */
#include "suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_enqueue_one_then_get_returns_same_fields(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *t = ct_task("default", 7, NOW + 123);
  t->interval_ms = 60000;
  t->max_retries = 5;
  ct_enqueue1(fx, t);
  omniq_task_t *got = ct_get(fx, t->id);
  ct_assert_as_enqueued(got, t);
  omniq_task_free(got);
  omniq_task_free(t);
}

static void test_enqueue_many_then_get_returns_each(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *tasks[25];
  for (int i = 0; i < 25; i++) tasks[i] = ct_task(i % 2 ? "default" : "other", i - 12, NOW + i);
  OK(fx, ct_enqueue(fx, tasks, 25));
  for (int i = 0; i < 25; i++) {
    omniq_task_t *got = ct_get(fx, tasks[i]->id);
    ct_assert_as_enqueued(got, tasks[i]);
    omniq_task_free(got);
    omniq_task_free(tasks[i]);
  }
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], 25);
}

/* More tasks than one insert statement of a backend may carry (SQLite
 * inserts 64 rows per statement), with every field that an enqueue stores
 * varying from task to task. */
#define MANY 150

static void test_enqueue_many_more_than_a_statement_carries_stores_every_field(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *tasks[MANY];
  char key[32], cron[32];
  for (int i = 0; i < MANY; i++) {
    omniq_task_t *base = ct_task(i % 3 ? "default" : "other", i % 7 - 3, NOW + i), t = *base;
    t.max_retries = i % 5;
    t.interval_ms = i % 4 == 0 ? 1000 * i : 0;
    t.timeout_ms = 10 * i;
    t.last_error = i % 10 == 1 ? omniq_task_error_new("E", "earlier", NOW - i, NULL, 0, 1) : NULL;
    snprintf(key, sizeof key, "k%d", i);
    snprintf(cron, sizeof cron, "%d * * * *", i % 60);
    if (i % 2 == 0) t.unique_key = key, t.unique_for_ms = i;
    if (i % 9 == 0) t.cron = cron;
    assert_non_null(tasks[i] = omniq_task_dup(&t)); /* the library's allocator */
    omniq_task_error_free(t.last_error);
    omniq_task_free(base);
  }
  OK(fx, ct_enqueue(fx, tasks, MANY));
  for (int i = 0; i < MANY; i++) {
    omniq_task_t *got = ct_get(fx, tasks[i]->id);
    ct_assert_as_enqueued(got, tasks[i]);
    if (tasks[i]->unique_key != NULL) {
      assert_non_null(got->unique_key);
      assert_string_equal(got->unique_key, tasks[i]->unique_key);
      assert_int_equal(got->unique_for_ms, tasks[i]->unique_for_ms);
    } else {
      assert_null(got->unique_key);
    }
    if (tasks[i]->cron != NULL) {
      assert_non_null(got->cron);
      assert_string_equal(got->cron, tasks[i]->cron);
    } else {
      assert_null(got->cron);
    }
    omniq_task_free(got);
    omniq_task_free(tasks[i]);
  }
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], MANY);
}

/* A repeated id deep in a large batch fails the whole batch, whichever
 * statement of the backend's carries it. */
static void test_enqueue_many_with_duplicate_id_past_the_first_rows_stores_none(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *tasks[MANY];
  for (int i = 0; i < MANY; i++) tasks[i] = ct_task("default", 0, NOW);
  omniq_task_free(tasks[100]);
  tasks[100] = omniq_task_dup(tasks[90]); /* both in SQLite's second statement */
  FAILS(fx, OMNIQ_EINVAL, ct_enqueue(fx, tasks, MANY));
  for (int i = 0; i < MANY; i++) {
    omniq_task_t *got = NULL;
    FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->get_task(fx->be, tasks[i]->id, &got, fx->err, ERRLEN));
    omniq_task_free(tasks[i]);
  }
  ct_assert_nothing_due(fx, NOW);
}

static void test_enqueue_batch_with_duplicate_id_stores_none(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *batch[3] = {ct_task("default", 0, NOW), ct_task("default", 0, NOW), NULL};
  batch[2] = omniq_task_dup(batch[0]); /* same id twice in one batch */
  FAILS(fx, OMNIQ_EINVAL, ct_enqueue(fx, batch, 3));
  for (int i = 0; i < 3; i++) {
    omniq_task_t *got = NULL;
    FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->get_task(fx->be, batch[i]->id, &got, fx->err, ERRLEN));
    omniq_task_free(batch[i]);
  }
  ct_assert_nothing_due(fx, NOW);
}

static void test_enqueue_batch_with_existing_id_stores_none(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *first = ct_task("default", 0, NOW);
  ct_enqueue1(fx, first);
  omniq_task_t *batch[2] = {ct_task("default", 0, NOW), omniq_task_dup(first)};
  batch[1]->priority = 9; /* a different task under a taken id */
  FAILS(fx, OMNIQ_EINVAL, ct_enqueue(fx, batch, 2));
  omniq_task_t *got = NULL;
  FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->get_task(fx->be, batch[0]->id, &got, fx->err, ERRLEN));
  got = ct_get(fx, first->id);
  ct_assert_as_enqueued(got, first); /* the stored one is untouched */
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], 1);
  omniq_task_free(got);
  omniq_task_free(first);
  omniq_task_free(batch[0]);
  omniq_task_free(batch[1]);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_enqueue_one_then_get_returns_same_fields),
    CT_TEST(test_enqueue_many_then_get_returns_each),
    CT_TEST(test_enqueue_many_more_than_a_statement_carries_stores_every_field),
    CT_TEST(test_enqueue_many_with_duplicate_id_past_the_first_rows_stores_none),
    CT_TEST(test_enqueue_batch_with_duplicate_id_stores_none),
    CT_TEST(test_enqueue_batch_with_existing_id_stores_none),
};

const ct_section_t ct_section_enqueue = {tests, sizeof tests / sizeof tests[0], 2};
