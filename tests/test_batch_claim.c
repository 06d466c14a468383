/* SPDX-License-Identifier: MIT */
/* A pool claims for all its free slots in one step (worker/pool.c), on a
 * backend that counts the claims it is asked for: the SQLite table with
 * its claim wrapped, and without finish_claim, so every claim the pool
 * makes is a claim call (a report does not carry the next one). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "support/gate.h"
#include "support/runs.h"

#define SLOTS 4
#define MAX_CALLS 4096

static int (*sqlite_claim)(void *, const omniq_claim_req_t *, omniq_task_t ***, size_t *, char *,
                           size_t);
static pthread_mutex_t calls_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t calls, asked[MAX_CALLS], got[MAX_CALLS];

static int counted_claim(void *b, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                         char *err, size_t errlen) {
  int rc = sqlite_claim(b, req, out, n, err, errlen);
  pthread_mutex_lock(&calls_lock);
  if (calls < MAX_CALLS) {
    asked[calls] = req->max;
    got[calls] = rc == OMNIQ_OK ? *n : 0;
  }
  calls++;
  pthread_mutex_unlock(&calls_lock);
  return rc;
}

static int setup(void **state) {
  static omniq_storage_ops_t counted;
  if (omniq_storage_find("sqlite-counted") == NULL) {
    counted = *omniq_storage_find("sqlite");
    counted.name = "sqlite-counted";
    sqlite_claim = counted.claim;
    counted.claim = counted_claim;
    counted.finish_claim = NULL;
    if (omniq_storage_register(&counted) != OMNIQ_OK) return -1;
  }
  *state = (void *)"sqlite-counted";
  calls = 0;
  return th_store_setup(state);
}

static th_gate_t started;

/* Returns only once SLOTS runs have started: they must run at once. */
static int together(omniq_job_t *job, void *ud) {
  (void)ud;
  th_gate_add(&started, 1);
  if (!th_gate_wait(&started, SLOTS, TH_WAIT_MS)) return omniq_job_fail(job, "Alone", "", 0);
  return omniq_job_return(job, "null");
}

/* SLOTS tasks due and SLOTS idle runners: the first claim asks for SLOTS
 * and takes all of them, and they run at the same time. */
static void test_one_claim_fills_every_free_slot(void **state) {
  th_store_t *st = *state;
  omniq_worker_opts_t o;
  long done = 0;
  th_gate_init(&started);
  th_ok(st->oq, omniq_register(st->oq, "together", together, NULL));
  for (int i = 0; i < SLOTS; i++)
    th_ok(st->oq, omniq_enqueue(st->oq, "together", NULL, NULL, NULL, NULL));
  omniq_worker_opts_init(&o);
  o.concurrency = SLOTS;
  th_ok(st->oq, omniq_worker_process(st->oq, &o, 0, &done));
  assert_int_equal(done, SLOTS);
  assert_true(calls >= 1);
  assert_int_equal(asked[0], SLOTS);
  assert_int_equal(got[0], SLOTS);
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(st->oq, omniq_count_by_status(st->oq, counts));
  assert_int_equal(counts[OMNIQ_SUCCESS], SLOTS);
  th_gate_destroy(&started);
}

static int quick(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, "null");
}

/* A drain limited to 3 with 10 due and 4 slots: no claim asks for more
 * than the limit leaves, and exactly 3 tasks leave PENDING. */
static void test_a_drain_limit_caps_what_one_claim_asks_for(void **state) {
  th_store_t *st = *state;
  omniq_worker_opts_t o;
  long done = 0;
  th_ok(st->oq, omniq_register(st->oq, "quick", quick, NULL));
  for (int i = 0; i < 10; i++)
    th_ok(st->oq, omniq_enqueue(st->oq, "quick", NULL, NULL, NULL, NULL));
  omniq_worker_opts_init(&o);
  o.concurrency = SLOTS;
  th_ok(st->oq, omniq_worker_process(st->oq, &o, 3, &done));
  assert_int_equal(done, 3);
  size_t total = 0;
  for (size_t i = 0; i < calls && i < MAX_CALLS; i++) {
    assert_true(asked[i] <= 3 - total);
    total += got[i];
  }
  assert_int_equal(total, 3);
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(st->oq, omniq_count_by_status(st->oq, counts));
  assert_int_equal(counts[OMNIQ_PENDING], 7);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_one_claim_fills_every_free_slot, setup,
                                      th_store_teardown),
      cmocka_unit_test_setup_teardown(test_a_drain_limit_caps_what_one_claim_asks_for, setup,
                                      th_store_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
