/* SPDX-License-Identifier: MIT */
/* Holding (worker/claim.c): while runs are very short, a runner that
 * claims keeps what it claimed and runs it all itself; as soon as runs are
 * no longer short, what it still holds goes to every runner; and new work
 * that arrives while one runner holds starts at once on an idle one. One
 * longer run among many short ones (a runner descheduled in mid-run) does
 * not end a hold; a second does.
 *
 * The pool's microsecond clock is the test's: frozen, every run takes no
 * time; a handler that moves it by more than HOLD_RUN_US is a long run.
 * Handlers that must see another runner act wait for it on a gate, so
 * nothing sleeps to let something happen, and a pool that does not do
 * what is asserted fails a bounded wait instead of hanging. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "base/clock.h"
#include "support/gate.h"
#include "support/helpers.h"
#include "support/wrap_backend.h"
#include "worker/claim.h"
#include "worker/pool_state.h"

#define WARM 16 /* short runs before the tasks under test: enough to hold */
#define HELD 8  /* tasks of the claim under test */

static _Atomic int64_t fake_us;
static int64_t fake_clock(void) { return atomic_load(&fake_us); }

static th_gate_t warm_done, first_started, newcomer_ran, done;
static atomic_int runs;             /* handlers of the tasks under test started */
static atomic_int runs_at_newcomer; /* of those, how many had started when the newcomer ran;
                                     * -1: a run waited in vain */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t threads[HELD], newcomer_thread;
static int nthreads; /* distinct threads that ran "heavy" after its first run */
static pthread_t heavy_threads[HELD];
static th_gate_t two_threads;

static int quick(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  th_gate_add(&warm_done, 1);
  return OMNIQ_OK;
}

/* The first run blocks until the newcomer has run; every run notes its
 * thread. */
static int held(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  int seq = atomic_fetch_add(&runs, 1);
  threads[seq] = pthread_self();
  if (seq == 0) {
    th_gate_add(&first_started, 1);
    if (!th_gate_wait(&newcomer_ran, 1, TH_WAIT_MS)) atomic_store(&runs_at_newcomer, -1);
  }
  th_gate_add(&done, 1);
  return OMNIQ_OK;
}

static int newcomer(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  newcomer_thread = pthread_self();
  atomic_store(&runs_at_newcomer, atomic_load(&runs));
  th_gate_add(&newcomer_ran, 1);
  th_gate_add(&done, 1);
  return OMNIQ_OK;
}

/* Notes this thread among those that ran, and waits until runs on two
 * threads have started. */
static void wait_for_two_threads(void) {
  pthread_mutex_lock(&seen_lock);
  int known = 0;
  for (int i = 0; i < nthreads; i++) known |= pthread_equal(heavy_threads[i], pthread_self());
  if (!known && nthreads < HELD) {
    heavy_threads[nthreads++] = pthread_self();
    if (nthreads == 2) th_gate_add(&two_threads, 1);
  }
  pthread_mutex_unlock(&seen_lock);
  th_gate_wait(&two_threads, 1, TH_WAIT_MS);
}

/* A long run (the pool's clock moves past HOLD_RUN_US). After the first
 * two, each waits until runs on two threads have started: a claim still
 * held by one runner never gets there. */
static int heavy(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  atomic_fetch_add(&fake_us, HOLD_RUN_US + 1);
  if (atomic_fetch_add(&runs, 1) > 1) wait_for_two_threads();
  th_gate_add(&done, 1);
  return OMNIQ_OK;
}

/* The first run turns out long (the pool's clock moves past HOLD_RUN_US,
 * and on to the keeper's next look at held runs, which the move wakes)
 * and does not return until another task of its claim has run. */
static th_gate_t other_ran;
static int stall(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  if (atomic_fetch_add(&runs, 1) == 0) {
    atomic_fetch_add(&fake_us, HOLD_LOOK_MS * 1000 + HOLD_RUN_US + 1);
    omniq__pool_clock_moved();
    if (!th_gate_wait(&other_ran, 1, TH_WAIT_MS)) atomic_store(&runs_at_newcomer, -1);
  } else {
    th_gate_add(&other_ran, 1);
  }
  th_gate_add(&done, 1);
  return OMNIQ_OK;
}

/* The first run is long (the pool's clock moves past HOLD_RUN_US); the
 * second notes how many runners hold while it runs. */
