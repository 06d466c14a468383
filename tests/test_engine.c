/* SPDX-License-Identifier: MIT */
/* The engine's lifecycle policy, end to end on each backend: the attempts
 * invariant, backoff, ordering, results and waiting, intervals, cancel,
 * lease recovery, purge. The tests act as the worker through the engine's
 * own calls (claim, finish) and move time with the manual clock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "base/alloc.h"
#include "base/records.h"
#include "core/engine.h"

/* The backend under test: argv[1], "sqlite" by default. */
static const char *backend = "sqlite";

typedef th_store_t fx_t;

/* Enqueues func with opts tweaks; returns the id in id. */
static void enqueue(fx_t *fx, int max_retries, int64_t interval_ms, char id[OMNIQ_ID_SIZE]) {
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.max_retries = max_retries;
  o.interval_ms = interval_ms;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", "[1]", NULL, &o, id));
}

/* Claims at most one task; returns it or NULL. */
static omniq_task_t *claim_one(fx_t *fx) { return th_claim_one(fx->oq); }

static int fail_run(fx_t *fx, const omniq_task_t *t, int retryable) {
  omniq__run_report_t run = {.kind = OMNIQ__RUN_HANDLER_FAILED, .error_type = "ValueError",
                             .message = "boom", .retryable = retryable};
  return omniq__engine_finish(fx->oq, t, &run);
}

static int succeed_run(fx_t *fx, const omniq_task_t *t, const char *value) {
  omniq__run_report_t run = {.kind = OMNIQ__RUN_OK, .value = value};
  return omniq__engine_finish(fx->oq, t, &run);
}

static omniq_task_t *get_task(fx_t *fx, const char *id) {
  omniq_task_t *t = NULL;
  th_ok(fx->oq, omniq_get_task(fx->oq, id, &t));
  return t;
}

static int status_of(fx_t *fx, const char *id) {
  omniq_task_t *t = get_task(fx, id);
  int s = omniq_task_status(t);
  omniq_task_free(t);
  return s;
}

/* ---- the attempts invariant ---------------------------------------------- */

static void test_always_failing_task_runs_exactly_max_retries_times(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  enqueue(fx, 3, 0, id);

  for (int attempt = 1; attempt <= 3; attempt++) {
    omniq_task_t *t = claim_one(fx);
    assert_non_null(t);
    assert_string_equal(omniq_task_id(t), id);
    assert_int_equal(omniq_task_attempts(t), attempt); /* +1 per claim, exactly */
    assert_int_equal(omniq_task_status(t), OMNIQ_RUNNING);
    assert_null(claim_one(fx)); /* no second claim of a running task */
    th_ok(fx->oq, fail_run(fx, t, 1));
    omniq_task_free(t);

    t = get_task(fx, id);
    assert_int_equal(omniq_task_attempts(t), attempt); /* failure never changes it */
    assert_non_null(omniq_task_last_error(t));
    assert_string_equal(omniq_error_type(omniq_task_last_error(t)), "ValueError");
    assert_int_equal(omniq_error_retry_count(omniq_task_last_error(t)), attempt);
    if (attempt < 3) {
      assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
      assert_int_equal(omniq_get_result(fx->oq, id, 0, &r), OMNIQ_ENOTFOUND);
      fx->clock.now_ms = omniq_task_eta(t);
    } else {
      assert_int_equal(omniq_task_status(t), OMNIQ_FAILED);
    }
    omniq_task_free(t);
  }
  th_clock_advance(&fx->clock, 3600 * 1000);
  assert_null(claim_one(fx)); /* exactly three claims */
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  assert_int_equal(omniq_result_attempts(r), 3);
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "ValueError");
  assert_null(omniq_result_value(r));
  omniq_result_free(r);
}

static void test_max_retries_zero_and_one_both_mean_one_run(void **state) {
  fx_t *fx = *state;
  for (int max = 0; max <= 1; max++) {
    char id[OMNIQ_ID_SIZE];
    enqueue(fx, max, 0, id);
    omniq_task_t *t = claim_one(fx);
    assert_non_null(t);
    th_ok(fx->oq, fail_run(fx, t, 1));
    omniq_task_free(t);
    assert_int_equal(status_of(fx, id), OMNIQ_FAILED);
  }
}

