/* SPDX-License-Identifier: MIT */
/* Queues through the public API (core/queues.c): pause and resume, rate
 * limits, omniq_queue_info and omniq_stats with the running totals the
 * engine's decisions keep, and what a backend written for storage ABI 2
 * answers. Run per backend: `test_queues sqlite`, `test_queues file`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/runs.h"

static const char *backend = "sqlite";

typedef th_store_t fx_t;

static void enqueue_in(fx_t *fx, const char *queue, int64_t delay_ms, char id[OMNIQ_ID_SIZE]) {
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.queue = queue;
  o.delay_ms = delay_ms;
  th_enqueue(fx, &o, id);
}

static void test_a_paused_queue_is_not_claimed_until_resumed(void **state) {
  fx_t *fx = *state;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE];
  enqueue_in(fx, "default", 0, a);
  th_ok(fx->oq, omniq_queue_pause(fx->oq, "default"));
  enqueue_in(fx, "default", 0, b); /* enqueue still works */
  assert_null(th_claim(fx, NULL));
  omniq_queue_info_t *q = NULL;
  th_ok(fx->oq, omniq_queue_info(fx->oq, "default", &q));
  assert_true(omniq_queue_info_paused(q));
  assert_int_equal(omniq_queue_info_count(q, OMNIQ_PENDING), 2);
  omniq_queue_info_free(q);
  th_ok(fx->oq, omniq_queue_resume(fx->oq, "default"));
  omniq_task_t *t = th_claim(fx, NULL);
  assert_non_null(t);
  assert_string_equal(omniq_task_id(t), a);
  omniq_task_free(t);
  assert_int_equal(omniq_queue_pause(fx->oq, "bad/name"), OMNIQ_EINVAL);
  assert_int_equal(omniq_queue_pause(NULL, "default"), OMNIQ_EINVAL);
}

/* A running task finishes normally while its queue is paused. */
static void test_a_running_task_finishes_after_its_queue_is_paused(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  enqueue_in(fx, "default", 0, id);
  omniq_task_t *t = th_claim(fx, NULL);
  th_ok(fx->oq, omniq_queue_pause(fx->oq, "default"));
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_OK));
  omniq_task_free(t);
  assert_int_equal(th_status(fx, id), OMNIQ_SUCCESS);
}

static void test_queue_info_gives_counts_the_oldest_due_age_and_the_rate(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_queue_info_t *q = NULL;
  enqueue_in(fx, "mail", 0, id); /* due now */
  th_clock_advance(&fx->clock, 1500);
  enqueue_in(fx, "mail", 0, id);
  enqueue_in(fx, "mail", 60000, id); /* not due */
  th_ok(fx->oq, omniq_queue_set_rate(fx->oq, "mail", 10, 1000));
  th_clock_advance(&fx->clock, 500);
  th_ok(fx->oq, omniq_queue_info(fx->oq, "mail", &q));
  assert_string_equal(omniq_queue_info_name(q), "mail");
  assert_int_equal(omniq_queue_info_count(q, OMNIQ_PENDING), 3);
  assert_int_equal(omniq_queue_info_count(q, OMNIQ_RUNNING), 0);
  assert_int_equal(omniq_queue_info_oldest_due_ms(q), 2000);
  assert_int_equal(omniq_queue_info_rate_limit(q), 10);
  assert_int_equal(omniq_queue_info_rate_period_ms(q), 1000);
  assert_false(omniq_queue_info_paused(q));
  assert_int_equal(omniq_queue_info_count(q, 99), 0);
  omniq_queue_info_free(q);
  /* A queue never used is all zero. */
  th_ok(fx->oq, omniq_queue_info(fx->oq, "never", &q));
  assert_int_equal(omniq_queue_info_count(q, OMNIQ_PENDING), 0);
  assert_int_equal(omniq_queue_info_oldest_due_ms(q), 0);
  omniq_queue_info_free(q);
  assert_int_equal(omniq_queue_info(fx->oq, "", &q), OMNIQ_EINVAL);
  assert_null(q);
}

static void test_rate_limits_are_checked_and_enforced(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  assert_int_equal(omniq_queue_set_rate(fx->oq, "api", -1, 1000), OMNIQ_EINVAL);
  assert_int_equal(omniq_queue_set_rate(fx->oq, "api", 5, 0), OMNIQ_EINVAL);
  assert_int_equal(omniq_queue_set_rate(fx->oq, "api", 5, 86400001), OMNIQ_EINVAL);
  fx->clock.now_ms -= fx->clock.now_ms % 1000; /* at a window boundary */
  for (int i = 0; i < 5; i++) enqueue_in(fx, "api", 0, id);
  th_ok(fx->oq, omniq_queue_set_rate(fx->oq, "api", 2, 1000));
  int got = 0;
  for (omniq_task_t *t; (t = th_claim(fx, "api")) != NULL; got++) omniq_task_free(t);
  assert_int_equal(got, 2);
  th_clock_advance(&fx->clock, 1000);
  for (omniq_task_t *t; (t = th_claim(fx, "api")) != NULL; got++) omniq_task_free(t);
  assert_int_equal(got, 4);
  th_ok(fx->oq, omniq_queue_set_rate(fx->oq, "api", 0, 0)); /* no limit */
  for (omniq_task_t *t; (t = th_claim(fx, "api")) != NULL; got++) omniq_task_free(t);
  assert_int_equal(got, 5);
}

/* The running totals count what the engine decided: a success, a retry, a
 * final failure, a lost run; every process sees them in the store. */
