/* SPDX-License-Identifier: MIT */
/* Claiming ahead and batched reports (worker/claim.c, worker/batch.c) on
 * a backend with storage ABI 6's finish_many and release: SQLite by
 * default, or the one named as the program's argument (ctest runs it
 * again as test_claim_ahead_postgres, on the PostgreSQL fixture). With
 * SQLite it also runs the tests of how the pool sizes and rides its
 * claims, through a wrapper that sees every claim and report.
 *
 * A pool whose runs are short claims more tasks than it has free slots,
 * and holds them claimed (RUNNING in the store) until a runner takes them;
 * one whose runs are long claims only its free slots. What a handler sees
 * in the store while it runs tells which: a task RUNNING there whose
 * handler has not started is held ahead, and with one slot and no
 * claiming ahead there is none. Counting every RUNNING task would not
 * tell: a task whose handler has returned stays RUNNING until its outcome
 * commits, and that commit may still be under way while the slot runs its
 * next task: the keeper commits a batch whose runner came late for it,
 * and the runner claims on its own meanwhile (forced by
 * test_a_finished_run_may_stay_running_while_its_slot_runs_the_next).
 * "Short" and "long" are measured on the store's clock, which the
 * handlers move by hand.
 *
 * Handlers that must act while others wait do it themselves (a cancel, a
 * wait for the stop's give-back, seen through the log), so nothing sleeps
 * to let something happen. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "support/crash.h"
#include "support/gate.h"
#include "support/helpers.h"
#include "support/wrap_backend.h"

#define QUICK 3 /* runs before the task under test: enough to claim ahead */

static const char *backend = "sqlite"; /* the program's argument */
static th_store_t *cur; /* the running test's store, for the handlers */
static atomic_int max_held, victim_runs, victim_seen_running;
static char victim_id[2][OMNIQ_ID_SIZE];
static th_gate_t started, released;

/* The tasks whose handler has started, while `measuring` (the tests that
 * look for tasks held ahead). */
#define MEASURED_MAX 64
static atomic_int measuring;
static pthread_mutex_t started_lock = PTHREAD_MUTEX_INITIALIZER;
static char started_ids[MEASURED_MAX][OMNIQ_ID_SIZE];
static int nstarted;

static void note_max(atomic_int *max, int n) {
  for (int m = atomic_load(max); n > m;)
    if (atomic_compare_exchange_weak(max, &m, n)) break;
}

static int has_started(const char *id) {
  int found = 0;
  pthread_mutex_lock(&started_lock);
  for (int i = 0; i < nstarted && !found; i++) found = strcmp(started_ids[i], id) == 0;
  pthread_mutex_unlock(&started_lock);
  return found;
}

static void note_started(omniq_job_t *job) {
  pthread_mutex_lock(&started_lock);
  if (nstarted == MEASURED_MAX) fail_msg("more than %d tasks measured", MEASURED_MAX);
  snprintf(started_ids[nstarted++], OMNIQ_ID_SIZE, "%s", omniq_job_id(job));
  pthread_mutex_unlock(&started_lock);
}

/* Notes how many tasks are RUNNING in the store with no handler started:
 * held ahead. */
static void note_held_now(void) {
  omniq_list_opts_t lo;
  omniq_task_list_t *l = NULL;
  omniq_list_opts_init(&lo);
  lo.statuses = OMNIQ_STATUS_BIT(OMNIQ_RUNNING);
  lo.limit = OMNIQ_LIST_MAX_LIMIT;
  th_ok(cur->oq, omniq_list_tasks(cur->oq, &lo, &l));
  int held = 0;
  for (size_t i = 0; i < omniq_task_list_count(l); i++)
    held += !has_started(omniq_task_id(omniq_task_list_at(l, i)));
  omniq_task_list_free(l);
  note_max(&max_held, held);
}

/* Notes the job as started, then the tasks held ahead. */
static void note_held(omniq_job_t *job) {
  if (!atomic_load(&measuring)) return;
  note_started(job);
  note_held_now();
}

static int quick(omniq_job_t *job, void *ud) {
  (void)ud;
  note_held(job);
  return OMNIQ_OK;
}

/* A run that takes a second of store time: long. */
static int slow(omniq_job_t *job, void *ud) {
  (void)ud;
  note_held(job);
  th_clock_advance(&cur->clock, 1000);
  return OMNIQ_OK;
}

static int victim(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  atomic_fetch_add(&victim_runs, 1);
  return OMNIQ_OK;
}

