/* SPDX-License-Identifier: MIT */
/* Contract (storage ABI 3): list hands out pages of tasks in id order from a
 * cursor, filtered by status set, queue, func and time ranges, each task a
 * full copy as get_task gives it. */
#include "suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static omniq_list_req_t all_req(size_t limit) {
  omniq_list_req_t r = {.statuses = OMNIQ_STATUS_ALL, .limit = limit};
  return r;
}

/* Lists with req and checks the page holds exactly the ids want[0..n), in
 * that order. */
static void assert_page(ct_fx_t *fx, const omniq_list_req_t *req, char (*want)[OMNIQ_ID_SIZE],
                        size_t nwant) {
  omniq_task_t **got = NULL;
  size_t n = 0;
  OK(fx, ct_list(fx, req, &got, &n));
  if (n != nwant) fail_msg("page of %zu tasks, expected %zu", n, nwant);
  for (size_t i = 0; i < n; i++) assert_string_equal(got[i]->id, want[i]);
  ct_tasks_free(got, n);
}

static void test_list_pages_through_every_task_in_id_order_both_ways(void **state) {
  ct_fx_t *fx = *state;
  char ids[25][OMNIQ_ID_SIZE], rev[25][OMNIQ_ID_SIZE];
  for (int i = 0; i < 25; i++) {
    omniq_task_t *t = ct_task(i % 2 ? "default" : "other", i % 3, NOW + 1000 - i);
    memcpy(ids[i], t->id, OMNIQ_ID_SIZE); /* ct_new_id makes them increase */
    memcpy(rev[24 - i], t->id, OMNIQ_ID_SIZE);
    ct_enqueue1(fx, t);
    omniq_task_free(t);
  }
  omniq_list_req_t r = all_req(10);
  assert_page(fx, &r, ids, 10);
  r.after_id = ids[9];
  assert_page(fx, &r, ids + 10, 10);
  r.after_id = ids[19];
  assert_page(fx, &r, ids + 20, 5);
  r.after_id = ids[24];
  assert_page(fx, &r, NULL, 0);

  r = all_req(10);
  r.newest_first = 1;
  assert_page(fx, &r, rev, 10);
  r.after_id = rev[9];
  assert_page(fx, &r, rev + 10, 10);
  r.after_id = rev[19];
  assert_page(fx, &r, rev + 20, 5);
}

/* Every status, and any set of them, and the task as get_task has it. */
static void test_list_filters_by_a_set_of_statuses(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *by[OMNIQ_STATUS_COUNT];
  for (int st = OMNIQ_STATUS_COUNT - 1; st >= 0; st--)
    by[st] = ct_bring(fx, ct_task("default", 0, NOW), st, NOW + 10);
  for (unsigned set = 1; set <= OMNIQ_STATUS_ALL; set++) {
    omniq_list_req_t r = all_req(100);
    omniq_task_t **got = NULL;
    size_t n = 0, want = 0;
    r.statuses = set;
    OK(fx, ct_list(fx, &r, &got, &n));
    for (int st = 0; st < OMNIQ_STATUS_COUNT; st++) want += (set >> st) & 1;
    if (n != want) fail_msg("statuses 0x%x: %zu tasks, expected %zu", set, n, want);
    for (size_t i = 0; i < n; i++) {
      int st = got[i]->status;
      assert_true((set >> st) & 1);
      assert_string_equal(got[i]->id, by[st]->id);
      assert_int_equal(got[i]->attempts, by[st]->attempts);
      assert_int_equal(got[i]->token, by[st]->token);
      assert_int_equal(got[i]->finished_at_ms, by[st]->finished_at_ms);
      th_assert_error_equal(got[i]->last_error, by[st]->last_error);
    }
    ct_tasks_free(got, n);
  }
  for (int st = 0; st < OMNIQ_STATUS_COUNT; st++) omniq_task_free(by[st]);
}

static void test_list_filters_by_queue_and_func(void **state) {
  ct_fx_t *fx = *state;
  char want[4][OMNIQ_ID_SIZE];
  size_t k = 0;
  for (int i = 0; i < 12; i++) {
    omniq_task_t *t = ct_task(i % 3 == 0 ? "mail" : "default", 0, NOW);
    omniq_task_t tmpl = *t;
    tmpl.func = i % 2 ? "send" : "render";
    omniq_task_t *u = omniq_task_dup(&tmpl);
    if (i % 3 == 0 && i % 2) memcpy(want[k++], u->id, OMNIQ_ID_SIZE);
    ct_enqueue1(fx, u);
    omniq_task_free(u);
    omniq_task_free(t);
  }
  omniq_list_req_t r = all_req(100);
  r.queue = "mail";
  r.func = "send";
  assert_page(fx, &r, want, k);
  assert_int_equal(k, 2);
  r.func = NULL;
  omniq_task_t **got = NULL;
  size_t n = 0;
  OK(fx, ct_list(fx, &r, &got, &n));
  assert_int_equal(n, 4);
  for (size_t i = 0; i < n; i++) assert_string_equal(got[i]->queue, "mail");
  ct_tasks_free(got, n);
  r.queue = "nosuch";
  assert_page(fx, &r, NULL, 0);
}

