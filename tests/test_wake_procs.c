/* SPDX-License-Identifier: MIT */
/* Wake-ups across processes (core/wake.c, base/wakefile.c): a commit in
 * one process wakes the waiters of every other process on the store at
 * once, with no poll involved. Run per backend: `test_wake_procs sqlite`,
 * `test_wake_procs file`.
 *
 * Each test makes the fallback useless: the waiter in the other process
 * either polls once an hour or waits on the wake file with no timeout at
 * all, so only the wake-up can end its wait inside the test's time. The
 * test knows the waiter is asleep when the wake file counts it among its
 * waiters; nothing sleeps to let the other side get ready. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/wakefile.h"
#include "core/handle.h"
#include "support/gate.h"
#include "support/helpers.h"
#include "support/procs.h"
#include "support/runs.h"

static const char *backend = "sqlite";

typedef th_store_t fx_t;

static int setup(void **state) {
  *state = (void *)backend;
  return th_store_setup(state);
}

/* Blocks until the child writes a byte; fails the test if none comes. */
static char await_news(th_child_t *c) {
  struct pollfd pf = {.fd = c->news[0], .events = POLLIN};
  char b = 0;
  int pr;
  while ((pr = poll(&pf, 1, TH_WAIT_MS)) < 0 && errno == EINTR) {
  }
  if (pr <= 0) fail_msg("no news from the other process within %d ms", TH_WAIT_MS);
  assert_int_equal(read(c->news[0], &b, 1), 1);
  return b;
}

static void finish_children(th_procs_t *p, th_child_t *c) {
  close(c->stop[1]);
  th_procs_wait(p);
  close(c->news[0]);
  close(c->news[1]);
  close(c->stop[0]);
  th_procs_free(p);
}

/* Returns once at least one thread (of any process) sleeps on ev of the
 * store's wake file: a wait for a state, bounded, not a sleep for time. */
static void await_sleeper(omniq_t *oq, omniq__event_t ev) {
  assert_non_null(oq->wake);
  const struct timespec tick = {0, 200000};
  for (int64_t waited_us = 0; omniq__wakefile_waiters(oq->wake, ev) == 0; waited_us += 200) {
    if (waited_us > (int64_t)TH_WAIT_MS * 1000) fail_msg("nobody ever waited");
    nanosleep(&tick, NULL);
  }
}

/* In a child: waits on ev of oq's wake file for the count to move past
 * seen, with no poll behind it; gives up after twice the test's own limit,
 * so a child of a failed test ends too. 0 once woken, -1 if it gave up. */
static int await_bump(omniq_t *oq, omniq__event_t ev, uint32_t seen) {
  int64_t deadline = omniq__mono_ms() + 2 * (int64_t)TH_WAIT_MS;
  uint32_t now = seen;
  while (now == seen) {
    int64_t left = deadline - omniq__mono_ms();
    if (left <= 0) return -1;
    now = omniq__wakefile_wait(oq->wake, ev, seen, left);
  }
  return 0;
}

/* ---- the wake file itself ------------------------------------------------- */

/* A child waiting with no timeout on the work count: only a bump can end it. */
static int bare_waiter(th_procs_t *p, int index, void *ud) {
  th_child_t *c = ud;
  omniq_t *oq = NULL;
  (void)index;
  th_child_ends(c);
  if (omniq_open(&oq, &c->settings) != OMNIQ_OK || oq->wake == NULL) return 10;
  uint32_t seen = omniq__wakefile_gen(oq->wake, OMNIQ__EV_WORK);
  if (th_procs_ready(p) != 0) return 11;
  if (await_bump(oq, OMNIQ__EV_WORK, seen) != 0) return 13;
  ssize_t w = write(c->news[1], "w", 1);
  omniq_close(oq);
  return w == 1 ? 0 : 12;
}

static void test_a_bump_wakes_a_waiter_in_another_process(void **state) {
  fx_t *fx = *state;
  th_child_t c = {.settings = fx->settings};
  th_procs_t p;
  omniq_close(fx->oq); /* no store open across fork */
  th_child_pipes(&c);
  th_procs_start(&p, 1, bare_waiter, &c);
  th_ok(NULL, omniq_open(&fx->oq, &c.settings));
  th_procs_go(&p);
  await_sleeper(fx->oq, OMNIQ__EV_WORK);
  omniq__wakefile_bump(fx->oq->wake, OMNIQ__EV_WORK);
  assert_int_equal(await_news(&c), 'w');
  finish_children(&p, &c);
}

/* A wait whose count has already moved returns at once. */
static void test_a_wait_on_a_moved_count_returns_at_once(void **state) {
  fx_t *fx = *state;
  omniq__wakefile_t *w = fx->oq->wake;
  assert_non_null(w);
  uint32_t seen = omniq__wakefile_gen(w, OMNIQ__EV_RESULT);
  omniq__wakefile_bump(w, OMNIQ__EV_RESULT);
  assert_int_equal(omniq__wakefile_wait(w, OMNIQ__EV_RESULT, seen, -1), seen + 1);
  assert_int_equal(omniq__wakefile_waiters(w, OMNIQ__EV_RESULT), 0);
}

/* ---- idle workers ----------------------------------------------------------- */

/* The pool has claimed, found nothing and gone to sleep for an hour; the
 * tasks enqueued (one, then a batch, then a retry by hand) afterwards
 * start at once. */