static int task_status(const char *id, int *attempts) {
  omniq_task_t *t = NULL;
  th_ok(cur->oq, omniq_get_task(cur->oq, id, &t));
  int status = omniq_task_status(t);
  if (attempts != NULL) *attempts = omniq_task_attempts(t);
  omniq_task_free(t);
  return status;
}

/* Sees the victim claimed (held ahead, not run) and cancels it. */
static int canceller(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  if (task_status(victim_id[0], NULL) == OMNIQ_RUNNING) atomic_store(&victim_seen_running, 1);
  th_ok(cur->oq, omniq_cancel(cur->oq, victim_id[0]));
  return OMNIQ_OK;
}

/* Sees the victims held ahead, says it started, and returns once the stop
 * has given both back. */
static int stopper(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  int seen = 0;
  for (int i = 0; i < 2; i++) seen += task_status(victim_id[i], NULL) == OMNIQ_RUNNING;
  atomic_store(&victim_seen_running, seen);
  th_gate_add(&started, 1);
  if (!th_gate_wait(&released, 2, TH_WAIT_MS)) fail_msg("the stop gave nothing back");
  return OMNIQ_OK;
}

/* A long run (five seconds of store time) while the victim waits claimed. */
static int advancer(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  if (task_status(victim_id[0], NULL) == OMNIQ_RUNNING) atomic_store(&victim_seen_running, 1);
  th_clock_advance(&cur->clock, 5000);
  return OMNIQ_OK;
}

static _Atomic int64_t deadline_left; /* the victim's deadline minus the clock at its start */

static int timed(omniq_job_t *job, void *ud) {
  (void)ud;
  atomic_store(&deadline_left, omniq_job_deadline(job) - th_clock_now(&cur->clock));
  return omniq_job_cancelled(job) ? OMNIQ_EHANDLER : OMNIQ_OK;
}

static void count_releases(void *ud, int level, const char *line) {
  (void)ud, (void)level;
  if (strstr(line, "task.released") != NULL) th_gate_add(&released, 1);
}

/* The "counting" backend: SQLite, with every claim and report seen on
 * the way. It records the most tasks any one claim asked for and, while
 * `hold_ride` is set, holds the first report that carries a claim until
 * the next report arrives, noting whether that one carried a claim too.
 * A first report without a claim spoils the try (drain_riding fails). */
static atomic_long most_asked;
static atomic_int hold_ride, hold_second, second_had_claim, spoiled;
static th_gate_t ride_held, second_report, looked;

static void saw_claim(const omniq_claim_req_t *req) {
  long n = (long)req->max;
  for (long m = atomic_load(&most_asked); n > m;)
    if (atomic_compare_exchange_weak(&most_asked, &m, n)) break;
}

static void saw_report(const omniq_claim_req_t *req) {
  int with_claim = req != NULL && req->max > 0;
  if (with_claim) saw_claim(req);
  if (!atomic_load(&hold_ride)) return;
  if (th_gate_get(&ride_held) == 0 && !with_claim) {
    /* The keeper committed the first outcome before its runner rode a
     * claim on it: the pool's clock moved too soon (ride_us). */
    atomic_store(&hold_ride, 0);
    atomic_store(&spoiled, 1);
    th_gate_add(&ride_held, 1); /* the second of the pair goes on */
    return;
  }
  if (th_gate_get(&ride_held) == 0) {
    th_gate_add(&ride_held, 1);
    if (!th_gate_wait(&second_report, 1, TH_WAIT_MS)) atomic_store(&second_had_claim, -1);
    atomic_store(&hold_ride, 0);
    return;
  }
  if (th_gate_get(&ride_held) > 0 && th_gate_get(&second_report) == 0) {
    atomic_store(&second_had_claim, with_claim);
    th_gate_add(&second_report, 1);
    /* While `hold_second`: this commit waits until both looks are done. */
    if (atomic_load(&hold_second) && !th_gate_wait(&looked, 2, TH_WAIT_MS))
      atomic_store(&second_had_claim, -1);
  }
}

static int counting_before(th_wrap_op_t op, const omniq_claim_req_t *req, char *err,
                           size_t errlen) {
  (void)err, (void)errlen;
  if (op == TH_WRAP_CLAIM) saw_claim(req);
  if (op == TH_WRAP_FINISH_CLAIM || op == TH_WRAP_FINISH_MANY) saw_report(req);
  return OMNIQ_OK;
}

