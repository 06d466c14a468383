/* SPDX-License-Identifier: MIT */
/* Unique and cron tasks through the public API (core/enqueue.c and
 * core/engine.c): what omniq_enqueue checks and answers, and how a cron
 * task is placed and re-armed on the same finish path as an interval task,
 * on the manual clock. Run per backend: `test_schedules sqlite`, `test_schedules file`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "support/runs.h"

static const char *backend = "sqlite";

typedef th_store_t fx_t;

static int enqueue_key(fx_t *fx, const char *key, int64_t for_ms, char id[OMNIQ_ID_SIZE]) {
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.unique_key = key;
  o.unique_for_ms = for_ms;
  return omniq_enqueue(fx->oq, "work", NULL, NULL, &o, id);
}

/* ---- unique -------------------------------------------------------------- */

static void test_a_duplicate_key_returns_eexists_and_the_holders_id(void **state) {
  fx_t *fx = *state;
  char first[OMNIQ_ID_SIZE], second[OMNIQ_ID_SIZE];
  th_ok(fx->oq, enqueue_key(fx, "invoice:7", 0, first));
  assert_int_equal(enqueue_key(fx, "invoice:7", 0, second), OMNIQ_EEXISTS);
  assert_string_equal(second, first);
  assert_non_null(strstr(omniq_errmsg(fx->oq), first));
  omniq_task_t *t = th_task(fx, first);
  assert_string_equal(omniq_task_unique_key(t), "invoice:7");
  omniq_task_free(t);
  int64_t c[OMNIQ_STATUS_COUNT];
  th_ok(fx->oq, omniq_count_by_status(fx->oq, c));
  assert_int_equal(c[OMNIQ_PENDING], 1);
  /* Once it has run (unique_for_ms 0), the key is free again. */
  t = th_claim(fx, NULL);
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_OK));
  omniq_task_free(t);
  th_ok(fx->oq, enqueue_key(fx, "invoice:7", 0, second));
  assert_string_not_equal(second, first);
}

static void test_unique_for_keeps_the_key_after_the_run(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE], again[OMNIQ_ID_SIZE];
  th_ok(fx->oq, enqueue_key(fx, "daily-report", 3600000, id));
  omniq_task_t *t = th_claim(fx, NULL);
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_OK));
  omniq_task_free(t);
  th_clock_advance(&fx->clock, 3599999);
  assert_int_equal(enqueue_key(fx, "daily-report", 3600000, again), OMNIQ_EEXISTS);
  assert_string_equal(again, id);
  th_clock_advance(&fx->clock, 1);
  th_ok(fx->oq, enqueue_key(fx, "daily-report", 3600000, again));
}

static void test_unique_options_are_checked(void **state) {
  fx_t *fx = *state;
  char key[OMNIQ_UNIQUE_KEY_MAX + 2];
  memset(key, 'k', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  assert_int_equal(enqueue_key(fx, key, 0, NULL), OMNIQ_EINVAL); /* 256 bytes */
  key[OMNIQ_UNIQUE_KEY_MAX] = '\0';
  th_ok(fx->oq, enqueue_key(fx, key, 0, NULL)); /* 255 bytes */
  assert_int_equal(enqueue_key(fx, "", 0, NULL), OMNIQ_EINVAL);
  assert_int_equal(enqueue_key(fx, "tab\there", 0, NULL), OMNIQ_EINVAL);
  assert_int_equal(enqueue_key(fx, "\xff\xfe", 0, NULL), OMNIQ_EINVAL); /* not UTF-8 */
  assert_int_equal(enqueue_key(fx, "k", -1, NULL), OMNIQ_EINVAL);
  th_ok(fx->oq, enqueue_key(fx, "clé-é", 0, NULL)); /* UTF-8 is fine */
}

/* A batch is all or none; each item whose key is held learns its holder,
 * and a key given twice in one batch is refused before anything is tried. */
static void test_a_batch_names_each_holder_and_stores_nothing(void **state) {
  fx_t *fx = *state;
  char held[OMNIQ_ID_SIZE], ids[3][OMNIQ_ID_SIZE];
  omniq_enqueue_opts_t plain, a, b;
  th_ok(fx->oq, enqueue_key(fx, "b", 0, held));
  omniq_enqueue_opts_init(&plain);
  omniq_enqueue_opts_init(&a);
  omniq_enqueue_opts_init(&b);
  a.unique_key = "a";
  b.unique_key = "b";
  omniq_enqueue_item_t items[3] = {
      {"work", NULL, NULL, &plain}, {"work", NULL, NULL, &a}, {"work", NULL, NULL, &b}};
  assert_int_equal(omniq_enqueue_many(fx->oq, items, 3, ids), OMNIQ_EEXISTS);
  assert_string_equal(ids[0], "");
  assert_string_equal(ids[1], "");
  assert_string_equal(ids[2], held);
  int64_t c[OMNIQ_STATUS_COUNT];
  th_ok(fx->oq, omniq_count_by_status(fx->oq, c));
  assert_int_equal(c[OMNIQ_PENDING], 1);
  items[2].opts = &a; /* "a" twice */
  assert_int_equal(omniq_enqueue_many(fx->oq, items, 3, ids), OMNIQ_EINVAL);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "twice"));
}

