/* SPDX-License-Identifier: MIT */
/* Listing through the public API (core/listing.c): pages and their cursor,
 * the options checked before anything reaches a backend, and retry by
 * filter. Run per backend: `test_listing sqlite`, `test_listing file`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/runs.h"

static const char *backend = "sqlite";

typedef th_store_t fx_t;

/* Lists with o; checks the page holds ids want[0..n) in order; returns a
 * copy of the next cursor ("" at the end). */
static void page(fx_t *fx, const omniq_list_opts_t *o, char (*want)[OMNIQ_ID_SIZE], size_t n,
                 char cursor[64]) {
  omniq_task_list_t *l = NULL;
  th_ok(fx->oq, omniq_list_tasks(fx->oq, o, &l));
  assert_int_equal(omniq_task_list_count(l), n);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(omniq_task_id(omniq_task_list_at(l, i)), want[i]);
  assert_null(omniq_task_list_at(l, n));
  const char *next = omniq_task_list_next_cursor(l);
  snprintf(cursor, 64, "%s", next != NULL ? next : "");
  omniq_task_list_free(l);
}

static void test_pages_of_the_default_size_walk_every_task_then_stop(void **state) {
  fx_t *fx = *state;
  enum { N = 250 };
  char(*ids)[OMNIQ_ID_SIZE] = calloc(N, OMNIQ_ID_SIZE);
  char(*rev)[OMNIQ_ID_SIZE] = calloc(N, OMNIQ_ID_SIZE);
  char cursor[64];
  omniq_list_opts_t o;
  for (int i = 0; i < N; i++) {
    th_enqueue(fx, NULL, ids[i]);
    memcpy(rev[N - 1 - i], ids[i], OMNIQ_ID_SIZE);
    th_clock_advance(&fx->clock, 1); /* ids follow the clock */
  }
  omniq_list_opts_init(&o);
  page(fx, &o, ids, OMNIQ_LIST_DEFAULT_LIMIT, cursor);
  o.cursor = cursor;
  page(fx, &o, ids + 100, 100, cursor);
  page(fx, &o, ids + 200, 50, cursor);
  assert_string_equal(cursor, ""); /* the last page has no next */

  omniq_list_opts_init(&o);
  o.newest_first = 1;
  o.limit = 200;
  page(fx, &o, rev, 200, cursor);
  o.cursor = cursor;
  page(fx, &o, rev + 200, 50, cursor);
  assert_string_equal(cursor, "");
  /* Exactly a full last page: no cursor either. */
  omniq_list_opts_init(&o);
  o.limit = N;
  page(fx, &o, ids, N, cursor);
  assert_string_equal(cursor, "");
  page(fx, NULL, ids, 100, cursor); /* NULL options: the defaults */
  free(ids);
  free(rev);
}

static void assert_refused(fx_t *fx, const omniq_list_opts_t *o, const char *says) {
  omniq_task_list_t *l = (omniq_task_list_t *)1;
  assert_int_equal(omniq_list_tasks(fx->oq, o, &l), OMNIQ_EINVAL);
  assert_null(l);
  if (strstr(omniq_errmsg(fx->oq), says) == NULL)
    fail_msg("\"%s\" should say \"%s\"", omniq_errmsg(fx->oq), says);
}

/* Nothing unchecked reaches a backend: not a cursor, a limit, a status bit,
 * a queue name or a range. */
static void test_bad_options_and_foreign_cursors_are_refused_with_a_message(void **state) {
  fx_t *fx = *state;
  omniq_list_opts_t o;
  char id[OMNIQ_ID_SIZE];
  for (int i = 0; i < 3; i++) th_enqueue(fx, NULL, id);
  const char *bad_cursors[] = {"", "x", "1a.not-an-id", "1a.' OR 1=1 --", "../../etc/passwd",
                               "2a.01a3185c-5000-7000-8000-000000000000",
                               "1a.01A3185C-5000-7000-8000-000000000000"};
  for (size_t i = 0; i < sizeof bad_cursors / sizeof bad_cursors[0]; i++) {
    omniq_list_opts_init(&o);
    o.cursor = bad_cursors[i];
    assert_refused(fx, &o, "cursor");
  }
  omniq_list_opts_init(&o);
  o.limit = 1;
  omniq_task_list_t *l = NULL;
  th_ok(fx->oq, omniq_list_tasks(fx->oq, &o, &l));
  char asc[64];
  snprintf(asc, sizeof asc, "%s", omniq_task_list_next_cursor(l));
  omniq_task_list_free(l);
  o.cursor = asc;
  o.newest_first = 1;
  assert_refused(fx, &o, "oldest first"); /* the cursor of the other order */
  omniq_list_opts_init(&o);
  o.limit = OMNIQ_LIST_MAX_LIMIT + 1;
  assert_refused(fx, &o, "limit");
  omniq_list_opts_init(&o);
  o.statuses = 1u << OMNIQ_STATUS_COUNT;
  assert_refused(fx, &o, "statuses");
  omniq_list_opts_init(&o);
  o.queue = "no/slash";
  assert_refused(fx, &o, "queue");
  omniq_list_opts_init(&o);
  o.created_from_ms = 10;
  o.created_to_ms = 5;
  assert_refused(fx, &o, "range");
  omniq_list_opts_init(&o);
  o.finished_from_ms = -1;
  assert_refused(fx, &o, "range");
  assert_int_equal(omniq_list_tasks(fx->oq, NULL, NULL), OMNIQ_EINVAL);
  assert_int_equal(omniq_list_tasks(NULL, NULL, &l), OMNIQ_EINVAL);
}

