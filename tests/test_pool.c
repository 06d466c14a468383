/* SPDX-License-Identifier: MIT */
/* The worker pool in thread isolation: real concurrency and its bound,
 * start and stop, waking, sync and deferred handlers, the job API,
 * omniq_worker_process and omniq_worker_run. Handlers coordinate with the
 * test through gates (tests/support/gate.h); time moves with the manual clock. */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "support/gate.h"
#include "worker/job.h"

typedef th_store_t fx_t;

static void opts(omniq_worker_opts_t *o, int concurrency) {
  omniq_worker_opts_init(o);
  o->concurrency = concurrency;
}

static void enqueue(fx_t *fx, const char *func, const char *args, int max_retries,
                    char id[OMNIQ_ID_SIZE]) {
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.max_retries = max_retries;
  th_ok(fx->oq, omniq_enqueue(fx->oq, func, args, NULL, &o, id));
}

static omniq_result_t *wait_result(fx_t *fx, const char *id) {
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, TH_WAIT_MS / 1000.0, &r));
  return r;
}

static void assert_json_equal(const char *a, const char *b) {
  json_t *ja = json_loads(a, JSON_DECODE_ANY, NULL), *jb = json_loads(b, JSON_DECODE_ANY, NULL);
  if (ja == NULL || jb == NULL || !json_equal(ja, jb)) fail_msg("JSON differs: %s vs %s", a, b);
  json_decref(ja);
  json_decref(jb);
}

static int echo_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, omniq_job_args(job));
}

/* ---- options --------------------------------------------------------------- */

static void test_opts_init_fills_the_documented_defaults(void **state) {
  (void)state;
  omniq_worker_opts_t o;
  omniq_worker_opts_init(&o);
  assert_int_equal(o.concurrency, OMNIQ_DEFAULT_CONCURRENCY);
  assert_int_equal(o.poll_interval_ms, OMNIQ_DEFAULT_POLL_INTERVAL_MS);
  assert_int_equal(o.shutdown_timeout_ms, OMNIQ_DEFAULT_SHUTDOWN_TIMEOUT_MS);
  assert_int_equal(o.isolation, OMNIQ_ISOLATION_THREAD);
  assert_null(o.queues[0]);
}

static void test_bad_worker_opts_are_rejected_with_a_message(void **state) {
  fx_t *fx = *state;
  omniq_worker_opts_t o;
  omniq_worker_t *w = (omniq_worker_t *)1;
  long done = 7;
  opts(&o, 0);
  assert_int_equal(omniq_worker_start(fx->oq, &o, &w), OMNIQ_EINVAL);
  assert_null(w);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "concurrency"));
  opts(&o, 1);
  o.poll_interval_ms = 0;
  assert_int_equal(omniq_worker_process(fx->oq, &o, 0, &done), OMNIQ_EINVAL);
  assert_int_equal(done, 0);
  opts(&o, 1);
  o.shutdown_timeout_ms = -1;
  assert_int_equal(omniq_worker_start(fx->oq, &o, &w), OMNIQ_EINVAL);
  opts(&o, 1);
  o.isolation = 7;
  assert_int_equal(omniq_worker_start(fx->oq, &o, &w), OMNIQ_EINVAL);
  opts(&o, 1);
  o.queues[0] = "";
  assert_int_equal(omniq_worker_start(fx->oq, &o, &w), OMNIQ_EINVAL);
  assert_int_equal(omniq_worker_process(fx->oq, NULL, -1, NULL), OMNIQ_EINVAL);
  assert_int_equal(omniq_worker_start(NULL, NULL, &w), OMNIQ_EINVAL);
  assert_int_equal(omniq_worker_stop(NULL), OMNIQ_OK);
}

/* ---- concurrency ----------------------------------------------------------- */

typedef struct {
  int n;
  atomic_int running, max_running, missed;
  atomic_long calls;
  th_gate_t met, done;
} conc_t;

/* The first n calls wait for each other: they can only all arrive if n
 * handlers run at once. Every call records how many run together. */
static int conc_handler(omniq_job_t *job, void *ud) {
  conc_t *c = ud;
  (void)job;
  int now = atomic_fetch_add(&c->running, 1) + 1;
  int max = atomic_load(&c->max_running);
  while (now > max && !atomic_compare_exchange_weak(&c->max_running, &max, now)) {
  }
  if (atomic_fetch_add(&c->calls, 1) < c->n) {
    th_gate_add(&c->met, 1);
    if (atomic_load(&c->missed) || !th_gate_wait(&c->met, c->n, TH_WAIT_MS))
      atomic_store(&c->missed, 1);
  }
  atomic_fetch_sub(&c->running, 1);
  th_gate_add(&c->done, 1);
  return OMNIQ_OK;
}

