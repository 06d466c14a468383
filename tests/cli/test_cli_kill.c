/* SPDX-License-Identifier: MIT */
/* No process of a command task outlives its task or its worker: timeouts,
 * cancels, worker signals and a SIGKILLed worker, checked by pid. Run once
 * per backend (the first argument). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* A command that leaves three processes behind it, each writing its pid to
 * the file "pids" once it runs: a background child in its group, a
 * grandchild in its group (sh -c "sleep"), and one that left the group
 * with setsid (a daemon). Then it waits. */
#define TREE_SCRIPT                                             \
  "sleep 60 & echo $! >> pids; "                                \
  "sh -c 'echo $$ >> pids; exec sleep 60' & "                   \
  "setsid sh -c 'echo $$ >> pids; exec sleep 60' & "            \
  "echo $$ >> pids; wait"
#define TREE_PIDS 4

static int tree_started(const cli_env_t *env, const void *arg) {
  pid_t pids[TREE_PIDS];
  (void)arg;
  return cli_read_pids(env, "pids", pids, TREE_PIDS) == TREE_PIDS;
}

static int tree_gone(const cli_env_t *env, const void *arg) {
  pid_t pids[TREE_PIDS];
  int n = cli_read_pids(env, "pids", pids, TREE_PIDS);
  (void)arg;
  for (int i = 0; i < n; i++)
    if (cli_pid_alive(pids[i])) return 0;
  return 1;
}

static void assert_tree_gone_now(const cli_env_t *env) {
  pid_t pids[TREE_PIDS];
  assert_int_equal(cli_read_pids(env, "pids", pids, TREE_PIDS), TREE_PIDS);
  for (int i = 0; i < TREE_PIDS; i++)
    if (cli_pid_alive(pids[i])) fail_msg("process %d of the task is still alive", (int)pids[i]);
}

static json_t *result_json(const cli_env_t *env, const char *id, int want_status) {
  cli_out_t o = cli_run(env, "result", "--wait", "30s", "--json", id, NULL);
  if (o.status != want_status) fail_msg("result exited %d: %s", o.status, o.err);
  json_t *r = cli_json(&o);
  cli_out_free(&o);
  return r;
}

static const char *error_type(json_t *r) {
  return json_string_value(json_object_get(json_object_get(r, "error"), "error_type"));
}