/* The statuses, queue and func filters pass through to the page. */
static void test_filters_select_the_tasks_listed(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t eo;
  omniq_list_opts_t o;
  char ids[4][OMNIQ_ID_SIZE], cursor[64];
  omniq_enqueue_opts_init(&eo);
  eo.queue = "mail";
  eo.max_retries = 1;
  th_enqueue(fx, &eo, ids[0]);
  th_enqueue(fx, &eo, ids[1]);
  th_enqueue(fx, NULL, ids[2]);
  th_ok(fx->oq, omniq_cancel(fx->oq, ids[1]));
  omniq_task_t *t = th_claim(fx, "mail");
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_HANDLER_FAILED)); /* one run allowed: FAILED */
  omniq_task_free(t);
  omniq_list_opts_init(&o);
  o.statuses = OMNIQ_STATUS_BIT(OMNIQ_FAILED) | OMNIQ_STATUS_BIT(OMNIQ_CANCELLED);
  page(fx, &o, ids, 2, cursor);
  o.statuses = OMNIQ_STATUS_BIT(OMNIQ_PENDING);
  page(fx, &o, ids + 2, 1, cursor);
  o.queue = "mail";
  page(fx, &o, NULL, 0, cursor);
  o.statuses = 0;
  o.func = "work";
  page(fx, &o, ids, 2, cursor);
  o.func = "other";
  page(fx, &o, NULL, 0, cursor);
}

/* Retry by filter: every FAILED or CANCELLED task the filter matches, and
 * only those; other statuses may not be asked for. */
static void test_retry_many_retries_every_match_and_says_how_many(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t eo;
  omniq_list_opts_t f;
  char id[OMNIQ_ID_SIZE], keep[OMNIQ_ID_SIZE];
  int64_t n = -1;
  omniq_enqueue_opts_init(&eo);
  eo.max_retries = 1;
  for (int i = 0; i < 5; i++) { /* five FAILED in "default" */
    th_enqueue(fx, &eo, id);
    omniq_task_t *t = th_claim(fx, NULL);
    th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_HANDLER_FAILED));
    omniq_task_free(t);
  }
  eo.queue = "other";
  for (int i = 0; i < 2; i++) { /* two CANCELLED in "other" */
    th_enqueue(fx, &eo, id);
    th_ok(fx->oq, omniq_cancel(fx->oq, id));
  }
  th_enqueue(fx, NULL, keep); /* PENDING: untouched */
  omniq_list_opts_init(&f);
  f.queue = "default";
  th_ok(fx->oq, omniq_retry_many(fx->oq, &f, 0, &n));
  assert_int_equal(n, 5);
  th_ok(fx->oq, omniq_retry_many(fx->oq, &f, 0, &n));
  assert_int_equal(n, 0); /* nothing FAILED is left there */
  f.queue = NULL;
  f.statuses = OMNIQ_STATUS_BIT(OMNIQ_FAILED);
  th_ok(fx->oq, omniq_retry_many(fx->oq, &f, 0, &n));
  assert_int_equal(n, 0);
  f.statuses = OMNIQ_STATUS_BIT(OMNIQ_SUCCESS);
  assert_int_equal(omniq_retry_many(fx->oq, &f, 0, &n), OMNIQ_EINVAL);
  th_ok(fx->oq, omniq_retry_many(fx->oq, NULL, 0, &n));
  assert_int_equal(n, 2);
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(fx->oq, omniq_count_by_status(fx->oq, counts));
  assert_int_equal(counts[OMNIQ_PENDING], 8);
  assert_int_equal(counts[OMNIQ_FAILED] + counts[OMNIQ_CANCELLED], 0);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_pages_of_the_default_size_walk_every_task_then_stop),
      T(test_bad_options_and_foreign_cursors_are_refused_with_a_message),
      T(test_filters_select_the_tasks_listed),
      T(test_retry_many_retries_every_match_and_says_how_many),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