static int group_setup(void **state) {
  (void)state;
  th_wrap_set_hooks(&(th_wrap_hooks_t){.before = counting_before});
  return th_wrap_register("counting", "sqlite", 0) == OMNIQ_OK ? 0 : -1;
}

/* Two runs that end one after the other: the first returns once both have
 * started; the second once the first's report (a claim riding on it) is
 * held in the store. */
static th_gate_t pair_in;
static atomic_int pair_seen;

/* The ride scenarios' pool clock: frozen, until the second of the pair
 * returns; from then on it reads the batch's delay (5 ms, worker/batch.c)
 * later in every thread but that run's own. So that run's outcome joins
 * the batch with a due time the keeper, woken by the join, finds already
 * reached: the keeper commits it at once, and only then, as it would
 * 5 ms after the join by real time. */
#define RIDE_BATCH_DELAY_US 5000
static atomic_int second_returned;
static pthread_t second_thread;

static int64_t ride_us(void) {
  if (atomic_load(&second_returned) && !pthread_equal(pthread_self(), second_thread))
    return 1000000 + RIDE_BATCH_DELAY_US;
  return 1000000;
}

static int pair(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  int second = atomic_fetch_add(&pair_seen, 1) == 1;
  th_gate_add(&pair_in, 1);
  if (!th_gate_wait(&pair_in, 2, TH_WAIT_MS)) return OMNIQ_EHANDLER;
  if (second && !th_gate_wait(&ride_held, 1, TH_WAIT_MS)) return OMNIQ_EHANDLER;
  if (second) {
    second_thread = pthread_self(); /* published by the store below */
    atomic_store(&second_returned, 1);
  }
  return OMNIQ_OK;
}

/* pair, as a long run (a second of store time): no claiming ahead after
 * it. */
static int long_pair(omniq_job_t *job, void *ud) {
  note_started(job);
  th_clock_advance(&cur->clock, 1000);
  return pair(job, ud);
}

/* Runs once both slots run a look, notes what the store holds RUNNING
 * then, and counts itself done. */
static th_gate_t look_in;
static atomic_int max_running;

static int look(omniq_job_t *job, void *ud) {
  (void)ud;
  note_started(job);
  th_gate_add(&look_in, 1);
  if (!th_gate_wait(&look_in, 2, TH_WAIT_MS)) return OMNIQ_EHANDLER;
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(cur->oq, omniq_count_by_status(cur->oq, counts));
  note_max(&max_running, (int)counts[OMNIQ_RUNNING]);
  note_held_now();
  th_gate_add(&looked, 1);
  return OMNIQ_OK;
}

/* The ride scenario's gates and flags, fresh. */
static void ride_state_init(void) {
  atomic_store(&hold_ride, 0);
  atomic_store(&hold_second, 0);
  atomic_store(&second_had_claim, 0);
  atomic_store(&spoiled, 0);
  atomic_store(&pair_seen, 0);
  atomic_store(&second_returned, 0);
  atomic_store(&max_running, 0);
  th_gate_init(&ride_held);
  th_gate_init(&second_report);
  th_gate_init(&pair_in);
  th_gate_init(&looked);
  th_gate_init(&look_in);
}

static void ride_state_destroy(void) {
  th_gate_destroy(&ride_held);
  th_gate_destroy(&second_report);
  th_gate_destroy(&pair_in);
  th_gate_destroy(&looked);
  th_gate_destroy(&look_in);
}

static int setup_on(void **state, const char *name) {
  *state = (void *)name;
  if (th_store_setup(state) != 0) return -1;
  cur = *state;
  cur->settings.log_level = OMNIQ_LOG_DEBUG;
  cur->settings.log_fn = count_releases;
  omniq_close(cur->oq);
  if (omniq_open(&cur->oq, &cur->settings) != OMNIQ_OK) return -1;
  atomic_store(&max_held, 0);
  atomic_store(&measuring, 0);
  nstarted = 0;
  atomic_store(&victim_runs, 0);
  atomic_store(&victim_seen_running, 0);
  atomic_store(&most_asked, 0);
  th_gate_init(&started);
  th_gate_init(&released);
  ride_state_init();
  const char *names[] = {"quick", "slow", "victim", "canceller", "stopper", "advancer",
                         "timed", "pair", "long_pair", "look"};
  omniq_handler_fn fns[] = {quick, slow,  victim, canceller, stopper, advancer,
                            timed, pair,  long_pair, look};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    th_ok(cur->oq, omniq_register(cur->oq, names[i], fns[i], NULL));
  return 0;
}

