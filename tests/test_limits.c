/* SPDX-License-Identifier: MIT */
/* The limits of omniq.h on each backend (argv[1], "sqlite" by default):
 * eta, delay, interval and timeout up to their bounds are stored and read
 * back exactly; past them they are refused with OMNIQ_EINVAL; sums near the
 * last instant stay within it; a store clock outside the instants a store
 * keeps is refused and changes nothing; a wait too long to represent means
 * forever. Built with UBSan, every INT64_MAX here must pass without a
 * signed overflow. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "base/records.h"
#include "core/engine.h"
#include "core/store.h"

static const char *backend = "sqlite";

typedef th_store_t fx_t;

static int enqueue_with(fx_t *fx, const omniq_enqueue_opts_t *o, char id[OMNIQ_ID_SIZE]) {
  return omniq_enqueue(fx->oq, "work", NULL, NULL, o, id);
}

static omniq_task_t *get_task(omniq_t *oq, const char *id) {
  omniq_task_t *t = NULL;
  th_ok(oq, omniq_get_task(oq, id, &t));
  return t;
}

static omniq_task_t *claim_one(fx_t *fx) { return th_claim_one(fx->oq); }

static int succeed(fx_t *fx, const omniq_task_t *t) {
  omniq__run_report_t r = {.kind = OMNIQ__RUN_OK, .value = "1"};
  return omniq__engine_finish(fx->oq, t, &r);
}

static int64_t total(fx_t *fx) {
  int64_t c[OMNIQ_STATUS_COUNT], sum = 0;
  th_ok(fx->oq, omniq_count_by_status(fx->oq, c));
  for (int i = 0; i < OMNIQ_STATUS_COUNT; i++) sum += c[i];
  return sum;
}

/* Closes and opens the store again: what is read next comes from disk. */
static void reopen(fx_t *fx) {
  omniq_close(fx->oq);
  fx->oq = NULL;
  th_ok(NULL, omniq_open(&fx->oq, &fx->settings));
}

/* ---- bounds ------------------------------------------------------------------ */

static void test_values_at_their_limits_are_stored_and_read_back_exactly(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t o;
  char at_end[OMNIQ_ID_SIZE], delayed[OMNIQ_ID_SIZE];
  omniq_enqueue_opts_init(&o);
  o.eta_ms = OMNIQ_TIME_MAX_MS;
  o.interval_ms = OMNIQ_DURATION_MAX_MS;
  o.timeout_ms = OMNIQ_DURATION_MAX_MS;
  th_ok(fx->oq, enqueue_with(fx, &o, at_end));
  omniq_enqueue_opts_init(&o);
  o.delay_ms = OMNIQ_DURATION_MAX_MS;
  th_ok(fx->oq, enqueue_with(fx, &o, delayed));

  reopen(fx);
  omniq_task_t *t = get_task(fx->oq, at_end);
  assert_int_equal(omniq_task_eta(t), OMNIQ_TIME_MAX_MS);
  assert_int_equal(omniq_task_interval(t), OMNIQ_DURATION_MAX_MS);
  assert_int_equal(omniq_task_timeout(t), OMNIQ_DURATION_MAX_MS);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  omniq_task_free(t);
  t = get_task(fx->oq, delayed);
  assert_int_equal(omniq_task_eta(t), TH_EPOCH_MS + OMNIQ_DURATION_MAX_MS);
  omniq_task_free(t);
  assert_null(claim_one(fx)); /* neither is due */
}

static void test_values_past_their_limits_are_refused_and_store_nothing(void **state) {
  fx_t *fx = *state;
  const struct {
    int64_t eta, delay, interval, timeout;
    const char *names;
  } bad[] = {
      {OMNIQ_TIME_MAX_MS + 1, 0, 0, -1, "eta_ms"},
      {INT64_MAX, 0, 0, -1, "eta_ms"},
      {0, OMNIQ_DURATION_MAX_MS + 1, 0, -1, "delay"},
      {0, INT64_MAX, 0, -1, "delay"},
      {0, 0, INT64_MAX, -1, "interval"},
      {0, 0, OMNIQ_DURATION_MAX_MS + 1, -1, "interval"},
      {0, 0, 0, INT64_MAX, "timeout"},
      {TH_EPOCH_MS, INT64_MAX, 0, -1, "delay"}, /* refused even when eta is set */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    omniq_enqueue_opts_t o;
    omniq_enqueue_opts_init(&o);
    o.eta_ms = bad[i].eta;
    o.delay_ms = bad[i].delay;
    o.interval_ms = bad[i].interval;
    o.timeout_ms = bad[i].timeout;
    assert_int_equal(enqueue_with(fx, &o, NULL), OMNIQ_EINVAL);
    if (strstr(omniq_errmsg(fx->oq), bad[i].names) == NULL)
      fail_msg("case %zu: message does not name %s: %s", i, bad[i].names, omniq_errmsg(fx->oq));
  }
  assert_int_equal(total(fx), 0);
}

