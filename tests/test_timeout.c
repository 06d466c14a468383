/* SPDX-License-Identifier: MIT */
/* Timeouts in thread isolation: at the deadline the run is recorded as a
 * TimeoutError, the retry policy applies, the handler reads
 * omniq_job_cancelled(), and whatever it returns later changes nothing. The
 * deadline is reached either by moving the store's clock or by moving the
 * pool's (frozen here: no real time counts); deferred jobs completed after
 * their deadline are safe. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "support/gate.h"
#include "worker/job.h"

typedef th_store_t fx_t;

static void enqueue(fx_t *fx, const char *func, int64_t timeout_ms, int max_retries,
                    char id[OMNIQ_ID_SIZE]) {
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.timeout_ms = timeout_ms;
  o.max_retries = max_retries;
  th_ok(fx->oq, omniq_enqueue(fx->oq, func, NULL, NULL, &o, id));
}

/* Waits, as a cooperative handler does, until the job is cancelled: woken
 * by the cancel itself (a test hook), not by looking again every so often. */
static int wait_cancelled(omniq_job_t *job) { return omniq__job_wait_cancelled(job, TH_WAIT_MS); }

typedef struct {
  th_gate_t started, saw_cancel, release, late_returned;
  int64_t deadline;
} slow_t;

/* Attempt 1 overruns: it notices the cancel, then holds on until released
 * and returns "late". Attempt 2 returns "second" at once. */
static int slow_handler(omniq_job_t *job, void *ud) {
  slow_t *s = ud;
  if (omniq_job_attempt(job) > 1) return omniq_job_return(job, "\"second\"");
  s->deadline = omniq_job_deadline(job);
  th_gate_add(&s->started, 1);
  if (wait_cancelled(job)) th_gate_add(&s->saw_cancel, 1);
  th_gate_wait(&s->release, 1, TH_WAIT_MS);
  omniq_job_return(job, "\"late\"");
  th_gate_add(&s->late_returned, 1);
  return OMNIQ_OK;
}

static void test_overrun_is_a_timeout_error_retried_and_its_late_return_ignored(void **state) {
  fx_t *fx = *state;
  slow_t s;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  omniq_task_t *t;
  omniq_result_t *r;
  char id[OMNIQ_ID_SIZE];
  memset(&s, 0, sizeof s);
  th_gate_init(&s.started);
  th_gate_init(&s.saw_cancel);
  th_gate_init(&s.release);
  th_gate_init(&s.late_returned);
  th_ok(fx->oq, omniq_register(fx->oq, "slow", slow_handler, &s));
  enqueue(fx, "slow", 1000, 2, id);
  omniq_worker_opts_init(&o);
  o.concurrency = 2;      /* the overrunning handler keeps its slot */
  /* An hour: the retry becomes due by the store's clock, not by an
   * enqueue, and moving that clock wakes the pool to look (no poll). */
  o.poll_interval_ms = 3600000;
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  assert_true(th_gate_wait(&s.started, 1, TH_WAIT_MS));
  assert_int_equal(s.deadline, TH_EPOCH_MS + 1000);

  th_clock_advance(&fx->clock, 1001); /* past the deadline, by the store's clock */
  assert_true(th_gate_wait(&s.saw_cancel, 1, TH_WAIT_MS));
  /* The handler is told only once the failure is stored. */
  th_ok(fx->oq, omniq_get_task(fx->oq, id, &t));
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_int_equal(omniq_task_attempts(t), 1);
  assert_string_equal(omniq_error_type(omniq_task_last_error(t)), "TimeoutError");
  assert_int_equal(omniq_error_is_retryable(omniq_task_last_error(t)), 1);
  omniq_task_free(t);

  th_clock_advance(&fx->clock, 1000); /* past the backoff: the retry runs */
  r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, TH_WAIT_MS / 1000.0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_int_equal(omniq_result_attempts(r), 2);
  omniq_result_free(r);

  th_gate_add(&s.release, 1);
  assert_true(th_gate_wait(&s.late_returned, 1, TH_WAIT_MS));
  th_ok(fx->oq, omniq_worker_stop(w)); /* the late outcome has been dealt with */
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_string_equal(omniq_result_value(r), "\"second\"");
  omniq_result_free(r);
  th_ok(fx->oq, omniq_get_task(fx->oq, id, &t));
  assert_int_equal(omniq_task_status(t), OMNIQ_SUCCESS);
  omniq_task_free(t);
  th_gate_destroy(&s.started);
  th_gate_destroy(&s.saw_cancel);
  th_gate_destroy(&s.release);
  th_gate_destroy(&s.late_returned);
}

