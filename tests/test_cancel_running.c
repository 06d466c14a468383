/* SPDX-License-Identifier: MIT */
/* A cancel through the handle a worker runs on reaches the running handler
 * at once, on each backend (argv[1], "sqlite" by default): when omniq_cancel
 * returns, omniq_job_cancelled() is already true, whether the cancel comes
 * from the handler itself or from another thread, in a started pool or in
 * an omniq_worker_process drain, and whatever the lease-extension timing
 * (none for minutes, or one every 200 ms). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "support/helpers.h"
#include "support/gate.h"

static const char *backend = "sqlite";

typedef th_store_t fx_t;

#define ROUNDS 20
/* Short enough that the keeper extends every few rounds, long enough that
 * a claim's answer and a runner's start, slowed by a loaded machine or a
 * sanitizer, stay within the lease margin (a runner starts a claimed task
 * only with a third of its lease left, counted from before the claim;
 * docs/workers.md). With 30 ms leases a 20 ms stall there left the task
 * unstarted, and a drain of one with nothing to run; with 150 ms, a 100 ms
 * stall did, which a sanitizer on a loaded machine reaches. */
#define SHORT_LEASE_MS 600

typedef struct {
  omniq_t *oq;
  atomic_int seen; /* omniq_job_cancelled() right after omniq_cancel */
  atomic_int cancel_rc;
  th_gate_t started; /* handler runs that got as far as their check (or park) */
  th_gate_t release; /* cancel from another thread: parked handlers let go */
  omniq_job_t *_Atomic job;
} shared_t;

/* Cancels its own task through the worker's handle and looks at once. */
static int self_cancel(omniq_job_t *job, void *ud) {
  shared_t *s = ud;
  atomic_store(&s->cancel_rc, omniq_cancel(s->oq, omniq_job_id(job)));
  atomic_store(&s->seen, omniq_job_cancelled(job));
  th_gate_add(&s->started, 1);
  return omniq_job_return(job, "\"dropped\"");
}

/* Parks until the test has cancelled and looked. */
static int parked(omniq_job_t *job, void *ud) {
  shared_t *s = ud;
  atomic_store(&s->job, job);
  th_gate_add(&s->started, 1);
  th_gate_wait(&s->release, th_gate_get(&s->started), TH_WAIT_MS);
  return omniq_job_return(job, "\"dropped\"");
}

/* Reopens the store with lease_ms, registers both handlers on ud. */
static void setup_handle(fx_t *fx, int64_t lease_ms, shared_t *s) {
  omniq_close(fx->oq);
  fx->settings.lease_ms = lease_ms;
  th_ok(NULL, omniq_open(&fx->oq, &fx->settings));
  memset(s, 0, sizeof *s);
  s->oq = fx->oq;
  th_gate_init(&s->started);
  th_gate_init(&s->release);
  th_ok(fx->oq, omniq_register(fx->oq, "self_cancel", self_cancel, s));
  th_ok(fx->oq, omniq_register(fx->oq, "parked", parked, s));
}

static void assert_cancelled_without_value(fx_t *fx, const char *id) {
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, TH_WAIT_MS / 1000.0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_CANCELLED);
  assert_null(omniq_result_value(r));
  omniq_result_free(r);
}

static void opts(omniq_worker_opts_t *o) {
  omniq_worker_opts_init(o);
  o->concurrency = 1;
}

/* The handler cancels itself ROUNDS times; drain: omniq_worker_process,
 * else a started pool. */
static void self_cancel_rounds(fx_t *fx, int64_t lease_ms, int drain) {
  shared_t s;
  omniq_worker_opts_t o;
  omniq_worker_t *w = NULL;
  setup_handle(fx, lease_ms, &s);
  opts(&o);
  if (!drain) th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  for (int i = 0; i < ROUNDS; i++) {
    char id[OMNIQ_ID_SIZE];
    long done = 0;
    th_ok(fx->oq, omniq_enqueue(fx->oq, "self_cancel", NULL, NULL, NULL, id));
    if (drain) th_ok(fx->oq, omniq_worker_process(fx->oq, &o, 1, &done));
    assert_true(th_gate_wait(&s.started, i + 1, TH_WAIT_MS));
    assert_cancelled_without_value(fx, id);
    assert_int_equal(atomic_load(&s.cancel_rc), OMNIQ_OK);
    if (!atomic_load(&s.seen)) fail_msg("round %d: not cancelled when omniq_cancel returned", i);
  }
  if (!drain) th_ok(fx->oq, omniq_worker_stop(w));
  th_gate_destroy(&s.started);
  th_gate_destroy(&s.release);
}

static void test_self_cancel_is_seen_at_once_in_a_started_pool(void **state) {
  self_cancel_rounds(*state, 600000, 0);         /* no extension for minutes */
  self_cancel_rounds(*state, SHORT_LEASE_MS, 0); /* one every 200 ms */
}

static void test_self_cancel_is_seen_at_once_in_a_drain(void **state) {
  self_cancel_rounds(*state, 600000, 1);
  self_cancel_rounds(*state, SHORT_LEASE_MS, 1);
}

static void test_cancel_from_another_thread_is_seen_when_omniq_cancel_returns(void **state) {
  fx_t *fx = *state;
  const int64_t leases[] = {600000, SHORT_LEASE_MS};
  for (size_t l = 0; l < 2; l++) {
    shared_t s;
    omniq_worker_opts_t o;
    omniq_worker_t *w;
    setup_handle(fx, leases[l], &s);
    opts(&o);
    th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
    for (int i = 0; i < ROUNDS; i++) {
      char id[OMNIQ_ID_SIZE];
      th_ok(fx->oq, omniq_enqueue(fx->oq, "parked", NULL, NULL, NULL, id));
      assert_true(th_gate_wait(&s.started, i + 1, TH_WAIT_MS));
      th_ok(fx->oq, omniq_cancel(fx->oq, id));
      /* The handler is parked: its job is alive until it is released. */
      if (!omniq_job_cancelled(atomic_load(&s.job)))
        fail_msg("lease %lld, round %d: not cancelled when omniq_cancel returned",
                 (long long)leases[l], i);
      th_gate_add(&s.release, 1);
      assert_cancelled_without_value(fx, id);
    }
    th_ok(fx->oq, omniq_worker_stop(w));
    th_gate_destroy(&s.started);
    th_gate_destroy(&s.release);
  }
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_self_cancel_is_seen_at_once_in_a_started_pool),
      T(test_self_cancel_is_seen_at_once_in_a_drain),
      T(test_cancel_from_another_thread_is_seen_when_omniq_cancel_returns),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