static void test_timeout_kills_the_command_its_children_and_a_daemon(void **state) {
  cli_env_t *env = *state;
  /* 2 s leaves the shell ample time to start all three before the deadline.
   * The long grace makes sure the tree goes on SIGTERM and the supervisor's
   * clean-up, not on the grace's SIGKILL (the test would take 10 s). */
  char *id = cli_enqueue(env, "--timeout", "2s", "--retries", "1", "--shell", TREE_SCRIPT, NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", "--kill-after", "10s", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  /* The worker returned only after the supervisor had reaped the whole tree. */
  assert_tree_gone_now(env);
  json_t *r = result_json(env, id, 1);
  assert_string_equal(error_type(r), "TimeoutError");
  json_decref(r);
  free(id);
}

static void test_process_isolation_timeout_kills_the_tree_too(void **state) {
  cli_env_t *env = *state;
  /* Here the library kills the forked child that runs the handler; the
   * command's supervisor, orphaned, stops the tree on its own. */
  char *id = cli_enqueue(env, "--timeout", "2s", "--retries", "1", "--shell", TREE_SCRIPT, NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", "--isolation", "process", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  cli_wait_for(tree_gone, env, NULL, "the command's processes to end");
  json_t *r = result_json(env, id, 1);
  assert_string_equal(error_type(r), "TimeoutError");
  json_decref(r);
  free(id);
}

static void test_command_ignoring_sigterm_is_killed_after_the_grace(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--timeout", "1s", "--retries", "1", "--shell",
                         "trap '' TERM; echo $$ >> pids; sleep 60 & echo $! >> pids; wait",
                         NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", "--kill-after", "200ms", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  pid_t pids[2];
  assert_int_equal(cli_read_pids(env, "pids", pids, 2), 2);
  assert_false(cli_pid_alive(pids[0]));
  assert_false(cli_pid_alive(pids[1]));
  free(id);
}

static void test_cancel_of_a_running_command_kills_its_tree(void **state) {
  cli_env_t *env = *state;
  /* A short lease: the worker learns of a cancel from another process at
   * its next lease extension, every lease/3 = 100 ms. */
  setenv("OMNIQ_LEASE", "0.3", 1);
  char *id = cli_enqueue(env, "--shell", TREE_SCRIPT, NULL);
  pid_t w = cli_start(env, "worker.log", "worker", "--poll", "20ms", NULL);
  cli_wait_for(tree_started, env, NULL, "the command's processes");
  cli_out_t o = cli_run(env, "cancel", id, NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  cli_wait_for(tree_gone, env, NULL, "the cancelled command's processes to end");
  json_t *r = result_json(env, id, 1);
  assert_string_equal(json_string_value(json_object_get(r, "status")), "CANCELLED");
  json_decref(r);
  assert_int_equal(cli_stop(env, w, SIGTERM), 0);
  free(id);
}

static void test_sigkilled_worker_leaves_no_process_of_its_task(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--shell", TREE_SCRIPT, NULL);
  pid_t w = cli_start(env, "worker.log", "worker", "--poll", "20ms", NULL);
  cli_wait_for(tree_started, env, NULL, "the command's processes");
  assert_int_equal(cli_stop(env, w, SIGKILL), 128 + SIGKILL);
  cli_wait_for(tree_gone, env, NULL, "the orphaned command's processes to end");
  free(id);
}

static int log_says(const cli_env_t *env, const void *text) {
  char *log = cli_read_file(env, "worker.log");
  int yes = log != NULL && strstr(log, text) != NULL;
  free(log);
  return yes;
}

static int one_pid(const cli_env_t *env, const void *arg) {
  pid_t pid;
  (void)arg;
  return cli_read_pids(env, "pids", &pid, 1) == 1;
}

/* Opens the FIFO for writing once its reader has it open. */
static int fifo_reader_there(const cli_env_t *env, const void *fd_out) {
  char path[2048];
  snprintf(path, sizeof path, "%s/go", env->dir);
  int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 && errno != ENXIO) fail_msg("open %s: %s", path, strerror(errno));
  *(int *)fd_out = fd;
  return fd >= 0;
}

static void test_first_signal_lets_the_running_command_finish(void **state) {
  cli_env_t *env = *state;
  char fifo[2048];
  int fd = -1;
  snprintf(fifo, sizeof fifo, "%s/go", env->dir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  /* Blocks until the test writes to the FIFO, which it does after SIGTERM. */
  char *id = cli_enqueue(env, "--shell", "echo $$ >> pids; read line < go; echo finished", NULL);
  pid_t w = cli_start(env, "worker.log", "worker", "--poll", "20ms", NULL);
  cli_wait_for(one_pid, env, NULL, "the command to start");
  kill(w, SIGTERM);
  cli_wait_for(log_says, env, "finishing running tasks", "the worker to take the signal");
  /* The command is still there to read (had the stop killed it, no reader
   * would ever open the FIFO and this wait would fail). */
  cli_wait_for(fifo_reader_there, env, &fd, "the command to open the FIFO");
  assert_int_equal(write(fd, "go\n", 3), 3);
  close(fd);
  assert_int_equal(cli_stop(env, w, 0), 0);
  json_t *r = result_json(env, id, 0);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(r, "value"), "stdout")), "finished\n");
  json_decref(r);
  free(id);
}

static void test_second_signal_stops_at_once_and_the_tree_dies(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--shell", TREE_SCRIPT, NULL);
  pid_t w = cli_start(env, "worker.log", "worker", "--poll", "20ms", NULL);
  cli_wait_for(tree_started, env, NULL, "the command's processes");
  kill(w, SIGINT);
  cli_wait_for(log_says, env, "finishing running tasks", "the worker to take the first signal");
  assert_int_equal(cli_stop(env, w, SIGINT), 1);
  assert_true(log_says(env, "SIGINT again: stopping at once"));
  cli_wait_for(tree_gone, env, NULL, "the command's processes to end");
  /* The task was left RUNNING, to its lease: nothing recorded it as done. */
  cli_out_t o = cli_run(env, "show", "--json", id, NULL);
  json_t *t = cli_json(&o);
  assert_string_equal(json_string_value(json_object_get(t, "status")), "RUNNING");
  json_decref(t);
  cli_out_free(&o);
  free(id);
}

int main(int argc, char **argv) {
  void *backend = (void *)cli_backend_arg(argc, argv);
#define T(fn) cmocka_unit_test_prestate_setup_teardown(fn, cli_setup, cli_teardown, backend)
  const struct CMUnitTest tests[] = {
      T(test_timeout_kills_the_command_its_children_and_a_daemon),
      T(test_process_isolation_timeout_kills_the_tree_too),
      T(test_command_ignoring_sigterm_is_killed_after_the_grace),
      T(test_cancel_of_a_running_command_kills_its_tree),
      T(test_sigkilled_worker_leaves_no_process_of_its_task),
      T(test_first_signal_lets_the_running_command_finish),
      T(test_second_signal_stops_at_once_and_the_tree_dies),
  };
#undef T
  return cmocka_run_group_tests_name(backend, tests, NULL, NULL);
}
