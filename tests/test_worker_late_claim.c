/* SPDX-License-Identifier: MIT */
/* A claim that comes back late must not stretch the lease it took.
 *
 * The store's lease of a claimed task begins at the "now" the engine reads
 * inside the claiming call; the answer may come back much later (a group
 * commit waiting behind others, a slow server, a descheduled host). A pool
 * that counted the lease from the answer would think it had time to start
 * the task when the store's lease is nearly over, and another worker may
 * then recover and run it too. So a task whose claim returned with less
 * than an extension period (lease/3) of the store's lease left must not
 * start; it is left to be recovered, and then runs once.
 *
 * The store is SQLite behind "slow" tables whose claiming calls (claim,
 * finish_claim, finish_many with a claim riding) make their claim and,
 * when it took a task of func "late", take DELAY_MS more to answer, as a
 * slow network would: the pool's clock and the store's (both the test's,
 * frozen otherwise) move on by that much during the call, so by both
 * clocks the claim answers with LEASE_MS - DELAY_MS of its lease left;
 * and from then on no extension gets through, as when the link the answer
 * came by is cut (an extension in time would make a start safe again).
 * "slow_ride" has no finish_many or release, so that the pool's reports
 * carry their claims through finish_claim. A give-back (release) fails
 * like an extension, unless a test lets it through: then a task not
 * started is given back and claimed afresh. Nothing here waits for real
 * time: no time passes for the pool but the delay the test makes. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "support/helpers.h"
#include "support/wrap_backend.h"

/* The pool's clock stands still but for the delay, so a claim answered
 * at once starts with its whole lease left, however loaded the machine. */
#define LEASE_MS 1200
#define DELAY_MS 1000 /* leaves 200 ms of the lease: less than LEASE_MS / 3 */

enum { SLOW_CLAIM = 1, SLOW_FINISH_CLAIM = 2, SLOW_FINISH_MANY = 4 };

static atomic_int slow_ops; /* SLOW_* bits: which calls answer late */
static th_clock_t *store_clock;
static atomic_int counted_runs, late_runs, late_attempt;
static atomic_int late_answers; /* how many more claims of "late" answer late */
static atomic_int release_through; /* a give-back reaches the store */

/* The answer of a claim that has just taken a "late" task comes back
 * DELAY_MS later: the pool's clock and the store's move on by that much. */
static void answer_late(int op, int rc, omniq_task_t *const *tasks, size_t n) {
  int took_late = 0;
  for (size_t i = 0; rc == OMNIQ_OK && i < n; i++)
    took_late |= strcmp(omniq_task_func(tasks[i]), "late") == 0;
  if (!(atomic_load(&slow_ops) & op) || !took_late || atomic_load(&late_answers) == 0) return;
  atomic_fetch_sub(&late_answers, 1);
  th_time_advance(store_clock, DELAY_MS);
}

/* The claiming calls answer late (answer_late, after the claim). */
static void slow_after(th_wrap_op_t op, int rc, omniq_task_t *const *tasks, size_t n) {
  if (op == TH_WRAP_CLAIM) answer_late(SLOW_CLAIM, rc, tasks, n);
  if (op == TH_WRAP_FINISH_CLAIM) answer_late(SLOW_FINISH_CLAIM, rc, tasks, n);
  if (op == TH_WRAP_FINISH_MANY) answer_late(SLOW_FINISH_MANY, rc, tasks, n);
}

/* While answers are slow, extensions fail as over a cut link, and so do
 * give-backs unless the test lets them through. */
static int slow_before(th_wrap_op_t op, const omniq_claim_req_t *req, char *err, size_t errlen) {
  (void)req;
  int cut = op == TH_WRAP_EXTEND ||
            (op == TH_WRAP_RELEASE && !atomic_load(&release_through));
  if (cut && atomic_load(&slow_ops) != 0) {
    snprintf(err, errlen, "store unreachable (test)");
    return OMNIQ_ESTORAGE;
  }
  return OMNIQ_OK;
}

static int group_setup(void **state) {
  (void)state;
  th_wrap_set_hooks(&(th_wrap_hooks_t){.before = slow_before, .after = slow_after});
  return th_wrap_register("slow", "sqlite", 0) == OMNIQ_OK &&
                 th_wrap_register("slow_ride", "sqlite",
                                  TH_WRAP_NO_FINISH_MANY | TH_WRAP_NO_RELEASE) == OMNIQ_OK
             ? 0
             : -1;
}

static int counted(omniq_job_t *job, void *userdata) {
  (void)userdata;
  atomic_fetch_add(&counted_runs, 1);
  return omniq_job_return(job, "null");
}

static int late(omniq_job_t *job, void *userdata) {
  (void)userdata;
  atomic_fetch_add(&late_runs, 1);
  atomic_store(&late_attempt, omniq_job_attempt(job));
  return omniq_job_return(job, "null");
}

/* A store on the named wrapper with a LEASE_MS lease. */
static int setup_on(void **state, const char *backend) {
  *state = (void *)backend;
  atomic_store(&slow_ops, 0);
  atomic_store(&counted_runs, 0);
  atomic_store(&late_runs, 0);
  atomic_store(&late_attempt, 0);
  atomic_store(&late_answers, 1000);
  atomic_store(&release_through, 0);
  th_pool_clock_freeze();
  if (th_store_setup(state) != 0) return -1;
  th_store_t *st = *state;
  omniq_close(st->oq);
  st->settings.lease_ms = LEASE_MS;
  store_clock = &st->clock;
  if (omniq_open(&st->oq, &st->settings) != OMNIQ_OK) return -1;
  if (omniq_register(st->oq, "counted", counted, NULL) != OMNIQ_OK ||
      omniq_register(st->oq, "late", late, NULL) != OMNIQ_OK)
    return -1;
  return 0;
}

