/* SPDX-License-Identifier: MIT */
/* Poison tasks (core/engine.c, the crash column of core/report.c): runs that
 * end by crashing (a process-isolation child that dies, a worker that
 * vanishes, a handler's omniq_job_crash) are counted on the task, and the
 * crash_budget-th of them fails the task as PoisonTask whatever max_retries
 * still allows. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/gate.h"
#include "support/runs.h"

typedef th_store_t fx_t;

static const char *backend = "sqlite";

static void enqueue_max(fx_t *fx, int max_retries, int64_t interval_ms, char id[OMNIQ_ID_SIZE]) {
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.max_retries = max_retries;
  o.interval_ms = interval_ms;
  th_enqueue(fx, &o, id);
}

/* Claims the task (it must be due now) and ends its run as kind. */
static void run_as(fx_t *fx, const char *id, omniq__run_kind_t kind) {
  omniq_task_t *t = th_claim(fx, NULL);
  assert_non_null(t);
  assert_string_equal(omniq_task_id(t), id);
  th_ok(fx->oq, th_end(fx, t, kind));
  omniq_task_free(t);
  omniq_task_t *now = th_task(fx, id);
  if (omniq_task_status(now) == OMNIQ_PENDING) fx->clock.now_ms = omniq_task_eta(now);
  omniq_task_free(now);
}

static void assert_poisoned(fx_t *fx, const char *id, int runs) {
  omniq_result_t *r = NULL;
  omniq_task_t *t = th_task(fx, id);
  assert_int_equal(omniq_task_status(t), OMNIQ_FAILED);
  assert_int_equal(omniq_task_attempts(t), runs);
  assert_int_equal(omniq_task_crashes(t), 2);
  omniq_task_free(t);
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  const omniq_task_error_t *e = omniq_result_error(r);
  assert_string_equal(omniq_error_type(e), "PoisonTask");
  assert_false(omniq_error_is_retryable(e));
  assert_non_null(strstr(omniq_error_message(e), "crash_budget 2"));
  omniq_result_free(r);
}

static void test_two_crashed_runs_make_a_poison_task_whatever_max_retries(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  enqueue_max(fx, 50, 0, id);
  run_as(fx, id, OMNIQ__RUN_CRASH_SIGNAL);
  omniq_task_t *t = th_task(fx, id);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING); /* one crash: retried */
  assert_int_equal(omniq_task_crashes(t), 1);
  assert_string_equal(omniq_error_type(omniq_task_last_error(t)), "Crash");
  omniq_task_free(t);
  run_as(fx, id, OMNIQ__RUN_CRASH_EXIT);
  assert_poisoned(fx, id, 2);
}

static void test_lost_workers_count_toward_the_budget(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  enqueue_max(fx, 50, 0, id);
  omniq_task_t *t = th_claim(fx, NULL);
  assert_non_null(t);
  omniq_task_free(t); /* and its worker is never heard of again */
  th_clock_advance(&fx->clock, fx->settings.lease_ms + 2000);
  t = th_claim(fx, NULL); /* reaps first: lost once, retried at once */
  assert_non_null(t);
  assert_int_equal(omniq_task_crashes(t), 1);
  omniq_task_free(t); /* lost again */
  th_clock_advance(&fx->clock, fx->settings.lease_ms + 2000);
  assert_null(th_claim(fx, NULL)); /* the second loss poisons it */
  assert_poisoned(fx, id, 2);
}

/* A failure the handler reports, whatever it calls it, and a timeout are
 * not crashes. */
static void test_reported_failures_and_timeouts_are_not_crashes(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  enqueue_max(fx, 50, 0, id);
  for (int i = 0; i < 3; i++) run_as(fx, id, OMNIQ__RUN_HANDLER_FAILED);
  for (int i = 0; i < 3; i++) run_as(fx, id, OMNIQ__RUN_TIMEOUT);
  omniq_task_t *t = th_task(fx, id);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_int_equal(omniq_task_crashes(t), 0);
  omniq_task_free(t);
}

static void test_a_retry_by_hand_gives_a_poison_task_a_fresh_budget(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  enqueue_max(fx, 50, 0, id);
  run_as(fx, id, OMNIQ__RUN_CRASH_SIGNAL);
  run_as(fx, id, OMNIQ__RUN_CRASH_SIGNAL);
  assert_poisoned(fx, id, 2);
  th_ok(fx->oq, omniq_retry(fx->oq, id, 0));
  omniq_task_t *t = th_task(fx, id);
  assert_int_equal(omniq_task_crashes(t), 0);
  omniq_task_free(t);
  run_as(fx, id, OMNIQ__RUN_CRASH_SIGNAL);
  assert_int_equal(th_status(fx, id), OMNIQ_PENDING);
  run_as(fx, id, OMNIQ__RUN_OK);
  assert_int_equal(th_status(fx, id), OMNIQ_SUCCESS);
}

/* An interval task that crashes its runs is stopped too, not re-armed. */
static void test_a_poisoned_interval_task_is_not_rearmed(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  enqueue_max(fx, 50, 1000, id);
  run_as(fx, id, OMNIQ__RUN_CRASH_SIGNAL);
  run_as(fx, id, OMNIQ__RUN_CRASH_SIGNAL);
  assert_poisoned(fx, id, 2);
}