static omniq_worker_t *under_test;
static atomic_int holders_at_second;
static int blip(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  int seq = atomic_fetch_add(&runs, 1);
  if (seq == 0) atomic_fetch_add(&fake_us, HOLD_RUN_US + 1);
  if (seq == 1) {
    pthread_mutex_lock(&under_test->lock);
    atomic_store(&holders_at_second, under_test->nholders);
    pthread_mutex_unlock(&under_test->lock);
  }
  th_gate_add(&done, 1);
  return OMNIQ_OK;
}

/* The held claim's last two runs are long, so its hold ends with nothing
 * left to share and runs no longer short; every task after the claim
 * then waits until runs on two threads have started. */
static atomic_int claim_size;
static int tail(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  int seq = atomic_fetch_add(&runs, 1);
  if (seq == 0) {
    pthread_mutex_lock(&under_test->lock);
    atomic_store(&claim_size, under_test->nheld + 1);
    pthread_mutex_unlock(&under_test->lock);
  }
  int size = atomic_load(&claim_size);
  if (seq >= size - 2 && seq < size) atomic_fetch_add(&fake_us, HOLD_RUN_US + 1);
  if (seq >= size) wait_for_two_threads();
  th_gate_add(&done, 1);
  return OMNIQ_OK;
}

/* A short run that does not return until the test lets it: its runner is
 * busy meanwhile. */
static th_gate_t first_go;
static int first(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  th_gate_add(&first_started, 1);
  if (!th_gate_wait(&first_go, 1, TH_WAIT_MS)) atomic_store(&runs_at_newcomer, -1);
  return OMNIQ_OK;
}

/* The "watched" backend: SQLite, with the pool's claims seen. Once the
 * test arms it, a claim made by a leader (not riding on a report) that
 * begins after that and finds nothing opens `empty_claim`. */
static atomic_int watch_armed;
static _Thread_local int watching; /* this thread's claim began armed */
static th_gate_t empty_claim;

static int watch_before(th_wrap_op_t op, const omniq_claim_req_t *req, char *err,
                        size_t errlen) {
  (void)req, (void)err, (void)errlen;
  watching = op == TH_WRAP_CLAIM && atomic_load(&watch_armed);
  return OMNIQ_OK;
}

static void watch_after(th_wrap_op_t op, int rc, omniq_task_t *const *tasks, size_t n) {
  (void)tasks;
  if (op == TH_WRAP_CLAIM && watching && rc == OMNIQ_OK && n == 0) th_gate_add(&empty_claim, 1);
  watching = 0;
}

static int group_setup(void **state) {
  (void)state;
  th_wrap_set_hooks(&(th_wrap_hooks_t){.before = watch_before, .after = watch_after});
  return th_wrap_register("watched", "sqlite", 0) == OMNIQ_OK ? 0 : -1;
}

static const th_handler_t handlers[] = {{"blip", blip},
                                        {"first", first},
                                        {"tail", tail},
                                        {"quick", quick},
                                        {"held", held},
                                        {"newcomer", newcomer},
                                        {"heavy", heavy},
                                        {"stall", stall}};

static int setup(void **state) {
  atomic_store(&fake_us, 1000000);
  atomic_store(&runs, 0);
  atomic_store(&runs_at_newcomer, 0);
  atomic_store(&holders_at_second, -1);
  nthreads = 0;
  th_gate_init(&warm_done);
  th_gate_init(&first_started);
  th_gate_init(&newcomer_ran);
  th_gate_init(&done);
  th_gate_init(&two_threads);
  th_gate_init(&other_ran);
  th_gate_init(&first_go);
  th_gate_init(&empty_claim);
  atomic_store(&watch_armed, 0);
  omniq__set_pool_clock_us(fake_clock);
  return th_store_setup_handlers(state, handlers, sizeof handlers / sizeof handlers[0]);
}

static int teardown(void **state) {
  omniq__set_pool_clock_us(NULL);
  return th_store_teardown(state);
}

static void enqueue_many(omniq_t *oq, const char *func, size_t n) {
  omniq_enqueue_item_t items[HELD > WARM ? HELD : WARM];
  for (size_t i = 0; i < n; i++) items[i] = (omniq_enqueue_item_t){.func = func, .args_json = "[]"};
  th_ok(oq, omniq_enqueue_many(oq, items, n, NULL));
}

/* A pool of n whose runs have been short: the claim under test is held
 * by whichever runner makes it. poll_ms: its poll, 0 for the default. */
