/* SPDX-License-Identifier: MIT */
/* A worker whose store cannot take a run's report (a database restarting, a
 * network down) keeps trying while the run's lease holds, so a short outage
 * costs neither the outcome nor a second run; once the lease has run out
 * with the store still unreachable, another worker may own the task, so the
 * run is cancelled and its report dropped.
 *
 * The store is SQLite behind a table ("flaky") that fails finish (also a
 * finish carrying the next claim, or a batch of finishes), or finish and extend_lease
 * (and release), with OMNIQ_ESTORAGE on demand.
 *
 * Time is the test's: the pool's clock and the store's stand still but for
 * what the test moves them by. A refusal takes REFUSAL_MS to come (the
 * store timing out), which is longer than any backoff, so each retry
 * follows at once; a handler that outlasts a lease moves time past it. So
 * nothing here waits for real time, and no load of the machine ends a
 * lease early. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "support/gate.h"
#include "support/helpers.h"
#include "support/wrap_backend.h"

static atomic_int finish_failures; /* to come; -1 = every one */
static atomic_int extend_fails;
static atomic_int away_from_report; /* a refused report also fails extensions from then on */
static atomic_int finish_calls, runs;
static th_clock_t *store_clock;
static th_gate_t lease_lost; /* "task.lease_lost" lines logged */

/* How long the store takes to refuse: past any backoff (50 ms to 1 s). */
#define REFUSAL_MS 1000

static int unreachable(char *err, size_t errlen) {
  snprintf(err, errlen, "store unreachable (test)");
  return OMNIQ_ESTORAGE;
}

static void let_go(void);

/* A report of any kind (alone, carrying a claim, a batch) lets a hung
 * extension go and fails while failures are to come. */
static int flaky_finish(char *err, size_t errlen) {
  let_go();
  atomic_fetch_add(&finish_calls, 1);
  int left = atomic_load(&finish_failures);
  if (left != 0) {
    if (left > 0) atomic_fetch_sub(&finish_failures, 1);
    if (atomic_load(&away_from_report)) atomic_store(&extend_fails, 1);
    th_time_advance(store_clock, REFUSAL_MS);
    return unreachable(err, errlen);
  }
  return OMNIQ_OK;
}

/* extend_lease hangs while `hang` is set, as a call to a server behind a
 * dead link does, until the next finish lets it go. */
static pthread_mutex_t hang_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hang_cond = PTHREAD_COND_INITIALIZER;
static int hang;

static void let_go(void) {
  pthread_mutex_lock(&hang_lock);
  hang = 0;
  pthread_cond_broadcast(&hang_cond);
  pthread_mutex_unlock(&hang_lock);
}

static int flaky_extend(char *err, size_t errlen) {
  pthread_mutex_lock(&hang_lock);
  int hung = hang;
  while (hang) pthread_cond_wait(&hang_cond, &hang_lock);
  pthread_mutex_unlock(&hang_lock);
  if (hung || atomic_load(&extend_fails)) return unreachable(err, errlen);
  return OMNIQ_OK;
}

/* A give-back (release) fails while the store is away; it does not hang,
 * so a runner that gives up a task never waits for let_go. */
static int flaky_release(char *err, size_t errlen) {
  pthread_mutex_lock(&hang_lock);
  int away = hang;
  pthread_mutex_unlock(&hang_lock);
  if (away || atomic_load(&extend_fails)) return unreachable(err, errlen);
  return OMNIQ_OK;
}

static int flaky_before(th_wrap_op_t op, const omniq_claim_req_t *req, char *err,
                        size_t errlen) {
  (void)req;
  switch (op) {
  case TH_WRAP_FINISH:
  case TH_WRAP_FINISH_CLAIM:
  case TH_WRAP_FINISH_MANY: return flaky_finish(err, errlen);
  case TH_WRAP_EXTEND: return flaky_extend(err, errlen);
  case TH_WRAP_RELEASE: return flaky_release(err, errlen);
  default: return OMNIQ_OK;
  }
}

static int group_setup(void **state) {
  (void)state;
  th_wrap_set_hooks(&(th_wrap_hooks_t){.before = flaky_before});
  return th_wrap_register("flaky", "sqlite", 0) == OMNIQ_OK ? 0 : -1;
}

