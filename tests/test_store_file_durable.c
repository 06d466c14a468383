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
#include "support/crash.h"
#include "support/helpers.h"

#define N 8

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

/* fsync stays on: the durable path is the one under test. */
static void test_what_was_reported_survives_a_sigkill_right_after(void **state) {
  th_store_t *st = *state;
  st->settings.fsync = 1;
  th_assert_reports_survive_sigkill(st, 100);
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
