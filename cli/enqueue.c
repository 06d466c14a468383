/* SPDX-License-Identifier: MIT */
/* omniq enqueue: stores one task and prints its id.
 *
 * Three ways to say what runs, exactly one per call:
 *   -- CMD ARG...      a shell-command task; args = the argv vector, run by
 *                      execve with no shell in between, so nothing in ARG is
 *                      ever expanded or split;
 *   --shell 'STRING'   the same task with argv = ["/bin/sh", "-c", STRING]:
 *                      a shell only when asked for, and visible as such in
 *                      `omniq show`;
 *   --func NAME        a library task (a registered name or lib.so:symbol)
 *                      with --args (a JSON array) and --kwargs (an object).
 * Options stop at the first operand, so `omniq enqueue echo -n hi` stores
 * ["echo", "-n", "hi"] just like `omniq enqueue -- echo -n hi`. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "command_task.h"
#include "duration.h"

enum {
  OPT_DELAY = CLI_OPT_FIRST_FREE,
  OPT_AT,
  OPT_INTERVAL,
  OPT_RETRIES,
  OPT_TIMEOUT,
  OPT_QUEUE,
  OPT_PRIORITY,
  OPT_SHELL,
  OPT_FUNC,
  OPT_ARGS,
  OPT_KWARGS,
  OPT_CRON,
  OPT_UNIQUE,
  OPT_UNIQUE_FOR
};

static const struct option options[] = {
    {"delay", required_argument, NULL, OPT_DELAY},
    {"at", required_argument, NULL, OPT_AT},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"shell", required_argument, NULL, OPT_SHELL},
    {"func", required_argument, NULL, OPT_FUNC},
    {"args", required_argument, NULL, OPT_ARGS},
    {"kwargs", required_argument, NULL, OPT_KWARGS},
    {"cron", required_argument, NULL, OPT_CRON},
    {"unique", required_argument, NULL, OPT_UNIQUE},
    {"unique-for", required_argument, NULL, OPT_UNIQUE_FOR},
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0}};

typedef struct request {
  omniq_enqueue_opts_t opts;
  const char *shell, *func, *args, *kwargs;
  int has_delay, has_unique_for;
} request_t;

/* Checks that text is JSON of the wanted kind; reports and returns -1 if not. */
static int check_json(cli_t *cli, const char *option, const char *text, int want_array) {
  json_error_t err;
  json_t *j = json_loads(text, 0, &err);
  int ok = want_array ? json_is_array(j) : json_is_object(j);
  json_decref(j);
  if (ok) return 0;
  if (j == NULL)
    cli->exit_code = cli_usage(cli, "%s: not JSON: %s", option, err.text);
  else
    cli->exit_code = cli_usage(cli, "%s: must be a JSON %s", option,
                               want_array ? "array ([1, \"a\"])" : "object ({\"k\": 1})");
  return -1;
}

static int parse(cli_t *cli, int argc, char **argv, request_t *rq) {
  long n;
  int c;
  char why[200];
  while ((c = cli_getopt(cli, &cli_cmd_enqueue, argc, argv, "+:", options)) != -1) {
    switch (c) {
    case OPT_DELAY:
      if (cli_opt_duration(cli, "--delay", optarg, &rq->opts.delay_ms)) return -1;
      rq->has_delay = 1;
      break;
    case OPT_AT:
      if (cli_parse_time(optarg, &rq->opts.eta_ms, why, sizeof why) != 0) {
        cli->exit_code = cli_usage(cli, "--at: %s", why);
        return -1;
      }
      break;
    case OPT_INTERVAL:
      if (cli_opt_duration(cli, "--interval", optarg, &rq->opts.interval_ms)) return -1;
      break;
    case OPT_RETRIES:
      if (cli_opt_int(cli, "--retries", optarg, 0, 1000000, &n)) return -1;
      rq->opts.max_retries = (int)n;
      break;
    case OPT_TIMEOUT:
      if (cli_opt_duration(cli, "--timeout", optarg, &rq->opts.timeout_ms)) return -1;
      break;
    case OPT_QUEUE:
      rq->opts.queue = optarg;
      break;
    case OPT_PRIORITY:
      if (cli_opt_int(cli, "--priority", optarg, -1000000, 1000000, &n)) return -1;
      rq->opts.priority = (int)n;
      break;
    case OPT_SHELL:
      rq->shell = optarg;
      break;
    case OPT_FUNC:
      rq->func = optarg;
      break;
    case OPT_ARGS:
      if (check_json(cli, "--args", optarg, 1)) return -1;
      rq->args = optarg;
      break;
    case OPT_KWARGS:
      if (check_json(cli, "--kwargs", optarg, 0)) return -1;
      rq->kwargs = optarg;
      break;
    case OPT_CRON:
      rq->opts.cron = optarg;
      break;
    case OPT_UNIQUE:
      rq->opts.unique_key = optarg;
      break;
    case OPT_UNIQUE_FOR:
      if (cli_opt_duration(cli, "--unique-for", optarg, &rq->opts.unique_for_ms)) return -1;
      rq->has_unique_for = 1;
      break;
    default:
      return -1;
    }
  }
  int has_cmd = optind < argc;
  if (rq->has_delay && rq->opts.eta_ms > 0) {
    cli->exit_code = cli_usage(cli, "give --delay or --at, not both");
    return -1;
  }
  if (has_cmd + (rq->shell != NULL) + (rq->func != NULL) != 1) {
    cli->exit_code =
        has_cmd + (rq->shell != NULL) + (rq->func != NULL) == 0
            ? cli_usage(cli, "missing command: give -- CMD ARG..., --shell 'STRING' or --func NAME")
            : cli_usage(cli, "give only one of -- CMD ARG..., --shell 'STRING' and --func NAME");
    return -1;
  }
  if (rq->opts.cron != NULL && rq->opts.interval_ms > 0) {
    cli->exit_code = cli_usage(cli, "give --interval or --cron, not both");
    return -1;
  }
  if (rq->has_unique_for && rq->opts.unique_key == NULL) {
    cli->exit_code = cli_usage(cli, "--unique-for goes with --unique");
    return -1;
  }
  if (rq->func == NULL && (rq->args != NULL || rq->kwargs != NULL)) {
    cli->exit_code = cli_usage(cli, "--args and --kwargs go with --func");
    return -1;
  }
  if (rq->func != NULL && strcmp(rq->func, CLI_COMMAND_FUNC) == 0) {
    cli->exit_code = cli_usage(cli, "--func %s is reserved: use -- CMD ARG...", CLI_COMMAND_FUNC);
    return -1;
  }
  return 0;
}