static void test_not_retryable_failure_ends_at_once(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  enqueue(fx, 5, 0, id);
  omniq_task_t *t = claim_one(fx);
  th_ok(fx->oq, fail_run(fx, t, 0));
  omniq_task_free(t);
  assert_int_equal(status_of(fx, id), OMNIQ_FAILED);
}

/* ---- backoff -------------------------------------------------------------- */

static void test_backoff_formula_bounds_for_attempts_1_to_8(void **state) {
  (void)state;
  const int64_t base = 1000, cap = 60000;
  for (int a = 1; a <= 8; a++) {
    int64_t nominal = base << (a - 1);
    if (nominal > cap) nominal = cap;
    assert_int_equal(omniq__engine_backoff_ms(base, cap, a, 0.0), nominal * 3 / 4);
    assert_int_equal(omniq__engine_backoff_ms(base, cap, a, 0.5), nominal);
    assert_true(omniq__engine_backoff_ms(base, cap, a, 0.999999) < nominal * 5 / 4);
    assert_true(omniq__engine_backoff_ms(base, cap, a, 0.999999) >= nominal * 5 / 4 - 1);
  }
  /* The cap holds for large attempt numbers without overflow. */
  assert_true(omniq__engine_backoff_ms(base, cap, 1000, 0.999) <= cap * 5 / 4);
}

static void test_retry_eta_falls_in_backoff_range_for_attempts_1_to_8(void **state) {
  fx_t *fx = *state;
  const omniq_settings_t *s = omniq_settings(fx->oq);
  char id[OMNIQ_ID_SIZE];
  enqueue(fx, 9, 0, id);
  for (int a = 1; a <= 8; a++) {
    omniq_task_t *t = claim_one(fx);
    assert_non_null(t);
    assert_int_equal(omniq_task_attempts(t), a);
    int64_t failed_at = fx->clock.now_ms;
    th_ok(fx->oq, fail_run(fx, t, 1));
    omniq_task_free(t);

    t = get_task(fx, id);
    int64_t nominal = s->retry_base_ms << (a - 1);
    if (nominal > s->retry_cap_ms) nominal = s->retry_cap_ms;
    int64_t delay = omniq_task_eta(t) - failed_at;
    assert_true(delay >= nominal * 3 / 4);
    assert_true(delay <= nominal * 5 / 4);
    /* Not claimable a millisecond early; claimable exactly at the eta. */
    fx->clock.now_ms = omniq_task_eta(t) - 1;
    assert_null(claim_one(fx));
    fx->clock.now_ms = omniq_task_eta(t);
    omniq_task_free(t);
  }
}

static void test_delayed_task_is_claimable_at_its_eta_not_before(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t o;
  char id[OMNIQ_ID_SIZE];
  omniq_enqueue_opts_init(&o);
  o.delay_ms = 5000;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", NULL, NULL, &o, id));
  th_clock_advance(&fx->clock, 4999);
  assert_null(claim_one(fx));
  th_clock_advance(&fx->clock, 1);
  omniq_task_t *t = claim_one(fx);
  assert_non_null(t);
  assert_string_equal(omniq_task_id(t), id);
  omniq_task_free(t);
}

/* ---- ordering ------------------------------------------------------------- */

typedef struct {
  char id[OMNIQ_ID_SIZE];
  int priority;
  int64_t eta;
  int index;
} expect_t;

static int expect_cmp(const void *a, const void *b) {
  const expect_t *x = a, *y = b;
  if (x->priority != y->priority) return y->priority - x->priority;
  if (x->eta != y->eta) return x->eta < y->eta ? -1 : 1;
  return x->index - y->index;
}

