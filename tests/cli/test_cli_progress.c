/* SPDX-License-Identifier: MIT */
/* What `omniq worker` prints: a live line on a terminal (a pseudo-terminal
 * here), log lines on a pipe. Run once per backend (the first argument). */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static void enqueue_two_ok_one_failing(const cli_env_t *env) {
  free(cli_enqueue(env, "--", "true", NULL));
  free(cli_enqueue(env, "--", "true", NULL));
  free(cli_enqueue(env, "--retries", "1", "--", "false", NULL));
}

/* Runs `omniq worker --burst` on a pseudo-terminal; returns all it wrote. */
static char *run_on_pty(const cli_env_t *env, int *status) {
  struct winsize ws = {.ws_row = 24, .ws_col = 120};
  int master;
  pid_t pid = forkpty(&master, NULL, NULL, &ws);
  assert_true(pid >= 0);
  if (pid == 0) {
    if (chdir(env->dir) != 0) _exit(126);
    execl(OMNIQ_CLI_BIN, "omniq", "worker", "--burst", (char *)NULL);
    _exit(127);
  }
  char *out = calloc(1, 1);
  size_t len = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    struct pollfd pf = {.fd = master, .events = POLLIN};
    int r = poll(&pf, 1, CLI_DEADLINE_MS);
    if (r == 0) {
      kill(pid, SIGKILL);
      fail_msg("the worker on a terminal did not finish; it wrote: %s", out);
    }
    char buf[4096];
    ssize_t n = read(master, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; /* EIO once the worker (the only slave user) is gone */
    out = realloc(out, len + (size_t)n + 1);
    memcpy(out + len, buf, (size_t)n);
    len += (size_t)n;
    out[len] = '\0';
  }
  close(master);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

static void test_terminal_shows_a_live_line_with_counts(void **state) {
  cli_env_t *env = *state;
  int status;
  enqueue_two_ok_one_failing(env);
  char *out = run_on_pty(env, &status);
  assert_int_equal(status, 0);
  /* The line is redrawn in place... */
  assert_non_null(strstr(out, "\r\033[K"));
  assert_non_null(strstr(out, "running "));
  assert_non_null(strstr(out, "pending "));
  /* ...and its last state counts this worker's runs, with the queue drained. */
  if (strstr(out, "running 0  pending 0  done 2  failed 1  retried 0") == NULL)
    fail_msg("no final line with the counts in: %s", out);
  /* Warnings are printed above the line; INFO lines are not shown. */
  assert_non_null(strstr(out, "task.failed"));
  assert_null(strstr(out, "task.succeeded"));
  free(out);
}

static void test_pipe_gets_one_log_line_per_event_and_no_live_line(void **state) {
  cli_env_t *env = *state;
  enqueue_two_ok_one_failing(env);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  assert_int_equal(o.status, 0);
  assert_null(strchr(o.err, '\r'));
  assert_null(strchr(o.err, '\033'));
  int succeeded = 0, failed = 0;
  for (char *line = strtok(o.err, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    succeeded += strstr(line, " INFO task.succeeded id=") != NULL;
    failed += strstr(line, " WARNING task.failed id=") != NULL;
  }
  assert_int_equal(succeeded, 2);
  assert_int_equal(failed, 1);
  assert_string_equal(o.out, "");
  cli_out_free(&o);
}

static void test_pipe_log_lines_follow_omniq_log_format_json(void **state) {
  cli_env_t *env = *state;
  enqueue_two_ok_one_failing(env);
  setenv("OMNIQ_LOG_FORMAT", "json", 1);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  unsetenv("OMNIQ_LOG_FORMAT");
  assert_int_equal(o.status, 0);
  int lines = 0;
  for (char *line = strtok(o.err, "\n"); line != NULL; line = strtok(NULL, "\n"), lines++) {
    json_t *j = json_loads(line, 0, NULL);
    if (j == NULL) fail_msg("not a JSON line: %s", line);
    assert_non_null(json_string_value(json_object_get(j, "event")));
    json_decref(j);
  }
  assert_int_equal(lines, 3);
  cli_out_free(&o);
}

int main(int argc, char **argv) {
  void *backend = (void *)cli_backend_arg(argc, argv);
#define T(fn) cmocka_unit_test_prestate_setup_teardown(fn, cli_setup, cli_teardown, backend)
  const struct CMUnitTest tests[] = {
      T(test_terminal_shows_a_live_line_with_counts),
      T(test_pipe_gets_one_log_line_per_event_and_no_live_line),
      T(test_pipe_log_lines_follow_omniq_log_format_json),
  };
#undef T
  return cmocka_run_group_tests_name(backend, tests, NULL, NULL);
}