static void test_delay_reaching_past_the_last_instant_is_refused(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t o;
  char id[OMNIQ_ID_SIZE];
  fx->clock.now_ms = OMNIQ_TIME_MAX_MS - 1000;
  omniq_enqueue_opts_init(&o);
  o.delay_ms = 1001;
  assert_int_equal(enqueue_with(fx, &o, NULL), OMNIQ_EINVAL);
  o.delay_ms = 1000;
  th_ok(fx->oq, enqueue_with(fx, &o, id));
  omniq_task_t *t = get_task(fx->oq, id);
  assert_int_equal(omniq_task_eta(t), OMNIQ_TIME_MAX_MS);
  omniq_task_free(t);
}

/* The defect this guards against: an interval that wrapped the next eta
 * negative made the task due again at once, thousands of times a second. */
static void test_longest_interval_rearms_one_interval_later(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t o;
  char id[OMNIQ_ID_SIZE];
  omniq_enqueue_opts_init(&o);
  o.interval_ms = OMNIQ_DURATION_MAX_MS;
  th_ok(fx->oq, enqueue_with(fx, &o, id));
  omniq_task_t *t = claim_one(fx);
  assert_non_null(t);
  th_ok(fx->oq, succeed(fx, t));
  omniq_task_free(t);
  assert_null(claim_one(fx));
  reopen(fx);
  t = get_task(fx->oq, id);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_int_equal(omniq_task_eta(t), TH_EPOCH_MS + OMNIQ_DURATION_MAX_MS);
  omniq_task_free(t);
}

static void test_rearm_retry_and_lease_near_the_last_instant_stay_within_it(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t o;
  char every[OMNIQ_ID_SIZE], flaky[OMNIQ_ID_SIZE];
  fx->clock.now_ms = OMNIQ_TIME_MAX_MS - 10;
  omniq_enqueue_opts_init(&o);
  o.interval_ms = OMNIQ_DURATION_MAX_MS;
  th_ok(fx->oq, enqueue_with(fx, &o, every));
  omniq_enqueue_opts_init(&o);
  o.max_retries = 5;
  th_ok(fx->oq, enqueue_with(fx, &o, flaky));

  omniq_task_t *a = claim_one(fx), *b = claim_one(fx);
  assert_non_null(a);
  assert_non_null(b);
  omniq_task_t *running = get_task(fx->oq, omniq_task_id(a));
  assert_int_equal(running->lease_until_ms, OMNIQ_TIME_MAX_MS); /* now + lease, clamped */
  omniq_task_free(running);
  th_ok(fx->oq, omniq__engine_extend(fx->oq, a));

  omniq_task_t *x = strcmp(omniq_task_id(a), every) == 0 ? a : b;
  omniq_task_t *y = x == a ? b : a;
  th_ok(fx->oq, succeed(fx, x));
  omniq__run_report_t fail = {.kind = OMNIQ__RUN_HANDLER_FAILED, .message = "again",
                              .retryable = 1};
  th_ok(fx->oq, omniq__engine_finish(fx->oq, y, &fail));
  omniq_task_free(a);
  omniq_task_free(b);

  reopen(fx);
  omniq_task_t *t = get_task(fx->oq, every);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_int_equal(omniq_task_eta(t), OMNIQ_TIME_MAX_MS);
  omniq_task_free(t);
  t = get_task(fx->oq, flaky);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_true(omniq_task_eta(t) <= OMNIQ_TIME_MAX_MS);
  omniq_task_free(t);
  fx->clock.now_ms = OMNIQ_TIME_MAX_MS;
  for (int i = 0; i < 2; i++) {
    t = claim_one(fx);
    assert_non_null(t);
    th_ok(fx->oq, succeed(fx, t));
    omniq_task_free(t);
  }
}

/* A task stored by something other than the engine (an old version, a
 * hand-edited row) with every duration at INT64_MAX: the worker and the
 * engine add them to times without overflowing, and the re-arm lands on
 * the last instant. */
static int echo(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, omniq_job_args(job));
}

