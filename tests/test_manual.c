/* SPDX-License-Identifier: MIT */
/* Retry by hand, delete, and retention through the public API and the
 * engine (core/engine.c), on the manual clock. Run per backend:
 * `test_manual sqlite`, `test_manual file`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "support/runs.h"

static const char *backend = "sqlite";

typedef th_store_t fx_t;

/* A task that failed for good after its one allowed run. */
static void failed_task(fx_t *fx, char id[OMNIQ_ID_SIZE]) {
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.max_retries = 1;
  th_enqueue(fx, &o, id);
  omniq_task_t *t = th_claim(fx, NULL);
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_HANDLER_FAILED));
  omniq_task_free(t);
  assert_int_equal(th_status(fx, id), OMNIQ_FAILED);
}

static void test_retry_runs_a_failed_task_again_with_a_fresh_budget(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  failed_task(fx, id);
  th_clock_advance(&fx->clock, 1000);
  th_ok(fx->oq, omniq_retry(fx->oq, id, 0));
  omniq_task_t *t = th_task(fx, id);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_int_equal(omniq_task_attempts(t), 0);
  assert_int_equal(omniq_task_eta(t), fx->clock.now_ms); /* 0 = now */
  assert_int_equal(omniq_task_finished_at(t), 0);
  omniq_task_free(t);
  /* The old result stays readable until the new run's replaces it. */
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  omniq_result_free(r);
  t = th_claim(fx, NULL);
  assert_non_null(t);
  assert_string_equal(omniq_task_id(t), id); /* the same id */
  assert_int_equal(omniq_task_attempts(t), 1);
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_OK));
  omniq_task_free(t);
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  omniq_result_free(r);
}

static void test_retry_at_a_given_time_waits_for_it(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  failed_task(fx, id);
  th_ok(fx->oq, omniq_retry(fx->oq, id, fx->clock.now_ms + 5000));
  th_clock_advance(&fx->clock, 4999);
  assert_null(th_claim(fx, NULL));
  th_clock_advance(&fx->clock, 1);
  omniq_task_t *t = th_claim(fx, NULL);
  assert_non_null(t);
  omniq_task_free(t);
}

static void test_retry_refuses_live_and_succeeded_tasks_and_bad_ids(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  th_enqueue(fx, NULL, id);
  assert_int_equal(omniq_retry(fx->oq, id, 0), OMNIQ_ESTATE);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "PENDING"));
  omniq_task_t *t = th_claim(fx, NULL);
  assert_int_equal(omniq_retry(fx->oq, id, 0), OMNIQ_ESTATE);
  th_ok(fx->oq, th_end(fx, t, OMNIQ__RUN_OK));
  omniq_task_free(t);
  assert_int_equal(omniq_retry(fx->oq, id, 0), OMNIQ_ESTATE);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "SUCCESS"));
  assert_int_equal(omniq_retry(fx->oq, "not-an-id", 0), OMNIQ_EINVAL);
  assert_int_equal(omniq_retry(fx->oq, id, -5), OMNIQ_EINVAL);
  assert_int_equal(omniq_retry(fx->oq, "01a3185c-5000-7000-8000-000000000000", 0),
                   OMNIQ_ENOTFOUND);
}

static void test_delete_removes_a_finished_task_and_its_result_only(void **state) {
  fx_t *fx = *state;
  char done[OMNIQ_ID_SIZE], live[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  omniq_task_t *t = NULL;
  failed_task(fx, done);
  th_enqueue(fx, NULL, live);
  assert_int_equal(omniq_delete(fx->oq, live), OMNIQ_ESTATE);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "cancel"));
  th_ok(fx->oq, omniq_delete(fx->oq, done));
  assert_int_equal(omniq_get_task(fx->oq, done, &t), OMNIQ_ENOTFOUND);
  assert_int_equal(omniq_get_result(fx->oq, done, 0, &r), OMNIQ_ENOTFOUND);
  assert_int_equal(omniq_delete(fx->oq, done), OMNIQ_ENOTFOUND);
  th_ok(fx->oq, omniq_cancel(fx->oq, live));
  th_ok(fx->oq, omniq_delete(fx->oq, live));
}

