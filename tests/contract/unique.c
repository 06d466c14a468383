/* SPDX-License-Identifier: MIT */
/* Contract (storage ABI 3): unique keys. While a task of a queue that took
 * a key is PENDING or RUNNING, or finished less than its unique_for_ms ago,
 * no other task of that queue can take it: the enqueue stores nothing and
 * names the holder. Exactly one of any number of concurrent enqueues of a
 * key wins, across processes. */
#include "suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/procs.h"

/* enqueue_unique of one task; the holder's id goes to holder. */
static int enqueue_key(ct_fx_t *fx, omniq_task_t *t, char holder[OMNIQ_ID_SIZE]) {
  char h[1][OMNIQ_ID_SIZE] = {"unset"};
  int rc = ct_ops->enqueue_unique(fx->be, &t, 1, h, fx->err, ERRLEN);
  if (holder != NULL) memcpy(holder, h[0], OMNIQ_ID_SIZE);
  return rc;
}

static void test_a_held_key_refuses_the_second_task_and_names_the_first(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *a = ct_task_keyed("default", "report:42", 0);
  omniq_task_t *b = ct_task_keyed("default", "report:42", 0);
  char holder[OMNIQ_ID_SIZE];
  OK(fx, enqueue_key(fx, a, holder));
  assert_string_equal(holder, "");
  FAILS(fx, OMNIQ_EEXISTS, enqueue_key(fx, b, holder));
  assert_string_equal(holder, a->id);
  omniq_task_t *got = NULL;
  FAILS(fx, OMNIQ_ENOTFOUND, ct_ops->get_task(fx->be, b->id, &got, fx->err, ERRLEN));
  /* The plain enqueue honours keys too. */
  FAILS(fx, OMNIQ_EEXISTS, ct_enqueue(fx, &b, 1));
  omniq_task_t *stored = ct_get(fx, a->id);
  assert_string_equal(stored->unique_key, "report:42");
  omniq_task_free(stored);
  omniq_task_free(a);
  omniq_task_free(b);
}

static void test_a_key_belongs_to_its_queue(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *a = ct_task_keyed("default", "k", 0), *b = ct_task_keyed("mail", "k", 0);
  OK(fx, enqueue_key(fx, a, NULL));
  OK(fx, enqueue_key(fx, b, NULL));
  omniq_task_free(a);
  omniq_task_free(b);
}

/* While RUNNING it is held; finished with unique_for_ms 0, it is free. */
static void test_a_key_is_free_once_its_task_finishes(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *a = ct_bring(fx, ct_task_keyed("default", "k", 0), OMNIQ_RUNNING, NOW);
  omniq_task_t *b = ct_task_keyed("default", "k", 0);
  char holder[OMNIQ_ID_SIZE];
  b->created_at_ms = NOW + 10;
  FAILS(fx, OMNIQ_EEXISTS, enqueue_key(fx, b, holder));
  assert_string_equal(holder, a->id);
  ct_end_run(fx, a, OMNIQ_SUCCESS, NOW + 5, OMNIQ_RUNS_SUCCEEDED);
  OK(fx, enqueue_key(fx, b, holder));
  omniq_task_free(a);
  omniq_task_free(b);
}

/* unique_for_ms: held until finished_at + unique_for_ms, judged at the new
 * task's created_at; cancelled and failed tasks hold it the same way. */
static void test_unique_for_holds_the_key_after_the_task_finished(void **state) {
  ct_fx_t *fx = *state;
  const int ends[] = {OMNIQ_SUCCESS, OMNIQ_FAILED, OMNIQ_CANCELLED};
  for (size_t i = 0; i < 3; i++) {
    char key[16], holder[OMNIQ_ID_SIZE];
    snprintf(key, sizeof key, "k%zu", i);
    omniq_task_t *a = ct_bring(fx, ct_task_keyed("default", key, 1000), ends[i], NOW + 100);
    omniq_task_t *b = ct_task_keyed("default", key, 0);
    b->created_at_ms = NOW + 1099;
    FAILS(fx, OMNIQ_EEXISTS, enqueue_key(fx, b, holder));
    assert_string_equal(holder, a->id);
    b->created_at_ms = NOW + 1100;
    OK(fx, enqueue_key(fx, b, holder));
    omniq_task_free(a);
    omniq_task_free(b);
  }
}

static void test_deleting_or_purging_a_task_frees_its_key(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *a = ct_bring(fx, ct_task_keyed("default", "k", 60000), OMNIQ_SUCCESS, NOW);
  omniq_task_t *b = ct_task_keyed("default", "k", 60000);
  FAILS(fx, OMNIQ_EEXISTS, enqueue_key(fx, b, NULL));
  OK(fx, ct_ops->delete_task(fx->be, a->id, NULL, fx->err, ERRLEN));
  OK(fx, enqueue_key(fx, b, NULL));
  omniq_task_t *c = ct_bring(fx, ct_task_keyed("mail", "k", 60000), OMNIQ_FAILED, NOW);
  omniq_task_t *d = ct_task_keyed("mail", "k", 0);
  int64_t n = 0;
  FAILS(fx, OMNIQ_EEXISTS, enqueue_key(fx, d, NULL));
  OK(fx, ct_ops->purge_tasks(fx->be, NOW + 1, 10, &n, fx->err, ERRLEN));
  assert_int_equal(n, 1);
  OK(fx, enqueue_key(fx, d, NULL));
  omniq_task_free(a);
  omniq_task_free(b);
  omniq_task_free(c);
  omniq_task_free(d);
}

/* A retry by hand takes the key again; if another task took it meanwhile,
 * the retry is refused with that task named, and nothing changes. */