static int setup(void **state) { return setup_on(state, backend); }
static int setup_counting(void **state) { return setup_on(state, "counting"); }

static int64_t frozen_us(void);
static int teardown(void **state);

/* The ride scenarios wait for the keeper to commit an outcome the batch
 * delay after it joined the batch: ride_us moves the pool's clock on for
 * it. */
static int setup_counting_ride(void **state) {
  omniq__set_pool_clock_us(ride_us);
  return setup_on(state, "counting");
}

static int teardown_ride(void **state) {
  int rc = teardown(state);
  omniq__set_pool_clock_us(frozen_us);
  return rc;
}

static int teardown(void **state) {
  th_gate_destroy(&started);
  th_gate_destroy(&released);
  ride_state_destroy();
  return th_store_teardown(state);
}

static void enqueue(const char *func, int n, char *id) {
  for (int i = 0; i < n; i++) th_ok(cur->oq, omniq_enqueue(cur->oq, func, NULL, NULL, NULL, id));
}

static void drain(int concurrency, long want) {
  omniq_worker_opts_t o;
  long done = 0;
  omniq_worker_opts_init(&o);
  o.concurrency = concurrency;
  th_ok(cur->oq, omniq_worker_process(cur->oq, &o, 0, &done));
  assert_int_equal(done, want);
}

static void test_claim_ahead_takes_more_than_the_free_slots_when_runs_are_short(void **state) {
  (void)state;
  atomic_store(&measuring, 1);
  enqueue("quick", 40, NULL);
  drain(1, 40);
  /* One slot: only claiming ahead leaves a task RUNNING that no handler
   * has started while a handler runs. */
  assert_true(atomic_load(&max_held) > 0);
}

/* What one claim takes fits one batch of reports (64 outcomes): a claim
 * of more would end in a full batch committed alone and a second commit
 * for the rest. */
static void test_a_claim_never_asks_for_more_than_a_batch_of_reports(void **state) {
  (void)state;
  enqueue("quick", 300, NULL);
  drain(1, 300);
  assert_int_equal(atomic_load(&most_asked), 64); /* the allowance filled up, and no more */
}

/* Drains two `pair_func` runs and then `looks` looks on two slots, with
 * the first report that carries a claim held (hold_ride) and, with looks,
 * the report after it held until both looks are done (hold_second).
 * Returns the tasks run. With the pool's clock standing still until the
 * second run of the pair returns (ride_us), the keeper never commits the
 * first run's outcome before its runner rides a claim on it: the try is
 * never spoiled (saw_report). */
static long drain_riding(const char *pair_func, int looks) {
  nstarted = 0;
  enqueue(pair_func, 2, NULL);
  enqueue("look", looks, NULL);
  atomic_store(&hold_second, looks > 0);
  atomic_store(&hold_ride, 1);
  drain(2, 2 + looks);
  assert_int_equal(atomic_load(&spoiled), 0);
  return 2 + looks;
}

/* A runner whose run ends while another runner's report is committing with
 * a claim that counts its slot waits for that claim's tasks: its outcome
 * stays in the batch (the keeper commits it within the batch delay) rather
 * than committing alone with a claim of its own. */
static void test_a_runner_waits_for_a_claim_under_way_instead_of_claiming_alone(void **state) {
  (void)state;
  drain_riding("pair", 0);
  assert_int_equal(th_gate_get(&ride_held), 1);
  assert_int_equal(th_gate_get(&second_report), 1);
  assert_int_equal(atomic_load(&second_had_claim), 0);
}

/* Why the tests of claiming ahead look for tasks held ahead, not count every
 * RUNNING task: a run's outcome may still be committing (RUNNING in the
 * store) while its slot runs the next task. Here a runner (B) ends its
 * long run while the other's report commits with a claim, so B's outcome
 * waits in the batch and the keeper commits it; that commit is held while
 * both slots run a look (one claimed by the ride, one by a runner leading
 * alone). Three tasks are RUNNING with two slots, none held ahead: legal,
 * since no more handlers run than there are slots, and the outcome counts as
 * reported once it commits (a crash before leaves the task to lease
 * recovery, as any report not yet made). */
