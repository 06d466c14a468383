/* SPDX-License-Identifier: MIT */
/* On the file backend a pool's reports carry its next claim (storage ABI
 * 5's finish_claim, ABI 6's finish_many with a claim), as on SQLite: a
 * drain claims on its own once, at the start, and every later claim rides
 * on the commit of a batch of outcomes. Without it each batch was
 * committed alone and a claim made apart, by whichever runner led, so with
 * several runners one runner's claim ran beside another's commit on the
 * same folders, and each claim moved the work to another thread
 * (docs/storage-file.md, Claims that ride on reports).
 *
 * The file table is wrapped (support/wrap_backend.h) to count the calls a
 * pool makes. Both of the pool's clocks are frozen: every run is short
 * (held by its claimer), and the keeper never commits a batch by time, so
 * what the pool asks of the store does not depend on the machine's load. */
#include <stdatomic.h>
#include <string.h>

#include "base/clock.h"
#include "support/helpers.h"
#include "support/wrap_backend.h"

#define TASKS 300 /* several claims of AHEAD_MAX */

static atomic_int claims_alone, reports_with_claim, runs;

static int counting_before(th_wrap_op_t op, const omniq_claim_req_t *req, char *err,
                           size_t errlen) {
  (void)err, (void)errlen;
  if (op == TH_WRAP_CLAIM) atomic_fetch_add(&claims_alone, 1);
  if ((op == TH_WRAP_FINISH_CLAIM || op == TH_WRAP_FINISH_MANY) && req != NULL)
    atomic_fetch_add(&reports_with_claim, 1);
  return OMNIQ_OK;
}

static int64_t frozen_us(void) { return 1000000; }

static int noop(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  atomic_fetch_add(&runs, 1);
  return OMNIQ_OK;
}

static int setup(void **state) {
  atomic_store(&claims_alone, 0);
  atomic_store(&reports_with_claim, 0);
  atomic_store(&runs, 0);
  omniq__set_pool_clock_us(frozen_us);
  *state = (void *)"file-counted";
  if (th_store_setup_frozen(state) != 0) return -1;
  th_store_t *st = *state;
  th_ok(st->oq, omniq_register(st->oq, "noop", noop, NULL));
  return 0;
}

static int teardown(void **state) {
  int rc = th_store_teardown_frozen(state);
  omniq__set_pool_clock_us(NULL);
  return rc;
}

static void drain(th_store_t *st, int concurrency) {
  static omniq_enqueue_item_t items[TASKS];
  omniq_worker_opts_t o;
  long done = 0;
  for (size_t i = 0; i < TASKS; i++)
    items[i] = (omniq_enqueue_item_t){.func = "noop", .args_json = "[]"};
  th_ok(st->oq, omniq_enqueue_many(st->oq, items, TASKS, NULL));
  omniq_worker_opts_init(&o);
  o.concurrency = concurrency;
  th_ok(st->oq, omniq_worker_process(st->oq, &o, 0, &done));
  assert_int_equal(done, TASKS);
  assert_int_equal(atomic_load(&runs), TASKS);
}

/* One runner: the first claim is its own; every one after it rides on the
 * batch of outcomes the runner commits, the last finding nothing. */
static void test_a_drain_claims_alone_once_and_rides_every_later_claim(void **state) {
  drain(*state, 1);
  assert_int_equal(atomic_load(&claims_alone), 1);
  assert_true(atomic_load(&reports_with_claim) >= TASKS / 64);
}

int main(void) {
  th_wrap_set_hooks(&(th_wrap_hooks_t){.before = counting_before});
  if (th_wrap_register("file-counted", "file", 0) != OMNIQ_OK) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_a_drain_claims_alone_once_and_rides_every_later_claim,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