/* Retention: a finished task (and its result) goes exactly once it is more
 * than task_ttl old, by its finish time; live tasks never go. */
static void test_tasks_are_removed_exactly_after_task_ttl_with_their_results(void **state) {
  fx_t *fx = *state;
  const int64_t ttl = 3600 * 1000;
  omniq_settings_t s = fx->settings;
  omniq_t *oq = NULL;
  char old[OMNIQ_ID_SIZE], young[OMNIQ_ID_SIZE], live[OMNIQ_ID_SIZE];
  int64_t n = -1;
  s.task_ttl_ms = ttl;
  omniq_close(fx->oq);
  th_ok(NULL, omniq_open(&oq, &s));
  fx->oq = oq;
  failed_task(fx, old); /* finished at T0 */
  const int64_t t0 = fx->clock.now_ms;
  th_clock_advance(&fx->clock, 10);
  failed_task(fx, young); /* finished at T0 + 10 */
  th_enqueue(fx, NULL, live);
  fx->clock.now_ms = t0 + ttl;
  th_ok(oq, omniq_purge_expired(oq, &n));
  assert_int_equal(n, 0); /* exactly task_ttl old: kept */
  fx->clock.now_ms = t0 + ttl + 1;
  th_ok(oq, omniq_purge_expired(oq, &n));
  assert_int_equal(n, 1);
  omniq_task_t *t = NULL;
  omniq_result_t *r = NULL;
  assert_int_equal(omniq_get_task(oq, old, &t), OMNIQ_ENOTFOUND);
  assert_int_equal(omniq_get_result(oq, old, 0, &r), OMNIQ_ENOTFOUND);
  th_ok(oq, omniq_get_result(oq, young, 0, &r));
  omniq_result_free(r);
  fx->clock.now_ms = t0 + 100 * ttl;
  th_ok(oq, omniq_purge_expired(oq, &n));
  assert_int_equal(n, 1);
  assert_int_equal(th_status(fx, live), OMNIQ_PENDING);
}

static void test_task_ttl_zero_keeps_tasks_forever(void **state) {
  fx_t *fx = *state;
  omniq_settings_t s = fx->settings;
  omniq_t *oq = NULL;
  char id[OMNIQ_ID_SIZE];
  int64_t n = -1;
  s.task_ttl_ms = 0;
  omniq_close(fx->oq);
  th_ok(NULL, omniq_open(&oq, &s));
  fx->oq = oq;
  failed_task(fx, id);
  th_clock_advance(&fx->clock, INT64_C(10) * 365 * 24 * 3600 * 1000);
  th_ok(oq, omniq_purge_expired(oq, &n));
  assert_int_equal(n, 0);
  assert_int_equal(th_status(fx, id), OMNIQ_FAILED);
}

/* While workers claim, retention runs by itself at most once a minute per
 * store, whichever handle (or process) gets to it: the store keeps the
 * minute, each handle only looks once a minute of its own. */
static void test_claims_run_retention_once_a_minute_for_the_whole_store(void **state) {
  fx_t *fx = *state;
  const int64_t ttl = 1000;
  omniq_settings_t s = fx->settings;
  omniq_t *a = NULL, *b = NULL;
  char id[OMNIQ_ID_SIZE];
  omniq_task_t *t = NULL;
  s.task_ttl_ms = ttl;
  omniq_close(fx->oq);
  th_ok(NULL, omniq_open(&a, &s));
  th_ok(NULL, omniq_open(&b, &s));
  fx->oq = a;
  const int64_t t0 = fx->clock.now_ms;
  failed_task(fx, id); /* a's claim at t0 took the store's minute */
  fx->clock.now_ms = t0 + ttl + 1;
  fx->oq = b;
  assert_null(th_claim(fx, NULL)); /* the minute is a's: b purges nothing */
  assert_int_equal(th_status(fx, id), OMNIQ_FAILED);
  fx->clock.now_ms = t0 + 60000;
  assert_null(th_claim(fx, NULL)); /* b looked at t0 + ttl + 1: not again yet */
  assert_int_equal(th_status(fx, id), OMNIQ_FAILED);
  fx->oq = a;
  assert_null(th_claim(fx, NULL)); /* a's next minute: the store's too */
  assert_int_equal(omniq_get_task(a, id, &t), OMNIQ_ENOTFOUND);
  omniq_close(b);
}

