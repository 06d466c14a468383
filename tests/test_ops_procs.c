/* SPDX-License-Identifier: MIT */
/* Operating a queue from several processes, through the whole stack (API,
 * engine, pool, backend): a pause is seen by a worker in another process at
 * its next claim; a rate limit of 50 starts a second holds for four worker
 * processes window after window; of eight processes enqueueing one unique
 * key, one wins. Run per backend: `test_ops_procs sqlite`,
 * `test_ops_procs file`.
 *
 * Nothing sleeps: children start together through the harness
 * (support/procs.h), stop when the test closes a pipe, and report each
 * start through another; the rate test moves a clock all processes share
 * (a shared mapping) only once the window's starts have arrived.
 *
 * That shared clock follows real time until every process has opened, and
 * only then stands still: PostgreSQL maps each handle's clock onto the
 * server's by an offset measured at open, so processes opening one frozen
 * clock at different real moments would each map it differently (by the
 * real time between their opens) and disagree on where a second ends. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/wake.h"
#include "support/gate.h"
#include "support/procs.h"
#include "support/runs.h"

static const char *backend = "sqlite";

typedef th_store_t fx_t;

/* Reads n start bytes, failing the test if they do not come. */
static void await_starts(th_child_t *c, int n) {
  for (int got = 0; got < n;) {
    struct pollfd pf = {.fd = c->news[0], .events = POLLIN};
    char buf[64];
    int pr = poll(&pf, 1, TH_WAIT_MS);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) fail_msg("only %d of %d starts arrived", got, n);
    size_t want = (size_t)(n - got) < sizeof buf ? (size_t)(n - got) : sizeof buf;
    ssize_t r = read(c->news[0], buf, want);
    if (r <= 0) fail_msg("the start pipe closed after %d of %d", got, n);
    got += (int)r;
  }
}

/* Stops the children and returns how many starts came that nobody read. */
static int stop_children(th_procs_t *p, th_child_t *c) {
  char buf[256];
  int extra = 0;
  ssize_t r;
  close(c->stop[1]);
  th_procs_wait(p);
  close(c->news[1]); /* every writer is gone: the reads below end */
  while ((r = read(c->news[0], buf, sizeof buf)) > 0) extra += (int)r;
  close(c->news[0]);
  close(c->stop[0]);
  th_procs_free(p);
  return extra;
}

/* ---- pause ------------------------------------------------------------------ */

/* The worker serves "mail" and "ping". With "mail" paused, a task of
 * "mail" enqueued before one of "ping" (so claimed first, were it not
 * paused) stays PENDING while the ping task runs: the other process's very
 * next claim saw the pause. After a resume it runs. */
static void test_a_pause_is_seen_by_a_worker_in_another_process(void **state) {
  fx_t *fx = *state;
  /* An hour's poll: the enqueues and the resume wake the worker. */
  th_child_t c = {.queues = {"mail", "ping", NULL}, .poll_ms = 3600000};
  th_procs_t p;
  char mail[OMNIQ_ID_SIZE], ping[OMNIQ_ID_SIZE];
  omniq_enqueue_opts_t o;
  omniq_result_t *r = NULL;
  c.settings = fx->settings;
  c.settings.clock_fn = NULL; /* real time: every eta is now */
  omniq_close(fx->oq); /* no store open across fork */
  th_child_pipes(&c);
  th_procs_start(&p, 1, th_child_pool, &c);
  th_procs_go(&p);
  th_ok(NULL, omniq_open(&fx->oq, &c.settings));
  th_ok(fx->oq, omniq_queue_pause(fx->oq, "mail"));
  omniq_enqueue_opts_init(&o);
  o.queue = "mail";
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", NULL, NULL, &o, mail));
  o.queue = "ping";
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", NULL, NULL, &o, ping));
  th_ok(fx->oq, omniq_get_result(fx->oq, ping, TH_WAIT_MS / 1000.0, &r));
  omniq_result_free(r);
  assert_int_equal(th_status(fx, mail), OMNIQ_PENDING);
  th_ok(fx->oq, omniq_queue_resume(fx->oq, "mail"));
  th_ok(fx->oq, omniq_get_result(fx->oq, mail, TH_WAIT_MS / 1000.0, &r));
  omniq_result_free(r);
  assert_int_equal(stop_children(&p, &c), 2);
}

/* ---- rate limit ------------------------------------------------------------ */

#define RATE 50
#define RATE_PROCS 4
#define RATE_WINDOWS 5

static _Atomic int64_t *shared_now; /* 0: real time */

static int64_t shared_clock(void *ud) {
  int64_t now = atomic_load(shared_now);
  return now != 0 ? now : omniq_clock_system(ud);
}

/* Four worker processes, 400 tasks due, a limit of 50 per second: once
 * all have opened, the clock stays in each second until its 50 starts
 * have arrived, then moves to the next. In the end every second holds
 * exactly 50 starts by the tasks' own started_at, and no start came
 * beyond 5 x 50. */
