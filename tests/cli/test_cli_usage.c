/* SPDX-License-Identifier: MIT */
/* The command line itself: usage errors, --help, the man page and the
 * bash completion. Every usage error exits 2 with one line on stderr and
 * nothing on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "omniq.h"

/* The subcommands `omniq --help` must list: exactly the ones that work. */
static const char *const commands[] = {"enqueue", "worker", "result", "show",
                                       "list",    "cancel", "retry",  "delete",
                                       "pause",   "resume", "stats",  "purge",
                                       "serve"};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static int count_char(const char *s, char c) {
  int n = 0;
  for (; *s != '\0'; s++) n += *s == c;
  return n;
}

static void test_every_usage_error_exits_2_with_one_line(void **state) {
  cli_env_t *env = *state;
  static const struct {
    const char *argv[8];
    const char *says; /* part of the one line */
  } cases[] = {
      {{NULL}, "missing command"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"--bogus", "show"}, "unknown option '--bogus'"},
      {{"enqueue", "--bogus", "--", "true"}, "unknown option '--bogus'"},
      {{"worker", "-x"}, "unknown option '-x'"},
      {{"show", "--json=yes", "x"}, "option '--json' takes no value"},
      {{"result", "--wait"}, "option '--wait' needs a value"},
      {{"enqueue", "--delay", "10x", "--", "true"}, "--delay: '10x' needs a unit"},
      {{"enqueue", "--timeout", "soon", "--", "true"}, "--timeout: 'soon' is not a duration"},
      {{"result", "--wait", "5", "x"}, "--wait: '5' needs a unit"},
      {{"enqueue", "--at", "2026-02-30T00:00:00Z", "--", "true"}, "--at: "},
      {{"enqueue", "--at", "tomorrow", "--", "true"}, "not an RFC 3339 time"},
      {{"enqueue", "--delay", "1s", "--at", "2030-01-01T00:00:00Z", "--", "true"},
       "--delay or --at"},
      {{"enqueue"}, "missing command"},
      {{"enqueue", "--retries", "3"}, "missing command"},
      {{"enqueue", "--shell", "true", "--", "true"}, "only one of"},
      {{"enqueue", "--func", "f", "--args", "{"}, "--args: not JSON"},
      {{"enqueue", "--func", "f", "--kwargs", "[]"}, "--kwargs: must be a JSON object"},
      {{"enqueue", "--args", "[]", "--", "true"}, "go with --func"},
      {{"enqueue", "--retries", "-1", "--", "true"}, "--retries"},
      {{"worker", "-c", "0"}, "--concurrency"},
      {{"worker", "--isolation", "fiber"}, "--isolation"},
      {{"worker", "--env", "1BAD"}, "--env"},
      {{"result"}, "missing task ID"},
      {{"show", "a", "b"}, "unexpected argument 'b'"},
      {{"result", "not-an-id"}, "not-an-id"},
      {{"show", "../../etc/passwd"}, "etc/passwd"},
      {{"cancel", "01a2287f-0000-7000-8000-00000000000Z"}, "omniq cancel: "},
      {{"purge"}, "--older-than"},
      {{"purge", "--older-than", "-3d"}, "--older-than"},
      {{"purge", "--older-than", "1d", "--expired"}, "not both"},
      {{"enqueue", "--cron", "61 * * * *", "--", "true"}, "minute must be 0-59"},
      {{"enqueue", "--cron", "* * * * *", "--interval", "1h", "--", "true"}, "--interval or --cron"},
      {{"enqueue", "--unique-for", "1h", "--", "true"}, "--unique-for goes with --unique"},
      {{"worker", "--memory-limit", "6x"}, "--memory-limit: '6x' is not a size"},
      {{"worker", "--cpu-limit", "5"}, "--cpu-limit: '5' needs a unit"},
      {{"worker", "--files-limit", "-1"}, "--files-limit"},
      {{"worker", "--burst", "--max-tasks-per-child", "2"}, "max_tasks_per_child needs isolation"},
      {{"list", "--status", "bogus"}, "--status: 'BOGUS' is not one of"},
      {{"list", "--limit", "0"}, "--limit"},
      {{"list", "--limit", "1001"}, "--limit"},
      {{"list", "--cursor", "garbage"}, "cursor 'garbage'"},
      {{"list", "extra"}, "unexpected argument 'extra'"},
      {{"retry"}, "missing task ID"},
      {{"retry", "not-an-id"}, "'not-an-id' is not a task id"},
      {{"retry", "--queue", "q", "01a2287f-0000-7000-8000-000000000000"}, "--queue goes with --failed"},
      {{"retry", "--failed", "01a2287f-0000-7000-8000-000000000000"}, "not both"},
      {{"delete"}, "missing task ID"},
      {{"delete", "bad-id"}, "'bad-id' is not a task id"},
      {{"pause"}, "missing queue name"},
      {{"pause", "no spaces"}, "queue name"},
      {{"resume", "a", "b"}, "unexpected argument 'b'"},
      {{"stats", "--every", "0"}, "--every: must be more than 0"},
      {{"stats", "--every", "1x"}, "--every: '1x' needs a unit"},
      {{"stats", "--watch=1"}, "option '--watch' takes no value"},
      {{"serve", "--listen", "8080"}, "--listen: '8080' is not HOST:PORT"},
      {{"serve", "--listen", "example.com:80"}, "--listen: "},
      {{"serve", "--listen", "127.0.0.1:65536"}, "--listen: "},
      {{"serve", "--sample", "500ms"}, "--sample: must be from 1s to 5m"},
      {{"serve", "--worker", "-1"}, "--worker"},
      {{"serve", "--queues", "a,b"}, "--queues goes with --worker"},
      {{"serve", "extra"}, "unexpected argument 'extra'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cli_out_t o = cli_runv(env, (char *const *)cases[i].argv);
    const char *cmd = cases[i].argv[0] ? cases[i].argv[0] : "(none)";
    if (o.status != 2 || count_char(o.err, '\n') != 1 || strncmp(o.err, "omniq", 5) != 0 ||
        strstr(o.err, cases[i].says) == NULL || o.out[0] != '\0')
      fail_msg("case %zu (omniq %s %s): exit %d, stderr '%s', stdout '%s'", i, cmd,
               cases[i].argv[1] ? cases[i].argv[1] : "", o.status, o.err, o.out);
    cli_out_free(&o);
  }
}