/* What retention has to keep small: every file of the store but those
 * bounded by their own rule whatever retention does — SQLite's WAL (reset
 * at each checkpoint; th_du leaves it out), the file backend's journal
 * (rotated at 8 MiB) and its running totals (one small file per lock
 * stripe at most). */
static long long store_size(const char *dir) {
  char p[2048];
  long long total = th_du(dir);
  snprintf(p, sizeof p, "%s/stats", dir);
  total -= th_du(p);
  snprintf(p, sizeof p, "%s/queue/journal", dir);
  return total - th_du(p);
}

#define ROUND_MAX 300

/* A store that lives on stays bounded: SQLite reclaims the freed pages
 * (auto_vacuum), the file backend removes files and empty folders. SQLite
 * grows by whole pages, so its rounds need enough rows for a page or two
 * of slack not to look like growth; a file store's size is its files', and
 * a third of the rounds keeps its many small writes quick on a busy disk. */
static void test_a_store_fed_and_purged_in_rounds_stays_bounded(void **state) {
  fx_t *fx = *state;
  const int64_t ttl = 1000;
  omniq_settings_t s = fx->settings;
  omniq_t *oq = NULL;
  s.task_ttl_ms = ttl;
  s.fsync = 0; /* durability is not what this measures */
  omniq_close(fx->oq);
  th_ok(NULL, omniq_open(&oq, &s));
  fx->oq = oq;
  const int n_round = strcmp(backend, "sqlite") == 0 ? ROUND_MAX : ROUND_MAX / 3;
  long long size[5];
  for (int round = 0; round < 5; round++) {
    omniq_enqueue_item_t items[ROUND_MAX];
    omniq_enqueue_opts_t o;
    omniq_enqueue_opts_init(&o);
    o.max_retries = 1;
    for (int i = 0; i < n_round; i++) items[i] = (omniq_enqueue_item_t){"work", "[1]", NULL, &o};
    th_ok(oq, omniq_enqueue_many(oq, items, (size_t)n_round, NULL));
    for (omniq_task_t *t; (t = th_claim(fx, NULL)) != NULL; omniq_task_free(t))
      th_ok(oq, th_end(fx, t, OMNIQ__RUN_OK));
    th_clock_advance(&fx->clock, ttl + 1);
    int64_t n = 0;
    th_ok(oq, omniq_purge_expired(oq, &n));
    assert_int_equal(n, n_round);
    size[round] = store_size(fx->dir);
  }
  /* After the first round the size stops growing. */
  if (size[4] > size[1] * 3 / 2)
    fail_msg("store grew from %lld to %lld bytes over rounds 2-5", size[1], size[4]);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_retry_runs_a_failed_task_again_with_a_fresh_budget),
      T(test_retry_at_a_given_time_waits_for_it),
      T(test_retry_refuses_live_and_succeeded_tasks_and_bad_ids),
      T(test_delete_removes_a_finished_task_and_its_result_only),
      T(test_tasks_are_removed_exactly_after_task_ttl_with_their_results),
      T(test_task_ttl_zero_keeps_tasks_forever),
      T(test_claims_run_retention_once_a_minute_for_the_whole_store),
      T(test_a_store_fed_and_purged_in_rounds_stays_bounded),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
