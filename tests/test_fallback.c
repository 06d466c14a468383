/* SPDX-License-Identifier: MIT */
/* The fallback handler (omniq_register_fallback) and failures that carry a
 * traceback (omniq_job_fail_traceback): what a language binding builds on.
 * A fallback runs every func nobody registered, except library funcs, which
 * follow the library rules alone. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "support/helpers.h"

typedef th_store_t fx_t;

static omniq_result_t *run_one(fx_t *fx, const char *func) {
  return th_run_one(fx, func, "[2, 3]", OMNIQ_ISOLATION_THREAD);
}

/* Answers with the func it was asked to run, as a JSON string. */
static int echo_func(omniq_job_t *job, void *ud) {
  char json[256];
  atomic_fetch_add((atomic_int *)ud, 1);
  snprintf(json, sizeof json, "\"%s\"", omniq_job_func(job));
  return omniq_job_return(job, json);
}

static void test_fallback_runs_a_func_nobody_registered(void **state) {
  fx_t *fx = *state;
  atomic_int calls = 0;
  th_ok(fx->oq, omniq_register_fallback(fx->oq, echo_func, &calls));
  omniq_result_t *r = run_one(fx, "reports.monthly.build");
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_string_equal(omniq_result_value(r), "\"reports.monthly.build\"");
  assert_int_equal(atomic_load(&calls), 1);
  omniq_result_free(r);
}

static int registered(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, "\"registered\"");
}

static void test_registered_name_wins_over_the_fallback(void **state) {
  fx_t *fx = *state;
  atomic_int calls = 0;
  th_ok(fx->oq, omniq_register_fallback(fx->oq, echo_func, &calls));
  th_ok(fx->oq, omniq_register(fx->oq, "tasks.add", registered, NULL));
  omniq_result_t *r = run_one(fx, "tasks.add");
  assert_string_equal(omniq_result_value(r), "\"registered\"");
  assert_int_equal(atomic_load(&calls), 0);
  omniq_result_free(r);
}

static void test_fallback_is_never_asked_about_a_library_func(void **state) {
  fx_t *fx = *state;
  atomic_int calls = 0;
  /* The test library is allowed, as a program with library handlers must. */
  omniq_close(fx->oq);
  snprintf(fx->settings.handler_path, sizeof fx->settings.handler_path, "%s",
           OMNIQ_TEST_HANDLERS_LIB);
  th_ok(NULL, omniq_open(&fx->oq, &fx->settings));
  th_ok(fx->oq, omniq_register_fallback(fx->oq, echo_func, &calls));

  /* A library that does not load fails as it would without a fallback. */
  omniq_result_t *r = run_one(fx, "/nonexistent/libnothing.so:run");
  const omniq_task_error_t *e = omniq_result_error(r);
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  assert_string_equal(omniq_error_type(e), "HandlerNotFound");
  assert_non_null(strstr(omniq_error_message(e), "/nonexistent/libnothing.so"));
  omniq_result_free(r);

  /* One that loads runs its own symbol. */
  r = run_one(fx, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo");
  assert_string_equal(omniq_result_value(r), "[2, 3]");
  omniq_result_free(r);
  assert_int_equal(atomic_load(&calls), 0);
}

static int cannot_resolve(omniq_job_t *job, void *ud) {
  (void)ud;
  omniq_job_fail(job, "HandlerNotFound", "no module named 'reports'", 0);
  return OMNIQ_EHANDLER;
}

static void test_fallback_that_cannot_resolve_fails_at_once_as_handler_not_found(void **state) {
  fx_t *fx = *state;
  th_ok(fx->oq, omniq_register_fallback(fx->oq, cannot_resolve, NULL));
  omniq_result_t *r = run_one(fx, "reports.monthly.build");
  const omniq_task_error_t *e = omniq_result_error(r);
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  assert_int_equal(omniq_result_attempts(r), 1); /* budget of 3, yet one run */
  assert_string_equal(omniq_error_type(e), "HandlerNotFound");
  assert_string_equal(omniq_error_message(e), "no module named 'reports'");
  assert_int_equal(omniq_error_is_retryable(e), 0);
  omniq_result_free(r);
}

static void test_null_fallback_removes_it(void **state) {
  fx_t *fx = *state;
  atomic_int calls = 0;
  th_ok(fx->oq, omniq_register_fallback(fx->oq, echo_func, &calls));
  th_ok(fx->oq, omniq_register_fallback(fx->oq, NULL, &calls));
  omniq_result_t *r = run_one(fx, "reports.monthly.build");
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "HandlerNotFound");
  assert_int_equal(atomic_load(&calls), 0);
  omniq_result_free(r);
  assert_int_equal(omniq_register_fallback(NULL, echo_func, NULL), OMNIQ_EINVAL);
}

static void *complete_later(void *job) {
  omniq_job_return(job, "\"from the loop\"");
  omniq_job_complete(job);
  return NULL;
}

/* A fallback that hands the job to another thread, as an event loop would. */
static int deferring(omniq_job_t *job, void *ud) {
  pthread_t *tid = ud;
  if (pthread_create(tid, NULL, complete_later, job) != 0) return OMNIQ_ENOMEM;
  return OMNIQ_DEFERRED;
}

static void test_fallback_may_defer_its_run(void **state) {
  fx_t *fx = *state;
  pthread_t tid;
  th_ok(fx->oq, omniq_register_fallback(fx->oq, deferring, &tid));
  omniq_result_t *r = run_one(fx, "loop.fetch");
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_string_equal(omniq_result_value(r), "\"from the loop\"");
  omniq_result_free(r);
  pthread_join(tid, NULL);
}

#define TRACEBACK "Traceback (most recent call last):\n  File \"tasks.py\", line 3\nValueError: 7\n"

static int fails_with_traceback(omniq_job_t *job, void *ud) {
  (void)ud;
  omniq_job_fail_traceback(job, "ValueError", "7", TRACEBACK, 0);
  return OMNIQ_EFAILED;
}

static void test_failure_keeps_its_traceback(void **state) {
  fx_t *fx = *state;
  th_ok(fx->oq, omniq_register(fx->oq, "parse", fails_with_traceback, NULL));
  omniq_result_t *r = run_one(fx, "parse");
  const omniq_task_error_t *e = omniq_result_error(r);
  assert_string_equal(omniq_error_type(e), "ValueError");
  assert_string_equal(omniq_error_message(e), "7");
  assert_string_equal(omniq_error_traceback(e), TRACEBACK);
  assert_int_equal(omniq_error_is_retryable(e), 0);
  omniq_result_free(r);
  assert_int_equal(omniq_job_fail_traceback(NULL, "E", "m", "tb", 1), OMNIQ_EINVAL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, th_store_setup, th_store_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_fallback_runs_a_func_nobody_registered),
      T(test_registered_name_wins_over_the_fallback),
      T(test_fallback_is_never_asked_about_a_library_func),
      T(test_fallback_that_cannot_resolve_fails_at_once_as_handler_not_found),
      T(test_null_fallback_removes_it),
      T(test_fallback_may_defer_its_run),
      T(test_failure_keeps_its_traceback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
