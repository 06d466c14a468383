/* SPDX-License-Identifier: MIT */
/* Task ids: UUIDv7 text that strictly increases within a process whatever
 * the clock does, and the validator every backend runs before an id becomes
 * a path or a key. */
#include "support/helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/ids.h"
#include "omniq/storage.h"

#define COUNT 100000

/* The 48-bit millisecond field of an id. */
static int64_t id_ms(const char *id) {
  char hex[13];
  memcpy(hex, id, 8);
  memcpy(hex + 8, id + 9, 4);
  hex[12] = '\0';
  return (int64_t)strtoll(hex, NULL, 16);
}

/* Generates COUNT ids with clock(i) as the time and asserts that each one is
 * valid, version 7, RFC 9562 variant, and greater than the one before. */
static void assert_strictly_increasing(int64_t (*clock)(int64_t i)) {
  char prev[OMNIQ_ID_SIZE], id[OMNIQ_ID_SIZE];
  omniq__id_new(clock(0), prev);
  for (int64_t i = 1; i < COUNT; i++) {
    omniq__id_new(clock(i), id);
    if (!omniq_id_valid(id)) fail_msg("id %lld is not valid: %s", (long long)i, id);
    if (id[14] != '7') fail_msg("version nibble of %s is not 7", id);
    if (strchr("89ab", id[19]) == NULL) fail_msg("variant of %s is not 10xx", id);
    if (strcmp(prev, id) >= 0) fail_msg("id %lld: %s is not after %s", (long long)i, id, prev);
    memcpy(prev, id, sizeof id);
  }
}

/* Each id has a fresh, later millisecond. */
static int64_t clock_moving(int64_t i) { return TH_EPOCH_MS + 1000000 + i; }
/* Every id in the same millisecond: the 12-bit counter must carry into the
 * timestamp field many times over. */
static int64_t clock_still(int64_t i) {
  (void)i;
  return TH_EPOCH_MS + 5000000;
}
/* Time jumps back by a minute every 1000 ids (an NTP step). */
static int64_t clock_stepping_back(int64_t i) { return TH_EPOCH_MS + 9000000 - (i / 1000) * 60000; }

static void test_ids_increase_strictly_when_the_clock_moves(void **state) {
  (void)state;
  assert_strictly_increasing(clock_moving);
}

static void test_ids_increase_strictly_when_the_clock_stands_still(void **state) {
  (void)state;
  assert_strictly_increasing(clock_still);
}

static void test_ids_increase_strictly_when_the_clock_steps_back(void **state) {
  (void)state;
  assert_strictly_increasing(clock_stepping_back);
}

#define THREADS 4

typedef struct gen_arg {
  pthread_barrier_t *start;
  char (*ids)[OMNIQ_ID_SIZE]; /* COUNT / THREADS slots */
} gen_arg_t;

/* Generates this thread's share of ids once all threads are ready, so the
 * generator's lock is really contended. */
static void *generate(void *p) {
  gen_arg_t *a = p;
  pthread_barrier_wait(a->start);
  for (int i = 0; i < COUNT / THREADS; i++) omniq__id_new(clock_still(i), a->ids[i]);
  return NULL;
}

static int compare_ids(const void *a, const void *b) { return strcmp(a, b); }

static void test_ids_from_concurrent_threads_are_unique(void **state) {
  char (*ids)[OMNIQ_ID_SIZE] = malloc(sizeof *ids * COUNT);
  pthread_t threads[THREADS];
  gen_arg_t args[THREADS];
  pthread_barrier_t start;
  (void)state;
  assert_non_null(ids);
  pthread_barrier_init(&start, NULL, THREADS);
  for (int t = 0; t < THREADS; t++) {
    args[t] = (gen_arg_t){&start, ids + t * (COUNT / THREADS)};
    assert_int_equal(pthread_create(&threads[t], NULL, generate, &args[t]), 0);
  }
  for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
  pthread_barrier_destroy(&start);
  /* Each thread saw its own ids increase... */
  for (int t = 0; t < THREADS; t++)
    for (int i = 1; i < COUNT / THREADS; i++)
      assert_true(strcmp(args[t].ids[i - 1], args[t].ids[i]) < 0);
  /* ...and no id was handed to two threads. */
  qsort(ids, COUNT, sizeof *ids, compare_ids);
  for (int i = 1; i < COUNT; i++)
    if (strcmp(ids[i - 1], ids[i]) == 0) fail_msg("duplicate id %s", ids[i]);
  free(ids);
}

