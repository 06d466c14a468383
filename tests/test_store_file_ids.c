/* SPDX-License-Identifier: MIT */
/* Which ids an enqueue on the file backend looks for (storage ABI 8).
 *
 * The contract refuses a task whose id the store already holds. pending/
 * is answered by the in-memory index; running/ and the terminal folders
 * by one fstatat each. An id the library made for this enqueue (id_fresh:
 * every id of omniq_enqueue and omniq_enqueue_many) is in no store, so
 * those are skipped for it; an id the table's caller gave is looked for
 * as before. The library never hands a fresh id that a store holds, so
 * the skip shows only when a test plants one. */
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "support/backend.h"

/* A task of f's finished SUCCESS (in success/); its id goes to id. */
static void finished_task(th_be_t *f, char id[OMNIQ_ID_SIZE]) {
  omniq_task_t **got = NULL;
  th_be_add(f, NULL, 0, th_be_now(f), id);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  omniq_result_t *r = th_be_result(id, OMNIQ_SUCCESS, th_be_now(f));
  omniq_decision_t d = {
      .id = id, .token = got[0]->token, .next_status = OMNIQ_SUCCESS, .result = r};
  th_be_ok(f->err, th_be_finish(f, &d));
  assert_true(th_be_has(f, "queue/success", id));
  omniq_result_free(r);
  omniq__tasks_free(got, 1);
}

/* A given id, finished or running, is refused, alone or in a batch. */
static void test_a_given_id_the_store_holds_outside_pending_is_refused(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 0);
  char done[OMNIQ_ID_SIZE], running[OMNIQ_ID_SIZE];
  omniq_task_t **got = NULL;
  finished_task(f, done);
  th_be_add(f, NULL, 0, th_be_now(f), running);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  omniq_task_t *batch[2] = {th_be_task(f, NULL, 0, th_be_now(f)),
                            th_be_task(f, NULL, 0, th_be_now(f))};
  memcpy(batch[0]->id, done, OMNIQ_ID_SIZE);
  assert_int_equal(f->ops->enqueue(f->b, batch, 1, f->err, sizeof f->err), OMNIQ_EINVAL);
  assert_non_null(strstr(f->err, "already exists"));
  memcpy(batch[0]->id, running, OMNIQ_ID_SIZE);
  assert_int_equal(f->ops->enqueue(f->b, batch, 2, f->err, sizeof f->err), OMNIQ_EINVAL);
  assert_int_equal(th_be_count(f, "queue/pending/default"), 0);
  for (int i = 0; i < 2; i++) omniq_task_free(batch[i]);
  omniq__tasks_free(got, 1);
  th_be_free(f);
}

/* The same id marked as made by the library for this enqueue is not
 * looked for outside pending/ (planted here; the library never makes
 * one a store holds). pending/ is still asked, through the index. */
static void test_a_fresh_id_is_not_looked_for_outside_pending(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 0);
  char done[OMNIQ_ID_SIZE], waiting[OMNIQ_ID_SIZE];
  finished_task(f, done);
  th_be_add(f, NULL, 0, th_be_now(f), waiting);
  omniq_task_t *t = th_be_task(f, NULL, 0, th_be_now(f));
  t->id_fresh = 1;
  memcpy(t->id, waiting, OMNIQ_ID_SIZE);
  assert_int_equal(f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err), OMNIQ_EINVAL);
  memcpy(t->id, done, OMNIQ_ID_SIZE);
  th_be_ok(f->err, f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err));
  assert_int_equal(th_be_count(f, "queue/pending/default"), 2);
  omniq_task_free(t);
  th_be_free(f);
}

/* ---- what the library hands the table ------------------------------------ */

static int (*file_enqueue)(void *, omniq_task_t *const *, size_t, char *, size_t);
static int (*file_enqueue_unique)(void *, omniq_task_t *const *, size_t, char (*)[OMNIQ_ID_SIZE],
                                  char *, size_t);
static int handed, handed_fresh;

static void count_fresh(omniq_task_t *const *tasks, size_t n) {
  for (size_t i = 0; i < n; i++) {
    handed++;
    handed_fresh += tasks[i]->id_fresh == 1;
  }
}

static int seen_enqueue(void *b, omniq_task_t *const *tasks, size_t n, char *err,
                        size_t errlen) {
  count_fresh(tasks, n);
  return file_enqueue(b, tasks, n, err, errlen);
}

static int seen_enqueue_unique(void *b, omniq_task_t *const *tasks, size_t n,
                               char (*holders)[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  count_fresh(tasks, n);
  return file_enqueue_unique(b, tasks, n, holders, err, errlen);
}

/* omniq_enqueue and omniq_enqueue_many, with a unique key or without,
 * hand the table tasks whose ids they made: every one fresh. */
static void test_the_library_marks_every_id_it_makes_fresh(void **state) {
  th_store_t *st = *state;
  omniq_enqueue_opts_t keyed;
  omniq_enqueue_item_t items[3];
  handed = handed_fresh = 0;
  th_ok(st->oq, omniq_enqueue(st->oq, "work", NULL, NULL, NULL, NULL));
  omniq_enqueue_opts_init(&keyed);
  keyed.unique_key = "k";
  th_ok(st->oq, omniq_enqueue(st->oq, "work", NULL, NULL, &keyed, NULL));
  for (int i = 0; i < 3; i++) items[i] = (omniq_enqueue_item_t){.func = "work"};
  th_ok(st->oq, omniq_enqueue_many(st->oq, items, 3, NULL));
  assert_int_equal(handed, 5);
  assert_int_equal(handed_fresh, 5);
}

static int setup_seen(void **state) {
  static omniq_storage_ops_t seen;
  if (omniq_storage_find("file-seen") == NULL) {
    seen = *omniq_storage_find("file");
    seen.name = "file-seen";
    file_enqueue = seen.enqueue;
    file_enqueue_unique = seen.enqueue_unique;
    seen.enqueue = seen_enqueue;
    seen.enqueue_unique = seen_enqueue_unique;
    if (omniq_storage_register(&seen) != OMNIQ_OK) return -1;
  }
  *state = (void *)"file-seen";
  return th_store_setup(state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_a_given_id_the_store_holds_outside_pending_is_refused),
      cmocka_unit_test(test_a_fresh_id_is_not_looked_for_outside_pending),
      cmocka_unit_test_setup_teardown(test_the_library_marks_every_id_it_makes_fresh, setup_seen,
                                      th_store_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
