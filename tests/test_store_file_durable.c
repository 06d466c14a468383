/* SPDX-License-Identifier: MIT */
/* The file backend's durable path: syncs of concurrent operations made in
 * shared rounds (storage/file/syncs.c), and what a returned call promises
 * across a crash.
 *
 * Sharing is made certain, not hoped for: the test's sync call holds the
 * first round until every other caller has joined the next one, then
 * counts the rounds and what each held. Durability: a worker process
 * reports each finished run through its log (the line comes after the
 * finish returned) and each enqueue after omniq_enqueue returned; the test
 * SIGKILLs it at once and finds every reported task and result in the
 * store. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/file/syncs.h"
#include "support/gate.h"
#include "support/helpers.h"

#define N 8
#define MAX_IDS 65536 /* reports read before and after the kill */

/* ---- rounds ------------------------------------------------------------------- */

typedef struct rounds {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int calls, held, released;
  size_t sizes[N];
  int fail_round; /* 1-based round that returns EIO; 0: none */
} rounds_t;

/* Records the round; the first one waits until the test releases it. */
static int fake_sync(const omniq__fsync_item_t *items, size_t n, void *ud) {
  rounds_t *r = ud;
  (void)items;
  pthread_mutex_lock(&r->mu);
  int call = r->calls++;
  if (call < N) r->sizes[call] = n;
  if (call == 0) {
    r->held = 1;
    pthread_cond_broadcast(&r->cv);
    while (!r->released) pthread_cond_wait(&r->cv, &r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return call + 1 == r->fail_round ? EIO : 0;
}

typedef struct syncer {
  omniq__fsyncq_t *q;
  omniq__fsync_item_t item;
  int rc;
  pthread_t tid;
} syncer_t;

static void *sync_main(void *arg) {
  syncer_t *s = arg;
  s->rc = omniq__fsyncq_sync(s->q, &s->item, 1);
  return NULL;
}

/* Runs N callers: the first leads round 1 and is held there until the
 * other N-1 have joined round 2. */
static void run_callers(omniq__fsyncq_t *q, rounds_t *r, syncer_t *s) {
  const struct timespec tick = {0, 200000};
  for (int i = 0; i < N; i++) s[i] = (syncer_t){.q = q, .item = {100 + i, i % 2}};
  assert_int_equal(pthread_create(&s[0].tid, NULL, sync_main, &s[0]), 0);
  pthread_mutex_lock(&r->mu);
  while (!r->held) pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
  for (int i = 1; i < N; i++)
    assert_int_equal(pthread_create(&s[i].tid, NULL, sync_main, &s[i]), 0);
  for (int w = 0; omniq__fsyncq_gathered(q) < N - 1; w++) {
    if (w > TH_WAIT_MS * 5) fail_msg("only %zu callers joined", omniq__fsyncq_gathered(q));
    nanosleep(&tick, NULL);
  }
  pthread_mutex_lock(&r->mu);
  r->released = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  for (int i = 0; i < N; i++) pthread_join(s[i].tid, NULL);
}

static rounds_t *rounds_new(int fail_round) {
  rounds_t *r = calloc(1, sizeof *r);
  assert_non_null(r);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  r->fail_round = fail_round;
  return r;
}

static void rounds_free(rounds_t *r) {
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
}

/* N-1 callers that arrive while a round runs are all served by one more. */
static void test_callers_waiting_behind_a_round_share_the_next_one(void **state) {
  (void)state;
  omniq__fsyncq_t *q = omniq__fsyncq_new();
  rounds_t *r = rounds_new(0);
  syncer_t s[N];
  assert_non_null(q);
  omniq__fsyncq_set_fn(q, fake_sync, r);
  run_callers(q, r, s);
  assert_int_equal(r->calls, 2);
  assert_int_equal(r->sizes[0], 1);
  assert_int_equal(r->sizes[1], N - 1);
  for (int i = 0; i < N; i++) assert_int_equal(s[i].rc, 0);
  omniq__fsyncq_free(q);
  rounds_free(r);
}

/* A failed sync fails every caller of its round, and only those. */
static void test_a_failed_round_fails_every_caller_in_it(void **state) {
  (void)state;
  omniq__fsyncq_t *q = omniq__fsyncq_new();
  rounds_t *r = rounds_new(2);
  syncer_t s[N];
  assert_non_null(q);
  omniq__fsyncq_set_fn(q, fake_sync, r);
  run_callers(q, r, s);
  assert_int_equal(r->calls, 2);
  assert_int_equal(s[0].rc, 0);
  for (int i = 1; i < N; i++) assert_int_equal(s[i].rc, EIO);
  omniq__fsyncq_free(q);
  rounds_free(r);
}

/* Descriptors given twice in one round are synced once. */
static void test_a_descriptor_is_synced_once_per_round(void **state) {
  (void)state;
  omniq__fsyncq_t *q = omniq__fsyncq_new();
  rounds_t *r = rounds_new(0);
  r->released = 1; /* nobody is held */
  omniq__fsync_item_t items[3] = {{7, 1}, {7, 1}, {7, 0}};
  omniq__fsyncq_set_fn(q, fake_sync, r);
  assert_int_equal(omniq__fsyncq_sync(q, items, 3), 0);
  assert_int_equal(r->calls, 1);
  assert_int_equal(r->sizes[0], 2); /* the folder once, the data once */
  omniq__fsyncq_free(q);
  rounds_free(r);
}

/* ---- a crash right after the report ------------------------------------------ */

typedef struct {
  int fd; /* where the child reports */
} sink_t;

/* The child's log: every succeeded run is reported by id as it is logged,
 * which is after its finish returned. */
static void report_line(void *ud, int level, const char *line) {
  sink_t *s = ud;
  const char *id = strstr(line, "task.succeeded id=");
  char out[OMNIQ_ID_SIZE];
  (void)level;
  if (id == NULL) return;
  out[0] = 'R';
  memcpy(out + 1, id + strlen("task.succeeded id="), OMNIQ_ID_SIZE - 1);
  ssize_t w = write(s->fd, out, sizeof out);
  (void)w;
}

static int quick(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, "7");
}

/* Enqueues, reporting each id ("E" + id) once omniq_enqueue returned,
 * while a pool of 4 runs them, reporting each result ("R" + id); until
 * killed. fsync stays on: the durable path is the one under test. */
static void crash_child(const omniq_settings_t *base, int fd) {
  sink_t sink = {fd};
  omniq_settings_t s = *base;
  omniq_t *oq = NULL;
  omniq_worker_t *w = NULL;
  s.log_level = OMNIQ_LOG_INFO;
  s.log_fn = report_line;
  s.log_userdata = &sink;
  s.clock_fn = NULL;
  s.fsync = 1;
  if (omniq_open(&oq, &s) != OMNIQ_OK) _exit(10);
  omniq_register(oq, "quick", quick, NULL);
  if (omniq_worker_start(oq, NULL, &w) != OMNIQ_OK) _exit(11);
  for (;;) {
    char id[OMNIQ_ID_SIZE], out[OMNIQ_ID_SIZE];
    if (omniq_enqueue(oq, "quick", NULL, NULL, NULL, id) != OMNIQ_OK) _exit(12);
    out[0] = 'E';
    memcpy(out + 1, id, OMNIQ_ID_SIZE - 1);
    if (write(fd, out, OMNIQ_ID_SIZE) != OMNIQ_ID_SIZE) _exit(13);
  }
}

static void take_report(const char *msg, char (*enq)[OMNIQ_ID_SIZE], size_t *ne,
                        char (*res)[OMNIQ_ID_SIZE], size_t *nr) {
  char(*to)[OMNIQ_ID_SIZE] = msg[0] == 'E' ? &enq[(*ne)++] : &res[(*nr)++];
  memcpy(*to, msg + 1, OMNIQ_ID_SIZE - 1);
  (*to)[OMNIQ_ID_SIZE - 1] = '\0';
}

static void test_what_was_reported_survives_a_sigkill_right_after(void **state) {
  th_store_t *st = *state;
  int fds[2];
  char(*enq)[OMNIQ_ID_SIZE] = calloc(MAX_IDS, OMNIQ_ID_SIZE);
  char(*res)[OMNIQ_ID_SIZE] = calloc(MAX_IDS, OMNIQ_ID_SIZE);
  size_t ne = 0, nr = 0;
  omniq_close(st->oq);
  st->oq = NULL;
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(&st->settings, fds[1]);
  }
  close(fds[1]);
  /* Kill it at once after the 100th result report; whatever the pipe
   * already holds was reported before the kill. */
  while (nr < 100) {
    char msg[OMNIQ_ID_SIZE];
    if (th_read_full(fds[0], msg, sizeof msg) != 0) fail_msg("the child ended early");
    take_report(msg, enq, &ne, res, &nr);
    if (ne == MAX_IDS) fail_msg("too many enqueues before 100 results");
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  for (char msg[OMNIQ_ID_SIZE];
       ne < MAX_IDS && nr < MAX_IDS && th_read_full(fds[0], msg, sizeof msg) == 0;)
    take_report(msg, enq, &ne, res, &nr);
  close(fds[0]);

  th_ok(NULL, omniq_open(&st->oq, &st->settings));
  for (size_t i = 0; i < ne; i++) {
    omniq_task_t *t = NULL;
    th_ok(st->oq, omniq_get_task(st->oq, enq[i], &t));
    omniq_task_free(t);
  }
  for (size_t i = 0; i < nr; i++) {
    omniq_result_t *r = NULL;
    th_ok(st->oq, omniq_get_result(st->oq, res[i], 0, &r));
    assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
    assert_string_equal(omniq_result_value(r), "7");
    omniq_result_free(r);
  }
  free(enq);
  free(res);
}

static int setup(void **state) {
  *state = (void *)"file";
  return th_store_setup(state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_callers_waiting_behind_a_round_share_the_next_one),
      cmocka_unit_test(test_a_failed_round_fails_every_caller_in_it),
      cmocka_unit_test(test_a_descriptor_is_synced_once_per_round),
      cmocka_unit_test_setup_teardown(test_what_was_reported_survives_a_sigkill_right_after,
                                      setup, th_store_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
