/* SPDX-License-Identifier: MIT */
/* Resolving a task's func: registered names first, then
 * "path/to/lib.so:symbol" through dlopen/dlsym, only for a library the
 * worker is allowed (settings.handler_path / OMNIQ_HANDLER_PATH, or the
 * worker's handler_path; none by default). A func that resolves to nothing,
 * or to a library not allowed, fails its task at once, not retryable, as
 * "HandlerNotFound". */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/helpers.h"
#include "core/handlers.h"

typedef th_store_t fx_t;

/* The worker options' handler_path for run_one's next runs. */
static const char *pool_path;

/* The folder holding the test handler library. */
static char *lib_dir(void) {
  char *copy = strdup(OMNIQ_TEST_HANDLERS_LIB), *d = strdup(dirname(copy));
  free(copy);
  return d;
}

/* Reopens fx with settings.handler_path = path. */
static void allow_in_settings(fx_t *fx, const char *path) {
  omniq_close(fx->oq);
  snprintf(fx->settings.handler_path, sizeof fx->settings.handler_path, "%s", path);
  th_ok(NULL, omniq_open(&fx->oq, &fx->settings));
}

/* Most tests load the test library: its folder is allowed in the
 * settings, as a program using library handlers must do. */
static int setup_allowed(void **state) {
  pool_path = NULL;
  if (th_store_setup(state) != 0) return -1;
  char *d = lib_dir();
  allow_in_settings(*state, d);
  free(d);
  return 0;
}

/* Enqueues func (max_retries 3) and runs the queue dry, the worker
 * options allowing pool_path; returns the result. */