/* The leases (kept by extensions every lease / 3 while the store lets them
 * through): one that three refusals do not outlast, and one that a single
 * refusal nearly uses up, for the tests of what follows when a lease runs
 * out. */
#define LONG_LEASE_MS 3600000
#define SHORT_LEASE_MS 1200

static void note_lease_lost(void *userdata, int level, const char *line) {
  (void)userdata, (void)level;
  if (strstr(line, "task.lease_lost") != NULL) th_gate_add(&lease_lost, 1);
}

/* A store on "flaky" with a lease of lease_ms, the pool's clock frozen. */
static int setup_with_lease(void **state, int64_t lease_ms) {
  *state = "flaky";
  atomic_store(&finish_failures, 0);
  atomic_store(&extend_fails, 0);
  atomic_store(&away_from_report, 0);
  atomic_store(&finish_calls, 0);
  atomic_store(&runs, 0);
  th_gate_init(&lease_lost);
  th_pool_clock_freeze();
  if (th_store_setup(state) != 0) return -1;
  th_store_t *st = *state;
  omniq_close(st->oq);
  st->settings.lease_ms = lease_ms;
  st->settings.log_level = OMNIQ_LOG_WARNING;
  st->settings.log_fn = note_lease_lost;
  store_clock = &st->clock;
  return omniq_open(&st->oq, &st->settings) == OMNIQ_OK ? 0 : -1;
}

static int setup_long(void **state) { return setup_with_lease(state, LONG_LEASE_MS); }
static int setup_short(void **state) { return setup_with_lease(state, SHORT_LEASE_MS); }

static int teardown(void **state) {
  int rc = th_store_teardown(state);
  th_pool_clock_thaw();
  th_gate_destroy(&lease_lost);
  return rc;
}

static int counted(omniq_job_t *job, void *userdata) {
  (void)userdata;
  atomic_fetch_add(&runs, 1);
  return omniq_job_return(job, "\"done\"");
}

/* The store goes away while it runs, and it outlasts its lease: then,
 * as a cooperative handler does, it returns once cancelled (the keeper
 * logs the lost lease after it cancelled the run). */
static atomic_int cancelled_seen;
static int until_cancelled(omniq_job_t *job, void *userdata) {
  (void)userdata;
  atomic_fetch_add(&runs, 1);
  atomic_store(&extend_fails, 1);
  th_time_advance(store_clock, SHORT_LEASE_MS + 1);
  if (th_gate_wait(&lease_lost, 1, TH_WAIT_MS))
    atomic_store(&cancelled_seen, omniq_job_cancelled(job));
  return omniq_job_return(job, "\"too late\"");
}

/* Enqueues one task of func and drains it; the drain must return want.
 * Returns how many runs the drain counts as done. */
static int run_one(th_store_t *st, const char *func, char id[OMNIQ_ID_SIZE], int want) {
  omniq_worker_opts_t o;
  long done = 0;
  th_ok(st->oq, omniq_register(st->oq, func, strcmp(func, "counted") == 0 ? counted
                                                                          : until_cancelled,
                               NULL));
  th_ok(st->oq, omniq_enqueue(st->oq, func, NULL, NULL, NULL, id));
  omniq_worker_opts_init(&o);
  o.concurrency = 1;
  assert_int_equal(omniq_worker_process(st->oq, &o, 1, &done), want);
  return (int)done;
}

static int status_of(th_store_t *st, const char *id) {
  omniq_task_t *t = NULL;
  th_ok(st->oq, omniq_get_task(st->oq, id, &t));
  int status = omniq_task_status(t);
  omniq_task_free(t);
  return status;
}

/* The lease is an hour: the three refusals (REFUSAL_MS each, past their
 * backoff) end well inside it, so the report must land. */
