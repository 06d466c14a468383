/* SPDX-License-Identifier: MIT */
/* omniq result ID [--wait DURATION]: a task's outcome.
 *
 * Exit code: 0 SUCCESS; 1 FAILED, CANCELLED, or no result yet; 3 no such
 * task; 4 --wait ran out. The library answers "not found" both for an
 * unknown id and for a task without a result, so the task is looked up to
 * tell the two apart (and to name its status in the message).
 *
 * Text output is the answer a script wants: for a command task that
 * succeeded, its stdout tail on stdout and its stderr tail on stderr, so
 * `out=$(omniq result --wait 1m "$id")` reads like running the command; for
 * a library task, its JSON value; for a failure, the status and the error.
 * --json prints the whole result. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "command_task.h"
#include "duration.h"
#include "output.h"

static const struct option options[] = {
    {"wait", required_argument, NULL, 'w'}, CLI_JSON_OPTION, CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0}};

/* Writes the string member key of a command's value to f, NUL bytes and all. */
static void write_member(json_t *value, const char *key, FILE *f) {
  json_t *s = json_object_get(value, key);
  if (json_is_string(s)) fwrite(json_string_value(s), 1, json_string_length(s), f);
}

static void print_text(omniq_t *oq, const omniq_result_t *r) {
  const omniq_task_error_t *e = omniq_result_error(r);
  if (omniq_result_status(r) != OMNIQ_SUCCESS) {
    printf("%s after %d attempt(s)\n", omniq_status_name(omniq_result_status(r)),
           omniq_result_attempts(r));
    if (e != NULL) cli_print_error(stdout, e);
    return;
  }
  omniq_task_t *t = NULL;
  int command = omniq_get_task(oq, omniq_result_task_id(r), &t) == OMNIQ_OK &&
                strcmp(omniq_task_func(t), CLI_COMMAND_FUNC) == 0;
  omniq_task_free(t);
  json_t *value = command ? json_loads(omniq_result_value(r), 0, NULL) : NULL;
  if (json_is_object(value)) {
    write_member(value, "stdout", stdout);
    fflush(stdout);
    write_member(value, "stderr", stderr);
  } else {
    printf("%s\n", omniq_result_value(r) != NULL ? omniq_result_value(r) : "null");
  }
  json_decref(value);
}

/* No result: tells "unknown task" from "not finished" (rc is what
 * omniq_get_result returned: OMNIQ_ENOTFOUND or OMNIQ_ETIMEDOUT). */
static int no_result(cli_t *cli, omniq_t *oq, const char *id, int rc, int64_t wait_ms) {
  omniq_task_t *t = NULL;
  char d[CLI_DURATION_SIZE];
  int trc = omniq_get_task(oq, id, &t);
  if (trc != OMNIQ_OK) return cli_fail_call(cli, oq, trc, "cannot read the task", id);
  const char *status = omniq_status_name(omniq_task_status(t));
  omniq_task_free(t);
  if (rc == OMNIQ_ETIMEDOUT) {
    cli_format_duration(wait_ms, d);
    return cli_error(cli, CLI_EXIT_TIMEOUT, "no result for %s within %s (task is %s)", id, d,
                     status);
  }
  return cli_error(cli, CLI_EXIT_FAILED, "task %s has no result yet (task is %s)", id, status);
}

static int run(cli_t *cli, int argc, char **argv) {
  int64_t wait_ms = 0;
  const char *id;
  omniq_t *oq;
  omniq_result_t *r = NULL;
  int c, code;
  while ((c = cli_getopt(cli, &cli_cmd_result, argc, argv, ":w:", options)) != -1) {
    if (c != 'w' || cli_opt_duration(cli, "--wait", optarg, &wait_ms) != 0) return cli->exit_code;
  }
  if (cli_one_id(cli, argc, argv, &id) != 0) return cli->exit_code;
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;

  int rc = omniq_get_result(oq, id, (double)wait_ms / 1000.0, &r);
  if (rc == OMNIQ_ENOTFOUND || rc == OMNIQ_ETIMEDOUT) {
    code = no_result(cli, oq, id, rc, wait_ms);
  } else if (rc != OMNIQ_OK) {
    code = cli_fail_call(cli, oq, rc, "cannot read the result", id);
  } else {
    code = omniq_result_status(r) == OMNIQ_SUCCESS ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    if (cli->json) {
      if (cli_print_json(cli_result_json(r)) != 0)
        code = cli_error(cli, CLI_EXIT_STORAGE, "cannot write the result");
    } else {
      print_text(oq, r);
    }
  }
  omniq_result_free(r);
  omniq_close(oq);
  return code;
}

const cli_command_t cli_cmd_result = {
    "result",
    "[OPTIONS] ID",
    "Print a task's result: a command's output, a value, or the error.",
    "  -w, --wait DURATION  wait up to this long for the result (default: do not wait)\n",
    1,
    run};
