/* SPDX-License-Identifier: MIT */
/* Process isolation: every run in a forked child. A child that crashes or
 * exits fails its task with "Crash" and the pool goes on; a child past its
 * deadline is killed; values and failures travel back over the pipe. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/helpers.h"
#include "support/gate.h"
#include "worker/isolate.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* The sanitizers catch SIGSEGV themselves, report, and exit with a status. */
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

typedef th_store_t fx_t;

static int ok_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, omniq_job_args(job));
}

static int segv_handler(omniq_job_t *job, void *ud) {
  volatile int *volatile p = NULL; /* volatile: the store must happen */
  (void)job;
  (void)ud;
  *p = 1;
  return OMNIQ_OK;
}

static int spin_handler(omniq_job_t *job, void *ud) {
  volatile unsigned long n = 0;
  (void)job;
  (void)ud;
  for (;;) n++;
  return OMNIQ_OK;
}

/* Tells the test (through a pipe: it runs in another process) that it
 * started, then spins. */
static int started_pipe[2];

static int signal_spin_handler(omniq_job_t *job, void *ud) {
  ssize_t n = write(started_pipe[1], "s", 1);
  (void)n;
  return spin_handler(job, ud);
}

static int exit_handler(omniq_job_t *job, void *ud) {
  (void)job;
  (void)ud;
  _exit(7);
}

static int abort_handler(omniq_job_t *job, void *ud) {
  (void)job;
  (void)ud;
  fprintf(stderr, "handler state: marker-4711\n");
  abort();
}

/* Writes line breaks, a tab, a terminal escape and bytes that are not
 * ASCII, then dies. */
static int unprintable_abort_handler(omniq_job_t *job, void *ud) {
  static const char out[] = "line one\nline two\ttab\x1b[31mred\r\xff\xfe end\n";
  (void)job;
  (void)ud;
  ssize_t n = write(STDERR_FILENO, out, sizeof out - 1);
  (void)n;
  abort();
}

static int big_handler(omniq_job_t *job, void *ud) {
  enum { N = 200 * 1024 };
  char *s = malloc(N + 3);
  (void)ud;
  s[0] = '"';
  memset(s + 1, 'x', N);
  s[N + 1] = '"';
  s[N + 2] = '\0';
  int rc = omniq_job_return(job, s);
  free(s);
  return rc;
}

static int fail_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_fail(job, "LibError", "no such record", 0) == OMNIQ_OK ? OMNIQ_EFAILED
                                                                           : OMNIQ_OK;
}

static int deferred_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  omniq_job_return(job, "\"deferred in child\"");
  omniq_job_complete(job);
  return OMNIQ_DEFERRED;
}

static int setup(void **state) {
  static const th_handler_t handlers[] = {
      {"ok", ok_handler},         {"segv", segv_handler},
      {"spin", spin_handler},     {"signal_spin", signal_spin_handler},
      {"exit", exit_handler},     {"abort", abort_handler},
      {"big", big_handler},       {"fail", fail_handler},
      {"deferred", deferred_handler}, {"unprintable", unprintable_abort_handler}};
  return th_store_setup_handlers(state, handlers, sizeof handlers / sizeof handlers[0]);
}

static omniq_result_t *result(fx_t *fx, const char *id) {
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, TH_WAIT_MS / 1000.0, &r));
  return r;
}