static void test_claims_follow_priority_then_eta_then_insertion(void **state) {
  fx_t *fx = *state;
  enum { N = 1000 };
  expect_t *e = calloc(N, sizeof *e);
  omniq_enqueue_item_t *items = calloc(N, sizeof *items);
  omniq_enqueue_opts_t *opts = calloc(N, sizeof *opts);
  char(*ids)[OMNIQ_ID_SIZE] = calloc(N, OMNIQ_ID_SIZE);
  unsigned seed = 42;
  for (int i = 0; i < N; i++) {
    omniq_enqueue_opts_init(&opts[i]);
    opts[i].priority = (int)(rand_r(&seed) % 5) - 2;
    opts[i].eta_ms = TH_EPOCH_MS - (int64_t)(rand_r(&seed) % 4) * 1000; /* all due */
    items[i] = (omniq_enqueue_item_t){"work", NULL, NULL, &opts[i]};
    e[i].priority = opts[i].priority;
    e[i].eta = opts[i].eta_ms;
    e[i].index = i;
  }
  th_ok(fx->oq, omniq_enqueue_many(fx->oq, items, N, ids));
  for (int i = 0; i < N; i++) memcpy(e[i].id, ids[i], OMNIQ_ID_SIZE);
  qsort(e, N, sizeof *e, expect_cmp);
  for (int i = 0; i < N; i++) {
    omniq_task_t *t = claim_one(fx);
    assert_non_null(t);
    assert_string_equal(omniq_task_id(t), e[i].id);
    omniq_task_free(t);
  }
  assert_null(claim_one(fx));
  free(e);
  free(items);
  free(opts);
  free(ids);
}

/* ---- results and waiting -------------------------------------------------- */

typedef struct {
  fx_t *fx;
  const char *id;
  int rc;
  omniq_result_t *result;
  pthread_barrier_t started;
} waiter_t;

static void *wait_forever(void *arg) {
  waiter_t *w = arg;
  pthread_barrier_wait(&w->started);
  w->rc = omniq_get_result(w->fx->oq, w->id, -1, &w->result);
  return NULL;
}

static void test_wait_returns_the_final_result_not_an_intermediate_failure(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  waiter_t w = {.fx = fx, .id = id};
  pthread_t th;
  enqueue(fx, 3, 0, id);
  pthread_barrier_init(&w.started, NULL, 2);
  pthread_create(&th, NULL, wait_forever, &w);
  pthread_barrier_wait(&w.started);

  omniq_task_t *t = claim_one(fx);
  th_ok(fx->oq, fail_run(fx, t, 1)); /* will retry: still no result */
  fx->clock.now_ms = TH_EPOCH_MS + 60000;
  omniq_task_free(t);
  t = claim_one(fx);
  assert_int_equal(omniq_task_attempts(t), 2);
  th_ok(fx->oq, succeed_run(fx, t, "{\"sum\": 3}"));
  omniq_task_free(t);

  pthread_join(th, NULL);
  pthread_barrier_destroy(&w.started);
  assert_int_equal(w.rc, OMNIQ_OK);
  assert_int_equal(omniq_result_status(w.result), OMNIQ_SUCCESS);
  assert_string_equal(omniq_result_value(w.result), "{\"sum\": 3}");
  assert_int_equal(omniq_result_attempts(w.result), 2);
  omniq_result_free(w.result);
}

static void test_wait_times_out_without_a_result(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = (omniq_result_t *)&r; /* must be reset to NULL */
  enqueue(fx, 3, 0, id);
  assert_int_equal(omniq_get_result(fx->oq, id, 0.05, &r), OMNIQ_ETIMEDOUT);
  assert_null(r);
  assert_int_equal(omniq_get_result(fx->oq, id, 0, &r), OMNIQ_ENOTFOUND);
}

static void test_result_of_unknown_id_is_not_found_even_when_waiting(void **state) {
  fx_t *fx = *state;
  omniq_result_t *r = NULL;
  assert_int_equal(omniq_get_result(fx->oq, "01890000-0000-7000-8000-000000000000", -1, &r),
                   OMNIQ_ENOTFOUND);
}

/* ---- intervals ------------------------------------------------------------ */

