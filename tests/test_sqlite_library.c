/* SPDX-License-Identifier: MIT */
/* The SQLite library's process-wide configuration (src/storage/sqlite/
 * schema.c): the first open in a process that has not initialised SQLite
 * turns SQLite's memory statistics off before initialising it; a program
 * that initialised SQLite itself keeps its configuration, and OmniQ opens
 * and runs as usual under it.
 *
 * SQLite is configured once per process, so each case runs in a child
 * forked from this process, which never touches SQLite itself. */
#include "support/helpers.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* What a child reports through its exit status. */
enum { CHILD_OK = 0, CHILD_OPEN = 10, CHILD_ENQUEUE, CHILD_STATS, CHILD_CONFIG, CHILD_INIT };

/* Opens a store under dir, enqueues one task and closes it; *used is what
 * SQLite counted as in use while the store was open. 0 or CHILD_*. */
static int use_omniq(const char *dir, sqlite3_int64 *used) {
  omniq_settings_t s;
  omniq_t *oq = NULL;
  char id[OMNIQ_ID_SIZE];
  th_settings(&s, "sqlite", dir, NULL);
  if (omniq_open(&oq, &s) != OMNIQ_OK) return CHILD_OPEN;
  int rc = omniq_enqueue(oq, "f", "[1]", NULL, NULL, id) == OMNIQ_OK ? CHILD_OK : CHILD_ENQUEUE;
  *used = sqlite3_memory_used();
  omniq_close(oq);
  return rc;
}

/* Runs fn(dir) in a child in a fresh folder and returns its exit status. */
static int in_child(int (*fn)(const char *dir)) {
  char dir[] = "/tmp/omniq-sqlite-lib-XXXXXX";
  assert_non_null(mkdtemp(dir));
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(fn(dir));
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

/* OmniQ alone: its first open configures SQLite, so SQLite counts no
 * memory while the store runs, and it is initialised afterwards (a second
 * configuration is refused). */
static int omniq_first(const char *dir) {
  sqlite3_int64 used = -1;
  int rc = use_omniq(dir, &used);
  if (rc != CHILD_OK) return rc;
  if (used != 0) return CHILD_STATS;
  if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1) != SQLITE_MISUSE) return CHILD_CONFIG;
  return CHILD_OK;
}

static void test_first_open_turns_sqlite_memory_statistics_off(void **state) {
  (void)state;
  assert_int_equal(in_child(omniq_first), CHILD_OK);
}

/* The program initialised SQLite (with statistics on) before opening a
 * store: OmniQ opens and runs, and the statistics still count. */
static int program_first(const char *dir) {
  if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1) != SQLITE_OK) return CHILD_CONFIG;
  if (sqlite3_initialize() != SQLITE_OK) return CHILD_INIT;
  sqlite3_int64 used = 0;
  int rc = use_omniq(dir, &used);
  if (rc != CHILD_OK) return rc;
  return used > 0 ? CHILD_OK : CHILD_STATS;
}

static void test_sqlite_initialised_by_the_program_keeps_its_configuration(void **state) {
  (void)state;
  assert_int_equal(in_child(program_first), CHILD_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_first_open_turns_sqlite_memory_statistics_off),
      cmocka_unit_test(test_sqlite_initialised_by_the_program_keeps_its_configuration),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
