/* SPDX-License-Identifier: MIT */
/* A claim that first recovered lost leases counts its own leases from
 * after that recovery.
 *
 * A claim first records the runs whose leases expired (the reap); that can
 * take long: on PostgreSQL a lost task's row stays locked by the session of
 * a host that vanished mid-transaction until the server drops it. Leases
 * counted from the moment read before the reap were over, or nearly, when
 * the claim committed: the tasks it took were recovered again at once, a
 * second lost run without a run, which made a task lost once before (its
 * host cut off) a PoisonTask that never ran to its end.
 *
 * The store is SQLite behind a table whose reports (finish: the reap's
 * report of a lost run) take REAP_MS of the store's clock, as a wait on a
 * locked row would; the test's clock stands still otherwise. Each claiming
 * call is checked for the lease it asks: a full lease from the store's now
 * at the claim. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "support/helpers.h"
#include "support/wrap_backend.h"
#include "base/records.h"
#include "core/engine.h"

#define LEASE_MS 4000
#define REAP_MS 5000 /* longer than a lease */

static th_clock_t *store_clock;
static atomic_int slow_reports; /* reports of lost runs take REAP_MS */
static atomic_int claims;       /* claiming calls seen */
static atomic_llong worst_left; /* the least lease a claim asked, from its store now */

static int hook_before(th_wrap_op_t op, const omniq_claim_req_t *req, char *err, size_t errlen) {
  (void)err, (void)errlen;
  if (op == TH_WRAP_FINISH && atomic_load(&slow_reports)) th_clock_advance(store_clock, REAP_MS);
  if (req != NULL) {
    long long left = (long long)(req->lease_until_ms - th_clock_now(store_clock));
    atomic_fetch_add(&claims, 1);
    if (left < atomic_load(&worst_left)) atomic_store(&worst_left, left);
  }
  return OMNIQ_OK;
}

static int group_setup(void **state) {
  (void)state;
  th_wrap_set_hooks(&(th_wrap_hooks_t){.before = hook_before});
  return th_wrap_register("slow_reap", "sqlite", 0) == OMNIQ_OK ? 0 : -1;
}

static int setup(void **state) {
  *state = (void *)"slow_reap";
  atomic_store(&slow_reports, 0);
  atomic_store(&claims, 0);
  atomic_store(&worst_left, LEASE_MS);
  if (th_store_setup_frozen(state) != 0) return -1;
  th_store_t *st = *state;
  omniq_close(st->oq);
  st->settings.lease_ms = LEASE_MS;
  store_clock = &st->clock;
  return omniq_open(&st->oq, &st->settings) == OMNIQ_OK ? 0 : -1;
}

/* n tasks claimed and then lost: their leases have run out, and the next
 * claim reaps them; the claims before it have reaped nothing. */
static void lose(th_store_t *st, omniq_task_t **lost, int n) {
  for (int i = 0; i < n; i++) {
    th_ok(st->oq, omniq_enqueue(st->oq, "work", "[]", NULL, NULL, NULL));
    lost[i] = th_claim_one(st->oq);
    assert_non_null(lost[i]);
  }
  th_clock_advance(&st->clock, LEASE_MS + 1000);
  atomic_store(&slow_reports, 1);
  atomic_store(&worst_left, LEASE_MS);
  atomic_store(&claims, 0);
}

/* The claim took the n lost tasks again (attempt 2), each with a whole
 * lease from the store's now after the reap; one claiming call. */
static void assert_claimed_again(th_store_t *st, omniq_task_t **tasks, size_t n, size_t want) {
  assert_int_equal(n, want);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(omniq_task_attempts(tasks[i]), 2);
    assert_int_equal(tasks[i]->lease_until_ms, th_clock_now(&st->clock) + LEASE_MS);
  }
  assert_int_equal(atomic_load(&claims), 1);
  assert_int_equal(atomic_load(&worst_left), LEASE_MS);
  omniq__tasks_free(tasks, n);
}

static void test_claim_after_a_slow_reap_has_its_whole_lease(void **state) {
  th_store_t *st = *state;
  omniq_task_t *lost[1], **tasks;
  size_t n;
  lose(st, lost, 1);
  th_ok(st->oq, omniq__engine_claim(st->oq, NULL, 0, 4, &tasks, &n));
  assert_claimed_again(st, tasks, n, 1);
  omniq_task_free(lost[0]);
}

/* A batch of outcomes that a claim rides on: the outcome comes too late
 * (its task is among those reaped), and the claim still counts its leases
 * from after the reap. */
static void test_claim_riding_a_batch_after_a_slow_reap_has_its_whole_lease(void **state) {
  th_store_t *st = *state;
  omniq_task_t *lost[2], **tasks;
  size_t n;
  int claimed = 0, rcs[1];
  lose(st, lost, 2);
  omniq__run_report_t ok = {.kind = OMNIQ__RUN_OK, .value = "null"};
  const omniq__run_report_t *rs[1] = {&ok};
  omniq_task_t *const runs[1] = {lost[0]};
  th_ok(st->oq, omniq__engine_finish_many(st->oq, runs, rs, 1, rcs, NULL, 0, 4, &tasks, &n,
                                           &claimed));
  assert_int_equal(rcs[0], OMNIQ_ESTATE); /* recovered before the outcome came */
  assert_true(claimed);
  assert_claimed_again(st, tasks, n, 2);
  omniq_task_free(lost[0]);
  omniq_task_free(lost[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_claim_after_a_slow_reap_has_its_whole_lease, setup,
                                      th_store_teardown_frozen),
      cmocka_unit_test_setup_teardown(
          test_claim_riding_a_batch_after_a_slow_reap_has_its_whole_lease, setup,
          th_store_teardown_frozen),
  };
  return cmocka_run_group_tests_name("claims after a reap", tests, group_setup, NULL);
}