static void test_interval_task_keeps_its_id_and_latest_result_until_cancelled(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  enqueue(fx, 3, 10000, id);
  for (int run = 1; run <= 3; run++) {
    char value[16];
    omniq_task_t *t = claim_one(fx);
    assert_non_null(t);
    assert_string_equal(omniq_task_id(t), id);
    assert_int_equal(omniq_task_attempts(t), 1); /* reset for every run */
    snprintf(value, sizeof value, "%d", run);
    if (run == 2) {
      th_ok(fx->oq, fail_run(fx, t, 0)); /* a failed run re-arms too */
    } else {
      th_ok(fx->oq, succeed_run(fx, t, value));
    }
    omniq_task_free(t);

    t = get_task(fx, id);
    assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
    assert_int_equal(omniq_task_attempts(t), 0);
    assert_int_equal(omniq_task_eta(t), fx->clock.now_ms + 10000);
    omniq_task_free(t);

    omniq_result_t *r = NULL;
    th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
    assert_int_equal(omniq_result_status(r), run == 2 ? OMNIQ_FAILED : OMNIQ_SUCCESS);
    if (run != 2) assert_string_equal(omniq_result_value(r), value);
    omniq_result_free(r);

    assert_null(claim_one(fx)); /* not before the interval */
    th_clock_advance(&fx->clock, 10000);
  }
  th_ok(fx->oq, omniq_cancel(fx->oq, id));
  th_clock_advance(&fx->clock, 100000);
  assert_null(claim_one(fx));
  assert_int_equal(status_of(fx, id), OMNIQ_CANCELLED);
}

/* ---- cancel --------------------------------------------------------------- */

static void test_cancelled_pending_task_is_never_claimed(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  enqueue(fx, 3, 0, id);
  th_ok(fx->oq, omniq_cancel(fx->oq, id));
  assert_null(claim_one(fx));
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_CANCELLED);
  omniq_result_free(r);
  assert_int_equal(omniq_cancel(fx->oq, id), OMNIQ_ESTATE); /* terminal */
}

static void test_cancel_running_discards_outcome(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  enqueue(fx, 3, 0, id);
  omniq_task_t *t = claim_one(fx);
  th_ok(fx->oq, omniq_cancel(fx->oq, id));
  assert_int_equal(succeed_run(fx, t, "1"), OMNIQ_ESTATE);
  assert_int_equal(fail_run(fx, t, 1), OMNIQ_ESTATE);
  assert_int_equal(omniq__engine_extend(fx->oq, t), OMNIQ_ESTATE);
  assert_int_equal(status_of(fx, id), OMNIQ_CANCELLED);
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_CANCELLED);
  assert_null(omniq_result_value(r));
  /* The result counts the run that was cancelled. */
  assert_int_equal(omniq_result_attempts(r), 1);
  assert_int_equal(omniq_result_last_attempt_at(r), t->started_at_ms);
  assert_int_equal(omniq_result_finished_at(r), th_clock_now(&fx->clock));
  omniq_task_free(t);
  omniq_result_free(r);
}

static void test_finished_task_rejects_illegal_transitions(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  enqueue(fx, 3, 0, id);
  omniq_task_t *t = claim_one(fx);
  th_ok(fx->oq, succeed_run(fx, t, "true"));
  assert_int_equal(succeed_run(fx, t, "false"), OMNIQ_ESTATE); /* SUCCESS -> SUCCESS */
  assert_int_equal(fail_run(fx, t, 1), OMNIQ_ESTATE);         /* SUCCESS -> PENDING */
  assert_int_equal(omniq_cancel(fx->oq, id), OMNIQ_ESTATE);    /* SUCCESS -> CANCELLED */
  omniq_task_free(t);
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_string_equal(omniq_result_value(r), "true");
  omniq_result_free(r);
}

/* ---- leases --------------------------------------------------------------- */