static void test_stored_int64_max_durations_run_without_overflow(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = omniq_task_new();
  long done = 0;
  snprintf(t->id, sizeof t->id, "%s", "01890000-0000-7000-8000-0000000000aa");
  t->func = strdup("echo");
  t->queue = strdup("default");
  t->args = strdup("[1]");
  t->kwargs = strdup("{}");
  t->status = OMNIQ_PENDING;
  t->max_retries = 1;
  t->eta_ms = TH_EPOCH_MS;
  t->created_at_ms = TH_EPOCH_MS;
  t->interval_ms = INT64_MAX;
  t->timeout_ms = INT64_MAX;
  th_ok(fx->oq, omniq__store_enqueue(fx->oq, &t, 1));
  omniq_task_free(t);

  th_ok(fx->oq, omniq_register(fx->oq, "echo", echo, NULL));
  omniq_worker_opts_t wo;
  omniq_worker_opts_init(&wo);
  wo.concurrency = 1;
  th_ok(fx->oq, omniq_worker_process(fx->oq, &wo, 3, &done));
  assert_int_equal(done, 1); /* once: the re-arm is not due again */
  t = get_task(fx->oq, "01890000-0000-7000-8000-0000000000aa");
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_int_equal(omniq_task_eta(t), OMNIQ_TIME_MAX_MS);
  omniq_task_free(t);
}

/* ---- the operations of storage ABI 3 ------------------------------------------- */

#define LAST_DAY_MS (OMNIQ_TIME_MAX_MS - 86400000 + 1) /* 9999-12-31T00:00:00.000Z */

/* A cron expression's next match after 9999 is no instant a store keeps:
 * refused like an eta past it, rather than stored (SQLite) or refused by
 * the file store's writer, which would make the backends disagree. */
static void test_cron_with_no_match_before_the_last_instant_is_refused(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t o;
  fx->clock.now_ms = LAST_DAY_MS;
  omniq_enqueue_opts_init(&o);
  o.cron = "0 0 1 1 *"; /* next: 10000-01-01 */
  assert_int_equal(enqueue_with(fx, &o, NULL), OMNIQ_EINVAL);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "9999-12-31T23:59:59.999Z"));
  assert_int_equal(total(fx), 0);
}

/* The last run of a cron task whose next match is past the last instant
 * ends it, on both backends alike. */
static void test_cron_task_whose_next_match_is_past_the_last_instant_ends(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t o;
  char id[OMNIQ_ID_SIZE];
  fx->clock.now_ms = LAST_DAY_MS;
  omniq_enqueue_opts_init(&o);
  o.cron = "30 23 31 12 *";
  th_ok(fx->oq, enqueue_with(fx, &o, id));
  fx->clock.now_ms = OMNIQ_TIME_MAX_MS - 1000;
  omniq_task_t *t = claim_one(fx);
  assert_non_null(t);
  th_ok(fx->oq, succeed(fx, t));
  omniq_task_free(t);
  reopen(fx);
  t = get_task(fx->oq, id);
  assert_int_equal(omniq_task_status(t), OMNIQ_SUCCESS);
  omniq_task_free(t);
}

/* A retry by hand is due at any instant a store keeps (an eta, not a
 * duration), and at none past it. */
static void test_retry_by_hand_takes_any_eta_a_store_keeps(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t o;
  char id[OMNIQ_ID_SIZE];
  const int64_t later = INT64_C(4102444800000); /* 2100-01-01, past 100 years of ms */
  omniq_enqueue_opts_init(&o);
  o.max_retries = 0;
  th_ok(fx->oq, enqueue_with(fx, &o, id));
  omniq_task_t *t = claim_one(fx);
  assert_non_null(t);
  omniq__run_report_t fail = {.kind = OMNIQ__RUN_HANDLER_FAILED, .message = "no"};
  th_ok(fx->oq, omniq__engine_finish(fx->oq, t, &fail));
  omniq_task_free(t);
  assert_int_equal(omniq_retry(fx->oq, id, OMNIQ_TIME_MAX_MS + 1), OMNIQ_EINVAL);
  assert_int_equal(omniq_retry(fx->oq, id, INT64_MAX), OMNIQ_EINVAL);
  th_ok(fx->oq, omniq_retry(fx->oq, id, later));
  reopen(fx);
  t = get_task(fx->oq, id);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_int_equal(omniq_task_eta(t), later);
  omniq_task_free(t);
}

/* ---- the store's clock ------------------------------------------------------- */