static omniq_worker_t *warm_pool_of(omniq_t *oq, int n, int64_t poll_ms) {
  omniq_worker_opts_t o;
  omniq_worker_t *w = NULL;
  omniq_worker_opts_init(&o);
  o.concurrency = n;
  if (poll_ms > 0) o.poll_interval_ms = poll_ms;
  th_ok(oq, omniq_worker_start(oq, &o, &w));
  enqueue_many(oq, "quick", WARM);
  assert_true(th_gate_wait(&warm_done, WARM, TH_WAIT_MS));
  return w;
}

static omniq_worker_t *warm_pool(omniq_t *oq) { return warm_pool_of(oq, 2, 0); }

static void test_short_runs_are_held_and_new_work_starts_beside_the_holder(void **state) {
  th_store_t *st = *state;
  omniq_worker_t *w = warm_pool(st->oq);
  enqueue_many(st->oq, "held", HELD);
  /* The holder is in the first run; the other runner is idle. */
  assert_true(th_gate_wait(&first_started, 1, TH_WAIT_MS));
  char id[OMNIQ_ID_SIZE];
  th_ok(st->oq, omniq_enqueue(st->oq, "newcomer", "[]", NULL, NULL, id));
  assert_true(th_gate_wait(&done, HELD + 1, TH_WAIT_MS));
  th_ok(st->oq, omniq_worker_stop(w));
  /* The newcomer started while the holder's first run waited for it, and
   * no other runner had taken a task of the held claim meanwhile. */
  assert_int_equal(atomic_load(&runs_at_newcomer), 1);
  assert_false(pthread_equal(newcomer_thread, threads[0]));
  for (int i = 1; i < HELD; i++) assert_true(pthread_equal(threads[i], threads[0]));
}

/* A warm pool of two runs one claim of HELD tasks of func, then stops. */
static void run_claim(th_store_t *st, const char *func) {
  omniq_worker_t *w = warm_pool(st->oq);
  enqueue_many(st->oq, func, HELD);
  assert_true(th_gate_wait(&done, HELD, TH_WAIT_MS));
  th_ok(st->oq, omniq_worker_stop(w));
}

static void test_runs_over_the_threshold_are_shared_between_runners(void **state) {
  run_claim(*state, "heavy");
  /* After two long runs, both runners ran the rest of the claim. */
  assert_int_equal(th_gate_get(&two_threads), 1);
}

/* After many short runs, one long run is forgiven once: the count falls
 * to what still holds, and a second long run before the credit is back
 * ends holding. */
static void test_the_count_of_short_runs_forgives_one_long_run(void **state) {
  (void)state;
  int count = 0;
  for (int i = 0; i < HOLD_CREDIT + 3; i++) count = omniq__hold_count(count, HOLD_RUN_US);
  assert_int_equal(count, HOLD_CREDIT);
  count = omniq__hold_count(count, HOLD_RUN_US + 1);
  assert_int_equal(count, HOLD_AFTER); /* still holds */
  count = omniq__hold_count(count, 0);
  assert_int_equal(count, HOLD_AFTER + 1);
  assert_int_equal(omniq__hold_count(count, HOLD_RUN_US + 1), 0); /* the second: no more */
  assert_int_equal(omniq__hold_count(HOLD_AFTER - 1, HOLD_RUN_US + 1), 0);
}

/* A pool of one (no look at held runs: no one to share with) holds its
 * claim through one long run: while the next runs, its runner still
 * holds. */
static void test_one_long_run_among_short_ones_does_not_end_the_hold(void **state) {
  th_store_t *st = *state;
  omniq_worker_t *w = warm_pool_of(st->oq, 1, 0);
  under_test = w;
  enqueue_many(st->oq, "blip", HELD);
  assert_true(th_gate_wait(&done, HELD, TH_WAIT_MS));
  th_ok(st->oq, omniq_worker_stop(w));
  assert_int_equal(atomic_load(&holders_at_second), 1);
}

static void test_a_held_run_that_turns_out_long_shares_what_its_runner_holds(void **state) {
  run_claim(*state, "stall");
  /* The other runner ran the held tasks while the long run went on. */
  assert_int_equal(atomic_load(&runs_at_newcomer), 0);
  assert_int_equal(th_gate_get(&other_ran), HELD - 1);
}

/* A hold that ends once runs turned long, with tasks still due that its
 * claim left (it took what the claim-ahead allowance let it): the idle
 * runner, which waited for new work while the hold lasted, claims them
 * at once beside the one that held, not at its next poll (a minute here,
 * longer than the bounded waits). */
