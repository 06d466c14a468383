/* SPDX-License-Identifier: MIT */
/* `omniq` operating a queue, driven as a user would on one backend (the
 * first argument: sqlite, file or postgres): cron and unique tasks, list, retry,
 * delete, purge --expired, pause and resume across processes, stats, and
 * the worker's per-child limits. Every wait is for a condition, with a
 * deadline (harness.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define DAY_MS INT64_C(86400000)
#define HOUR_MS INT64_C(3600000)

static void run_ok(const cli_env_t *env, const char *arg, ...) {
  char *argv[16];
  va_list ap;
  int n = 0;
  va_start(ap, arg);
  for (const char *a = arg; a != NULL && n < 15; a = va_arg(ap, const char *)) argv[n++] = (char *)a;
  va_end(ap);
  argv[n] = NULL;
  cli_out_t o = cli_runv(env, argv);
  if (o.status != 0) fail_msg("omniq %s: exit %d: %s", arg, o.status, o.err);
  cli_out_free(&o);
}

static const char *status_of(json_t *task) { return cli_jstr(task, "status"); }

/* ---- cron and unique ------------------------------------------------------------ */

static void test_cron_task_shows_its_next_match_as_eta(void **state) {
  cli_env_t *env = *state;
  /* Daily at 03:00 UTC: the next 03:00 after it was created. */
  char *daily = cli_enqueue(env, "--cron", "0 3 * * *", "--", "true", NULL);
  json_t *t = cli_show_json(env, daily);
  int64_t created = cli_time(cli_jstr(t, "created_at"));
  int64_t want = created / DAY_MS * DAY_MS + 3 * HOUR_MS;
  if (want <= created) want += DAY_MS;
  assert_int_equal(cli_time(cli_jstr(t, "eta")), want);
  assert_string_equal(cli_jstr(t, "cron"), "0 3 * * *");
  assert_string_equal(status_of(t), "PENDING");
  json_decref(t);

  /* From --at: 2030-01-01 is a Tuesday, so Mondays at 04:30 start on the 7th. */
  char *weekly = cli_enqueue(env, "--at", "2030-01-01T00:00:00Z", "--cron", "30 4 * * 1", "--",
                             "true", NULL);
  t = cli_show_json(env, weekly);
  assert_string_equal(cli_jstr(t, "eta"), "2030-01-07T04:30:00.000Z");
  json_decref(t);
  cli_out_t o = cli_run(env, "show", weekly, NULL);
  assert_int_equal(o.status, 0);
  assert_non_null(strstr(o.out, "eta:         2030-01-07T04:30:00.000Z"));
  assert_non_null(strstr(o.out, "cron:        30 4 * * 1 (UTC)"));
  cli_out_free(&o);
  free(daily);
  free(weekly);
}

static void test_unique_key_refuses_a_second_task_until_the_first_is_gone(void **state) {
  cli_env_t *env = *state;
  char *first = cli_enqueue(env, "--unique", "report", "--delay", "1h", "--", "true", NULL);
  cli_out_t o = cli_run(env, "enqueue", "--unique", "report", "--", "true", NULL);
  assert_int_equal(o.status, 1);
  assert_string_equal(o.out, "");
  assert_non_null(strstr(o.err, first)); /* names the holder */
  cli_out_free(&o);
  /* Another queue has keys of its own. */
  char *other = cli_enqueue(env, "--unique", "report", "--queue", "other", "--", "true", NULL);
  json_t *t = cli_show_json(env, other);
  assert_string_equal(cli_jstr(t, "unique_key"), "report");
  json_decref(t);
  run_ok(env, "cancel", first, NULL); /* finished: the key is free again */
  char *again = cli_enqueue(env, "--unique", "report", "--", "true", NULL);
  assert_string_not_equal(again, first);
  free(first);
  free(other);
  free(again);
}

/* ---- list --------------------------------------------------------------------- */

