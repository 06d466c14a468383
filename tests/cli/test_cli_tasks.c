/* SPDX-License-Identifier: MIT */
/* `omniq` driven as a user would: enqueue, worker, result, show, cancel and
 * purge on one backend (the first argument: sqlite, file or postgres). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

/* ---- retries -------------------------------------------------------------------- */

static void test_command_failing_twice_then_succeeding_is_seen_by_result_wait(void **state) {
  cli_env_t *env = *state;
  /* Counts its runs in a file in the worker's directory; fails runs 1, 2. */
  char *id = cli_enqueue(env, "--retries", "3", "--shell",
                         "n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; "
                         "echo run $n; echo warn $n >&2; [ $n -ge 3 ]",
                         NULL);
  pid_t w = cli_start_worker(env, NULL);
  cli_out_t o = cli_run(env, "result", "--wait", "30s", "--json", id, NULL);
  assert_int_equal(o.status, 0);
  json_t *r = cli_json(&o);
  assert_string_equal(cli_jstr(r, "status"), "SUCCESS");
  assert_int_equal(cli_jint(r, "attempts"), 3);
  json_t *value = json_object_get(r, "value");
  assert_int_equal(cli_jint(value, "exit_code"), 0);
  assert_string_equal(cli_jstr(value, "stdout"), "run 3\n");
  assert_string_equal(cli_jstr(value, "stderr"), "warn 3\n");
  json_decref(r);
  cli_out_free(&o);

  /* The text form is the command's own output. */
  o = cli_run(env, "result", id, NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "run 3\n");
  assert_string_equal(o.err, "warn 3\n");
  cli_out_free(&o);
  cli_stop_worker(env, w);
  free(id);
}

static void test_command_failing_every_run_ends_failed_with_exit_code_and_stderr(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--retries", "2", "--", "sh", "-c", "echo broken >&2; exit 7", NULL);
  pid_t w = cli_start_worker(env, NULL);
  cli_out_t o = cli_run(env, "result", "--wait", "30s", "--json", id, NULL);
  assert_int_equal(o.status, 1);
  json_t *r = cli_json(&o), *e = json_object_get(r, "error");
  assert_string_equal(cli_jstr(r, "status"), "FAILED");
  assert_int_equal(cli_jint(r, "attempts"), 2);
  assert_string_equal(cli_jstr(e, "error_type"), "CommandFailed");
  assert_string_equal(cli_jstr(e, "message"), "exit code 7\nbroken\n");
  assert_true(json_is_true(json_object_get(e, "is_retryable")));
  assert_int_equal(json_object_size(e), 6); /* exactly the TaskError fields */
  json_decref(r);
  cli_out_free(&o);
  cli_stop_worker(env, w);
  free(id);
}

/* ---- scheduling ---------------------------------------------------------------- */

static void test_delayed_task_waits_for_its_eta(void **state) {
  cli_env_t *env = *state;
  int64_t before = cli_now();
  char *later = cli_enqueue(env, "--delay", "1h", "--", "true", NULL);
  int64_t after = cli_now();

  /* An hour away: a burst finds nothing to do. */
  json_t *t = cli_show_json(env, later);
  int64_t eta = cli_time(cli_jstr(t, "eta"));
  assert_true(eta >= before + 3600000 && eta <= after + 3600000);
  json_decref(t);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  o = cli_run(env, "result", later, NULL);
  assert_int_equal(o.status, 1); /* no result yet */
  assert_non_null(strstr(o.err, "PENDING"));
  cli_out_free(&o);

  /* 300 ms away: it runs, and not before its eta. (Enqueued after the
   * burst, which would otherwise take it on a machine slow enough for the
   * burst to start 300 ms later.) */
  char *soon = cli_enqueue(env, "--delay", "300ms", "--", "true", NULL);
  t = cli_show_json(env, soon);
  int64_t soon_eta = cli_time(cli_jstr(t, "eta"));
  json_decref(t);
  pid_t w = cli_start_worker(env, NULL);
  o = cli_run(env, "result", "--wait", "30s", "--json", soon, NULL);
  assert_int_equal(o.status, 0);
  json_t *r = cli_json(&o);
  assert_true(cli_time(cli_jstr(r, "last_attempt_at")) >= soon_eta);
  json_decref(r);
  cli_out_free(&o);
  cli_stop_worker(env, w);

  t = cli_show_json(env, later);
  assert_string_equal(cli_jstr(t, "status"), "PENDING");
  json_decref(t);
  free(later);
  free(soon);
}