static omniq_result_t *run_one(fx_t *fx, const char *func, int isolation) {
  omniq_worker_opts_t o;
  omniq_worker_opts_init(&o);
  o.concurrency = 1;
  o.isolation = isolation;
  o.handler_path = pool_path;
  return th_run_with(fx, func, "[1, \"two\"]", &o);
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

static void test_missing_library_fails_at_once_naming_it(void **state) {
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
  char err[512];
  const char *bad[] = {":symbol", "lib.so:", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(omniq__handlers_resolve(fx->oq, bad[i], NULL, &fn, &ud, err, sizeof err),
                     OMNIQ_EHANDLER);
    assert_null(fn);
    assert_true(strlen(err) > 0);
  }
  /* The same library twice: the cache answers the second time. */
  for (int i = 0; i < 2; i++) {
    th_ok(fx->oq, omniq__handlers_resolve(fx->oq, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo",
                                          NULL, &fn, &ud, err, sizeof err));
    assert_non_null(fn);
    assert_null(ud);
  }
}

/* ---- what a worker may load --------------------------------------------------- */

/* Without the allow-list, "libc.so.6:getpid" ran in every worker. */
static void test_no_library_is_loaded_by_default(void **state) {
  fx_t *fx = *state;
  allow_in_settings(fx, "");
  const char *funcs[] = {"libc.so.6:getpid", "/lib/x86_64-linux-gnu/libc.so.6:getpid",
                         OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo"};
  for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++) {
    assert_not_found_at_once(run_one(fx, funcs[i], OMNIQ_ISOLATION_THREAD), "OMNIQ_HANDLER_PATH");
    assert_not_found_at_once(run_one(fx, funcs[i], OMNIQ_ISOLATION_PROCESS), "handler_path");
  }
}

static void assert_runs(fx_t *fx, const char *func) {
  omniq_result_t *r = run_one(fx, func, OMNIQ_ISOLATION_THREAD);
  if (omniq_result_status(r) != OMNIQ_SUCCESS)
    fail_msg("%s: %s", func, omniq_error_message(omniq_result_error(r)));
  omniq_result_free(r);
}

static void test_library_is_loaded_when_its_file_or_folder_is_allowed(void **state) {
  fx_t *fx = *state;
  char *d = lib_dir(), list[OMNIQ_HANDLER_PATH_MAX];
  /* The exact file, among other entries (missing ones are skipped). */
  snprintf(list, sizeof list, "/nonexistent:%s::/tmp", OMNIQ_TEST_HANDLERS_LIB);
  allow_in_settings(fx, list);
  assert_runs(fx, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo");
  /* Only from the worker's options. */
  allow_in_settings(fx, "");
  pool_path = d;
  assert_runs(fx, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo");
  /* A bare name is looked for in the allowed folders. */
  const char *base = strrchr(OMNIQ_TEST_HANDLERS_LIB, '/') + 1;
  snprintf(list, sizeof list, "%s:omniq_test_echo", base);
  assert_runs(fx, list);
  /* And from OMNIQ_HANDLER_PATH, through omniq_settings_from_env. */
  pool_path = NULL;
  th_setenv("OMNIQ_HANDLER_PATH", d);
  omniq_settings_t s = fx->settings;
  th_ok(NULL, omniq_settings_from_env(&s));
  th_setenv("OMNIQ_HANDLER_PATH", NULL);
  assert_string_equal(s.handler_path, d);
  allow_in_settings(fx, s.handler_path);
  assert_runs(fx, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo");
  free(d);
}

/* The pool's handler_path reaches its process-isolation children, which
 * resolve the func again in their own copy of the worker. */
static void test_library_allowed_by_the_pool_runs_in_process_isolation(void **state) {
  fx_t *fx = *state;
  char *d = lib_dir();
  allow_in_settings(fx, "");
  pool_path = d;
  omniq_result_t *r = run_one(fx, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo",
                              OMNIQ_ISOLATION_PROCESS);
  if (omniq_result_status(r) != OMNIQ_SUCCESS)
    fail_msg("%s", omniq_error_message(omniq_result_error(r)));
  assert_string_equal(omniq_result_value(r), "[1, \"two\"]");
  omniq_result_free(r);
  free(d);
}

static void test_paths_cannot_climb_out_of_an_allowed_folder(void **state) {
  fx_t *fx = *state;
  char *allowed = th_tmpdir(), *d = lib_dir(), link[PATH_MAX], func[PATH_MAX * 2];
  char sibling[PATH_MAX];
  /* A symlink in the allowed folder to the library outside it. */
  snprintf(link, sizeof link, "%s/lib.so", allowed);
  assert_int_equal(symlink(OMNIQ_TEST_HANDLERS_LIB, link), 0);
  allow_in_settings(fx, allowed);
  snprintf(func, sizeof func, "%s:omniq_test_echo", link);
  assert_not_found_at_once(run_one(fx, func, OMNIQ_ISOLATION_THREAD), "not allowed");
  /* ".." out of it, up to the root and down to the library. */
  size_t n = (size_t)snprintf(func, sizeof func, "%s", allowed);
  for (const char *c = allowed; *c != '\0'; c++)
    if (*c == '/') n += (size_t)snprintf(func + n, sizeof func - n, "/..");
  snprintf(func + n, sizeof func - n, "%s:omniq_test_echo", OMNIQ_TEST_HANDLERS_LIB);
  assert_not_found_at_once(run_one(fx, func, OMNIQ_ISOLATION_THREAD), "not allowed");
  /* A folder whose name starts with the allowed one's is another folder. */
  snprintf(sibling, sizeof sibling, "%s", d);
  sibling[strlen(sibling) - 1] = '\0'; /* ".../test" allows nothing in ".../tests" */
  allow_in_settings(fx, sibling);
  assert_not_found_at_once(
      run_one(fx, OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo", OMNIQ_ISOLATION_THREAD),
      "not allowed");
  /* A bare name found nowhere allowed is not searched for elsewhere. */
  allow_in_settings(fx, allowed);
  assert_not_found_at_once(run_one(fx, "libc.so.6:getpid", OMNIQ_ISOLATION_THREAD),
                           "in no folder");
  th_rmtree(allowed);
  free(d);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup_allowed, th_store_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_library_symbol_runs_as_a_handler),
      T(test_library_symbol_runs_in_process_isolation),
      T(test_missing_library_fails_at_once_naming_it),
      T(test_missing_symbol_fails_at_once_naming_the_symbol),
      T(test_unregistered_name_fails_at_once),
      T(test_missing_handler_in_process_isolation_fails_without_a_child),
      T(test_registered_name_wins_over_a_path),
      T(test_malformed_paths_are_rejected_before_dlopen),
      T(test_no_library_is_loaded_by_default),
      T(test_library_is_loaded_when_its_file_or_folder_is_allowed),
      T(test_library_allowed_by_the_pool_runs_in_process_isolation),
      T(test_paths_cannot_climb_out_of_an_allowed_folder),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