static void test_expired_lease_is_reclaimed_as_worker_lost(void **state) {
  fx_t *fx = *state;
  const int64_t lease = omniq_settings(fx->oq)->lease_ms;
  char id[OMNIQ_ID_SIZE];
  enqueue(fx, 3, 0, id);
  omniq_task_t *first = claim_one(fx);
  assert_non_null(first);

  th_clock_advance(&fx->clock, lease); /* lease_until == now: not yet expired */
  assert_null(claim_one(fx));
  th_clock_advance(&fx->clock, 1000);
  omniq_task_t *second = claim_one(fx);
  assert_non_null(second);
  assert_string_equal(omniq_task_id(second), id);
  assert_int_equal(omniq_task_attempts(second), 2);
  assert_non_null(omniq_task_last_error(second));
  assert_string_equal(omniq_error_type(omniq_task_last_error(second)), "WorkerLost");
  assert_int_equal(omniq_error_retry_count(omniq_task_last_error(second)), 1);

  /* The presumed-dead worker comes back: its outcome changes nothing. */
  assert_int_equal(succeed_run(fx, first, "\"late\""), OMNIQ_ESTATE);
  assert_int_equal(fail_run(fx, first, 0), OMNIQ_ESTATE);
  assert_int_equal(omniq__engine_extend(fx->oq, first), OMNIQ_ESTATE);
  omniq_task_t *now = get_task(fx, id);
  assert_int_equal(omniq_task_status(now), OMNIQ_RUNNING);
  assert_int_equal(omniq_task_attempts(now), 2);
  omniq_task_free(now);
  omniq_result_t *r = NULL;
  assert_int_equal(omniq_get_result(fx->oq, id, 0, &r), OMNIQ_ENOTFOUND);

  th_ok(fx->oq, succeed_run(fx, second, "\"ok\""));
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_string_equal(omniq_result_value(r), "\"ok\"");
  assert_int_equal(omniq_result_attempts(r), 2);
  omniq_result_free(r);
  omniq_task_free(first);
  omniq_task_free(second);
}

static void test_lost_lease_without_budget_fails_with_worker_lost(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  int recovered = 0;
  omniq_result_t *r = NULL;
  enqueue(fx, 1, 0, id);
  omniq_task_t *t = claim_one(fx);
  th_clock_advance(&fx->clock, omniq_settings(fx->oq)->lease_ms + 1);
  th_ok(fx->oq, omniq__engine_reap(fx->oq, &recovered));
  assert_int_equal(recovered, 1);
  assert_int_equal(status_of(fx, id), OMNIQ_FAILED);
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "WorkerLost");
  omniq_result_free(r);
  omniq_task_free(t);
}

static void test_extended_lease_keeps_a_live_run(void **state) {
  fx_t *fx = *state;
  const int64_t lease = omniq_settings(fx->oq)->lease_ms;
  char id[OMNIQ_ID_SIZE];
  enqueue(fx, 3, 0, id);
  omniq_task_t *t = claim_one(fx);
  for (int i = 0; i < 5; i++) {
    th_clock_advance(&fx->clock, lease / 3);
    th_ok(fx->oq, omniq__engine_extend(fx->oq, t));
    assert_null(claim_one(fx));
  }
  th_ok(fx->oq, succeed_run(fx, t, "1"));
  omniq_task_free(t);
}

/* ---- purge ---------------------------------------------------------------- */

static void test_purge_removes_exactly_results_older_than_cutoff(void **state) {
  fx_t *fx = *state;
  char ids[6][OMNIQ_ID_SIZE];
  int64_t count = -1;
  for (int i = 0; i < 6; i++) {
    enqueue(fx, 1, 0, ids[i]);
    omniq_task_t *t = claim_one(fx);
    th_ok(fx->oq, succeed_run(fx, t, "null"));
    omniq_task_free(t);
    th_clock_advance(&fx->clock, 1000);
  }
  /* Results finished at E, E+1s, ..., E+5s; cutoff E+3s keeps E+3s and on. */
  th_ok(fx->oq, omniq_purge_results(fx->oq, TH_EPOCH_MS + 3000, &count));
  assert_int_equal(count, 3);
  for (int i = 0; i < 6; i++) {
    omniq_result_t *r = NULL;
    assert_int_equal(omniq_get_result(fx->oq, ids[i], 0, &r), i < 3 ? OMNIQ_ENOTFOUND : OMNIQ_OK);
    omniq_result_free(r);
  }
  /* result_ttl: everything older than now - ttl. */
  fx->clock.now_ms = TH_EPOCH_MS + 6000 + omniq_settings(fx->oq)->result_ttl_ms;
  th_ok(fx->oq, omniq_purge_expired_results(fx->oq, &count));
  assert_int_equal(count, 3);
}