/* ---- cron ---------------------------------------------------------------- */

static int64_t at(const char *iso) {
  int64_t ms = 0;
  assert_int_equal(omniq__iso8601_parse(iso, &ms), OMNIQ_OK);
  return ms;
}

static int enqueue_cron(fx_t *fx, const char *expr, char id[OMNIQ_ID_SIZE]) {
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.cron = expr;
  return omniq_enqueue(fx->oq, "work", NULL, NULL, &o, id);
}

static void test_a_cron_task_first_runs_at_the_next_match(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  fx->clock.now_ms = at("2027-01-15T10:07:30Z");
  th_ok(fx->oq, enqueue_cron(fx, "*/15 * * * *", id));
  omniq_task_t *t = th_task(fx, id);
  assert_int_equal(omniq_task_eta(t), at("2027-01-15T10:15:00Z"));
  assert_string_equal(omniq_task_cron(t), "*/15 * * * *");
  omniq_task_free(t);
  /* At a match exactly, that match is the first run. */
  fx->clock.now_ms = at("2027-01-15T11:00:00Z");
  th_ok(fx->oq, enqueue_cron(fx, "0 * * * *", id));
  t = th_task(fx, id);
  assert_int_equal(omniq_task_eta(t), at("2027-01-15T11:00:00Z"));
  omniq_task_free(t);
}

/* After each run the task is re-armed at the next match after the run
 * ended, keeping its id and its result; a worker down for hours runs it
 * once, not once per missed match. */
static void test_a_cron_task_rearms_and_runs_missed_matches_once(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  fx->clock.now_ms = at("2027-01-15T10:07:30Z");
  th_ok(fx->oq, enqueue_cron(fx, "0 * * * *", id));
  fx->clock.now_ms = at("2027-01-15T11:00:02Z");
  omniq_task_t *t = th_claim(fx, NULL);
  assert_non_null(t);
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_OK));
  omniq_task_free(t);
  t = th_task(fx, id);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_int_equal(omniq_task_eta(t), at("2027-01-15T12:00:00Z"));
  assert_int_equal(omniq_task_attempts(t), 0);
  omniq_task_free(t);
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  omniq_result_free(r);
  /* Down from 11:00 to 16:30: the 12:00 run is due, and runs once. */
  fx->clock.now_ms = at("2027-01-15T16:30:00Z");
  t = th_claim(fx, NULL);
  assert_non_null(t);
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_OK));
  omniq_task_free(t);
  assert_null(th_claim(fx, NULL));
  t = th_task(fx, id);
  assert_int_equal(omniq_task_eta(t), at("2027-01-15T17:00:00Z"));
  omniq_task_free(t);
  /* A failed run with no budget left re-arms too; only cancel ends it. */
  fx->clock.now_ms = at("2027-01-15T17:00:00Z");
  t = th_claim(fx, NULL);
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_NO_HANDLER));
  omniq_task_free(t);
  assert_int_equal(th_status(fx, id), OMNIQ_PENDING);
  th_ok(fx->oq, omniq_cancel(fx->oq, id));
  assert_int_equal(th_status(fx, id), OMNIQ_CANCELLED);
}

static void test_a_bad_cron_expression_is_refused_with_its_position(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  assert_int_equal(enqueue_cron(fx, "0 25 * * *", id), OMNIQ_EINVAL);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "position 3"));
  assert_non_null(strstr(omniq_errmsg(fx->oq), "0 25 * * *"));
  assert_int_equal(enqueue_cron(fx, "0 0 30 2 *", id), OMNIQ_EINVAL);
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.cron = "* * * * *";
  o.interval_ms = 1000;
  assert_int_equal(omniq_enqueue(fx->oq, "work", NULL, NULL, &o, id), OMNIQ_EINVAL);
  int64_t c[OMNIQ_STATUS_COUNT];
  th_ok(fx->oq, omniq_count_by_status(fx->oq, c));
  assert_int_equal(c[OMNIQ_PENDING], 0);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_a_duplicate_key_returns_eexists_and_the_holders_id),
      T(test_unique_for_keeps_the_key_after_the_run),
      T(test_unique_options_are_checked),
      T(test_a_batch_names_each_holder_and_stores_nothing),
      T(test_a_cron_task_first_runs_at_the_next_match),
      T(test_a_cron_task_rearms_and_runs_missed_matches_once),
      T(test_a_bad_cron_expression_is_refused_with_its_position),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
