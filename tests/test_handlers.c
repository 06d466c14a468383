/* SPDX-License-Identifier: MIT */
/* Resolving a task's func: registered names first, then
 * "path/to/lib.so:symbol" through dlopen/dlsym. A func that resolves to
 * nothing fails its task at once, not retryable, as "HandlerNotFound". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "core/handlers.h"

typedef th_store_t fx_t;

static omniq_result_t *run_one(fx_t *fx, const char *func, int isolation) {
  return th_run_one(fx, func, "[1, \"two\"]", isolation);
}

static void assert_not_found_at_once(omniq_result_t *r, const char *in_message) {
  const omniq_task_error_t *e = omniq_result_error(r);
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  assert_int_equal(omniq_result_attempts(r), 1); /* budget of 3, yet one run */
  assert_string_equal(omniq_error_type(e), "HandlerNotFound");
  assert_int_equal(omniq_error_is_retryable(e), 0);
  if (strstr(omniq_error_message(e), in_message) == NULL)
    fail_msg("message '%s' lacks '%s'", omniq_error_message(e), in_message);
  omniq_result_free(r);
}

static void test_library_symbol_runs_as_a_handler(void **state) {
  omniq_result_t *r = run_one(*state, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo",
                              OMNIQ_ISOLATION_THREAD);
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_string_equal(omniq_result_value(r), "[1, \"two\"]");
  omniq_result_free(r);
}

static void test_library_symbol_runs_in_process_isolation(void **state) {
  omniq_result_t *r = run_one(*state, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_fail",
                              OMNIQ_ISOLATION_PROCESS);
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "LibError");
  omniq_result_free(r);
}

static void test_missing_library_fails_at_once_with_the_loader_message(void **state) {
  assert_not_found_at_once(run_one(*state, "/nonexistent/libnothing.so:run",
                                   OMNIQ_ISOLATION_THREAD),
                           "/nonexistent/libnothing.so");
}

static void test_missing_symbol_fails_at_once_naming_the_symbol(void **state) {
  assert_not_found_at_once(run_one(*state, OMNIQ_TEST_HANDLERS_LIB ":no_such_symbol",
                                   OMNIQ_ISOLATION_THREAD),
                           "no_such_symbol");
}

static void test_unregistered_name_fails_at_once(void **state) {
  assert_not_found_at_once(run_one(*state, "nobody_registered_me", OMNIQ_ISOLATION_THREAD),
                           "nobody_registered_me");
}

static void test_missing_handler_in_process_isolation_fails_without_a_child(void **state) {
  assert_not_found_at_once(run_one(*state, "nobody_registered_me", OMNIQ_ISOLATION_PROCESS),
                           "nobody_registered_me");
}

static int named_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, "\"registered\"");
}

static void test_registered_name_wins_over_a_path(void **state) {
  fx_t *fx = *state;
  const char *func = OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo";
  th_ok(fx->oq, omniq_register(fx->oq, func, named_handler, NULL));
  omniq_result_t *r = run_one(fx, func, OMNIQ_ISOLATION_THREAD);
  assert_string_equal(omniq_result_value(r), "\"registered\"");
  omniq_result_free(r);
}

static void test_malformed_paths_are_rejected_before_dlopen(void **state) {
  fx_t *fx = *state;
  omniq_handler_fn fn;
  void *ud;
  char err[256];
  const char *bad[] = {":symbol", "lib.so:", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(omniq__handlers_resolve(fx->oq, bad[i], &fn, &ud, err, sizeof err),
                     OMNIQ_EHANDLER);
    assert_null(fn);
    assert_true(strlen(err) > 0);
  }
  /* The same library twice: the cache answers the second time. */
  for (int i = 0; i < 2; i++) {
    th_ok(fx->oq, omniq__handlers_resolve(fx->oq, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo", &fn, &ud,
                                 err, sizeof err));
    assert_non_null(fn);
    assert_null(ud);
  }
}

#define T(name) cmocka_unit_test_setup_teardown(name, th_store_setup, th_store_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_library_symbol_runs_as_a_handler),
      T(test_library_symbol_runs_in_process_isolation),
      T(test_missing_library_fails_at_once_with_the_loader_message),
      T(test_missing_symbol_fails_at_once_naming_the_symbol),
      T(test_unregistered_name_fails_at_once),
      T(test_missing_handler_in_process_isolation_fails_without_a_child),
      T(test_registered_name_wins_over_a_path),
      T(test_malformed_paths_are_rejected_before_dlopen),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