static int run(cli_t *cli, int argc, char **argv) {
  request_t rq = {.shell = NULL};
  char id[OMNIQ_ID_SIZE], why[200];
  char *args = NULL;
  omniq_t *oq;
  omniq_enqueue_opts_init(&rq.opts);
  if (parse(cli, argc, argv, &rq) != 0) return cli->exit_code;

  const char *func = rq.func;
  if (func == NULL) {
    func = CLI_COMMAND_FUNC;
    char *shell_argv[] = {"/bin/sh", "-c", (char *)rq.shell};
    args = rq.shell != NULL ? cli_command_args(shell_argv, 3, why, sizeof why)
                            : cli_command_args(argv + optind, argc - optind, why, sizeof why);
    if (args == NULL) return cli_usage(cli, "command: %s", why);
  }
  int code = cli_open(cli, &oq);
  if (code == CLI_EXIT_OK) {
    int rc = omniq_enqueue(oq, func, func == rq.func ? rq.args : args,
                           func == rq.func ? rq.kwargs : NULL, &rq.opts, id);
    if (rc == OMNIQ_OK)
      printf("%s\n", id);
    else if (rc == OMNIQ_EEXISTS)
      /* Not an error of the command line: the queue already has the task. */
      code = cli_error(cli, CLI_EXIT_FAILED, "not enqueued: task %s of queue %s holds key '%s'",
                       id, rq.opts.queue != NULL ? rq.opts.queue : OMNIQ_DEFAULT_QUEUE,
                       rq.opts.unique_key);
    else
      code = cli_fail_call(cli, oq, rc, "cannot enqueue", NULL);
    omniq_close(oq);
  }
  free(args);
  return code;
}

const cli_command_t cli_cmd_enqueue = {
    "enqueue",
    "[OPTIONS] -- CMD [ARG...] | --shell 'STRING' | --func NAME [--args JSON] [--kwargs JSON]",
    "Enqueue a shell-command task (argv, no shell) or a library task; print its id.",
    "  --delay DURATION    run no sooner than this from now (10s, 5m, 1h30m)\n"
    "  --at TIME           run no sooner than this RFC 3339 time (2026-12-01T08:00:00Z)\n"
    "  --interval DURATION run again this long after each run, until cancelled\n"
    "  --cron 'EXPR'       run at each match of a five-field cron expression (UTC),\n"
    "                      until cancelled: '0 3 * * *' is 03:00 every day\n"
    "  --retries N         runs allowed in all, first included (default\n"
    "                      OMNIQ_DEFAULT_MAX_RETRIES, or " CLI_STR(OMNIQ_DEFAULT_MAX_RETRIES)
    "); 0 and 1 both mean one run\n"
    "  --timeout DURATION  stop a run after this long; 0 = never (default\n"
    "                      OMNIQ_DEFAULT_TIMEOUT, or " CLI_STR(OMNIQ_DEFAULT_TIMEOUT_MS) "ms)\n"
    "  --queue NAME        queue (default: " OMNIQ_DEFAULT_QUEUE ")\n"
    "  --priority N        higher runs first (default 0)\n"
    "  --unique KEY        enqueue nothing (exit 1) while a task of the queue holds KEY\n"
    "  --unique-for D      keep KEY held this long after its task finished (default 0)\n"
    "  --shell 'STRING'    run STRING with /bin/sh -c instead of an argv\n"
    "  --func NAME         a library task: a registered handler or lib.so:symbol\n"
    "  --args JSON         its positional arguments, a JSON array (default [])\n"
    "  --kwargs JSON       its keyword arguments, a JSON object (default {})\n",
    0,
    run};
