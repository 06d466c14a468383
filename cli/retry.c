/* SPDX-License-Identifier: MIT */
/* omniq retry ID | --failed [--queue Q]: runs failed tasks again.
 *
 * One task: FAILED or CANCELLED -> PENDING, due now, with a fresh budget
 * (omniq_retry). Exit 1 if the task is in another status or its unique key
 * is now held by another task, 3 if there is no such task.
 * --failed: every FAILED task, of one queue with --queue
 * (omniq_retry_many); prints how many. Cancelled tasks are left alone: a
 * person cancelled them. */
#include <stdio.h>

#include "cli.h"
#include "output.h"

enum { OPT_FAILED = CLI_OPT_FIRST_FREE, OPT_QUEUE };

static const struct option options[] = {{"failed", no_argument, NULL, OPT_FAILED},
                                        {"queue", required_argument, NULL, OPT_QUEUE},
                                        CLI_COMMON_OPTIONS,
                                        {NULL, 0, NULL, 0}};

static int retry_one(cli_t *cli, omniq_t *oq, const char *id) {
  int rc = omniq_retry(oq, id, 0);
  if (rc == OMNIQ_ESTATE)
    return cli_error(cli, CLI_EXIT_FAILED,
                     "task %s is %s: only a failed or cancelled task is retried", id,
                     cli_status_now(oq, id));
  if (rc == OMNIQ_EEXISTS)
    return cli_error(cli, CLI_EXIT_FAILED, "task %s: %s", id, omniq_errmsg(oq));
  if (rc != OMNIQ_OK) return cli_fail_call(cli, oq, rc, "cannot retry", id);
  printf("%s\n", id);
  return CLI_EXIT_OK;
}

static int retry_failed(cli_t *cli, omniq_t *oq, const char *queue) {
  omniq_list_opts_t f;
  int64_t count = 0;
  omniq_list_opts_init(&f);
  f.statuses = OMNIQ_STATUS_BIT(OMNIQ_FAILED);
  f.queue = queue;
  int rc = omniq_retry_many(oq, &f, 0, &count);
  if (rc != OMNIQ_OK) return cli_fail_call(cli, oq, rc, "cannot retry", NULL);
  printf("retried %lld task(s)\n", (long long)count);
  return CLI_EXIT_OK;
}

static int run(cli_t *cli, int argc, char **argv) {
  const char *id = NULL, *queue = NULL;
  int failed = 0, c, code;
  omniq_t *oq;
  while ((c = cli_getopt(cli, &cli_cmd_retry, argc, argv, ":", options)) != -1) {
    if (c == OPT_FAILED)
      failed = 1;
    else if (c == OPT_QUEUE)
      queue = optarg;
    else
      return cli->exit_code;
  }
  if (!failed) {
    if (queue != NULL) return cli_usage(cli, "--queue goes with --failed");
    if (optind >= argc) return cli_usage(cli, "missing task ID (or --failed)");
    if (cli_one_id(cli, argc, argv, &id) != 0) return cli->exit_code;
  } else if (optind < argc) {
    return cli_usage(cli, "give a task ID or --failed, not both");
  }
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;
  code = failed ? retry_failed(cli, oq, queue) : retry_one(cli, oq, id);
  omniq_close(oq);
  return code;
}

const cli_command_t cli_cmd_retry = {
    "retry", "[OPTIONS] ID | --failed [--queue NAME]",
    "Run a failed or cancelled task again, or every failed task.",
    "  --failed            every FAILED task (cancelled ones stay)\n"
    "  --queue NAME        with --failed: only this queue's\n",
    0, run};