static void test_list_json_pages_and_filters(void **state) {
  cli_env_t *env = *state;
  char *a = cli_enqueue(env, "--queue", "mail", "--", "echo", "a", NULL);
  char *b = cli_enqueue(env, "--queue", "mail", "--delay", "1h", "--", "echo", "b", NULL);
  char *c = cli_enqueue(env, "--queue", "web", "--func", "render", "--args", "[1]", NULL);
  cli_out_t o = cli_run(env, "list", "--json", "--limit", "2", NULL);
  assert_int_equal(o.status, 0);
  json_t *page = cli_json_lines(&o);
  cli_out_free(&o);
  assert_int_equal(json_array_size(page), 3); /* two tasks, then the cursor */
  assert_string_equal(cli_jstr(json_array_get(page, 0), "id"), a);
  assert_string_equal(cli_jstr(json_array_get(page, 1), "id"), b);
  assert_string_equal(cli_jstr(json_array_get(page, 1), "queue"), "mail");
  const char *cursor = cli_jstr(json_array_get(page, 2), "next_cursor");

  o = cli_run(env, "list", "--json", "--limit", "2", "--cursor", cursor, NULL);
  assert_int_equal(o.status, 0);
  json_t *rest = cli_json_lines(&o);
  cli_out_free(&o);
  assert_int_equal(json_array_size(rest), 1); /* the last page has no cursor line */
  json_t *task = json_array_get(rest, 0);
  assert_string_equal(cli_jstr(task, "id"), c);
  assert_string_equal(cli_jstr(task, "func"), "render");
  assert_int_equal(json_integer_value(json_array_get(json_object_get(task, "args"), 0)), 1);
  json_decref(rest);
  json_decref(page);

  static const struct {
    const char *option, *value;
    size_t count;
  } filters[] = {{"--queue", "mail", 2},      {"--queue", "web", 1},
                 {"--func", "omniq.command", 2}, {"--status", "pending", 3},
                 {"--status", "success,failed", 0}};
  for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
    o = cli_run(env, "list", "--json", filters[i].option, filters[i].value, NULL);
    assert_int_equal(o.status, 0);
    json_t *lines = cli_json_lines(&o);
    if (json_array_size(lines) != filters[i].count)
      fail_msg("list %s %s: %zu lines, expected %zu", filters[i].option, filters[i].value,
               json_array_size(lines), filters[i].count);
    json_decref(lines);
    cli_out_free(&o);
  }

  /* The text form: a line per task, and where the next page starts. */
  o = cli_run(env, "list", "--limit", "1", NULL);
  assert_int_equal(o.status, 0);
  assert_non_null(strstr(o.out, a));
  assert_non_null(strstr(o.out, "echo a"));
  assert_non_null(strstr(o.out, "more: omniq list --cursor "));
  cli_out_free(&o);
  free(a);
  free(b);
  free(c);
}

/* ---- retry, delete, purge ----------------------------------------------------------- */