static void test_fifty_a_second_holds_for_four_worker_processes(void **state) {
  fx_t *fx = *state;
  /* An hour's poll: each move of the shared clock wakes every worker.
   * Not on PostgreSQL: there the workers of other processes wake on the
   * server's notifications, which only a commit sends, and a move of a
   * test's clock is none; they find each window by a 10 ms poll. */
  th_child_t c = {.queues = {"api", NULL, NULL},
                  .poll_ms = strcmp(backend, "postgres") == 0 ? 10 : 3600000};
  th_procs_t p;
  shared_now = mmap(NULL, sizeof *shared_now, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
  assert_true(shared_now != MAP_FAILED);
  atomic_store(shared_now, 0);
  c.settings = fx->settings;
  c.settings.clock_fn = shared_clock;
  c.settings.clock_userdata = NULL;
  c.settings.fsync = 0; /* durability is not what this measures */
  omniq_close(fx->oq);
  th_ok(NULL, omniq_open(&fx->oq, &c.settings));
  omniq_enqueue_item_t items[400];
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.queue = "api";
  for (int i = 0; i < 400; i++) items[i] = (omniq_enqueue_item_t){"work", NULL, NULL, &o};
  th_ok(fx->oq, omniq_enqueue_many(fx->oq, items, 400, NULL));
  th_ok(fx->oq, omniq_queue_set_rate(fx->oq, "api", RATE, 1000));
  omniq_close(fx->oq); /* no store open across fork */
  th_child_pipes(&c);
  th_procs_start(&p, RATE_PROCS, th_child_pool, &c); /* returns once all have opened */
  th_ok(NULL, omniq_open(&fx->oq, &c.settings));
  /* The next second's start: every task is due by then. */
  const int64_t real = omniq_clock_system(NULL), t0 = real - real % 1000 + 1000;
  atomic_store(shared_now, t0);
  th_procs_go(&p);
  for (int w = 0; w < RATE_WINDOWS; w++) {
    atomic_store(shared_now, t0 + 1000 * w + 1);
    /* The next window's tasks came due by the clock, which no commit
     * announces: wake the workers of every process sharing a wake file,
     * as a move of a test's clock does in this one (th_clock_advance). */
    omniq__wake(fx->oq, OMNIQ__EV_WORK);
    await_starts(&c, RATE);
  }
  int extra = stop_children(&p, &c);
  int per[RATE_WINDOWS + 1] = {0};
  omniq_list_opts_t lo;
  omniq_list_opts_init(&lo);
  lo.statuses = OMNIQ_STATUS_BIT(OMNIQ_SUCCESS) | OMNIQ_STATUS_BIT(OMNIQ_RUNNING);
  lo.limit = OMNIQ_LIST_MAX_LIMIT;
  omniq_task_list_t *l = NULL;
  th_ok(fx->oq, omniq_list_tasks(fx->oq, &lo, &l));
  for (size_t i = 0; i < omniq_task_list_count(l); i++) {
    int64_t w = (omniq_task_started_at(omniq_task_list_at(l, i)) - t0) / 1000;
    per[w >= 0 && w < RATE_WINDOWS ? w : RATE_WINDOWS]++;
  }
  omniq_task_list_free(l);
  for (int w = 0; w < RATE_WINDOWS; w++)
    if (per[w] != RATE) fail_msg("second %d held %d starts, not %d", w, per[w], RATE);
  assert_int_equal(per[RATE_WINDOWS], 0);
  assert_int_equal(extra, 0);
  munmap((void *)shared_now, sizeof *shared_now);
}

/* ---- unique keys ------------------------------------------------------------ */

static int unique_child(th_procs_t *p, int index, void *ud) {
  omniq_settings_t *s = ud;
  omniq_enqueue_opts_t o;
  omniq_t *oq = NULL;
  char id[OMNIQ_ID_SIZE];
  if (omniq_open(&oq, s) != OMNIQ_OK) return 10;
  if (th_procs_ready(p) != 0) return 11;
  omniq_enqueue_opts_init(&o);
  o.unique_key = "nightly";
  int rc = omniq_enqueue(oq, "work", NULL, NULL, &o, id);
  omniq_close(oq);
  /* The winner's own id, or the id each loser was told holds the key. */
  if (rc != OMNIQ_OK && rc != OMNIQ_EEXISTS) return 12;
  return th_procs_put_ids(p, index, (const char(*)[OMNIQ_ID_SIZE])id, 1) == 0 ? 0 : 13;
}

static void test_of_eight_processes_enqueueing_one_key_one_wins(void **state) {
  fx_t *fx = *state;
  th_procs_t p;
  char(*ids)[OMNIQ_ID_SIZE] = NULL;
  size_t n = 0;
  omniq_close(fx->oq);
  fx->oq = NULL;
  th_procs_start(&p, 8, unique_child, &fx->settings);
  th_procs_go(&p);
  th_procs_wait(&p);
  th_procs_ids(&p, &ids, &n);
  th_procs_free(&p);
  th_ok(NULL, omniq_open(&fx->oq, &fx->settings));
  assert_int_equal(n, 8);
  for (size_t i = 1; i < n; i++) assert_string_equal(ids[i], ids[0]);
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(fx->oq, omniq_count_by_status(fx->oq, counts));
  assert_int_equal(counts[OMNIQ_PENDING], 1);
  omniq_task_t *t = th_task(fx, ids[0]);
  assert_string_equal(omniq_task_unique_key(t), "nightly");
  omniq_task_free(t);
  free(ids);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_a_pause_is_seen_by_a_worker_in_another_process),
      T(test_fifty_a_second_holds_for_four_worker_processes),
      T(test_of_eight_processes_enqueueing_one_key_one_wins),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