static void test_null_dereference_crashes_one_task_while_100_others_succeed(void **state) {
  enum { OK_TASKS = 100 };
  fx_t *fx = *state;
  char ids[OK_TASKS][OMNIQ_ID_SIZE], crash[OMNIQ_ID_SIZE], args[32];
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  for (int i = 0; i < OK_TASKS / 2; i++) {
    snprintf(args, sizeof args, "[%d]", i);
    th_enqueue_once(fx->oq, "ok", args, 0, ids[i]);
  }
  th_enqueue_once(fx->oq, "segv", NULL, 0, crash);
  for (int i = OK_TASKS / 2; i < OK_TASKS; i++) {
    snprintf(args, sizeof args, "[%d]", i);
    th_enqueue_once(fx->oq, "ok", args, 0, ids[i]);
  }
  th_process_opts(&o, 4);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));

  omniq_result_t *r = result(fx, crash);
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  const omniq_task_error_t *e = omniq_result_error(r);
  assert_string_equal(omniq_error_type(e), "Crash");
  if (!SANITIZED) assert_non_null(strstr(omniq_error_message(e), "signal 11 (SIGSEGV)"));
  assert_non_null(omniq_error_traceback(e));
  omniq_result_free(r);
  for (int i = 0; i < OK_TASKS; i++) {
    r = result(fx, ids[i]);
    assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
    snprintf(args, sizeof args, "[%d]", i);
    assert_string_equal(omniq_result_value(r), args);
    omniq_result_free(r);
  }
  th_ok(fx->oq, omniq_worker_stop(w));
}

/* The pool's clock is frozen (setup_frozen): the spinning run lasts its
 * timeout when the test, told by the child that it started, moves the
 * clock on by that much. */
static void test_endless_loop_is_killed_at_its_deadline_and_the_pool_goes_on(void **state) {
  fx_t *fx = *state;
  char spin[OMNIQ_ID_SIZE], after[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  char c;
  assert_int_equal(pipe(started_pipe), 0);
  th_enqueue_once(fx->oq, "signal_spin", NULL, 300, spin);
  th_enqueue_once(fx->oq, "ok", "[1]", 0, after);
  th_process_opts(&o, 1);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  struct pollfd p = {.fd = started_pipe[0], .events = POLLIN};
  assert_int_equal(poll(&p, 1, TH_WAIT_MS), 1);
  assert_int_equal(read(started_pipe[0], &c, 1), 1);
  th_pool_clock_advance(300);
  omniq_result_t *r = result(fx, spin);
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "TimeoutError");
  omniq_result_free(r);
  r = result(fx, after);
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  omniq_result_free(r);
  th_ok(fx->oq, omniq_worker_stop(w));
  close(started_pipe[0]);
  close(started_pipe[1]);
}

static void test_exit_without_result_is_a_crash_naming_the_status(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  long done;
  th_enqueue_once(fx->oq, "exit", NULL, 0, id);
  th_process_opts(&o, 1);
  th_ok(fx->oq, omniq_worker_process(fx->oq, &o, 0, &done));
  omniq_result_t *r = result(fx, id);
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "Crash");
  assert_non_null(strstr(omniq_error_message(omniq_result_error(r)), "status 7"));
  omniq_result_free(r);
}

static void test_crash_traceback_is_the_tail_of_the_child_stderr(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  long done;
  th_enqueue_once(fx->oq, "abort", NULL, 0, id);
  th_process_opts(&o, 1);
  th_ok(fx->oq, omniq_worker_process(fx->oq, &o, 0, &done));
  omniq_result_t *r = result(fx, id);
  const omniq_task_error_t *e = omniq_result_error(r);
  assert_string_equal(omniq_error_type(e), "Crash");
  assert_non_null(strstr(omniq_error_message(e), "SIGABRT"));
  assert_non_null(strstr(omniq_error_traceback(e), "marker-4711"));
  omniq_result_free(r);
}

static void test_crash_traceback_shows_every_unprintable_byte_as_a_question_mark(
    void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  long done;
  th_enqueue_once(fx->oq, "unprintable", NULL, 0, id);
  th_process_opts(&o, 1);
  th_ok(fx->oq, omniq_worker_process(fx->oq, &o, 0, &done));
  omniq_result_t *r = result(fx, id);
  const char *tb = omniq_error_traceback(omniq_result_error(r));
  assert_non_null(strstr(tb, "line one?line two?tab?[31mred??? end?"));
  for (const unsigned char *c = (const unsigned char *)tb; *c != '\0'; c++)
    if (*c < 0x20 || *c >= 0x7f) fail_msg("byte 0x%02x at %zu of the traceback", *c,
                                          (size_t)(c - (const unsigned char *)tb));
  omniq_result_free(r);
}