/* ---- bad input ------------------------------------------------------------ */

static int64_t total_tasks(fx_t *fx) {
  int64_t c[OMNIQ_STATUS_COUNT], sum = 0;
  th_ok(fx->oq, omniq_count_by_status(fx->oq, c));
  for (int i = 0; i < OMNIQ_STATUS_COUNT; i++) sum += c[i];
  return sum;
}

static void test_bad_input_is_rejected_and_loses_nothing(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_enqueue_opts_t o;
  omniq_task_t *t = NULL;
  enqueue(fx, 3, 0, id);

  assert_int_equal(omniq_enqueue(fx->oq, NULL, NULL, NULL, NULL, NULL), OMNIQ_EINVAL);
  assert_int_equal(omniq_enqueue(fx->oq, "", NULL, NULL, NULL, NULL), OMNIQ_EINVAL);
  assert_int_equal(omniq_enqueue(NULL, "f", NULL, NULL, NULL, NULL), OMNIQ_EINVAL);
  assert_int_equal(omniq_enqueue(fx->oq, "f", "[1,", NULL, NULL, NULL), OMNIQ_ESERIALIZE);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "position"));
  assert_int_equal(omniq_enqueue(fx->oq, "f", "{}", NULL, NULL, NULL), OMNIQ_ESERIALIZE);
  assert_int_equal(omniq_enqueue(fx->oq, "f", NULL, "[]", NULL, NULL), OMNIQ_ESERIALIZE);
  omniq_enqueue_opts_init(&o);
  o.delay_ms = -1;
  assert_int_equal(omniq_enqueue(fx->oq, "f", NULL, NULL, &o, NULL), OMNIQ_EINVAL);
  omniq_enqueue_opts_init(&o);
  o.interval_ms = -5;
  assert_int_equal(omniq_enqueue(fx->oq, "f", NULL, NULL, &o, NULL), OMNIQ_EINVAL);
  omniq_enqueue_opts_init(&o);
  o.timeout_ms = -2;
  assert_int_equal(omniq_enqueue(fx->oq, "f", NULL, NULL, &o, NULL), OMNIQ_EINVAL);
  omniq_enqueue_opts_init(&o);
  o.queue = "../etc";
  assert_int_equal(omniq_enqueue(fx->oq, "f", NULL, NULL, &o, NULL), OMNIQ_EINVAL);

  assert_int_equal(omniq_get_task(fx->oq, "01890000-0000-7000-8000-000000000000", &t),
                   OMNIQ_ENOTFOUND);
  assert_int_equal(omniq_cancel(fx->oq, "01890000-0000-7000-8000-000000000000"), OMNIQ_ENOTFOUND);
  assert_int_equal(omniq_get_task(fx->oq, "../../etc/passwd", &t), OMNIQ_EINVAL);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "not a task id"));
  assert_int_equal(omniq_cancel(fx->oq, "a/b"), OMNIQ_EINVAL);
  assert_int_equal(omniq_get_task(fx->oq, NULL, &t), OMNIQ_EINVAL);
  assert_null(t);

  assert_int_equal(total_tasks(fx), 1);
  assert_int_equal(status_of(fx, id), OMNIQ_PENDING);
}

static void test_batch_with_one_bad_item_stores_nothing(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_item_t items[3] = {
      {"a", "[1]", NULL, NULL}, {"b", "[2", NULL, NULL}, {"c", "[3]", NULL, NULL}};
  assert_int_equal(omniq_enqueue_many(fx->oq, items, 3, NULL), OMNIQ_ESERIALIZE);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "task 1"));
  assert_int_equal(total_tasks(fx), 0);
  items[1].args_json = "[2]";
  th_ok(fx->oq, omniq_enqueue_many(fx->oq, items, 3, NULL));
  assert_int_equal(total_tasks(fx), 3);
}