static void test_a_crash_budget_of_zero_never_poisons(void **state) {
  fx_t *fx = *state;
  omniq_settings_t s = fx->settings;
  omniq_t *oq = NULL;
  char id[OMNIQ_ID_SIZE];
  s.crash_budget = 0;
  omniq_close(fx->oq);
  th_ok(NULL, omniq_open(&oq, &s));
  fx->oq = oq;
  enqueue_max(fx, 5, 0, id);
  for (int i = 0; i < 5; i++) run_as(fx, id, OMNIQ__RUN_CRASH_SIGNAL);
  omniq_result_t *r = NULL;
  th_ok(oq, omniq_get_result(oq, id, 0, &r));
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "Crash"); /* max_retries ended it */
  omniq_result_free(r);
}

/* ---- through a pool --------------------------------------------------------- */

/* omniq_job_crash: a handler says the process it ran the task in died. */
static int crash_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  omniq_job_crash(job, 9, "last words");
  return OMNIQ_EFAILED;
}

static void test_a_handler_reporting_a_crash_uses_the_budget(void **state) {
  fx_t *fx = *state;
  omniq_worker_opts_t wo;
  char id[OMNIQ_ID_SIZE];
  long done = 0;
  th_ok(fx->oq, omniq_register(fx->oq, "work", crash_handler, NULL));
  enqueue_max(fx, 50, 0, id);
  omniq_worker_opts_init(&wo);
  wo.concurrency = 1;
  th_ok(fx->oq, omniq_worker_process(fx->oq, &wo, 1, &done));
  assert_int_equal(done, 1);
  omniq_task_t *t = th_task(fx, id);
  const omniq_task_error_t *e = omniq_task_last_error(t);
  assert_int_equal(omniq_task_crashes(t), 1);
  assert_string_equal(omniq_error_type(e), "Crash");
  assert_string_equal(omniq_error_message(e), "killed by signal 9 (SIGKILL)");
  assert_string_equal(omniq_error_traceback(e), "last words");
  assert_true(omniq_error_is_retryable(e));
  omniq_task_free(t);
}

/* A handler that segfaults, in process isolation, with max_retries 50:
 * after exactly crash_budget (2) runs the task is a PoisonTask. The pool
 * runs on the manual clock; each retry is made due by moving the clock
 * when the log says the retry was scheduled, so nothing waits on time. */
typedef struct retries {
  th_gate_t scheduled;
} retries_t;

static void watch_log(void *ud, int level, const char *line) {
  retries_t *r = ud;
  (void)level;
  if (strstr(line, "task.retry") != NULL) th_gate_add(&r->scheduled, 1);
}

static int segv_handler(omniq_job_t *job, void *ud) {
  volatile int *volatile p = NULL; /* volatile: the store must happen */
  (void)job, (void)ud;
  *p = 1;
  return OMNIQ_OK;
}

static void test_a_segfaulting_handler_is_poison_after_exactly_crash_budget_runs(void **state) {
  fx_t *fx = *state;
  retries_t log = {0};
  omniq_settings_t s = fx->settings;
  omniq_worker_opts_t wo;
  omniq_worker_t *w = NULL;
  omniq_t *oq = NULL;
  omniq_result_t *r = NULL;
  char id[OMNIQ_ID_SIZE];
  th_gate_init(&log.scheduled);
  s.log_fn = watch_log;
  s.log_userdata = &log;
  s.log_level = OMNIQ_LOG_INFO;
  omniq_close(fx->oq);
  th_ok(NULL, omniq_open(&oq, &s));
  fx->oq = oq;
  th_ok(oq, omniq_register(oq, "work", segv_handler, NULL));
  enqueue_max(fx, 50, 0, id);
  omniq_worker_opts_init(&wo);
  wo.concurrency = 1;
  wo.isolation = OMNIQ_ISOLATION_PROCESS;
  wo.poll_interval_ms = 3600000; /* an hour: moving the store's clock wakes it */
  th_ok(oq, omniq_worker_start(oq, &wo, &w));
  assert_true(th_gate_wait(&log.scheduled, 1, TH_WAIT_MS)); /* the first crash, retried */
  omniq_task_t *t = th_task(fx, id);
  th_clock_advance(&fx->clock, omniq_task_eta(t) - fx->clock.now_ms); /* the retry is due */
  omniq_task_free(t);
  th_ok(oq, omniq_get_result(oq, id, TH_WAIT_MS / 1000.0, &r));
  th_ok(oq, omniq_worker_stop(w));
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "PoisonTask");
  assert_int_equal(omniq_result_attempts(r), 2);
  omniq_result_free(r);
  assert_poisoned(fx, id, 2);
  assert_int_equal(th_gate_get(&log.scheduled), 1);
  th_gate_destroy(&log.scheduled);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_two_crashed_runs_make_a_poison_task_whatever_max_retries),
      T(test_lost_workers_count_toward_the_budget),
      T(test_reported_failures_and_timeouts_are_not_crashes),
      T(test_a_retry_by_hand_gives_a_poison_task_a_fresh_budget),
      T(test_a_poisoned_interval_task_is_not_rearmed),
      T(test_a_crash_budget_of_zero_never_poisons),
      T(test_a_handler_reporting_a_crash_uses_the_budget),
      T(test_a_segfaulting_handler_is_poison_after_exactly_crash_budget_runs),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