static void test_values_and_failures_travel_back_over_the_pipe(void **state) {
  fx_t *fx = *state;
  char big[OMNIQ_ID_SIZE], fail[OMNIQ_ID_SIZE], deferred[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  long done;
  th_enqueue_once(fx->oq, "big", NULL, 0, big);
  th_enqueue_once(fx->oq, "fail", NULL, 0, fail);
  th_enqueue_once(fx->oq, "deferred", NULL, 0, deferred);
  th_process_opts(&o, 2);
  th_ok(fx->oq, omniq_worker_process(fx->oq, &o, 0, &done));
  assert_int_equal(done, 3);

  omniq_result_t *r = result(fx, big); /* larger than a pipe's buffer */
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_int_equal(strlen(omniq_result_value(r)), 200 * 1024 + 2);
  omniq_result_free(r);
  r = result(fx, fail);
  const omniq_task_error_t *e = omniq_result_error(r);
  assert_string_equal(omniq_error_type(e), "LibError");
  assert_string_equal(omniq_error_message(e), "no such record");
  assert_int_equal(omniq_error_is_retryable(e), 0);
  omniq_result_free(r);
  r = result(fx, deferred);
  assert_string_equal(omniq_result_value(r), "\"deferred in child\"");
  omniq_result_free(r);
}

static void test_stop_kills_children_still_running_and_leaves_them_to_lease(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  omniq_task_t *t;
  struct pollfd p;
  char c;
  assert_int_equal(pipe(started_pipe), 0);
  th_enqueue_once(fx->oq, "signal_spin", NULL, 0, id);
  th_process_opts(&o, 1);
  o.shutdown_timeout_ms = 1; /* real time by design; the handler is stuck however long */
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  p = (struct pollfd){.fd = started_pipe[0], .events = POLLIN};
  assert_int_equal(poll(&p, 1, TH_WAIT_MS), 1);
  assert_int_equal(read(started_pipe[0], &c, 1), 1);
  assert_int_equal(omniq_worker_stop(w), OMNIQ_ETIMEDOUT);
  /* teardown's close returns only once the runner has killed and reaped
   * the child. */
  th_ok(fx->oq, omniq_get_task(fx->oq, id, &t));
  assert_int_equal(omniq_task_status(t), OMNIQ_RUNNING);
  omniq_task_free(t);
  close(started_pipe[0]);
  close(started_pipe[1]);
}

/* The pool's clock frozen, and the runner's look every so often at the
 * cancelled flag put off by an hour: a child is killed at its deadline
 * only because the cancel itself wakes its runner. */
static int setup_frozen(void **state) {
  th_pool_clock_freeze();
  omniq__isolate_set_tick_ms(3600000);
  return setup(state);
}

static int teardown_frozen(void **state) {
  int rc = th_store_teardown_frozen(state);
  omniq__isolate_set_tick_ms(0);
  return rc;
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, th_store_teardown)
#define T_FROZEN(name) cmocka_unit_test_setup_teardown(name, setup_frozen, teardown_frozen)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_null_dereference_crashes_one_task_while_100_others_succeed),
      T_FROZEN(test_endless_loop_is_killed_at_its_deadline_and_the_pool_goes_on),
      T(test_exit_without_result_is_a_crash_naming_the_status),
      T(test_crash_traceback_is_the_tail_of_the_child_stderr),
      T(test_crash_traceback_shows_every_unprintable_byte_as_a_question_mark),
      T(test_values_and_failures_travel_back_over_the_pipe),
      T(test_stop_kills_children_still_running_and_leaves_them_to_lease),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