static void test_an_idle_pool_in_another_process_starts_what_is_enqueued(void **state) {
  fx_t *fx = *state;
  /* It polls once an hour: only a wake-up can start a task in time. */
  th_child_t c = {.settings = fx->settings, .poll_ms = 3600000};
  th_procs_t p;
  char id[OMNIQ_ID_SIZE];
  c.settings.clock_fn = NULL; /* real time: every eta is now */
  omniq_close(fx->oq);
  th_child_pipes(&c);
  th_procs_start(&p, 1, th_child_pool, &c);
  th_ok(NULL, omniq_open(&fx->oq, &c.settings));
  th_procs_go(&p);

  await_sleeper(fx->oq, OMNIQ__EV_WORK);
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", NULL, NULL, NULL, id));
  assert_int_equal(await_news(&c), 's');

  omniq_enqueue_item_t items[3] = {{"work", NULL, NULL, NULL}, {"work", NULL, NULL, NULL},
                                   {"work", NULL, NULL, NULL}};
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, TH_WAIT_MS / 1000.0, &r));
  omniq_result_free(r);
  await_sleeper(fx->oq, OMNIQ__EV_WORK);
  th_ok(fx->oq, omniq_enqueue_many(fx->oq, items, 3, NULL));
  for (int i = 0; i < 3; i++) assert_int_equal(await_news(&c), 's');
  finish_children(&p, &c);
}

/* ---- result waiters ----------------------------------------------------------- */

/* Waits with no timeout for one result wake-up, then must find the result
 * stored: the bump comes after the commit. */
static int result_waiter(th_procs_t *p, int index, void *ud) {
  th_child_t *c = ud;
  omniq_t *oq = NULL;
  omniq_result_t *r = NULL;
  (void)index;
  th_child_ends(c);
  if (omniq_open(&oq, &c->settings) != OMNIQ_OK || oq->wake == NULL) return 10;
  uint32_t seen = omniq__wakefile_gen(oq->wake, OMNIQ__EV_RESULT);
  if (omniq_get_result(oq, c->id, 0, &r) != OMNIQ_ENOTFOUND) return 11;
  if (th_procs_ready(p) != 0) return 12;
  if (await_bump(oq, OMNIQ__EV_RESULT, seen) != 0) return 14;
  int rc = omniq_get_result(oq, c->id, 0, &r);
  char news = rc == OMNIQ_OK && omniq_result_status(r) == OMNIQ_SUCCESS ? 'r' : 'x';
  omniq_result_free(r);
  ssize_t w = write(c->news[1], &news, 1);
  omniq_close(oq);
  return w == 1 ? 0 : 13;
}

static int succeed(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, "1");
}

/* Enqueues a task, starts waiter (a child waiting for its result), and
 * once the waiter sleeps runs the task here; returns the waiter's news. */
static char finish_while_waited(fx_t *fx, th_proc_fn waiter) {
  th_child_t c = {.settings = fx->settings};
  th_procs_t p;
  long done = 0;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "ok", NULL, NULL, NULL, c.id));
  omniq_close(fx->oq);
  th_child_pipes(&c);
  th_procs_start(&p, 1, waiter, &c);
  th_ok(NULL, omniq_open(&fx->oq, &c.settings));
  th_ok(fx->oq, omniq_register(fx->oq, "ok", succeed, NULL));
  th_procs_go(&p);
  await_sleeper(fx->oq, OMNIQ__EV_RESULT);
  th_ok(fx->oq, omniq_worker_process(fx->oq, NULL, 1, &done));
  assert_int_equal(done, 1);
  char news = await_news(&c);
  finish_children(&p, &c);
  return news;
}

static void test_a_result_waiter_in_another_process_wakes_on_the_finish(void **state) {
  assert_int_equal(finish_while_waited(*state, result_waiter), 'r');
}

/* omniq_get_result with no time limit, in another process, returns the
 * result once a worker here finishes it. */
static int api_waiter(th_procs_t *p, int index, void *ud) {
  th_child_t *c = ud;
  omniq_t *oq = NULL;
  omniq_result_t *r = NULL;
  (void)index;
  th_child_ends(c);
  if (omniq_open(&oq, &c->settings) != OMNIQ_OK) return 10;
  if (th_procs_ready(p) != 0) return 11;
  int rc = omniq_get_result(oq, c->id, -1, &r);
  char news = rc == OMNIQ_OK && omniq_result_status(r) == OMNIQ_SUCCESS ? 'r' : 'x';
  omniq_result_free(r);
  ssize_t w = write(c->news[1], &news, 1);
  omniq_close(oq);
  return w == 1 ? 0 : 12;
}

static void test_get_result_in_another_process_returns_the_finished_result(void **state) {
  assert_int_equal(finish_while_waited(*state, api_waiter), 'r');
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_a_bump_wakes_a_waiter_in_another_process, setup,
                                      th_store_teardown),
      cmocka_unit_test_setup_teardown(test_a_wait_on_a_moved_count_returns_at_once, setup,
                                      th_store_teardown),
      cmocka_unit_test_setup_teardown(test_an_idle_pool_in_another_process_starts_what_is_enqueued,
                                      setup, th_store_teardown),
      cmocka_unit_test_setup_teardown(test_a_result_waiter_in_another_process_wakes_on_the_finish,
                                      setup, th_store_teardown),
      cmocka_unit_test_setup_teardown(
          test_get_result_in_another_process_returns_the_finished_result, setup,
          th_store_teardown),
  };
  return cmocka_run_group_tests_name(backend, tests, NULL, NULL);
}
