/* SPDX-License-Identifier: MIT */
/* omniq purge --older-than DURATION | --expired: keeps the store small.
 *
 * --older-than deletes results that finished longer ago than that (the
 * tasks themselves stay; omniq_purge_results). --expired runs retention
 * now, as a worker pool does once a minute by itself: finished tasks older
 * than OMNIQ_TASK_TTL go with their results (omniq_purge_expired), and
 * results older than OMNIQ_RESULT_TTL go (omniq_purge_expired_results).
 * Prints how many of each. */
#include <stdio.h>

#include "cli.h"
#include "duration.h"
#include "output.h"

enum { OPT_EXPIRED = CLI_OPT_FIRST_FREE };

static const struct option options[] = {
    {"older-than", required_argument, NULL, 'o'}, {"expired", no_argument, NULL, OPT_EXPIRED},
    CLI_JSON_OPTION, CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};

static int run(cli_t *cli, int argc, char **argv) {
  int64_t age = -1, results = 0, tasks = 0;
  int expired = 0, c, code, rc;
  omniq_t *oq;
  while ((c = cli_getopt(cli, &cli_cmd_purge, argc, argv, ":o:", options)) != -1) {
    if (c == OPT_EXPIRED)
      expired = 1;
    else if (c != 'o' || cli_opt_duration(cli, "--older-than", optarg, &age) != 0)
      return cli->exit_code;
  }
  if (optind < argc) return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
  if (age < 0 && !expired)
    return cli_usage(cli, "say what to purge: --older-than DURATION (as in 7d) or --expired");
  if (age >= 0 && expired) return cli_usage(cli, "give --older-than or --expired, not both");
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;
  if (expired) {
    rc = omniq_purge_expired(oq, &tasks);
    if (rc == OMNIQ_OK) rc = omniq_purge_expired_results(oq, &results);
  } else {
    rc = omniq_purge_results(oq, cli_now_ms() - age, &results);
  }
  if (rc != OMNIQ_OK)
    code = cli_fail_call(cli, oq, rc, "cannot purge", NULL);
  else if (cli->json)
    code = cli_print_json(json_pack("{s:I, s:I}", "purged", (json_int_t)results, "purged_tasks",
                                    (json_int_t)tasks)) == 0
               ? CLI_EXIT_OK
               : cli_error(cli, CLI_EXIT_STORAGE, "cannot write the count");
  else if (expired)
    printf("purged %lld task(s) and %lld result(s)\n", (long long)tasks, (long long)results);
  else
    printf("purged %lld result(s)\n", (long long)results);
  omniq_close(oq);
  return code;
}

const cli_command_t cli_cmd_purge = {
    "purge", "--older-than DURATION | --expired",
    "Delete old results, or run retention now (expired tasks and results).",
    "  --older-than DURATION  results finished more than this long ago (7d, 12h)\n"
    "  --expired              finished tasks older than OMNIQ_TASK_TTL (with their\n"
    "                         results) and results older than OMNIQ_RESULT_TTL\n",
    1, run};