static void run_concurrency(fx_t *fx, int n) {
  enum { TASKS = 200 };
  conc_t c = {.n = n};
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  omniq_enqueue_item_t items[TASKS];
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_gate_init(&c.met);
  th_gate_init(&c.done);
  th_ok(fx->oq, omniq_register(fx->oq, "conc", conc_handler, &c));
  for (int i = 0; i < TASKS; i++) items[i] = (omniq_enqueue_item_t){"conc", "[]", NULL, NULL};
  th_ok(fx->oq, omniq_enqueue_many(fx->oq, items, TASKS, NULL));

  opts(&o, n);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  assert_true(th_gate_wait(&c.done, TASKS, 4 * TH_WAIT_MS));
  th_ok(fx->oq, omniq_worker_stop(w));

  assert_int_equal(atomic_load(&c.missed), 0);        /* n ran at once */
  assert_int_equal(atomic_load(&c.max_running), n);   /* and never n + 1 */
  th_ok(fx->oq, omniq_count_by_status(fx->oq, counts));
  assert_int_equal(counts[OMNIQ_SUCCESS], TASKS);
  th_gate_destroy(&c.met);
  th_gate_destroy(&c.done);
}

static void test_concurrency_1_runs_one_at_a_time(void **state) { run_concurrency(*state, 1); }
static void test_concurrency_4_meet_at_a_barrier_and_never_5(void **state) {
  run_concurrency(*state, 4);
}
static void test_concurrency_16_meet_at_a_barrier_and_never_17(void **state) {
  run_concurrency(*state, 16);
}

/* ---- start and stop -------------------------------------------------------- */

typedef struct {
  th_gate_t started, release, finished;
  atomic_long calls;
} block_t;

static void block_init(block_t *b) {
  th_gate_init(&b->started);
  th_gate_init(&b->release);
  th_gate_init(&b->finished);
  atomic_init(&b->calls, 0);
}

static void block_destroy(block_t *b) {
  th_gate_destroy(&b->started);
  th_gate_destroy(&b->release);
  th_gate_destroy(&b->finished);
}

/* The first call blocks until released, then returns "late"; later calls
 * return "second" at once. */
static int block_handler(omniq_job_t *job, void *ud) {
  block_t *b = ud;
  if (atomic_fetch_add(&b->calls, 1) > 0) return omniq_job_return(job, "\"second\"");
  th_gate_add(&b->started, 1);
  th_gate_wait(&b->release, 1, TH_WAIT_MS);
  int rc = omniq_job_return(job, "\"late\"");
  th_gate_add(&b->finished, 1);
  return rc;
}

static void test_start_returns_while_the_pool_runs(void **state) {
  fx_t *fx = *state;
  block_t b;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  char id[OMNIQ_ID_SIZE];
  block_init(&b);
  th_ok(fx->oq, omniq_register(fx->oq, "block", block_handler, &b));
  opts(&o, 2);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  enqueue(fx, "block", NULL, 1, id);
  /* The handler is running, and this thread is free to go on. */
  assert_true(th_gate_wait(&b.started, 1, TH_WAIT_MS));
  assert_int_equal(th_gate_get(&b.finished), 0);
  th_gate_add(&b.release, 1);
  omniq_result_t *r = wait_result(fx, id);
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_json_equal(omniq_result_value(r), "\"late\"");
  omniq_result_free(r);
  th_ok(fx->oq, omniq_worker_stop(w));
  block_destroy(&b);
}

static void test_stop_while_idle_returns_promptly(void **state) {
  fx_t *fx = *state;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  opts(&o, 4);
  o.poll_interval_ms = 3600000; /* an hour: a stop that waited for it would miss the bound */
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  int64_t t0 = th_mono_ms();
  th_ok(fx->oq, omniq_worker_stop(w));
  assert_true(th_mono_ms() - t0 < TH_WAIT_MS); /* not a poll interval */
}

typedef struct {
  omniq_worker_t *w;
  th_gate_t calling;
  int rc;
  long finished_when_stopped;
  block_t *b;
} stopper_t;