static void test_at_takes_rfc3339_with_an_offset(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--at", "2030-01-01T00:30:00.250+01:00", "--", "true", NULL);
  json_t *t = cli_show_json(env, id);
  assert_string_equal(cli_jstr(t, "eta"), "2029-12-31T23:30:00.250Z");
  json_decref(t);
  free(id);
}

static int file_has_two_runs(const cli_env_t *env, const void *arg) {
  (void)arg;
  return cli_count_lines(env, "runs") >= 2;
}

static int task_cancelled(const cli_env_t *env, const void *id) {
  cli_out_t o = cli_run(env, "show", "--json", (const char *)id, NULL);
  json_t *t = o.status == 0 ? cli_json(&o) : NULL;
  int yes = t != NULL && strcmp(cli_jstr(t, "status"), "CANCELLED") == 0;
  json_decref(t);
  cli_out_free(&o);
  return yes;
}

static void test_interval_task_cancelled_after_two_runs_runs_no_more(void **state) {
  cli_env_t *env = *state;
  /* Each run appends a line; the test cancels once two are there. */
  char *id = cli_enqueue(env, "--interval", "200ms", "--shell", "echo run >> runs", NULL);
  pid_t w = cli_start_worker(env, NULL);
  cli_wait_for(file_has_two_runs, env, NULL, "two runs of the interval task");
  cli_out_t o = cli_run(env, "cancel", id, NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  cli_stop_worker(env, w);
  int runs = cli_count_lines(env, "runs");
  assert_true(runs >= 2);
  assert_true(task_cancelled(env, id));

  /* Cancelled is final: another worker finds nothing, the file stays. */
  o = cli_run(env, "worker", "--burst", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  assert_int_equal(cli_count_lines(env, "runs"), runs);
  o = cli_run(env, "cancel", id, NULL);
  assert_int_equal(o.status, 1); /* already finished */
  cli_out_free(&o);
  free(id);
}

static void test_interval_task_cancelling_itself_on_its_second_run_runs_twice(void **state) {
  cli_env_t *env = *state;
  /* The second run cancels its own task through the CLI: exactly two runs,
   * whatever the timing. The worker passes the store settings on (--env). */
  char script[2048];
  snprintf(script, sizeof script,
           "echo run >> runs; if [ $(wc -l < runs) -ge 2 ]; then '%s' cancel \"$OMNIQ_TASK_ID\"; "
           "fi",
           OMNIQ_CLI_BIN);
  char *id = cli_enqueue(env, "--interval", "50ms", "--shell", script, NULL);
  pid_t w = cli_start(env, "worker.log", "worker", "--poll", "20ms", "--env", "OMNIQ_BACKEND",
                      "--env", "OMNIQ_BASE_DIR", "--env", "OMNIQ_FSYNC", "--env", "OMNIQ_DB_URL",
                      "--env", "OMNIQ_DB_SCHEMA", NULL);
  cli_wait_for(task_cancelled, env, id, "the task to cancel itself");
  cli_stop_worker(env, w);
  assert_int_equal(cli_count_lines(env, "runs"), 2);
  free(id);
}

/* ---- what a run records ----------------------------------------------------------- */

static void test_show_json_has_every_field(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--queue", "mail", "--priority", "5", "--retries", "4",
                         "--timeout", "1m30s", "--interval", "2h", "--", "echo", "a b", "$HOME",
                         NULL);
  json_t *t = cli_show_json(env, id);
  assert_string_equal(cli_jstr(t, "id"), id);
  assert_string_equal(cli_jstr(t, "func"), "omniq.command");
  assert_string_equal(cli_jstr(t, "queue"), "mail");
  assert_string_equal(cli_jstr(t, "status"), "PENDING");
  json_t *args = json_object_get(t, "args");
  assert_int_equal(json_array_size(args), 3);
  assert_string_equal(json_string_value(json_array_get(args, 1)), "a b");
  assert_string_equal(json_string_value(json_array_get(args, 2)), "$HOME");
  assert_int_equal(json_object_size(json_object_get(t, "kwargs")), 0);
  assert_int_equal(cli_jint(t, "attempts"), 0);
  assert_int_equal(cli_jint(t, "max_retries"), 4);
  assert_int_equal(cli_jint(t, "priority"), 5);
  assert_int_equal(cli_jint(t, "interval_ms"), 7200000);
  assert_int_equal(cli_jint(t, "timeout_ms"), 90000);
  assert_true(cli_time(cli_jstr(t, "created_at")) > 0);
  assert_true(json_is_null(json_object_get(t, "last_error")));
  json_decref(t);

  /* The text form shows the argv as a shell would need it typed. */
  cli_out_t o = cli_run(env, "show", id, NULL);
  assert_int_equal(o.status, 0);
  assert_non_null(strstr(o.out, "command:     echo 'a b' '$HOME'\n"));
  cli_out_free(&o);
  free(id);
}

static void test_argv_reaches_the_program_unexpanded(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--", "printf", "%s|", "$HOME", "a;b", "*", NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  o = cli_run(env, "result", id, NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "$HOME|a;b|*|");
  cli_out_free(&o);
  free(id);
}

static void test_shell_option_runs_through_sh(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--shell", "echo $((6 * 7))", NULL);
  json_t *t = cli_show_json(env, id);
  assert_string_equal(json_string_value(json_array_get(json_object_get(t, "args"), 0)),
                      "/bin/sh");
  json_decref(t);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  cli_out_free(&o);
  o = cli_run(env, "result", id, NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "42\n");
  cli_out_free(&o);
  free(id);
}

static void test_command_gets_a_clean_environment_with_task_id_and_attempt(void **state) {
  cli_env_t *env = *state;
  setenv("OMNIQ_TEST_SECRET", "hunter2", 1);
  setenv("LANG", "C.UTF-8", 1);
  char *id = cli_enqueue(env, "--", "env", NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", "--env", "EXTRA=1", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  unsetenv("OMNIQ_TEST_SECRET");
  o = cli_run(env, "result", id, NULL);
  assert_int_equal(o.status, 0);
  /* Only the documented variables: no OMNIQ_BASE_DIR, no secret. */
  static const char *const allowed[] = {"PATH=", "HOME=", "USER=", "LOGNAME=", "LANG=",
                                        "LC_ALL=", "TZ=", "TMPDIR=", "EXTRA=", "OMNIQ_TASK_ID=",
                                        "OMNIQ_ATTEMPT="};
  int seen_id = 0, seen_attempt = 0, seen_lang = 0;
  for (char *line = strtok(o.out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    int ok = 0;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
      ok |= strncmp(line, allowed[i], strlen(allowed[i])) == 0;
    if (!ok) fail_msg("unexpected variable in a command's environment: %s", line);
    seen_id |= strncmp(line, "OMNIQ_TASK_ID=", 14) == 0 && strcmp(line + 14, id) == 0;
    seen_attempt |= strcmp(line, "OMNIQ_ATTEMPT=1") == 0;
    seen_lang |= strcmp(line, "LANG=C.UTF-8") == 0;
  }
  assert_true(seen_id && seen_attempt && seen_lang);
  cli_out_free(&o);
  free(id);
}

static void test_output_tails_keep_the_last_16_KiB_and_count_every_byte(void **state) {
  cli_env_t *env = *state;
  /* 40000 bytes of 'x', then a marker that must be in the tail. */
  char *id = cli_enqueue(env, "--shell",
                         "head -c 40000 /dev/zero | tr '\\0' x; echo END; printf '\\377\\n' >&2",
                         NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  cli_out_free(&o);
  o = cli_run(env, "result", "--json", id, NULL);
  assert_int_equal(o.status, 0);
  json_t *r = cli_json(&o), *v = json_object_get(r, "value");
  const char *out = cli_jstr(v, "stdout");
  assert_int_equal(strlen(out), 16384);
  assert_string_equal(out + 16384 - 4, "END\n");
  assert_int_equal(cli_jint(v, "stdout_bytes"), 40004);
  /* A byte that is not UTF-8 is replaced, not lost. */
  assert_string_equal(cli_jstr(v, "stderr"), "\xEF\xBF\xBD\n");
  assert_int_equal(cli_jint(v, "stderr_bytes"), 2);
  json_decref(r);
  cli_out_free(&o);
  free(id);
}

static void test_command_killed_by_a_signal_is_a_crash_naming_it(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--retries", "1", "--shell", "kill -USR1 $$", NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  cli_out_free(&o);
  o = cli_run(env, "result", "--json", id, NULL);
  assert_int_equal(o.status, 1);
  json_t *r = cli_json(&o), *e = json_object_get(r, "error");
  assert_string_equal(cli_jstr(e, "error_type"), "Crash");
  assert_string_equal(cli_jstr(e, "message"), "killed by signal 10 (SIGUSR1)");
  json_decref(r);
  cli_out_free(&o);
  free(id);
}

static void test_missing_program_fails_like_a_shell_with_127(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--retries", "1", "--", "no-such-program-omniq", NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  cli_out_free(&o);
  o = cli_run(env, "result", id, NULL);
  assert_int_equal(o.status, 1);
  assert_non_null(strstr(o.out, "CommandFailed: cannot run 'no-such-program-omniq': "
                                "No such file or directory (exit code 127)"));
  cli_out_free(&o);
  free(id);
}

static void test_process_isolation_runs_a_command(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--", "echo", "isolated", NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", "--isolation", "process", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  o = cli_run(env, "result", id, NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "isolated\n");
  cli_out_free(&o);
  free(id);
}

/* The pid of the zygote a command task ran under, as the command prints it:
 * its parent is the supervisor, whose parent is the handler process, whose
 * parent is the zygote ("pid (comm) state ppid ..." in /proc/PID/stat). */
#define PRINT_ZYGOTE "h=$(cut -d' ' -f4 /proc/$PPID/stat); cut -d' ' -f4 /proc/$h/stat"

static void test_process_burst_runs_tasks_running_together_under_one_zygote(void **state) {
  cli_env_t *env = *state;
  /* Each task opens the FIFO, one to write and one to read, and an open
   * returns only once the other end is open too: the two tasks are running
   * at the same moment. A burst that started a pool (and forked a zygote)
   * per slot while its other slots ran would run them under two. */
  char fifo[1100];
  snprintf(fifo, sizeof fifo, "%s/meet", env->dir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  char *writer = cli_enqueue(env, "--", "sh", "-c", "echo hi > \"$0\"; " PRINT_ZYGOTE, fifo,
                             NULL);
  char *reader = cli_enqueue(env, "--", "sh", "-c", "cat \"$0\" > /dev/null; " PRINT_ZYGOTE,
                             fifo, NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", "--isolation", "process", "-c", "2", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  cli_out_t w = cli_run(env, "result", writer, NULL), r = cli_run(env, "result", reader, NULL);
  free(writer);
  free(reader);
  assert_int_equal(w.status, 0);
  assert_int_equal(r.status, 0);
  assert_true(atoi(w.out) > 1);
  assert_string_equal(w.out, r.out);
  cli_out_free(&w);
  cli_out_free(&r);
}

static void test_library_task_runs_from_a_loaded_library(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--func", OMNIQ_TEST_HANDLERS_LIB ":omniq_test_echo", "--args",
                         "[1, \"two\"]", "--kwargs", "{\"k\": true}", NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", "--load", OMNIQ_TEST_HANDLERS_LIB, NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  o = cli_run(env, "result", "--json", id, NULL);
  assert_int_equal(o.status, 0);
  json_t *r = cli_json(&o), *want = json_pack("[i, s]", 1, "two");
  assert_true(json_equal(json_object_get(r, "value"), want));
  json_decref(want);
  json_decref(r);
  cli_out_free(&o);

  /* A library that does not load stops the worker before it starts. */
  o = cli_run(env, "worker", "--burst", "--load", "./no-such-library.so", NULL);
  assert_int_equal(o.status, 2);
  assert_non_null(strstr(o.err, "--load"));
  cli_out_free(&o);
  free(id);
}

static void test_worker_takes_only_its_queues(void **state) {
  cli_env_t *env = *state;
  char *mail = cli_enqueue(env, "--queue", "mail", "--", "true", NULL);
  char *plain = cli_enqueue(env, "--", "true", NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  cli_out_free(&o);
  o = cli_run(env, "result", mail, NULL);
  assert_int_equal(o.status, 1); /* not in "default": still pending */
  cli_out_free(&o);
  o = cli_run(env, "worker", "--burst", "--queues", "other,mail", NULL);
  cli_out_free(&o);
  o = cli_run(env, "result", mail, NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  o = cli_run(env, "result", plain, NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);
  free(mail);
  free(plain);
}

/* ---- exit codes -------------------------------------------------------------------- */

static void test_exit_codes(void **state) {
  cli_env_t *env = *state;
  const char *unknown = "01a2287f-0000-7000-8000-000000000000";
  char *ok = cli_enqueue(env, "--", "true", NULL);
  char *bad = cli_enqueue(env, "--retries", "1", "--", "false", NULL);
  char *later = cli_enqueue(env, "--delay", "1h", "--", "true", NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);

  struct {
    const char *argv[6];
    int status;
  } cases[] = {
      {{"result", ok}, 0},
      {{"show", ok}, 0},
      {{"result", bad}, 1},                    /* failed */
      {{"result", later}, 1},                  /* not finished */
      {{"cancel", ok}, 1},                     /* already finished */
      {{"result", unknown}, 3},
      {{"show", unknown}, 3},
      {{"cancel", unknown}, 3},
      {{"result", "--wait", "300ms", later}, 4},
      {{"cancel", later}, 0},
      {{"result", later}, 1},                  /* cancelled */
      {{"purge", "--older-than", "0"}, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    o = cli_runv(env, (char *const *)cases[i].argv);
    if (o.status != cases[i].status)
      fail_msg("omniq %s %s: exit %d, expected %d (%s)", cases[i].argv[0], cases[i].argv[1],
               o.status, cases[i].status, o.err);
    cli_out_free(&o);
  }

  /* 5: the store cannot be opened (a database that is not one; a base
   * directory that is a file; a server that is not there). */
  char path[2048];
  const char *store = cli_not_a_store(env, path, sizeof path);
  o = cli_run(env, "show", store, path, ok, NULL);
  assert_int_equal(o.status, 5);
  assert_non_null(strstr(o.err, "omniq show: cannot open the store"));
  cli_out_free(&o);
  free(ok);
  free(bad);
  free(later);
}

static void test_purge_counts_the_results_it_deleted(void **state) {
  cli_env_t *env = *state;
  char *a = cli_enqueue(env, "--", "true", NULL), *b = cli_enqueue(env, "--", "true", NULL);
  cli_out_t o = cli_run(env, "worker", "--burst", NULL);
  cli_out_free(&o);
  o = cli_run(env, "purge", "--older-than", "1h", "--json", NULL);
  assert_int_equal(o.status, 0);
  json_t *j = cli_json(&o);
  assert_int_equal(cli_jint(j, "purged"), 0); /* both are seconds old */
  json_decref(j);
  cli_out_free(&o);
  o = cli_run(env, "purge", "--older-than", "0", NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "purged 2 result(s)\n");
  cli_out_free(&o);
  o = cli_run(env, "result", a, NULL);
  assert_int_equal(o.status, 1); /* the task is there, its result is gone */
  cli_out_free(&o);
  free(a);
  free(b);
}

int main(int argc, char **argv) {
  void *backend = (void *)cli_backend_arg(argc, argv);
#define T(fn) cmocka_unit_test_prestate_setup_teardown(fn, cli_setup, cli_teardown, backend)
  const struct CMUnitTest tests[] = {
      T(test_command_failing_twice_then_succeeding_is_seen_by_result_wait),
      T(test_command_failing_every_run_ends_failed_with_exit_code_and_stderr),
      T(test_delayed_task_waits_for_its_eta),
      T(test_at_takes_rfc3339_with_an_offset),
      T(test_interval_task_cancelled_after_two_runs_runs_no_more),
      T(test_interval_task_cancelling_itself_on_its_second_run_runs_twice),
      T(test_show_json_has_every_field),
      T(test_argv_reaches_the_program_unexpanded),
      T(test_shell_option_runs_through_sh),
      T(test_command_gets_a_clean_environment_with_task_id_and_attempt),
      T(test_output_tails_keep_the_last_16_KiB_and_count_every_byte),
      T(test_command_killed_by_a_signal_is_a_crash_naming_it),
      T(test_missing_program_fails_like_a_shell_with_127),
      T(test_process_isolation_runs_a_command),
      T(test_process_burst_runs_tasks_running_together_under_one_zygote),
      T(test_library_task_runs_from_a_loaded_library),
      T(test_worker_takes_only_its_queues),
      T(test_exit_codes),
      T(test_purge_counts_the_results_it_deleted),
  };
#undef T
  return cmocka_run_group_tests_name(backend, tests, NULL, NULL);
}