static void test_id_carries_its_millisecond_when_the_clock_moves_forward(void **state) {
  char id[OMNIQ_ID_SIZE];
  (void)state;
  /* Far ahead of every earlier test's time, so nothing was carried over. */
  int64_t now = TH_EPOCH_MS + INT64_C(86400000) * 365;
  omniq__id_new(now, id);
  assert_int_equal(id_ms(id), now);
  omniq__id_new(now + 1, id);
  assert_int_equal(id_ms(id), now + 1);
}

static void test_id_valid_accepts_generated_ids(void **state) {
  char id[OMNIQ_ID_SIZE];
  (void)state;
  for (int i = 0; i < 100; i++) {
    omniq__id_new(TH_EPOCH_MS, id);
    assert_int_equal(strlen(id), OMNIQ_ID_LEN);
    assert_true(omniq_id_valid(id));
  }
  assert_true(omniq_id_valid("01890a5d-ac96-774b-bcce-b302099a8057"));
}

static void test_id_valid_rejects_anything_that_could_escape_or_differ(void **state) {
  static const char *const bad[] = {
      "",
      "../x",
      "../../../../../../../../../../etc/pw",  /* 36 chars, hyphens elsewhere */
      "01890A5D-AC96-774B-BCCE-B302099A8057",  /* uppercase */
      "01890a5d-ac96-774b-bcce-b302099a805",   /* 35 chars */
      "01890a5d-ac96-774b-bcce-b302099a80577", /* 37 chars */
      "01890a5dac96-774b-bcce-b302099a8057-",  /* hyphens shifted */
      "01890a5d-ac96774b-bcce-b302099a8057-0", /* hyphens shifted */
      "01890a5d_ac96_774b_bcce_b302099a8057",  /* wrong separator */
      "01890a5d-ac96-774b-bcce-b302099a805g",  /* not hex */
      "01890a5d-ac96-774b-bcce-b302099a805/",  /* a slash */
      "01890a5d-ac96-774b-bcce-b302099a805 ",  /* a space */
      "{01890a5d-ac96-774b-bcce-b302099a80}",
  };
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (omniq_id_valid(bad[i])) fail_msg("accepted \"%s\"", bad[i]);
  assert_false(omniq_id_valid(NULL));
}

/* A forked child starts from its parent's generator state; its ids must
 * still differ from the parent's. Both make one id at the same, later
 * millisecond: without a new seed in the child they would be the same
 * text. */
static void test_ids_made_after_fork_differ_from_the_parents(void **state) {
  (void)state;
  char before[OMNIQ_ID_SIZE], mine[OMNIQ_ID_SIZE], theirs[OMNIQ_ID_SIZE] = {0};
  int fds[2], status = 0;
  int64_t now = TH_EPOCH_MS + 7000000;
  omniq__id_new(now, before); /* the generator is seeded before the fork */
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char id[OMNIQ_ID_SIZE];
    omniq__id_new(now + 1, id);
    _exit(write(fds[1], id, sizeof id) == (ssize_t)sizeof id ? 0 : 1);
  }
  close(fds[1]);
  omniq__id_new(now + 1, mine);
  assert_int_equal(read(fds[0], theirs, sizeof theirs), (ssize_t)sizeof theirs);
  close(fds[0]);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(omniq_id_valid(theirs));
  assert_string_not_equal(mine, theirs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ids_increase_strictly_when_the_clock_moves),
      cmocka_unit_test(test_ids_increase_strictly_when_the_clock_stands_still),
      cmocka_unit_test(test_ids_increase_strictly_when_the_clock_steps_back),
      cmocka_unit_test(test_ids_from_concurrent_threads_are_unique),
      cmocka_unit_test(test_id_carries_its_millisecond_when_the_clock_moves_forward),
      cmocka_unit_test(test_ids_made_after_fork_differ_from_the_parents),
      cmocka_unit_test(test_id_valid_accepts_generated_ids),
      cmocka_unit_test(test_id_valid_rejects_anything_that_could_escape_or_differ),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
