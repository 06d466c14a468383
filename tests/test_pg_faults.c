/* SPDX-License-Identifier: MIT */
/* The PostgreSQL backend when the server goes away: a restart is survived
 * without the caller seeing an error; while the server is down calls fail
 * at once with a storage error instead of hanging, and work resumes when it
 * is back, with nothing acknowledged lost; and the listener reconnects, so
 * an idle pool in another process is woken again.
 *
 * These tests stop and restart the server, so they run on a cluster of
 * their own (scripts/pg-cluster.sh, started and removed by the group), not
 * on the one the other PostgreSQL tests share. */
#include "support/helpers.h"
#include "support/gate.h"
#include "support/postgres.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LONG_POLL_MS 120000

static char state_dir[64];
static char url[OMNIQ_PATH_MAX];

static int cluster(const char *cmd) {
  char line[512];
  snprintf(line, sizeof line, "bash %s/scripts/pg-cluster.sh %s %s >/dev/null", OMNIQ_SOURCE_DIR,
           cmd, state_dir);
  return system(line);
}

static int group_setup(void **state) {
  (void)state;
  char path[128];
  snprintf(state_dir, sizeof state_dir, "/tmp/omniq-pgfaults-XXXXXX");
  if (mkdtemp(state_dir) == NULL || cluster("start") != 0) return -1;
  snprintf(path, sizeof path, "%s/url", state_dir);
  FILE *f = fopen(path, "r");
  if (f == NULL || fgets(url, sizeof url, f) == NULL) return -1;
  fclose(f);
  url[strcspn(url, "\n")] = '\0';
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  cluster("stop");
  rmdir(state_dir);
  return 0;
}

typedef struct fx {
  th_clock_t clock;
  omniq_settings_t settings;
  omniq_t *oq;
} fx_t;

static int setup(void **state) {
  fx_t *fx = calloc(1, sizeof *fx);
  if (fx == NULL) return -1;
  th_clock_init(&fx->clock, TH_EPOCH_MS);
  th_settings(&fx->settings, "postgres", "/nonexistent", &fx->clock);
  snprintf(fx->settings.db_url, sizeof fx->settings.db_url, "%s", url);
  if (omniq_open(&fx->oq, &fx->settings) != OMNIQ_OK) {
    print_error("omniq_open: %s\n", omniq_errmsg(NULL));
    free(fx);
    return -1;
  }
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fx_t *fx = *state;
  omniq_close(fx->oq);
  cluster("up"); /* a test that failed with the server down leaves it up again */
  th_pg_drop(&fx->settings);
  free(fx);
  return 0;
}

static void assert_pending(fx_t *fx, int64_t want) {
  int64_t c[OMNIQ_STATUS_COUNT];
  th_ok(fx->oq, omniq_count_by_status(fx->oq, c));
  assert_int_equal(c[OMNIQ_PENDING], want);
}

static void test_restarted_server_is_reconnected_without_an_error(void **state) {
  fx_t *fx = *state;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE];
  omniq_task_t *t = NULL;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "tests.echo", "[1]", NULL, NULL, a));
  assert_int_equal(cluster("restart"), 0);
  /* The pooled connection was closed by the shutdown; the server said so,
   * so the statement is known not to have run and is run again on a new
   * connection: the caller sees no error, for a write as for a read. */
  th_ok(fx->oq, omniq_enqueue(fx->oq, "tests.echo", "[2]", NULL, NULL, b));
  th_ok(fx->oq, omniq_get_task(fx->oq, a, &t));
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING);
  omniq_task_free(t);
  assert_pending(fx, 2);
}

static void test_down_server_fails_calls_at_once_and_work_resumes_when_it_is_back(void **state) {
  fx_t *fx = *state;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE];
  omniq_task_t *t = NULL;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "tests.echo", "[1]", NULL, NULL, a));
  assert_int_equal(cluster("down"), 0);
  /* Refused connections, then the backoff: an error, not a hang. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(omniq_enqueue(fx->oq, "tests.echo", "[2]", NULL, NULL, b), OMNIQ_ESTORAGE);
    assert_non_null(strstr(omniq_errmsg(fx->oq), "postgres"));
    assert_int_equal(omniq_get_task(fx->oq, a, &t), OMNIQ_ESTORAGE);
  }
  assert_int_equal(cluster("up"), 0);
  /* The next attempt after the backoff step (at most 2 s of real time:
   * the reconnect backoff is not on an injectable clock) connects. Calls
   * until then fail at once, so this asks again every 20 ms; the bound
   * only turns a store that never comes back into a failure. */
  int rc = OMNIQ_ESTORAGE;
  for (int64_t end = th_mono_ms() + TH_WAIT_MS; rc == OMNIQ_ESTORAGE && th_mono_ms() < end;) {
    rc = omniq_get_task(fx->oq, a, &t);
    if (rc == OMNIQ_ESTORAGE) {
      struct timespec ts = {0, 20 * 1000000};
      nanosleep(&ts, NULL);
    }
  }
  th_ok(fx->oq, rc);
  assert_int_equal(omniq_task_status(t), OMNIQ_PENDING); /* acknowledged before: kept */
  omniq_task_free(t);
  th_ok(fx->oq, omniq_enqueue(fx->oq, "tests.echo", "[2]", NULL, NULL, b));
  assert_pending(fx, 2);
}

static void test_listener_reconnects_and_wakes_an_idle_pool_after_a_restart(void **state) {
  fx_t *fx = *state;
  omniq_settings_t s = fx->settings;
  omniq_t *oq = NULL;
  char since[64];
  int stop;
  s.clock_fn = NULL;
  s.clock_userdata = NULL;
  /* No thread may run in this process when it forks (the handle's listener
   * is one). */
  omniq_close(fx->oq);
  fx->oq = NULL;
  th_pg_server_now(&s, since, sizeof since);
  pid_t pid = th_spawn_echo_pool(&s, LONG_POLL_MS, &stop);
  th_pg_wait_idle_pool(&s, since);
  /* From here on the child's pool only claims when woken. */
  th_pg_server_now(&s, since, sizeof since);
  assert_int_equal(cluster("restart"), 0);
  th_ok(NULL, omniq_open(&oq, &s));
  /* The child's listener reconnects and wakes its pool once (anything may
   * have been sent while it was away); wait for that look to end. */
  th_pg_wait_idle_pool(&s, since);
  th_echo_round_trip(oq, "[\"again\"]", LONG_POLL_MS / 4000.0);
  omniq_close(oq);
  assert_int_equal(th_stop_echo_pool(pid, stop), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_restarted_server_is_reconnected_without_an_error),
      T(test_down_server_fails_calls_at_once_and_work_resumes_when_it_is_back),
      T(test_listener_reconnects_and_wakes_an_idle_pool_after_a_restart),
  };
  return cmocka_run_group_tests_name("postgres faults", tests, group_setup, group_teardown);
}
