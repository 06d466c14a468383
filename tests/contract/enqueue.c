/* SPDX-License-Identifier: MIT */
/* Contract: enqueue stores every field, and a batch is all or none. */
#include "suite.h"

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
    CT_TEST(test_enqueue_batch_with_duplicate_id_stores_none),
    CT_TEST(test_enqueue_batch_with_existing_id_stores_none),
};

const ct_section_t ct_section_enqueue = {tests, sizeof tests / sizeof tests[0], 2};