static int setup_slow(void **state) { return setup_on(state, "slow"); }
static int setup_slow_ride(void **state) { return setup_on(state, "slow_ride"); }

/* One runner drains at most limit claims, which must return want; returns
 * the runs it counts. */
static long drain(th_store_t *st, long limit, int want) {
  omniq_worker_opts_t o;
  long done = 0;
  omniq_worker_opts_init(&o);
  o.concurrency = 1;
  assert_int_equal(omniq_worker_process(st->oq, &o, limit, &done), want);
  return done;
}

static int status_of(th_store_t *st, const char *id) {
  omniq_task_t *t = NULL;
  th_ok(st->oq, omniq_get_task(st->oq, id, &t));
  int status = omniq_task_status(t);
  omniq_task_free(t);
  return status;
}

/* The late task was not started on its late claim and waits, RUNNING, for
 * its lease to be recovered (the drain that left it said so: OMNIQ_ETIMEDOUT);
 * once it is, it runs exactly once, on its second attempt. */
static void assert_left_then_recovered(th_store_t *st, const char *id) {
  assert_int_equal(atomic_load(&late_runs), 0);
  assert_int_equal(status_of(st, id), OMNIQ_RUNNING);
  atomic_store(&slow_ops, 0);
  th_clock_advance(&st->clock, 2 * LEASE_MS + 1000); /* past the lease and a reaping period */
  assert_int_equal(drain(st, 1, OMNIQ_OK), 1);
  assert_int_equal(atomic_load(&late_runs), 1);
  assert_int_equal(atomic_load(&late_attempt), 2);
  assert_int_equal(status_of(st, id), OMNIQ_SUCCESS);
}

static void test_task_whose_claim_answered_late_is_not_started(void **state) {
  th_store_t *st = *state;
  char id[OMNIQ_ID_SIZE];
  th_ok(st->oq, omniq_enqueue(st->oq, "late", NULL, NULL, NULL, id));
  atomic_store(&slow_ops, SLOW_CLAIM);
  assert_int_equal(drain(st, 1, OMNIQ_ETIMEDOUT), 0);
  assert_left_then_recovered(st, id);
}

/* The claim rides on the report of the run before (finish_claim). */
static void test_task_claimed_by_a_report_answered_late_is_not_started(void **state) {
  th_store_t *st = *state;
  char id[OMNIQ_ID_SIZE];
  th_ok(st->oq, omniq_enqueue(st->oq, "counted", NULL, NULL, NULL, id));
  th_ok(st->oq, omniq_enqueue(st->oq, "late", NULL, NULL, NULL, id));
  atomic_store(&slow_ops, SLOW_FINISH_CLAIM);
  assert_int_equal(drain(st, 2, OMNIQ_ETIMEDOUT), 1);
  assert_int_equal(atomic_load(&counted_runs), 1);
  assert_left_then_recovered(st, id);
}

/* The claim rides on a batch of reports (finish_many): with the pool's
 * clock still, the keeper never commits the batch first (it would after
 * 5 ms), so the runner's report carries the claim. */
static void test_task_claimed_by_a_batch_answered_late_is_not_started(void **state) {
  th_store_t *st = *state;
  char id[OMNIQ_ID_SIZE];
  th_ok(st->oq, omniq_enqueue(st->oq, "counted", NULL, NULL, NULL, id));
  th_ok(st->oq, omniq_enqueue(st->oq, "late", NULL, NULL, NULL, id));
  atomic_store(&slow_ops, SLOW_FINISH_MANY | SLOW_CLAIM);
  assert_int_equal(drain(st, 2, OMNIQ_ETIMEDOUT), 1);
  assert_int_equal(atomic_load(&counted_runs), 1);
  assert_left_then_recovered(st, id);
}

/* Where the store can take the claim back, a task not started is given
 * back at once, its attempt undone, instead of waiting out its lease: a
 * drain of one claims it again and runs it, as its first attempt. */
static void test_task_not_started_is_given_back_and_runs_as_its_first_attempt(void **state) {
  th_store_t *st = *state;
  char id[OMNIQ_ID_SIZE];
  th_ok(st->oq, omniq_enqueue(st->oq, "late", NULL, NULL, NULL, id));
  atomic_store(&late_answers, 1);
  atomic_store(&release_through, 1);
  atomic_store(&slow_ops, SLOW_CLAIM);
  assert_int_equal(drain(st, 1, OMNIQ_OK), 1);
  assert_int_equal(atomic_load(&late_runs), 1);
  assert_int_equal(atomic_load(&late_attempt), 1);
  assert_int_equal(status_of(st, id), OMNIQ_SUCCESS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_task_whose_claim_answered_late_is_not_started,
                                      setup_slow, th_store_teardown_frozen),
      cmocka_unit_test_setup_teardown(test_task_claimed_by_a_report_answered_late_is_not_started,
                                      setup_slow_ride, th_store_teardown_frozen),
      cmocka_unit_test_setup_teardown(test_task_claimed_by_a_batch_answered_late_is_not_started,
                                      setup_slow, th_store_teardown_frozen),
      cmocka_unit_test_setup_teardown(
          test_task_not_started_is_given_back_and_runs_as_its_first_attempt, setup_slow,
          th_store_teardown_frozen),
  };
  return cmocka_run_group_tests_name("worker late claims", tests, group_setup, NULL);
}