static void test_the_idle_runner_claims_again_once_holding_is_over(void **state) {
  th_store_t *st = *state;
  omniq_worker_t *w = warm_pool_of(st->oq, 2, 60000);
  under_test = w;
  enum { N = AHEAD_MAX + 8 }; /* more than one claim takes */
  omniq_enqueue_item_t items[N];
  for (size_t i = 0; i < N; i++)
    items[i] = (omniq_enqueue_item_t){.func = "tail", .args_json = "[]"};
  th_ok(st->oq, omniq_enqueue_many(st->oq, items, N, NULL));
  assert_true(th_gate_wait(&done, N, TH_WAIT_MS));
  th_ok(st->oq, omniq_worker_stop(w));
  assert_int_equal(th_gate_get(&two_threads), 1);
  assert_true(atomic_load(&claim_size) < N);
}

/* The leader sleeps its ordinary poll (a minute here, longer than the
 * bounded waits), having claimed nothing while no one held; the other
 * runner's report then rides a claim that it holds, of tasks that became
 * due by time (no enqueue moves the wake-up), and the first of them turns
 * out long. The keeper's look shares the rest, and the leader must run
 * them now, not at its poll. */
static void test_tasks_shared_while_the_leader_sleeps_its_poll_start_at_once(void **state) {
  th_store_t *st = *state;
  omniq_worker_opts_t o;
  omniq_worker_t *w = NULL;
  omniq_worker_opts_init(&o);
  o.concurrency = 2;
  o.poll_interval_ms = 60000;
  th_ok(st->oq, omniq_worker_start(st->oq, &o, &w));
  /* Short runs, one fewer than holding needs: no claim is held yet, and
   * the run of "first" below makes runs short enough to hold. */
  enqueue_many(st->oq, "quick", HOLD_AFTER - 1);
  assert_true(th_gate_wait(&warm_done, HOLD_AFTER - 1, TH_WAIT_MS));
  /* Due in a second of store time: no runner can claim them before the
   * test moves that clock. */
  enum { LATER = 3 };
  omniq_enqueue_opts_t later;
  omniq_enqueue_opts_init(&later);
  later.delay_ms = 1000;
  omniq_enqueue_item_t items[LATER];
  for (size_t i = 0; i < LATER; i++)
    items[i] = (omniq_enqueue_item_t){.func = "stall", .args_json = "[]", .opts = &later};
  th_ok(st->oq, omniq_enqueue_many(st->oq, items, LATER, NULL));
  char id[OMNIQ_ID_SIZE];
  th_ok(st->oq, omniq_enqueue(st->oq, "first", "[]", NULL, NULL, id));
  assert_true(th_gate_wait(&first_started, 1, TH_WAIT_MS));
  /* One runner is busy in "first"; the other leads. Armed before a
   * wake-up that makes it claim again (a task due in an hour), so a claim
   * that finds nothing is seen whatever the leader was doing: then no one
   * holds, and it sleeps its poll. */
  atomic_store(&watch_armed, 1);
  omniq_enqueue_opts_t hour;
  omniq_enqueue_opts_init(&hour);
  hour.delay_ms = 3600 * 1000;
  th_ok(st->oq, omniq_enqueue(st->oq, "quick", "[]", NULL, &hour, id));
  assert_true(th_gate_wait(&empty_claim, 1, TH_WAIT_MS));
  th_clock_advance(&st->clock, 1000); /* the LATER tasks are due: no wake-up moves */
  th_gate_add(&first_go, 1);
  /* "first"'s report rides a claim of LATER tasks (as many as its slots
   * leave room for), held; the first stalls, and waits for another to
   * run. */
  assert_true(th_gate_wait(&done, LATER, TH_WAIT_MS));
  th_ok(st->oq, omniq_worker_stop(w));
  assert_int_equal(atomic_load(&runs_at_newcomer), 0);
  assert_int_equal(th_gate_get(&other_ran), LATER - 1);
}

static int setup_watched(void **state) {
  *state = (void *)"watched";
  return setup(state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_short_runs_are_held_and_new_work_starts_beside_the_holder, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runs_over_the_threshold_are_shared_between_runners,
                                      setup, teardown),
      cmocka_unit_test(test_the_count_of_short_runs_forgives_one_long_run),
      cmocka_unit_test_setup_teardown(test_one_long_run_among_short_ones_does_not_end_the_hold,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_the_idle_runner_claims_again_once_holding_is_over,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_held_run_that_turns_out_long_shares_what_its_runner_holds, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_tasks_shared_while_the_leader_sleeps_its_poll_start_at_once, setup_watched,
          teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