static void *stopper_main(void *arg) {
  stopper_t *s = arg;
  th_gate_add(&s->calling, 1);
  s->rc = omniq_worker_stop(s->w);
  s->finished_when_stopped = th_gate_get(&s->b->finished);
  return NULL;
}

static void test_stop_waits_for_in_flight_tasks(void **state) {
  fx_t *fx = *state;
  block_t b;
  stopper_t s = {.b = &b};
  omniq_worker_opts_t o;
  pthread_t t;
  char id[OMNIQ_ID_SIZE];
  block_init(&b);
  th_gate_init(&s.calling);
  th_ok(fx->oq, omniq_register(fx->oq, "block", block_handler, &b));
  opts(&o, 2);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &s.w));
  enqueue(fx, "block", NULL, 1, id);
  assert_true(th_gate_wait(&b.started, 1, TH_WAIT_MS));

  assert_int_equal(pthread_create(&t, NULL, stopper_main, &s), 0);
  assert_true(th_gate_wait(&s.calling, 1, TH_WAIT_MS));
  th_gate_add(&b.release, 1);
  pthread_join(t, NULL);

  assert_int_equal(s.rc, OMNIQ_OK);
  assert_int_equal(s.finished_when_stopped, 1); /* stop returned after the handler */
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r)); /* and after its outcome was stored */
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  omniq_result_free(r);
  th_gate_destroy(&s.calling);
  block_destroy(&b);
}

static void test_stop_past_shutdown_timeout_leaves_the_task_to_its_lease(void **state) {
  fx_t *fx = *state;
  block_t b;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  omniq_task_t *t;
  omniq_result_t *r;
  char id[OMNIQ_ID_SIZE];
  long done = 0;
  block_init(&b);
  th_ok(fx->oq, omniq_register(fx->oq, "block", block_handler, &b));
  opts(&o, 1);
  o.shutdown_timeout_ms = 1; /* real time by design; the handler is stuck however long */
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  enqueue(fx, "block", NULL, 3, id);
  assert_true(th_gate_wait(&b.started, 1, TH_WAIT_MS));

  assert_int_equal(omniq_worker_stop(w), OMNIQ_ETIMEDOUT); /* returns with the handler stuck */
  th_ok(fx->oq, omniq_get_task(fx->oq, id, &t));
  assert_int_equal(omniq_task_status(t), OMNIQ_RUNNING); /* never silently marked done */
  omniq_task_free(t);

  /* Nobody extends the lease any more: once it expires, another worker
   * recovers the task as a lost run and runs it again. */
  th_clock_advance(&fx->clock, fx->settings.lease_ms + 1000);
  th_ok(fx->oq, omniq_worker_process(fx->oq, NULL, 0, &done));
  assert_int_equal(done, 1);
  r = wait_result(fx, id);
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_int_equal(omniq_result_attempts(r), 2);
  assert_json_equal(omniq_result_value(r), "\"second\"");
  omniq_result_free(r);

  /* The stuck handler returns at last; close waits for its thread, and its
   * late outcome changes nothing. */
  th_gate_add(&b.release, 1);
  omniq_close(fx->oq);
  assert_int_equal(th_gate_get(&b.finished), 1);
  th_ok(NULL, omniq_open(&fx->oq, &fx->settings));
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  assert_json_equal(omniq_result_value(r), "\"second\"");
  omniq_result_free(r);
  th_ok(fx->oq, omniq_get_task(fx->oq, id, &t));
  assert_int_equal(omniq_task_status(t), OMNIQ_SUCCESS);
  assert_string_equal(omniq_error_type(omniq_task_last_error(t)), "WorkerLost");
  omniq_task_free(t);
  block_destroy(&b);
}

static void test_close_stops_a_pool_that_was_not_stopped(void **state) {
  fx_t *fx = *state;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  char id[OMNIQ_ID_SIZE];
  th_ok(fx->oq, omniq_register(fx->oq, "echo", echo_handler, NULL));
  opts(&o, 3);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  enqueue(fx, "echo", "[1]", 1, id);
  omniq_result_free(wait_result(fx, id));
  /* teardown's omniq_close stops w, joins its threads and frees it */
}

/* ---- waking ------------------------------------------------------------------ */

static int signal_handler(omniq_job_t *job, void *ud) {
  (void)job;
  th_gate_add(ud, 1);
  return OMNIQ_OK;
}