/* Its run lasts its timeout by the pool's clock, the store's standing
 * still; it returns once cancelled. */
static int cooperative_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  th_pool_clock_advance(100);
  wait_cancelled(job);
  return omniq_job_return(job, "\"too late\"");
}

static void test_pool_clock_deadline_without_budget_fails_the_task(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  long done;
  th_ok(fx->oq, omniq_register(fx->oq, "coop", cooperative_handler, NULL));
  enqueue(fx, "coop", 100, 1, id); /* the store's clock stands still: the pool's decides */
  th_ok(fx->oq, omniq_worker_process(fx->oq, NULL, 0, &done));
  assert_int_equal(done, 1);
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "TimeoutError");
  assert_non_null(strstr(omniq_error_message(omniq_result_error(r)), "100 ms"));
  assert_null(omniq_result_value(r));
  omniq_result_free(r);
}

typedef struct {
  omniq_job_t *job;
  th_gate_t got;
  int64_t lasts_ms; /* by the pool's clock, before it defers */
} stash_t;

static int stash_handler(omniq_job_t *job, void *ud) {
  stash_t *s = ud;
  s->job = job; /* published by the gate below */
  th_gate_add(&s->got, 1);
  th_pool_clock_advance(s->lasts_ms);
  return OMNIQ_DEFERRED;
}

static void test_deferred_job_completed_after_its_deadline_is_safe_and_ignored(void **state) {
  fx_t *fx = *state;
  stash_t s = {.lasts_ms = 100};
  char id[OMNIQ_ID_SIZE];
  long done;
  th_gate_init(&s.got);
  th_ok(fx->oq, omniq_register(fx->oq, "stash", stash_handler, &s));
  enqueue(fx, "stash", 100, 1, id);
  th_ok(fx->oq, omniq_worker_process(fx->oq, NULL, 0, &done)); /* returns at the deadline */
  assert_int_equal(done, 1);
  assert_true(th_gate_wait(&s.got, 1, 0));
  assert_true(omniq_job_cancelled(s.job));
  /* The event loop finishes it late: the job is still valid memory until
   * this completion, and the outcome goes nowhere. */
  th_ok(fx->oq, omniq_job_return(s.job, "\"late\""));
  th_ok(fx->oq, omniq_job_complete(s.job));
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "TimeoutError");
  omniq_result_free(r);
  th_gate_destroy(&s.got);
}

static void test_deferred_job_abandoned_by_stop_can_still_be_completed(void **state) {
  fx_t *fx = *state;
  stash_t s = {0};
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  omniq_task_t *t;
  omniq_result_t *r = NULL;
  char id[OMNIQ_ID_SIZE];
  th_gate_init(&s.got);
  th_ok(fx->oq, omniq_register(fx->oq, "stash", stash_handler, &s));
  enqueue(fx, "stash", 0, 1, id); /* no timeout: only the stop gives up on it */
  omniq_worker_opts_init(&o);
  o.concurrency = 1;
  o.shutdown_timeout_ms = 1; /* real time by design; the handler is stuck however long */
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  assert_true(th_gate_wait(&s.got, 1, TH_WAIT_MS));
  assert_int_equal(omniq_worker_stop(w), OMNIQ_ETIMEDOUT);
  assert_true(omniq_job_cancelled(s.job));
  th_ok(fx->oq, omniq_job_complete(s.job)); /* frees it: no leak, no use after free */
  assert_int_equal(omniq_get_result(fx->oq, id, 0, &r), OMNIQ_ENOTFOUND);
  th_ok(fx->oq, omniq_get_task(fx->oq, id, &t));
  assert_int_equal(omniq_task_status(t), OMNIQ_RUNNING); /* left to its lease */
  omniq_task_free(t);
  th_gate_destroy(&s.got);
}

#define T(name) cmocka_unit_test_setup_teardown(name, th_store_setup_frozen, th_store_teardown_frozen)
#define T_FILE(name)                                                                         \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup_frozen, th_store_teardown_frozen, \
                                           "file")

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_overrun_is_a_timeout_error_retried_and_its_late_return_ignored),
      T_FILE(test_overrun_is_a_timeout_error_retried_and_its_late_return_ignored),
      T(test_pool_clock_deadline_without_budget_fails_the_task),
      T(test_deferred_job_completed_after_its_deadline_is_safe_and_ignored),
      T(test_deferred_job_abandoned_by_stop_can_still_be_completed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