static void test_clock_outside_the_instants_a_store_keeps_is_refused_and_changes_nothing(
    void **state) {
  fx_t *fx = *state;
  const int64_t bad[] = {-1, INT64_MIN, OMNIQ_TIME_MAX_MS + 1, INT64_MAX};
  char pending[OMNIQ_ID_SIZE], running[OMNIQ_ID_SIZE];
  int64_t count = -1;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", NULL, NULL, NULL, pending));
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", NULL, NULL, NULL, running));
  omniq_task_t *r = claim_one(fx);
  assert_non_null(r);
  if (strcmp(omniq_task_id(r), pending) == 0) { /* name them by what they are */
    memcpy(pending, running, OMNIQ_ID_SIZE);
    memcpy(running, omniq_task_id(r), OMNIQ_ID_SIZE);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    fx->clock.now_ms = bad[i];
    omniq_task_t **none = NULL;
    size_t n = 7;
    assert_int_equal(omniq_enqueue(fx->oq, "work", NULL, NULL, NULL, NULL), OMNIQ_ECONFIG);
    assert_non_null(strstr(omniq_errmsg(fx->oq), "clock"));
    assert_int_equal(omniq__engine_claim(fx->oq, NULL, 0, 1, &none, &n), OMNIQ_ECONFIG);
    assert_int_equal(n, 0);
    assert_int_equal(succeed(fx, r), OMNIQ_ECONFIG);
    assert_int_equal(omniq__engine_extend(fx->oq, r), OMNIQ_ECONFIG);
    assert_int_equal(omniq_cancel(fx->oq, pending), OMNIQ_ECONFIG);
    assert_int_equal(omniq_purge_expired_results(fx->oq, &count), OMNIQ_ECONFIG);
  }
  fx->clock.now_ms = TH_EPOCH_MS;
  assert_int_equal(total(fx), 2);
  omniq_task_t *t = get_task(fx->oq, pending);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  omniq_task_free(t);
  t = get_task(fx->oq, running);
  assert_int_equal(omniq_task_status(t), OMNIQ_RUNNING);
  omniq_task_free(t);
  th_ok(fx->oq, succeed(fx, r)); /* the clock is back: the same claim still holds */
  omniq_task_free(r);
}

static void run_at(fx_t *fx, int64_t now) {
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *res = NULL;
  fx->clock.now_ms = now;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", NULL, NULL, NULL, id));
  omniq_task_t *t = claim_one(fx);
  assert_non_null(t); /* due at once, on every backend */
  th_ok(fx->oq, succeed(fx, t));
  omniq_task_free(t);
  reopen(fx);
  t = get_task(fx->oq, id);
  assert_int_equal(omniq_task_created_at(t), now);
  assert_int_equal(omniq_task_eta(t), now);
  omniq_task_free(t);
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &res));
  assert_int_equal(omniq_result_finished_at(res), now);
  omniq_result_free(res);
}

static void test_clock_at_the_epoch_and_at_the_last_instant_runs_tasks(void **state) {
  run_at(*state, 0);
  run_at(*state, OMNIQ_TIME_MAX_MS);
}

/* ---- long waits --------------------------------------------------------------- */

typedef struct {
  fx_t *fx;
  const char *id;
  double wait;
  pthread_barrier_t started;
  int rc;
} waiter_t;

static void *wait_main(void *arg) {
  waiter_t *w = arg;
  omniq_result_t *r = NULL;
  pthread_barrier_wait(&w->started);
  w->rc = omniq_get_result(w->fx->oq, w->id, w->wait, &r);
  omniq_result_free(r);
  return NULL;
}

static void test_wait_too_long_to_represent_means_forever(void **state) {
  fx_t *fx = *state;
  /* 2e9 s is under 100 years: a long finite wait. The rest are forever. */
  const double waits[] = {2e9, 1e12, DBL_MAX, INFINITY};
  for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
    char id[OMNIQ_ID_SIZE];
    pthread_t th;
    th_ok(fx->oq, omniq_enqueue(fx->oq, "work", NULL, NULL, NULL, id));
    waiter_t w = {.fx = fx, .id = id, .wait = waits[i], .rc = -100};
    pthread_barrier_init(&w.started, NULL, 2);
    pthread_create(&th, NULL, wait_main, &w);
    pthread_barrier_wait(&w.started);
    omniq_task_t *t = claim_one(fx);
    th_ok(fx->oq, succeed(fx, t));
    omniq_task_free(t);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&w.started);
    if (w.rc != OMNIQ_OK) fail_msg("wait %g: %s", waits[i], omniq_err_name(w.rc));
  }
}

static void test_nan_wait_is_invalid(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", NULL, NULL, NULL, id));
  assert_int_equal(omniq_get_result(fx->oq, id, NAN, &r), OMNIQ_EINVAL);
  assert_null(r);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_values_at_their_limits_are_stored_and_read_back_exactly),
      T(test_values_past_their_limits_are_refused_and_store_nothing),
      T(test_delay_reaching_past_the_last_instant_is_refused),
      T(test_longest_interval_rearms_one_interval_later),
      T(test_rearm_retry_and_lease_near_the_last_instant_stay_within_it),
      T(test_stored_int64_max_durations_run_without_overflow),
      T(test_cron_with_no_match_before_the_last_instant_is_refused),
      T(test_cron_task_whose_next_match_is_past_the_last_instant_ends),
      T(test_retry_by_hand_takes_any_eta_a_store_keeps),
      T(test_clock_outside_the_instants_a_store_keeps_is_refused_and_changes_nothing),
      T(test_clock_at_the_epoch_and_at_the_last_instant_runs_tasks),
      T(test_wait_too_long_to_represent_means_forever),
      T(test_nan_wait_is_invalid),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