static void test_enqueue_wakes_an_idle_worker_without_waiting_for_the_poll(void **state) {
  fx_t *fx = *state;
  th_gate_t ran;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  th_gate_init(&ran);
  th_ok(fx->oq, omniq_register(fx->oq, "signal", signal_handler, &ran));
  opts(&o, 2);
  o.poll_interval_ms = 3600000;
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  /* Each round finds the pool idle again, its leader asleep on an hour's
   * poll: only the enqueue's wake-up can start the task within the bound. */
  for (int i = 1; i <= 5; i++) {
    enqueue(fx, "signal", NULL, 1, NULL);
    if (!th_gate_wait(&ran, i, TH_WAIT_MS)) fail_msg("task %d waited for the poll", i);
  }
  th_ok(fx->oq, omniq_worker_stop(w));
  th_gate_destroy(&ran);
}

/* ---- handlers and the job API ------------------------------------------------ */

typedef struct {
  char id[OMNIQ_ID_SIZE];
  char func[32];
  char args[32];
  char kwargs[32];
  int attempt;
  int64_t deadline;
  int cancelled;
} seen_t;

static int record_handler(omniq_job_t *job, void *ud) {
  seen_t *s = ud;
  snprintf(s->id, sizeof s->id, "%s", omniq_job_id(job));
  snprintf(s->func, sizeof s->func, "%s", omniq_job_func(job));
  snprintf(s->args, sizeof s->args, "%s", omniq_job_args(job));
  snprintf(s->kwargs, sizeof s->kwargs, "%s", omniq_job_kwargs(job));
  s->attempt = omniq_job_attempt(job);
  s->deadline = omniq_job_deadline(job);
  s->cancelled = omniq_job_cancelled(job);
  return omniq_job_return(job, "{\"sum\": 3}");
}

static void test_sync_handler_sees_its_task_and_its_result_is_stored(void **state) {
  fx_t *fx = *state;
  seen_t s;
  omniq_enqueue_opts_t eo;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  char id[OMNIQ_ID_SIZE];
  memset(&s, 0, sizeof s);
  th_ok(fx->oq, omniq_register(fx->oq, "record", record_handler, &s));
  omniq_enqueue_opts_init(&eo);
  eo.timeout_ms = 5000;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "record", "[1,2]", "{\"k\":1}", &eo, id));
  opts(&o, 2);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  omniq_result_t *r = wait_result(fx, id);
  th_ok(fx->oq, omniq_worker_stop(w));

  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_json_equal(omniq_result_value(r), "{\"sum\": 3}");
  assert_int_equal(omniq_result_attempts(r), 1);
  omniq_result_free(r);
  assert_string_equal(s.id, id);
  assert_string_equal(s.func, "record");
  assert_json_equal(s.args, "[1,2]");
  assert_json_equal(s.kwargs, "{\"k\":1}");
  assert_int_equal(s.attempt, 1);
  assert_int_equal(s.deadline, TH_EPOCH_MS + 5000); /* started_at + timeout, store clock */
  assert_int_equal(s.cancelled, 0);
}

/* An "event loop": a thread that finishes deferred jobs it is handed. */
typedef struct {
  pthread_mutex_t m;
  pthread_cond_t c;
  omniq_job_t *jobs[8];
  int n, quit, fail;
} loop_t;

static void *loop_main(void *arg) {
  loop_t *l = arg;
  pthread_mutex_lock(&l->m);
  for (;;) {
    while (l->n == 0 && !l->quit) pthread_cond_wait(&l->c, &l->m);
    if (l->n == 0) break;
    omniq_job_t *job = l->jobs[--l->n];
    pthread_mutex_unlock(&l->m);
    if (l->fail)
      omniq_job_fail(job, "RemoteError", "the far side said no", 0);
    else
      omniq_job_return(job, "{\"deferred\": true}");
    assert_int_equal(omniq_job_complete(job), OMNIQ_OK);
    pthread_mutex_lock(&l->m);
  }
  pthread_mutex_unlock(&l->m);
  return NULL;
}

static int deferred_handler(omniq_job_t *job, void *ud) {
  loop_t *l = ud;
  pthread_mutex_lock(&l->m);
  l->jobs[l->n++] = job;
  pthread_cond_signal(&l->c);
  pthread_mutex_unlock(&l->m);
  return OMNIQ_DEFERRED;
}