static void test_out_of_memory_at_enqueue_stores_nothing(void **state) {
  fx_t *fx = *state;
  int failed = 0;
  for (long n = 0; n < 12; n++) {
    omniq__alloc_fail_after(n);
    int rc = omniq_enqueue(fx->oq, "f", "[1]", NULL, NULL, NULL);
    omniq__alloc_fail_after(-1);
    if (rc != OMNIQ_OK) {
      assert_int_equal(rc, OMNIQ_ENOMEM);
      failed++;
    }
  }
  assert_true(failed > 0);
  /* every successful enqueue stored exactly one task */
  assert_int_equal(total_tasks(fx), 12 - failed);
}

static void test_unopenable_and_corrupt_stores_give_clear_errors(void **state) {
  fx_t *fx = *state;
  omniq_settings_t s;
  omniq_t *oq = (omniq_t *)&s;
  char path[OMNIQ_PATH_MAX];
  FILE *f;

  if (strcmp(backend, "sqlite") != 0) skip(); /* db_url is SQLite's */

  /* A parent "directory" that is a regular file. */
  snprintf(path, sizeof path, "%s/plain", fx->dir);
  f = fopen(path, "w");
  fputs("x", f);
  fclose(f);
  th_settings(&s, "sqlite", fx->dir, &fx->clock);
  snprintf(s.db_url, sizeof s.db_url, "%s/plain/sub/q.db", fx->dir);
  assert_int_not_equal(omniq_open(&oq, &s), OMNIQ_OK);
  assert_null(oq);
  assert_string_not_equal(omniq_errmsg(NULL), "");

  /* A file of random bytes is not taken for a store, nor overwritten. */
  unsigned char junk[4096];
  unsigned seed = 7;
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)rand_r(&seed);
  snprintf(s.db_url, sizeof s.db_url, "%s/junk.db", fx->dir);
  snprintf(path, sizeof path, "%s", s.db_url);
  f = fopen(path, "wb");
  fwrite(junk, 1, sizeof junk, f);
  fclose(f);
  assert_int_equal(omniq_open(&oq, &s), OMNIQ_ECORRUPT);
  assert_non_null(strstr(omniq_errmsg(NULL), "junk.db"));
  unsigned char back[sizeof junk];
  f = fopen(path, "rb");
  assert_int_equal(fread(back, 1, sizeof back, f), sizeof back);
  fclose(f);
  assert_memory_equal(back, junk, sizeof junk);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_always_failing_task_runs_exactly_max_retries_times),
      T(test_max_retries_zero_and_one_both_mean_one_run),
      T(test_not_retryable_failure_ends_at_once),
      T(test_backoff_formula_bounds_for_attempts_1_to_8),
      T(test_retry_eta_falls_in_backoff_range_for_attempts_1_to_8),
      T(test_delayed_task_is_claimable_at_its_eta_not_before),
      T(test_claims_follow_priority_then_eta_then_insertion),
      T(test_wait_returns_the_final_result_not_an_intermediate_failure),
      T(test_wait_times_out_without_a_result),
      T(test_result_of_unknown_id_is_not_found_even_when_waiting),
      T(test_interval_task_keeps_its_id_and_latest_result_until_cancelled),
      T(test_cancelled_pending_task_is_never_claimed),
      T(test_cancel_running_discards_outcome),
      T(test_finished_task_rejects_illegal_transitions),
      T(test_expired_lease_is_reclaimed_as_worker_lost),
      T(test_lost_lease_without_budget_fails_with_worker_lost),
      T(test_extended_lease_keeps_a_live_run),
      T(test_purge_removes_exactly_results_older_than_cutoff),
      T(test_bad_input_is_rejected_and_loses_nothing),
      T(test_batch_with_one_bad_item_stores_nothing),
      T(test_out_of_memory_at_enqueue_stores_nothing),
      T(test_unopenable_and_corrupt_stores_give_clear_errors),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
