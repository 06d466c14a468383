/* SPDX-License-Identifier: MIT */
/* The failure table (core/report.c): one test per kind of run report, each
 * the name and the retry flag the engine gives that failure. Workers only
 * report the kind; these rows are the whole of OmniQ's failure policy. */
#include <string.h>

#include "core/report.h"
#include "support/helpers.h"

static omniq__failure_t classify(omniq__run_kind_t kind) {
  omniq__run_report_t r = {.kind = kind, .message = "what happened"};
  return omniq__report_classify(&r);
}

static void assert_failure(omniq__run_kind_t kind, const char *type, int retryable) {
  omniq__failure_t f = classify(kind);
  assert_string_equal(f.error_type, type);
  assert_int_equal(f.retryable, retryable);
}

static void test_handler_failure_is_recorded_as_the_handler_said(void **state) {
  (void)state;
  for (int retryable = 0; retryable <= 1; retryable++) {
    omniq__run_report_t r = {.kind = OMNIQ__RUN_HANDLER_FAILED, .error_type = "ValueError",
                             .message = "bad input", .retryable = retryable};
    omniq__failure_t f = omniq__report_classify(&r);
    assert_string_equal(f.error_type, "ValueError");
    assert_int_equal(f.retryable, retryable);
  }
}

static void test_handler_failure_without_a_type_is_error(void **state) {
  (void)state;
  omniq__run_report_t r = {.kind = OMNIQ__RUN_HANDLER_FAILED, .error_type = NULL, .retryable = 0};
  assert_string_equal(omniq__report_classify(&r).error_type, "Error");
  assert_int_equal(omniq__report_classify(&r).retryable, 0);
  r.error_type = ""; /* what a process-isolation child sends for NULL */
  r.retryable = 1;
  assert_string_equal(omniq__report_classify(&r).error_type, "Error");
  assert_int_equal(omniq__report_classify(&r).retryable, 1);
}

static void test_handler_error_code_is_a_retryable_error(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_HANDLER_ERROR, "Error", 1);
}

static void test_missing_handler_is_handler_not_found_and_not_retried(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_NO_HANDLER, "HandlerNotFound", 0);
}

static void test_timeout_is_a_retryable_timeout_error(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_TIMEOUT, "TimeoutError", 1);
}

static void test_crash_by_signal_is_a_retryable_crash(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_CRASH_SIGNAL, "Crash", 1);
}

static void test_exit_without_a_result_is_a_retryable_crash(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_CRASH_EXIT, "Crash", 1);
}

static void test_result_too_large_is_a_crash_not_retried(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_TOO_LARGE, "Crash", 0);
}

static void test_out_of_memory_starting_a_run_is_a_retryable_error(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_NO_MEMORY, "Error", 1);
}

static void test_fork_failure_is_a_retryable_error(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_FORK_FAILED, "Error", 1);
}

static void test_lost_lease_is_a_retryable_worker_lost(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_LOST, "WorkerLost", 1);
}

static void test_memory_limit_is_memory_limit_and_not_retried(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_MEMORY_LIMIT, "MemoryLimit", 0);
}

static void test_cpu_limit_is_cpu_limit_and_not_retried(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_CPU_LIMIT, "CpuLimit", 0);
}

static void test_file_limit_is_file_limit_and_not_retried(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_FILE_LIMIT, "FileLimit", 0);
}

/* Only the handler's own failure carries a type and a flag from outside
 * the table: for every other kind, what a report says about them is
 * ignored. */
static void test_reports_cannot_name_or_flag_other_failures(void **state) {
  (void)state;
  for (int k = OMNIQ__RUN_HANDLER_ERROR; k < OMNIQ__RUN_KINDS; k++) {
    omniq__failure_t want = classify((omniq__run_kind_t)k);
    omniq__run_report_t r = {.kind = (omniq__run_kind_t)k, .error_type = "Sneaky",
                             .retryable = !want.retryable};
    omniq__failure_t got = omniq__report_classify(&r);
    assert_string_equal(got.error_type, want.error_type);
    assert_int_equal(got.retryable, want.retryable);
  }
}

static void test_every_kind_has_its_own_name(void **state) {
  (void)state;
  for (int a = 0; a < OMNIQ__RUN_KINDS; a++) {
    assert_string_not_equal(omniq__run_kind_name(a), "unknown");
    for (int b = a + 1; b < OMNIQ__RUN_KINDS; b++)
      assert_string_not_equal(omniq__run_kind_name(a), omniq__run_kind_name(b));
  }
  assert_string_equal(omniq__run_kind_name(OMNIQ__RUN_KINDS), "unknown");
  assert_string_equal(omniq__run_kind_name(-1), "unknown");
}

/* What counts toward crash_budget: a run that died or vanished, never one
 * the handler reported or that was stopped on purpose. */
static void test_only_dead_or_vanished_runs_count_as_crashes(void **state) {
  (void)state;
  for (int k = OMNIQ__RUN_HANDLER_FAILED; k <= OMNIQ__RUN_KINDS; k++) {
    int want = k == OMNIQ__RUN_CRASH_SIGNAL || k == OMNIQ__RUN_CRASH_EXIT || k == OMNIQ__RUN_LOST;
    if (classify((omniq__run_kind_t)k).crash != want)
      fail_msg("%s: crash should be %d", omniq__run_kind_name(k), want);
  }
  omniq__run_report_t r = {.kind = OMNIQ__RUN_HANDLER_FAILED, .error_type = "Crash"};
  assert_false(omniq__report_classify(&r).crash); /* a name is not a crash */
}

static void test_unknown_kind_is_a_retryable_error(void **state) {
  (void)state;
  assert_failure(OMNIQ__RUN_KINDS, "Error", 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_handler_failure_is_recorded_as_the_handler_said),
      cmocka_unit_test(test_handler_failure_without_a_type_is_error),
      cmocka_unit_test(test_handler_error_code_is_a_retryable_error),
      cmocka_unit_test(test_missing_handler_is_handler_not_found_and_not_retried),
      cmocka_unit_test(test_timeout_is_a_retryable_timeout_error),
      cmocka_unit_test(test_crash_by_signal_is_a_retryable_crash),
      cmocka_unit_test(test_exit_without_a_result_is_a_retryable_crash),
      cmocka_unit_test(test_result_too_large_is_a_crash_not_retried),
      cmocka_unit_test(test_out_of_memory_starting_a_run_is_a_retryable_error),
      cmocka_unit_test(test_fork_failure_is_a_retryable_error),
      cmocka_unit_test(test_lost_lease_is_a_retryable_worker_lost),
      cmocka_unit_test(test_memory_limit_is_memory_limit_and_not_retried),
      cmocka_unit_test(test_cpu_limit_is_cpu_limit_and_not_retried),
      cmocka_unit_test(test_file_limit_is_file_limit_and_not_retried),
      cmocka_unit_test(test_reports_cannot_name_or_flag_other_failures),
      cmocka_unit_test(test_every_kind_has_its_own_name),
      cmocka_unit_test(test_only_dead_or_vanished_runs_count_as_crashes),
      cmocka_unit_test(test_unknown_kind_is_a_retryable_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