static void test_retry_failed_brings_failures_back(void **state) {
  cli_env_t *env = *state;
  /* Fails until the file "ok" exists in the worker's directory. */
  char *f1 = cli_enqueue(env, "--retries", "1", "--shell", "[ -e ok ]", NULL);
  char *f2 = cli_enqueue(env, "--retries", "1", "--shell", "[ -e ok ] && echo fixed", NULL);
  char *fine = cli_enqueue(env, "--", "true", NULL);
  run_ok(env, "worker", "--burst", NULL);
  cli_out_t o = cli_run(env, "list", "--json", "--status", "failed", NULL);
  json_t *failed = cli_json_lines(&o);
  cli_out_free(&o);
  assert_int_equal(json_array_size(failed), 2);
  json_decref(failed);

  o = cli_run(env, "retry", fine, NULL); /* it did not fail */
  assert_int_equal(o.status, 1);
  assert_non_null(strstr(o.err, "SUCCESS"));
  cli_out_free(&o);
  o = cli_run(env, "retry", "--failed", "--queue", "elsewhere", NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "retried 0 task(s)\n");
  cli_out_free(&o);

  char path[2048];
  snprintf(path, sizeof path, "%s/ok", env->dir); /* the commands' directory */
  FILE *ok = fopen(path, "w");
  assert_non_null(ok);
  fclose(ok);
  o = cli_run(env, "retry", "--failed", NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "retried 2 task(s)\n");
  cli_out_free(&o);
  json_t *t = cli_show_json(env, f2);
  assert_string_equal(status_of(t), "PENDING");
  assert_int_equal(cli_jint(t, "attempts"), 0); /* a fresh budget */
  json_decref(t);

  run_ok(env, "worker", "--burst", NULL);
  o = cli_run(env, "result", f2, NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "fixed\n");
  cli_out_free(&o);
  o = cli_run(env, "result", f1, NULL);
  assert_int_equal(o.status, 0);
  cli_out_free(&o);

  /* One by id: a cancelled task comes back too. */
  char *later = cli_enqueue(env, "--delay", "1h", "--", "true", NULL);
  run_ok(env, "cancel", later, NULL);
  o = cli_run(env, "retry", later, NULL);
  assert_int_equal(o.status, 0);
  assert_int_equal(strncmp(o.out, later, strlen(later)), 0);
  assert_string_equal(o.out + strlen(later), "\n");
  cli_out_free(&o);
  t = cli_show_json(env, later);
  assert_string_equal(status_of(t), "PENDING");
  json_decref(t);
  o = cli_run(env, "retry", "01a2287f-0000-7000-8000-000000000000", NULL);
  assert_int_equal(o.status, 3);
  cli_out_free(&o);
  free(f1);
  free(f2);
  free(fine);
  free(later);
}

static void test_delete_removes_a_finished_task_and_refuses_a_pending_one(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--delay", "1h", "--", "true", NULL);
  cli_out_t o = cli_run(env, "delete", id, NULL);
  assert_int_equal(o.status, 1);
  assert_non_null(strstr(o.err, "PENDING: cancel it first"));
  cli_out_free(&o);
  run_ok(env, "cancel", id, NULL);
  run_ok(env, "delete", id, NULL);
  o = cli_run(env, "show", id, NULL);
  assert_int_equal(o.status, 3);
  cli_out_free(&o);
  o = cli_run(env, "delete", id, NULL);
  assert_int_equal(o.status, 3);
  cli_out_free(&o);
  free(id);
}

static int purge_expired_removed_one(const cli_env_t *env, const void *arg) {
  (void)arg;
  cli_out_t o = cli_run(env, "purge", "--expired", "--json", NULL);
  assert_int_equal(o.status, 0);
  json_t *j = cli_json(&o);
  json_int_t tasks = cli_jint(j, "purged_tasks");
  json_decref(j);
  cli_out_free(&o);
  assert_true(tasks <= 1);
  return tasks == 1;
}

static void test_purge_expired_removes_tasks_past_their_ttl(void **state) {
  cli_env_t *env = *state;
  char *done = cli_enqueue(env, "--", "true", NULL);
  char *waiting = cli_enqueue(env, "--delay", "1h", "--", "true", NULL);
  run_ok(env, "worker", "--burst", NULL);
  /* Kept for a week by default: nothing goes. */
  cli_out_t o = cli_run(env, "purge", "--expired", NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "purged 0 task(s) and 0 result(s)\n");
  cli_out_free(&o);
  /* With a TTL of 1s the finished task goes once it is a second old; the
   * pending one never does. */
  setenv("OMNIQ_TASK_TTL", "1", 1);
  cli_wait_for(purge_expired_removed_one, env, NULL, "purge --expired to remove the task");
  unsetenv("OMNIQ_TASK_TTL");
  o = cli_run(env, "show", done, NULL);
  assert_int_equal(o.status, 3);
  cli_out_free(&o);
  json_t *t = cli_show_json(env, waiting);
  assert_string_equal(status_of(t), "PENDING");
  json_decref(t);
  free(done);
  free(waiting);
}