static void test_a_finished_run_may_stay_running_while_its_slot_runs_the_next(void **state) {
  (void)state;
  atomic_store(&measuring, 1);
  long total = drain_riding("long_pair", 2);
  assert_int_equal(th_gate_get(&second_report), 1);
  assert_int_equal(atomic_load(&second_had_claim), 0); /* the keeper's commit, B's outcome */
  assert_int_equal(th_gate_get(&looked), 2);
  assert_int_equal(atomic_load(&max_running), 3);
  assert_int_equal(atomic_load(&max_held), 0);
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(cur->oq, omniq_count_by_status(cur->oq, counts));
  assert_int_equal(counts[OMNIQ_SUCCESS], total);
}

static void test_claim_ahead_stops_when_runs_are_long(void **state) {
  (void)state;
  atomic_store(&measuring, 1);
  enqueue("slow", 20, NULL);
  drain(1, 20);
  assert_int_equal(atomic_load(&max_held), 0);
}

static void test_a_cancelled_task_claimed_ahead_never_runs(void **state) {
  (void)state;
  omniq_result_t *r = NULL;
  enqueue("quick", QUICK, NULL);
  enqueue("canceller", 1, NULL);
  enqueue("victim", 1, victim_id[0]);
  drain(1, QUICK + 1);
  assert_int_equal(atomic_load(&victim_seen_running), 1); /* it was held, claimed */
  assert_int_equal(atomic_load(&victim_runs), 0);
  assert_int_equal(task_status(victim_id[0], NULL), OMNIQ_CANCELLED);
  th_ok(cur->oq, omniq_get_result(cur->oq, victim_id[0], 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_CANCELLED);
  omniq_result_free(r);
}

static void test_a_task_claimed_ahead_starts_its_timeout_when_it_starts(void **state) {
  (void)state;
  omniq_enqueue_opts_t eo;
  omniq_result_t *r = NULL;
  enqueue("quick", QUICK, NULL);
  enqueue("advancer", 1, NULL);
  omniq_enqueue_opts_init(&eo);
  eo.timeout_ms = 1000; /* less than the advancer's run */
  th_ok(cur->oq, omniq_enqueue(cur->oq, "timed", NULL, NULL, &eo, victim_id[0]));
  drain(1, QUICK + 2);
  assert_int_equal(atomic_load(&victim_seen_running), 1); /* claimed before the long run */
  assert_int_equal(atomic_load(&deadline_left), 1000);
  th_ok(cur->oq, omniq_get_result(cur->oq, victim_id[0], 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  omniq_result_free(r);
}

typedef struct {
  omniq_worker_t *w;
  int rc;
} stop_t;

static void *stop_main(void *arg) {
  stop_t *s = arg;
  s->rc = omniq_worker_stop(s->w);
  return NULL;
}

static void test_a_stop_gives_back_tasks_claimed_ahead_without_counting_an_attempt(void **state) {
  (void)state;
  omniq_worker_opts_t o;
  stop_t s = {0};
  pthread_t tid;
  int attempts = -1;
  enqueue("quick", QUICK, NULL);
  enqueue("stopper", 1, NULL);
  enqueue("victim", 1, victim_id[0]);
  enqueue("victim", 1, victim_id[1]);
  omniq_worker_opts_init(&o);
  o.concurrency = 1;
  th_ok(cur->oq, omniq_worker_start(cur->oq, &o, &s.w));
  assert_true(th_gate_wait(&started, 1, TH_WAIT_MS));
  assert_int_equal(pthread_create(&tid, NULL, stop_main, &s), 0);
  pthread_join(tid, NULL);
  assert_int_equal(s.rc, OMNIQ_OK);
  assert_int_equal(atomic_load(&victim_seen_running), 2); /* both were held, claimed */
  assert_int_equal(atomic_load(&victim_runs), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(task_status(victim_id[i], &attempts), OMNIQ_PENDING);
    assert_int_equal(attempts, 0);
  }
  /* Run later, each counts the one attempt it made. */
  drain(1, 2);
  for (int i = 0; i < 2; i++) {
    omniq_result_t *r = NULL;
    th_ok(cur->oq, omniq_get_result(cur->oq, victim_id[i], 0, &r));
    assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
    assert_int_equal(omniq_result_attempts(r), 1);
    omniq_result_free(r);
  }
}

/* Fails its first run (retryable), succeeds the next. */
static int flaky(omniq_job_t *job, void *ud) {
  (void)ud;
  if (omniq_job_attempt(job) == 1) {
    omniq_job_fail(job, "Flaky", "first run", 1);
    return OMNIQ_EHANDLER;
  }
  return OMNIQ_OK;
}

static void test_attempts_are_counted_once_per_run_in_batches(void **state) {
  enum { TASKS = 60 };
  (void)state;
  char ids[TASKS][OMNIQ_ID_SIZE];
  omniq_enqueue_opts_t eo;
  omniq_enqueue_opts_init(&eo);
  eo.max_retries = 3;
  th_ok(cur->oq, omniq_register(cur->oq, "flaky", flaky, NULL));
  for (int i = 0; i < TASKS; i++)
    th_ok(cur->oq, omniq_enqueue(cur->oq, i % 2 ? "flaky" : "quick", NULL, NULL, &eo, ids[i]));
  drain(2, TASKS); /* the first runs; the retries are due later */
  th_clock_advance(&cur->clock, 3600 * 1000);
  drain(2, TASKS / 2);
  for (int i = 0; i < TASKS; i++) {
    omniq_result_t *r = NULL;
    th_ok(cur->oq, omniq_get_result(cur->oq, ids[i], 0, &r));
    assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
    assert_int_equal(omniq_result_attempts(r), i % 2 ? 2 : 1);
    omniq_result_free(r);
  }
}

/* Drains in slices of a growing limit, as OmniQ for Python does: each
 * slice runs exactly its limit while tasks are due, so the slices add up
 * to every task. A drain runs what its rides claimed as it ended; it gives
 * nothing back (that is a stop's). */
static void test_drains_with_a_limit_run_exactly_the_limit_while_tasks_are_due(void **state) {
  enum { TASKS = 600 };
  (void)state;
  omniq_worker_opts_t o;
  long total = 0, chunk = 2, done = 0;
  enqueue("quick", TASKS, NULL);
  omniq_worker_opts_init(&o);
  o.concurrency = 2;
  for (;;) {
    th_ok(cur->oq, omniq_worker_process(cur->oq, &o, chunk, &done));
    total += done;
    if (done < chunk) break; /* nothing was due */
    if (chunk < 128) chunk *= 2;
  }
  assert_int_equal(total, TASKS);
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(cur->oq, omniq_count_by_status(cur->oq, counts));
  assert_int_equal(counts[OMNIQ_SUCCESS], TASKS);
  assert_int_equal(counts[OMNIQ_PENDING], 0);
}

/* A pool of 4 on quick tasks claims ahead and batches its reports; every
 * result it logged (after its batch committed) is in the store after a
 * SIGKILL. */
static void test_results_of_committed_batches_survive_a_sigkill(void **state) {
  th_assert_reports_survive_sigkill(*state, 500);
}

/* The pool's microsecond clock, frozen: every run is very short by it, so
 * a claim is held by the runner that makes it (worker/claim.c), and the
 * tests here run against held claims: a cancel, a timeout, a stop's
 * give-back reach tasks a runner holds. */
static int64_t frozen_us(void) { return 1000000; }

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  omniq__set_pool_clock_us(frozen_us);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_claim_ahead_takes_more_than_the_free_slots_when_runs_are_short, setup, teardown),
      cmocka_unit_test_setup_teardown(test_claim_ahead_stops_when_runs_are_long, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_cancelled_task_claimed_ahead_never_runs, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_a_task_claimed_ahead_starts_its_timeout_when_it_starts,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_stop_gives_back_tasks_claimed_ahead_without_counting_an_attempt, setup, teardown),
      cmocka_unit_test_setup_teardown(test_attempts_are_counted_once_per_run_in_batches, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_drains_with_a_limit_run_exactly_the_limit_while_tasks_are_due, setup, teardown),
      cmocka_unit_test_setup_teardown(test_results_of_committed_batches_survive_a_sigkill, setup,
                                      teardown),
  };
  /* How the pool sizes its claims and rides them, seen through SQLite
   * wrapped in the "counting" backend: the pool's logic, run once. */
  const struct CMUnitTest pool_tests[] = {
      cmocka_unit_test_setup_teardown(test_a_claim_never_asks_for_more_than_a_batch_of_reports,
                                      setup_counting, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_runner_waits_for_a_claim_under_way_instead_of_claiming_alone,
          setup_counting_ride, teardown_ride),
      cmocka_unit_test_setup_teardown(
          test_a_finished_run_may_stay_running_while_its_slot_runs_the_next,
          setup_counting_ride, teardown_ride),
  };
  int failed = cmocka_run_group_tests_name(backend, tests, NULL, NULL);
  if (strcmp(backend, "sqlite") == 0)
    failed += cmocka_run_group_tests_name("counting", pool_tests, group_setup, NULL);
  return failed;
}