static void test_report_refused_by_the_store_is_retried_until_it_lands(void **state) {
  th_store_t *st = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  atomic_store(&finish_failures, 3);
  assert_int_equal(run_one(st, "counted", id, OMNIQ_OK), 1);
  assert_int_equal(atomic_load(&runs), 1);
  assert_int_equal(atomic_load(&finish_calls), 4);
  th_ok(st->oq, omniq_get_result(st->oq, id, 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_string_equal(omniq_result_value(r), "\"done\"");
  assert_int_equal(omniq_result_attempts(r), 1);
  omniq_result_free(r);
}

static void test_report_is_given_up_once_the_lease_ran_out_unreachable(void **state) {
  th_store_t *st = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  /* The store goes away when the run reports, not before: until then the
   * lease is kept, so the report is first tried while it holds, and the
   * retries then see it run out. */
  atomic_store(&finish_failures, -1);
  atomic_store(&away_from_report, 1);
  /* The drain returns (no endless retry) and says the outcome was not
   * stored: the run is not done. */
  assert_int_equal(run_one(st, "counted", id, OMNIQ_ESTORAGE), 0);
  assert_int_equal(atomic_load(&runs), 1);
  assert_true(atomic_load(&finish_calls) > 1);
  /* Nothing was stored: the task waits for its lease to be recovered. */
  assert_int_equal(status_of(st, id), OMNIQ_RUNNING);
  assert_int_equal(omniq_get_result(st->oq, id, 0, &r), OMNIQ_ENOTFOUND);
}

static void test_run_whose_lease_ran_out_unreachable_is_cancelled(void **state) {
  th_store_t *st = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  atomic_store(&cancelled_seen, 0);
  assert_int_equal(run_one(st, "until_cancelled", id, OMNIQ_OK), 1);
  assert_int_equal(atomic_load(&runs), 1);
  assert_int_equal(atomic_load(&cancelled_seen), 1);
  assert_int_equal(atomic_load(&finish_calls), 0); /* its report was dropped */
  assert_int_equal(status_of(st, id), OMNIQ_RUNNING);
  assert_int_equal(omniq_get_result(st->oq, id, 0, &r), OMNIQ_ENOTFOUND);
}

static atomic_int late_first_runs; /* runs of "late" on its first claim */

static int outlasts_the_leases(omniq_job_t *job, void *userdata) {
  (void)userdata;
  atomic_fetch_add(&runs, 1);
  pthread_mutex_lock(&hang_lock);
  hang = 1; /* the store goes away: extensions hang */
  pthread_mutex_unlock(&hang_lock);
  /* Until every lease claimed with this run's has run out. */
  th_time_advance(store_clock, 2 * SHORT_LEASE_MS);
  return omniq_job_return(job, "null");
}

static int late(omniq_job_t *job, void *userdata) {
  (void)userdata;
  if (omniq_job_attempt(job) == 1) atomic_fetch_add(&late_first_runs, 1);
  return omniq_job_return(job, "null");
}

/* A task claimed ahead waits while the run before it goes on; with the
 * store unreachable its lease cannot be extended and runs out, so another
 * worker may have taken it: it must not start on that claim. */
static void test_task_whose_lease_ran_out_before_it_started_is_not_run(void **state) {
  th_store_t *st = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  long done = 0;
  atomic_store(&late_first_runs, 0);
  th_ok(st->oq, omniq_register(st->oq, "counted", counted, NULL));
  th_ok(st->oq, omniq_register(st->oq, "outlasts", outlasts_the_leases, NULL));
  th_ok(st->oq, omniq_register(st->oq, "late", late, NULL));
  /* A short run first, so the pool claims the next two together. */
  th_ok(st->oq, omniq_enqueue(st->oq, "counted", NULL, NULL, NULL, id));
  th_ok(st->oq, omniq_enqueue(st->oq, "outlasts", NULL, NULL, NULL, id));
  th_ok(st->oq, omniq_enqueue(st->oq, "late", NULL, NULL, NULL, id));
  omniq_worker_opts_init(&o);
  o.concurrency = 1;
  omniq_worker_process(st->oq, &o, 3, &done);
  let_go();
  assert_int_equal(atomic_load(&runs), 2);
  assert_int_equal(atomic_load(&late_first_runs), 0);
  assert_int_equal(status_of(st, id), OMNIQ_RUNNING); /* left to be recovered */
}

#define T(name, lease) cmocka_unit_test_setup_teardown(name, setup_##lease, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_report_refused_by_the_store_is_retried_until_it_lands, long),
      T(test_report_is_given_up_once_the_lease_ran_out_unreachable, short),
      T(test_run_whose_lease_ran_out_unreachable_is_cancelled, short),
      T(test_task_whose_lease_ran_out_before_it_started_is_not_run, short),
  };
  return cmocka_run_group_tests_name("worker reports", tests, group_setup, NULL);
}