/* ---- pause and resume ------------------------------------------------------------ */

static void test_pause_and_resume_are_seen_by_a_running_worker_in_another_process(
    void **state) {
  cli_env_t *env = *state;
  pid_t w = cli_start_worker(env, "jobs,other");
  /* The worker is up and serving "jobs" before the pause. */
  char *first = cli_enqueue(env, "--queue", "jobs", "--", "true", NULL);
  run_ok(env, "result", "--wait", "30s", first, NULL);

  run_ok(env, "pause", "jobs", NULL);
  run_ok(env, "pause", "jobs", NULL); /* idempotent */
  char *held = cli_enqueue(env, "--queue", "jobs", "--priority", "10", "--", "true", NULL);
  char *passes = cli_enqueue(env, "--queue", "other", "--", "true", NULL);
  /* The worker claims by priority across its queues: once the later, lower
   * task of the other queue has run, the paused one was passed over. */
  run_ok(env, "result", "--wait", "30s", passes, NULL);
  json_t *t = cli_show_json(env, held);
  assert_string_equal(status_of(t), "PENDING");
  json_decref(t);
  cli_out_t o = cli_run(env, "stats", "--json", NULL);
  assert_int_equal(o.status, 0);
  json_t *st = cli_json(&o);
  cli_out_free(&o);
  json_t *jobs = json_array_get(json_object_get(st, "queues"), 0);
  assert_string_equal(cli_jstr(jobs, "name"), "jobs");
  assert_true(json_is_true(json_object_get(jobs, "paused")));
  assert_int_equal(cli_jint(json_object_get(jobs, "counts"), "PENDING"), 1);
  json_decref(st);

  run_ok(env, "resume", "jobs", NULL);
  run_ok(env, "result", "--wait", "30s", held, NULL);
  cli_stop_worker(env, w);
  free(first);
  free(held);
  free(passes);
}

/* ---- stats ------------------------------------------------------------------------- */

static json_t *queue_named(json_t *stats, const char *name) {
  size_t i;
  json_t *q;
  json_array_foreach(json_object_get(stats, "queues"), i, q) {
    if (strcmp(cli_jstr(q, "name"), name) == 0) return q;
  }
  fail_msg("stats has no queue '%s'", name);
  return NULL;
}