static void test_stats_count_the_runs_the_engine_ended(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t o;
  char ok_id[OMNIQ_ID_SIZE], bad_id[OMNIQ_ID_SIZE], lost_id[OMNIQ_ID_SIZE];
  omniq_enqueue_opts_init(&o);
  o.queue = "w";
  th_enqueue(fx, &o, ok_id);
  omniq_task_t *t = th_claim(fx, "w");
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_OK));
  omniq_task_free(t);
  o.max_retries = 2;
  th_enqueue(fx, &o, bad_id);
  for (int run = 0; run < 2; run++) { /* retried once, then failed */
    t = th_claim(fx, "w");
    th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_HANDLER_FAILED));
    omniq_task_free(t);
    th_clock_advance(&fx->clock, 60000);
  }
  th_enqueue(fx, &o, lost_id);
  t = th_claim(fx, "w");
  omniq_task_free(t); /* its worker vanishes: the lease runs out */
  th_clock_advance(&fx->clock, fx->settings.lease_ms + 2000);
  omniq_task_t *again = th_claim(fx, "w"); /* the claim reaps it first */
  assert_non_null(again);
  assert_string_equal(omniq_task_id(again), lost_id);
  omniq_task_free(again);

  omniq_stats_t *s = NULL;
  th_ok(fx->oq, omniq_stats(fx->oq, &s));
  assert_int_equal(omniq_stats_count(s), 1);
  const omniq_queue_info_t *w = omniq_stats_queue(s, 0);
  assert_string_equal(omniq_queue_info_name(w), "w");
  assert_int_equal(omniq_queue_info_runs(w, OMNIQ_RUNS_SUCCEEDED), 1);
  assert_int_equal(omniq_queue_info_runs(w, OMNIQ_RUNS_RETRIED), 1);
  assert_int_equal(omniq_queue_info_runs(w, OMNIQ_RUNS_FAILED), 1);
  assert_int_equal(omniq_queue_info_runs(w, OMNIQ_RUNS_LOST), 1);
  assert_int_equal(omniq_queue_info_count(w, OMNIQ_RUNNING), 1);
  assert_int_equal(omniq_queue_info_runs(w, OMNIQ_RUNS_KINDS), 0);
  assert_null(omniq_stats_queue(s, 1));
  omniq_stats_free(s);
  /* Another handle (as another process would) reads the same totals. */
  omniq_t *other = NULL;
  omniq_queue_info_t *q = NULL;
  th_ok(NULL, omniq_open(&other, &fx->settings));
  th_ok(other, omniq_queue_info(other, "w", &q));
  assert_int_equal(omniq_queue_info_runs(q, OMNIQ_RUNS_RETRIED), 1);
  omniq_queue_info_free(q);
  omniq_close(other);
}

/* A backend table written for storage ABI 2 (here the SQLite table cut
 * short) still works for everything it had; the rest says so. */
static void test_an_abi_2_backend_answers_enotsup_for_what_it_lacks(void **state) {
  fx_t *fx = *state;
  static omniq_storage_ops_t old;
  omniq_settings_t s = fx->settings;
  omniq_t *oq = NULL;
  char id[OMNIQ_ID_SIZE];
  (void)fx;
  if (omniq_storage_find("sqlite-abi2") == NULL) {
    old = *omniq_storage_find("sqlite");
    old.name = "sqlite-abi2";
    old.abi_version = 2;
    old.enqueue_unique = NULL, old.list = NULL, old.retry = NULL, old.delete_task = NULL;
    old.purge_tasks = NULL, old.set_paused = NULL, old.set_rate = NULL, old.queue_stats = NULL;
    old.claim_chore = NULL;
    th_ok(NULL, omniq_storage_register(&old));
  }
  snprintf(s.backend, sizeof s.backend, "sqlite-abi2");
  snprintf(s.db_url, sizeof s.db_url, "%s/abi2.db", fx->dir);
  th_ok(NULL, omniq_open(&oq, &s));
  th_ok(oq, omniq_enqueue(oq, "work", NULL, NULL, NULL, id));
  omniq_task_list_t *l = NULL;
  omniq_queue_info_t *q = NULL;
  omniq_stats_t *st = NULL;
  int64_t n;
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.unique_key = "k";
  assert_int_equal(omniq_enqueue(oq, "work", NULL, NULL, &o, NULL), OMNIQ_ENOTSUP);
  assert_non_null(strstr(omniq_errmsg(oq), "ABI 2"));
  omniq_enqueue_opts_init(&o);
  o.cron = "* * * * *";
  assert_int_equal(omniq_enqueue(oq, "work", NULL, NULL, &o, NULL), OMNIQ_ENOTSUP);
  assert_int_equal(omniq_list_tasks(oq, NULL, &l), OMNIQ_ENOTSUP);
  assert_int_equal(omniq_retry(oq, id, 0), OMNIQ_ENOTSUP);
  assert_int_equal(omniq_delete(oq, id), OMNIQ_ENOTSUP);
  assert_int_equal(omniq_purge_expired(oq, &n), OMNIQ_ENOTSUP);
  assert_int_equal(omniq_queue_pause(oq, "default"), OMNIQ_ENOTSUP);
  assert_int_equal(omniq_queue_set_rate(oq, "default", 1, 1000), OMNIQ_ENOTSUP);
  assert_int_equal(omniq_queue_info(oq, "default", &q), OMNIQ_ENOTSUP);
  assert_int_equal(omniq_stats(oq, &st), OMNIQ_ENOTSUP);
  assert_null(l);
  assert_null(q);
  assert_null(st);
  omniq_close(oq);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_a_paused_queue_is_not_claimed_until_resumed),
      T(test_a_running_task_finishes_after_its_queue_is_paused),
      T(test_queue_info_gives_counts_the_oldest_due_age_and_the_rate),
      T(test_rate_limits_are_checked_and_enforced),
      T(test_stats_count_the_runs_the_engine_ended),
      T(test_an_abi_2_backend_answers_enotsup_for_what_it_lacks),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
