/* omniq purge --older-than DURATION: deletes results that finished longer
 * ago than that (the tasks themselves stay). Prints how many. */
#include <stdio.h>

#include "cli.h"
#include "duration.h"
#include "output.h"

static const struct option options[] = {
    {"older-than", required_argument, NULL, 'o'}, CLI_JSON_OPTION, CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0}};

static int run(cli_t *cli, int argc, char **argv) {
  int64_t age = -1, count = 0;
  omniq_t *oq;
  int c, code;
  while ((c = cli_getopt(cli, &cli_cmd_purge, argc, argv, ":o:", options)) != -1)
    if (c != 'o' || cli_opt_duration(cli, "--older-than", optarg, &age) != 0)
      return cli->exit_code;
  if (optind < argc) return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
  if (age < 0) return cli_usage(cli, "say what to purge: --older-than DURATION (as in 7d)");
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;
  int rc = omniq_purge_results(oq, cli_now_ms() - age, &count);
  if (rc != OMNIQ_OK)
    code = cli_fail_call(cli, oq, rc, "cannot purge", NULL);
  else if (cli->json)
    code = cli_print_json(json_pack("{s:I}", "purged", (json_int_t)count)) == 0
               ? CLI_EXIT_OK
               : cli_error(cli, CLI_EXIT_STORAGE, "cannot write the count");
  else
    printf("purged %lld result(s)\n", (long long)count);
  omniq_close(oq);
  return code;
}

const cli_command_t cli_cmd_purge = {
    "purge", "--older-than DURATION",
    "Delete the results of tasks that finished longer ago than DURATION.",
    "  --older-than DURATION  results finished more than this long ago (7d, 12h)\n", 1, run};