static void test_stats_json_counts_waits_and_runs_per_queue_and_in_total(void **state) {
  cli_env_t *env = *state;
  char *late = cli_enqueue(env, "--queue", "late", "--at", "2020-01-01T00:00:00Z", "--", "true",
                           NULL);
  char *later = cli_enqueue(env, "--queue", "late", "--delay", "1h", "--", "true", NULL);
  char *good = cli_enqueue(env, "--queue", "work", "--", "true", NULL);
  char *bad = cli_enqueue(env, "--queue", "work", "--retries", "2", "--", "false", NULL);
  /* A worker that stays up, so the retry of "false" runs whenever it is due. */
  pid_t w = cli_start_worker(env, "work");
  run_ok(env, "result", "--wait", "30s", good, NULL);
  cli_out_t waited = cli_run(env, "result", "--wait", "30s", bad, NULL);
  assert_int_equal(waited.status, 1); /* failed, twice */
  cli_out_free(&waited);
  cli_stop_worker(env, w);
  int64_t before = cli_now();
  cli_out_t o = cli_run(env, "stats", "--json", NULL);
  assert_int_equal(o.status, 0);
  json_t *st = cli_json(&o);
  cli_out_free(&o);
  assert_int_equal(json_array_size(json_object_get(st, "queues")), 2);

  json_t *q = queue_named(st, "late");
  assert_int_equal(cli_jint(json_object_get(q, "counts"), "PENDING"), 2);
  /* Due since 2020: it has waited at least that long. */
  assert_true(cli_jint(q, "oldest_due_ms") >= before - cli_time("2020-01-01T00:00:00Z") - 60000);
  assert_false(json_is_true(json_object_get(q, "paused")));

  q = queue_named(st, "work");
  json_t *counts = json_object_get(q, "counts"), *runs = json_object_get(q, "runs");
  assert_int_equal(cli_jint(counts, "SUCCESS"), 1);
  assert_int_equal(cli_jint(counts, "FAILED"), 1);
  assert_int_equal(cli_jint(q, "oldest_due_ms"), 0);
  assert_int_equal(cli_jint(runs, "succeeded"), 1);
  assert_int_equal(cli_jint(runs, "retried"), 1); /* the first run of "false" */
  assert_int_equal(cli_jint(runs, "failed"), 1);
  assert_int_equal(cli_jint(runs, "lost"), 0);

  json_t *totals = json_object_get(st, "totals");
  assert_int_equal(cli_jint(json_object_get(totals, "counts"), "PENDING"), 2);
  assert_int_equal(cli_jint(json_object_get(totals, "counts"), "SUCCESS"), 1);
  assert_int_equal(cli_jint(json_object_get(totals, "runs"), "succeeded"), 1);
  json_decref(st);

  /* The text form: a row per queue and the totals. */
  o = cli_run(env, "stats", NULL);
  assert_int_equal(o.status, 0);
  assert_non_null(strstr(o.out, "QUEUE"));
  assert_non_null(strstr(o.out, "\nlate "));
  assert_non_null(strstr(o.out, "\nwork "));
  assert_non_null(strstr(o.out, "\n(all) "));
  cli_out_free(&o);
  free(late);
  free(later);
  free(good);
  free(bad);
}

static int two_refreshes(const cli_env_t *env, const void *arg) {
  (void)arg;
  return cli_count_lines(env, "stats.log") >= 2;
}

static void test_stats_watch_refreshes_until_sigterm(void **state) {
  cli_env_t *env = *state;
  char *id = cli_enqueue(env, "--", "true", NULL);
  pid_t p = cli_start(env, "stats.log", "stats", "--watch", "--every", "50ms", "--json", NULL);
  cli_wait_for(two_refreshes, env, NULL, "two refreshes of stats --watch");
  assert_int_equal(cli_stop(env, p, SIGTERM), 0);
  char *log = cli_read_file(env, "stats.log");
  cli_out_t lines = {0, log, NULL};
  json_t *docs = cli_json_lines(&lines);
  assert_true(json_array_size(docs) >= 2);
  json_t *q = json_array_get(json_object_get(json_array_get(docs, 1), "queues"), 0);
  assert_int_equal(cli_jint(json_object_get(q, "counts"), "PENDING"), 1);
  json_decref(docs);
  free(log);
  free(id);
}

/* ---- the worker's per-child limits ----------------------------------------------------- */

/* Runs two tasks on one slot in process isolation and returns 1 if the
 * child that ran them was the same process. Each command prints its
 * supervisor's parent: the child it ran in. */
static int same_child_ran_both(cli_env_t *env, const char *max_tasks) {
  const char *script = "read -r pid comm state ppid rest < /proc/$PPID/stat; echo $ppid";
  char *a = cli_enqueue(env, "--shell", script, NULL), *b = cli_enqueue(env, "--shell", script, NULL);
  /* A pool that stays up (a --burst worker starts its children afresh for
   * each task it takes). */
  char log[64];
  snprintf(log, sizeof log, "worker-%s.log", max_tasks); /* one log per worker of the test */
  pid_t w = cli_start(env, log, "worker", "--poll", "20ms", "-c", "1", "--isolation", "process",
                      "--max-tasks-per-child", max_tasks, NULL);
  cli_wait_for_log(env, log, "worker.started");
  cli_out_t oa = cli_run(env, "result", "--wait", "30s", a, NULL);
  cli_out_t ob = cli_run(env, "result", "--wait", "30s", b, NULL);
  assert_int_equal(cli_stop(env, w, SIGTERM), 0);
  assert_int_equal(oa.status, 0);
  assert_int_equal(ob.status, 0);
  assert_true(atoi(oa.out) > 1);
  int same = strcmp(oa.out, ob.out) == 0;
  cli_out_free(&oa);
  cli_out_free(&ob);
  free(a);
  free(b);
  return same;
}