static void test_retry_takes_the_key_again_or_names_who_has_it(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *a = ct_bring(fx, ct_task_keyed("default", "k", 0), OMNIQ_FAILED, NOW);
  char holder[OMNIQ_ID_SIZE];
  int prev = -1;
  OK(fx, ct_ops->retry(fx->be, a->id, NOW + 1, NOW + 1, &prev, holder, fx->err, ERRLEN));
  omniq_task_t *b = ct_task_keyed("default", "k", 0);
  FAILS(fx, OMNIQ_EEXISTS, enqueue_key(fx, b, holder)); /* held again by a */
  assert_string_equal(holder, a->id);
  OK(fx, ct_cancel(fx, a->id, NOW + 2, NULL));
  b->created_at_ms = NOW + 3;
  OK(fx, enqueue_key(fx, b, NULL)); /* b holds it now */
  FAILS(fx, OMNIQ_EEXISTS,
        ct_ops->retry(fx->be, a->id, NOW + 4, NOW + 4, &prev, holder, fx->err, ERRLEN));
  assert_string_equal(holder, b->id);
  omniq_task_t *got = ct_get(fx, a->id);
  assert_int_equal(got->status, OMNIQ_CANCELLED);
  omniq_task_free(got);
  omniq_task_free(a);
  omniq_task_free(b);
}

/* A batch is all or none: one held key stores nothing, and each task's
 * holder is named. */
static void test_a_batch_with_a_held_key_stores_nothing(void **state) {
  ct_fx_t *fx = *state;
  omniq_task_t *a = ct_task_keyed("default", "taken", 0);
  OK(fx, enqueue_key(fx, a, NULL));
  omniq_task_t *batch[3] = {ct_task("default", 0, NOW), ct_task_keyed("default", "free", 0),
                            ct_task_keyed("default", "taken", 0)};
  char holders[3][OMNIQ_ID_SIZE];
  memset(holders, 'x', sizeof holders);
  FAILS(fx, OMNIQ_EEXISTS, ct_ops->enqueue_unique(fx->be, batch, 3, holders, fx->err, ERRLEN));
  assert_string_equal(holders[0], "");
  assert_string_equal(holders[1], "");
  assert_string_equal(holders[2], a->id);
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], 1);
  omniq_task_t *free_again = ct_task_keyed("default", "free", 0);
  OK(fx, enqueue_key(fx, free_again, NULL)); /* the failed batch took nothing */
  omniq_task_free(free_again);
  for (int i = 0; i < 3; i++) omniq_task_free(batch[i]);
  omniq_task_free(a);
}

/* ---- across processes ------------------------------------------------------- */

#define KEY_PROCS 8

static int key_child(th_procs_t *p, int index, void *ud) {
  const omniq_settings_t *s = ud;
  char err[ERRLEN], holder[1][OMNIQ_ID_SIZE];
  void *be = NULL;
  omniq_task_t *t = ct_task_keyed("default", "the-one", 0);
  /* Forked children share the id counter: give each its own id. */
  snprintf(t->id + 24, 13, "%012x", 0xc0de00u + (unsigned)index);
  if (ct_ops->open(s, &be, err, ERRLEN) != OMNIQ_OK) return 10;
  if (th_procs_ready(p) != 0) return 11;
  int rc;
  for (int busy = 0; (rc = ct_ops->enqueue_unique(be, &t, 1, holder, err, ERRLEN)) == OMNIQ_EBUSY &&
                     busy < 100;
       busy++) {
  }
  ct_ops->close(be);
  /* The winner reports its own id, every loser the holder it was shown. */
  const char(*id)[OMNIQ_ID_SIZE] = rc == OMNIQ_OK ? (const char(*)[OMNIQ_ID_SIZE])t->id : holder;
  int put = rc == OMNIQ_OK || rc == OMNIQ_EEXISTS ? th_procs_put_ids(p, index, id, 1) : -1;
  if (put != 0) fprintf(stderr, "child %d: %s: %s\n", index, omniq_err_name(rc), err);
  omniq_task_free(t);
  return put == 0 ? 0 : 12;
}

static void test_one_of_eight_processes_enqueueing_a_key_wins(void **state) {
  ct_fx_t *fx = *state;
  th_procs_t p;
  char(*ids)[OMNIQ_ID_SIZE] = NULL;
  size_t n = 0;
  if (ct_env->single_process) skip();
  ct_ops->close(fx->be);
  fx->be = NULL;
  th_procs_start(&p, KEY_PROCS, key_child, &fx->settings);
  th_procs_go(&p);
  th_procs_wait(&p);
  th_procs_ids(&p, &ids, &n);
  th_procs_free(&p);
  assert_int_equal(n, KEY_PROCS);
  for (size_t i = 1; i < n; i++) assert_string_equal(ids[i], ids[0]); /* all name the winner */
  OK(fx, ct_ops->open(&fx->settings, &fx->be, fx->err, ERRLEN));
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], 1);
  omniq_task_t *won = ct_get(fx, ids[0]);
  assert_string_equal(won->unique_key, "the-one");
  omniq_task_free(won);
  free(ids);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_a_held_key_refuses_the_second_task_and_names_the_first),
    CT_TEST(test_a_key_belongs_to_its_queue),
    CT_TEST(test_a_key_is_free_once_its_task_finishes),
    CT_TEST(test_unique_for_holds_the_key_after_the_task_finished),
    CT_TEST(test_deleting_or_purging_a_task_frees_its_key),
    CT_TEST(test_retry_takes_the_key_again_or_names_who_has_it),
    CT_TEST(test_a_batch_with_a_held_key_stores_nothing),
    CT_TEST(test_one_of_eight_processes_enqueueing_a_key_wins),
};

const ct_section_t ct_section_unique = {tests, sizeof tests / sizeof tests[0], 3};