static void run_deferred(fx_t *fx, int fail) {
  loop_t l = {.fail = fail};
  pthread_t t;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  char id[OMNIQ_ID_SIZE];
  pthread_mutex_init(&l.m, NULL);
  pthread_cond_init(&l.c, NULL);
  assert_int_equal(pthread_create(&t, NULL, loop_main, &l), 0);
  th_ok(fx->oq, omniq_register(fx->oq, "deferred", deferred_handler, &l));
  opts(&o, 2);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  enqueue(fx, "deferred", NULL, 3, id);
  omniq_result_t *r = wait_result(fx, id);
  th_ok(fx->oq, omniq_worker_stop(w));
  if (fail) {
    assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
    assert_string_equal(omniq_error_type(omniq_result_error(r)), "RemoteError");
    assert_int_equal(omniq_result_attempts(r), 1); /* not retryable */
  } else {
    assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
    assert_json_equal(omniq_result_value(r), "{\"deferred\": true}");
  }
  omniq_result_free(r);
  pthread_mutex_lock(&l.m);
  l.quit = 1;
  pthread_cond_signal(&l.c);
  pthread_mutex_unlock(&l.m);
  pthread_join(t, NULL);
  pthread_cond_destroy(&l.c);
  pthread_mutex_destroy(&l.m);
}

static void test_deferred_handler_completed_from_another_thread_stores_result(void **state) {
  run_deferred(*state, 0);
}

static void test_deferred_handler_can_fail_from_another_thread(void **state) {
  run_deferred(*state, 1);
}

static int complete_first_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  omniq_job_return(job, "42");
  omniq_job_complete(job); /* the loop may finish before the handler returns */
  return OMNIQ_DEFERRED;
}

static void test_deferred_job_completed_before_its_handler_returns(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  long done;
  th_ok(fx->oq, omniq_register(fx->oq, "early", complete_first_handler, NULL));
  enqueue(fx, "early", NULL, 1, id);
  th_ok(fx->oq, omniq_worker_process(fx->oq, NULL, 0, &done));
  assert_int_equal(done, 1);
  omniq_result_t *r = wait_result(fx, id);
  assert_json_equal(omniq_result_value(r), "42");
  omniq_result_free(r);
}

static int error_code_handler(omniq_job_t *job, void *ud) {
  (void)job;
  (void)ud;
  return OMNIQ_EFAILED;
}

static int fail_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  omniq_job_fail(job, "ValueError", "bad input", 0);
  return OMNIQ_OK; /* omniq_job_fail wins over the return code */
}

static int bad_json_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  assert_int_equal(omniq_job_return(job, "{not json"), OMNIQ_ESERIALIZE);
  return omniq_job_fail(job, "BadResult", "could not encode", 0);
}

static void test_failures_carry_type_message_and_retryable(void **state) {
  fx_t *fx = *state;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE], c[OMNIQ_ID_SIZE];
  long done;
  omniq_result_t *r;
  th_ok(fx->oq, omniq_register(fx->oq, "code", error_code_handler, NULL));
  th_ok(fx->oq, omniq_register(fx->oq, "fail", fail_handler, NULL));
  th_ok(fx->oq, omniq_register(fx->oq, "badjson", bad_json_handler, NULL));
  enqueue(fx, "code", NULL, 2, a);
  enqueue(fx, "fail", NULL, 3, b);
  enqueue(fx, "badjson", NULL, 3, c);
  th_ok(fx->oq, omniq_worker_process(fx->oq, NULL, 0, &done));
  assert_int_equal(done, 3);

  /* An error code without omniq_job_fail: a retryable "Error". */
  omniq_task_t *t;
  th_ok(fx->oq, omniq_get_task(fx->oq, a, &t));
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  assert_string_equal(omniq_error_type(omniq_task_last_error(t)), "Error");
  assert_non_null(strstr(omniq_error_message(omniq_task_last_error(t)), "OMNIQ_EFAILED"));
  assert_int_equal(omniq_error_is_retryable(omniq_task_last_error(t)), 1);
  omniq_task_free(t);

  r = wait_result(fx, b);
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "ValueError");
  assert_string_equal(omniq_error_message(omniq_result_error(r)), "bad input");
  assert_int_equal(omniq_error_is_retryable(omniq_result_error(r)), 0);
  assert_int_equal(omniq_result_attempts(r), 1);
  omniq_result_free(r);
  r = wait_result(fx, c);
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "BadResult");
  omniq_result_free(r);
}