static void test_max_tasks_per_child_replaces_the_child(void **state) {
  cli_env_t *env = *state;
  assert_true(same_child_ran_both(env, "0"));  /* 0 = never replaced */
  assert_false(same_child_ran_both(env, "1")); /* a fresh child for each task */
}

static void test_limits_reach_the_library_and_need_process_isolation(void **state) {
  cli_env_t *env = *state;
  static const char *const limits[][2] = {{"--memory-limit", "64M"},
                                          {"--cpu-limit", "10s"},
                                          {"--files-limit", "16"},
                                          {"--max-tasks-per-child", "5"}};
  static const char *const fields[] = {"memory_limit_bytes", "cpu_limit_ms", "files_limit",
                                       "max_tasks_per_child"};
  for (size_t i = 0; i < 4; i++) {
    cli_out_t o = cli_run(env, "worker", "--burst", limits[i][0], limits[i][1], NULL);
    assert_int_equal(o.status, 2);
    if (strstr(o.err, fields[i]) == NULL) fail_msg("%s: %s", limits[i][0], o.err);
    cli_out_free(&o);
    o = cli_run(env, "worker", "--burst", "--isolation", "process", limits[i][0], limits[i][1],
                NULL);
    if (o.status != 0) fail_msg("%s in process isolation: exit %d: %s", limits[i][0], o.status, o.err);
    cli_out_free(&o);
  }
}

/* ---- exit codes of the new commands ------------------------------------------------------ */

static void test_storage_errors_exit_5(void **state) {
  cli_env_t *env = *state;
  char path[2048];
  const char *store = cli_not_a_store(env, path, sizeof path);
  static const char *const commands[][2] = {
      {"list", NULL}, {"stats", NULL}, {"pause", "q"}, {"retry", "--failed"}, {"purge", "--expired"}};
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    cli_out_t o = cli_run(env, commands[i][0], store, path, commands[i][1], NULL);
    if (o.status != 5 || strstr(o.err, "cannot open the store") == NULL)
      fail_msg("omniq %s: exit %d: %s", commands[i][0], o.status, o.err);
    cli_out_free(&o);
  }
}

int main(int argc, char **argv) {
  void *backend = (void *)cli_backend_arg(argc, argv);
#define T(fn) cmocka_unit_test_prestate_setup_teardown(fn, cli_setup, cli_teardown, backend)
  const struct CMUnitTest tests[] = {
      T(test_cron_task_shows_its_next_match_as_eta),
      T(test_unique_key_refuses_a_second_task_until_the_first_is_gone),
      T(test_list_json_pages_and_filters),
      T(test_retry_failed_brings_failures_back),
      T(test_delete_removes_a_finished_task_and_refuses_a_pending_one),
      T(test_purge_expired_removes_tasks_past_their_ttl),
      T(test_pause_and_resume_are_seen_by_a_running_worker_in_another_process),
      T(test_stats_json_counts_waits_and_runs_per_queue_and_in_total),
      T(test_stats_watch_refreshes_until_sigterm),
      T(test_max_tasks_per_child_replaces_the_child),
      T(test_limits_reach_the_library_and_need_process_isolation),
      T(test_storage_errors_exit_5),
  };
#undef T
  return cmocka_run_group_tests_name(backend, tests, NULL, NULL);
}