/* Ranges are [from, to); a finished range keeps only finished tasks. */
static void test_list_filters_by_created_and_finished_ranges(void **state) {
  ct_fx_t *fx = *state;
  char ids[4][OMNIQ_ID_SIZE];
  for (int i = 0; i < 4; i++) {
    omniq_task_t *t = ct_task("default", 0, NOW);
    t->created_at_ms = NOW + 100 * i;
    int st = i < 2 ? OMNIQ_PENDING : OMNIQ_SUCCESS;
    omniq_task_t *got = ct_bring(fx, t, st, NOW + 1000 + 100 * i);
    memcpy(ids[i], got->id, OMNIQ_ID_SIZE);
    omniq_task_free(got);
  }
  omniq_list_req_t r = all_req(100);
  r.created_from_ms = NOW + 100;
  r.created_to_ms = NOW + 300;
  assert_page(fx, &r, ids + 1, 2);
  r = all_req(100);
  r.finished_from_ms = NOW + 1200;
  assert_page(fx, &r, ids + 2, 2);
  r.finished_from_ms = 0;
  r.finished_to_ms = NOW + 1300;
  assert_page(fx, &r, ids + 2, 1);
}

/* A cursor names a position, not a task: it still works once its task is
 * gone, and tasks added behind it show up on later pages only. */
static void test_list_continues_after_a_cursor_whose_task_is_gone(void **state) {
  ct_fx_t *fx = *state;
  char ids[6][OMNIQ_ID_SIZE];
  for (int i = 0; i < 6; i++) {
    omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), OMNIQ_SUCCESS, NOW + 5);
    memcpy(ids[i], t->id, OMNIQ_ID_SIZE);
    omniq_task_free(t);
  }
  int prev = -1;
  OK(fx, ct_ops->delete_task(fx->be, ids[2], &prev, fx->err, ERRLEN));
  omniq_list_req_t r = all_req(2);
  r.after_id = ids[2];
  assert_page(fx, &r, ids + 3, 2);
  omniq_task_t *later = ct_task("default", 0, NOW);
  char later_id[OMNIQ_ID_SIZE];
  memcpy(later_id, later->id, OMNIQ_ID_SIZE);
  ct_enqueue1(fx, later);
  omniq_task_free(later);
  r.after_id = ids[4];
  omniq_task_t **got = NULL;
  size_t n = 0;
  OK(fx, ct_list(fx, &r, &got, &n));
  assert_int_equal(n, 2);
  assert_string_equal(got[0]->id, ids[5]);
  assert_string_equal(got[1]->id, later_id);
  ct_tasks_free(got, n);
}

/* A page is served from an index: a store with many tasks of one status
 * still gives a page of another at once, and the page is the same after a
 * reopen. */
static void test_list_of_a_rare_status_among_many_is_exact(void **state) {
  ct_fx_t *fx = *state;
  enum { MANY = 2000 };
  omniq_task_t **batch = calloc(MANY, sizeof *batch);
  char failed[3][OMNIQ_ID_SIZE];
  assert_non_null(batch);
  for (int i = 0; i < 3; i++) {
    omniq_task_t *t = ct_bring(fx, ct_task("default", 0, NOW), OMNIQ_FAILED, NOW + 1);
    memcpy(failed[i], t->id, OMNIQ_ID_SIZE);
    omniq_task_free(t);
  }
  for (int i = 0; i < MANY; i++) batch[i] = ct_task("default", 0, NOW + 100000);
  OK(fx, ct_enqueue(fx, batch, MANY));
  for (int i = 0; i < MANY; i++) omniq_task_free(batch[i]);
  free(batch);
  omniq_list_req_t r = all_req(10);
  r.statuses = OMNIQ_STATUS_BIT(OMNIQ_FAILED);
  assert_page(fx, &r, failed, 3);
  ct_reopen(fx);
  assert_page(fx, &r, failed, 3);
}

static void test_list_of_an_empty_store_is_empty(void **state) {
  ct_fx_t *fx = *state;
  omniq_list_req_t r = all_req(5);
  assert_page(fx, &r, NULL, 0);
  char after[OMNIQ_ID_SIZE];
  ct_new_id(after);
  r.after_id = after;
  r.newest_first = 1;
  assert_page(fx, &r, NULL, 0);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_list_pages_through_every_task_in_id_order_both_ways),
    CT_TEST(test_list_filters_by_a_set_of_statuses),
    CT_TEST(test_list_filters_by_queue_and_func),
    CT_TEST(test_list_filters_by_created_and_finished_ranges),
    CT_TEST(test_list_continues_after_a_cursor_whose_task_is_gone),
    CT_TEST(test_list_of_a_rare_status_among_many_is_exact),
    CT_TEST(test_list_of_an_empty_store_is_empty),
};

const ct_section_t ct_section_list = {tests, sizeof tests / sizeof tests[0], 3};