/* ---- cancel of a running task -------------------------------------------------- */

typedef struct {
  th_gate_t started, saw_cancel;
} cancel_t;

static int until_cancelled_handler(omniq_job_t *job, void *ud) {
  cancel_t *c = ud;
  th_gate_add(&c->started, 1);
  /* A cooperative handler checks the flag between units of work; this one
   * has none, so it waits for the cancel itself (a test hook wakes it). */
  if (omniq__job_wait_cancelled(job, TH_WAIT_MS) && omniq_job_cancelled(job))
    th_gate_add(&c->saw_cancel, 1);
  return omniq_job_return(job, "\"ignored\"");
}

/* Runs a handler that waits for omniq_job_cancelled(), cancels its task
 * through the pool's handle or a second one, and checks the handler saw it
 * and the task ended CANCELLED with its outcome dropped. */
static void cancel_running_task(fx_t *fx, int64_t lease_ms, int from_other_handle) {
  cancel_t c;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  char id[OMNIQ_ID_SIZE];
  omniq_close(fx->oq);
  fx->settings.lease_ms = lease_ms;
  th_ok(NULL, omniq_open(&fx->oq, &fx->settings));
  th_gate_init(&c.started);
  th_gate_init(&c.saw_cancel);
  th_ok(fx->oq, omniq_register(fx->oq, "wait", until_cancelled_handler, &c));
  opts(&o, 1);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  enqueue(fx, "wait", NULL, 3, id);
  assert_true(th_gate_wait(&c.started, 1, TH_WAIT_MS));
  if (from_other_handle) {
    omniq_t *other = NULL;
    th_ok(NULL, omniq_open(&other, &fx->settings));
    th_ok(other, omniq_cancel(other, id));
    omniq_close(other);
    /* Not before the next extension is due, by the pool's clock. */
    assert_false(th_gate_wait(&c.saw_cancel, 1, 0));
    th_pool_clock_advance(lease_ms / 3);
  } else {
    th_ok(fx->oq, omniq_cancel(fx->oq, id));
  }
  assert_true(th_gate_wait(&c.saw_cancel, 1, TH_WAIT_MS));
  th_ok(fx->oq, omniq_worker_stop(w));
  omniq_result_t *r = wait_result(fx, id);
  assert_int_equal(omniq_result_status(r), OMNIQ_CANCELLED);
  assert_null(omniq_result_value(r));
  omniq_result_free(r);
  th_gate_destroy(&c.started);
  th_gate_destroy(&c.saw_cancel);
}

static void test_cancel_of_a_running_task_reaches_the_handler_and_drops_its_outcome(void **state) {
  /* From another handle: the worker learns of the cancel from its next
   * extension (every lease/3 of the pool's clock, which the test moves),
   * which is refused. */
  cancel_running_task(*state, 30000, 1);
}

static void test_cancel_on_the_workers_handle_reaches_the_handler_before_any_extension(
    void **state) {
  /* A 10-minute lease: the first extension would come after 200 s, far
   * beyond TH_WAIT_MS, so only the direct notice can end the wait. */
  cancel_running_task(*state, 600000, 0);
}

/* ---- omniq_worker_process and queues ------------------------------------------ */

static void test_process_stops_at_limit_then_when_nothing_is_due(void **state) {
  fx_t *fx = *state;
  long done = -1;
  omniq_worker_opts_t o;
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(fx->oq, omniq_register(fx->oq, "echo", echo_handler, NULL));
  for (int i = 0; i < 5; i++) enqueue(fx, "echo", "[]", 1, NULL);
  opts(&o, 2);
  th_ok(fx->oq, omniq_worker_process(fx->oq, &o, 3, &done));
  assert_int_equal(done, 3);
  th_ok(fx->oq, omniq_worker_process(fx->oq, &o, 0, &done));
  assert_int_equal(done, 2);
  th_ok(fx->oq, omniq_worker_process(fx->oq, &o, 0, &done));
  assert_int_equal(done, 0);
  th_ok(fx->oq, omniq_count_by_status(fx->oq, counts));
  assert_int_equal(counts[OMNIQ_SUCCESS], 5);
}