static void test_help_lists_every_subcommand_and_each_has_help(void **state) {
  cli_env_t *env = *state;
  cli_out_t o = cli_run(env, "--help", NULL);
  assert_int_equal(o.status, 0);
  /* The command list: lines "  NAME  summary" between the header and the
   * blank line; exactly the expected names, in order. */
  const char *list = strstr(o.out, "Commands:\n\n");
  assert_non_null(list);
  list += strlen("Commands:\n\n");
  size_t n = 0;
  for (const char *line = list; *line == ' '; line = strchr(line, '\n') + 1, n++) {
    char name[32];
    assert_int_equal(sscanf(line, " %31s", name), 1);
    assert_true(n < NCOMMANDS);
    assert_string_equal(name, commands[n]);
  }
  assert_int_equal(n, NCOMMANDS);
  cli_out_free(&o);

  for (size_t i = 0; i < NCOMMANDS; i++) {
    char usage[64];
    o = cli_run(env, commands[i], "--help", NULL);
    assert_int_equal(o.status, 0);
    snprintf(usage, sizeof usage, "usage: omniq %s ", commands[i]);
    assert_non_null(strstr(o.out, usage));
    assert_non_null(strstr(o.out, "--base-dir"));
    cli_out_free(&o);
  }
  o = cli_run(env, "--version", NULL);
  assert_int_equal(o.status, 0);
  assert_string_equal(o.out, "omniq " OMNIQ_VERSION_STRING "\n");
  cli_out_free(&o);
}

/* Reads a command's output (shell pipeline) into a string; yours. */
static char *capture(const char *cmd, int *status) {
  FILE *p = popen(cmd, "r");
  char *buf = NULL;
  size_t len = 0;
  assert_non_null(p);
  FILE *mem = open_memstream(&buf, &len);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) fwrite(chunk, 1, n, mem);
  fclose(mem);
  int st = pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return buf;
}

static void test_man_page_renders_and_covers_every_subcommand(void **state) {
  (void)state;
  char cmd[2048];
  int status;
  if (OMNIQ_CLI_MAN[0] == '\0') skip(); /* built without scdoc */
  /* man -l renders a local file; plain text, wide, so names are not split. */
  snprintf(cmd, sizeof cmd, "MANWIDTH=200 MANPAGER=cat PAGER=cat man -l '%s' 2>&1",
           OMNIQ_CLI_MAN);
  char *page = capture(cmd, &status);
  if (status != 0) fail_msg("man -l failed (%d): %s", status, page);
  assert_non_null(strstr(page, "EXIT STATUS"));
  for (size_t i = 0; i < NCOMMANDS; i++) {
    char heading[64];
    snprintf(heading, sizeof heading, "omniq %s", commands[i]);
    if (strstr(page, heading) == NULL) fail_msg("the man page has no '%s'", heading);
  }
  free(page);
}

static void test_bash_completion_knows_every_subcommand_and_option(void **state) {
  cli_env_t *env = *state;
  char *script = NULL;
  FILE *f = fopen(OMNIQ_CLI_COMPLETION, "r");
  size_t len = 0;
  assert_non_null(f);
  assert_true(getdelim(&script, &len, '\0', f) > 0);
  fclose(f);
  for (size_t i = 0; i < NCOMMANDS; i++) {
    assert_non_null(strstr(script, commands[i]));
    /* Every long option its --help shows is offered. */
    cli_out_t o = cli_run(env, commands[i], "--help", NULL);
    for (char *p = strstr(o.out, "--"); p != NULL; p = strstr(p + 2, "--")) {
      char opt[40];
      if (sscanf(p, "%39[-a-z]", opt) != 1 || strlen(opt) < 3) continue;
      char want[48];
      snprintf(want, sizeof want, "%s ", opt);
      char want_end[48];
      snprintf(want_end, sizeof want_end, "%s'", opt);
      if (strstr(script, want) == NULL && strstr(script, want_end) == NULL)
        fail_msg("the completion for '%s' lacks %s", commands[i], opt);
    }
    cli_out_free(&o);
  }
  free(script);

  /* bash reads it and registers the function. */
  int status;
  char *out = capture("bash -c 'source \"" OMNIQ_CLI_COMPLETION "\" && complete -p omniq' 2>&1",
                      &status);
  if (status != 0 || strstr(out, "-F _omniq omniq") == NULL)
    fail_msg("bash cannot load the completion (%d): %s", status, out);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_every_usage_error_exits_2_with_one_line, cli_setup,
                                      cli_teardown),
      cmocka_unit_test_setup_teardown(test_help_lists_every_subcommand_and_each_has_help,
                                      cli_setup, cli_teardown),
      cmocka_unit_test(test_man_page_renders_and_covers_every_subcommand),
      cmocka_unit_test_setup_teardown(test_bash_completion_knows_every_subcommand_and_option,
                                      cli_setup, cli_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