static void test_worker_claims_only_from_its_queues(void **state) {
  fx_t *fx = *state;
  omniq_enqueue_opts_t eo;
  omniq_worker_opts_t o;
  char in_a[OMNIQ_ID_SIZE], in_b[OMNIQ_ID_SIZE];
  long done;
  th_ok(fx->oq, omniq_register(fx->oq, "echo", echo_handler, NULL));
  omniq_enqueue_opts_init(&eo);
  eo.queue = "a";
  th_ok(fx->oq, omniq_enqueue(fx->oq, "echo", NULL, NULL, &eo, in_a));
  eo.queue = "b";
  th_ok(fx->oq, omniq_enqueue(fx->oq, "echo", NULL, NULL, &eo, in_b));
  opts(&o, 1);
  o.queues[0] = "b";
  th_ok(fx->oq, omniq_worker_process(fx->oq, &o, 0, &done));
  assert_int_equal(done, 1);
  omniq_result_t *r = NULL;
  assert_int_equal(omniq_get_result(fx->oq, in_a, 0, &r), OMNIQ_ENOTFOUND);
  th_ok(fx->oq, omniq_get_result(fx->oq, in_b, 0, &r));
  omniq_result_free(r);
}

/* ---- omniq_worker_run ----------------------------------------------------------- */

typedef struct {
  fx_t *fx;
  int rc;
} run_arg_t;

static void *run_main(void *arg) {
  run_arg_t *a = arg;
  omniq_worker_opts_t o;
  opts(&o, 2);
  a->rc = omniq_worker_run(a->fx->oq, &o);
  return NULL;
}

static void test_worker_run_stops_gracefully_on_sigterm(void **state) {
  fx_t *fx = *state;
  th_gate_t ran;
  run_arg_t a = {.fx = fx, .rc = -100};
  pthread_t t;
  sigset_t term, old;
  th_gate_init(&ran);
  th_ok(fx->oq, omniq_register(fx->oq, "signal", signal_handler, &ran));
  /* Blocked before the thread exists, so the signal can only be taken by
   * its sigwait, never acted on by default. */
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  assert_int_equal(pthread_create(&t, NULL, run_main, &a), 0);
  enqueue(fx, "signal", NULL, 1, NULL);
  assert_true(th_gate_wait(&ran, 1, TH_WAIT_MS)); /* the workers run */
  pthread_kill(t, SIGTERM);
  pthread_join(t, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  assert_int_equal(a.rc, OMNIQ_OK);
  th_gate_destroy(&ran);
}

#define T(name) cmocka_unit_test_setup_teardown(name, th_store_setup, th_store_teardown)
/* The pool's clock frozen: time passes for the pool only as the test moves it. */
#define T_FROZEN(name) \
  cmocka_unit_test_setup_teardown(name, th_store_setup_frozen, th_store_teardown_frozen)
#define T_FILE(name) cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, "file")

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_opts_init_fills_the_documented_defaults),
      T(test_bad_worker_opts_are_rejected_with_a_message),
      T(test_concurrency_1_runs_one_at_a_time),
      T(test_concurrency_4_meet_at_a_barrier_and_never_5),
      T(test_concurrency_16_meet_at_a_barrier_and_never_17),
      T_FILE(test_concurrency_4_meet_at_a_barrier_and_never_5),
      T(test_start_returns_while_the_pool_runs),
      T(test_stop_while_idle_returns_promptly),
      T(test_stop_waits_for_in_flight_tasks),
      T(test_stop_past_shutdown_timeout_leaves_the_task_to_its_lease),
      T_FILE(test_stop_past_shutdown_timeout_leaves_the_task_to_its_lease),
      T(test_close_stops_a_pool_that_was_not_stopped),
      T(test_enqueue_wakes_an_idle_worker_without_waiting_for_the_poll),
      T_FILE(test_enqueue_wakes_an_idle_worker_without_waiting_for_the_poll),
      T(test_sync_handler_sees_its_task_and_its_result_is_stored),
      T(test_deferred_handler_completed_from_another_thread_stores_result),
      T(test_deferred_handler_can_fail_from_another_thread),
      T(test_deferred_job_completed_before_its_handler_returns),
      T(test_failures_carry_type_message_and_retryable),
      T_FROZEN(test_cancel_of_a_running_task_reaches_the_handler_and_drops_its_outcome),
      T(test_cancel_on_the_workers_handle_reaches_the_handler_before_any_extension),
      T(test_process_stops_at_limit_then_when_nothing_is_due),
      T(test_worker_claims_only_from_its_queues),
      T(test_worker_run_stops_gracefully_on_sigterm),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
