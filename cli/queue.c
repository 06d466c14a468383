/* SPDX-License-Identifier: MIT */
/* omniq pause QUEUE / omniq resume QUEUE: stops and restarts claims from a
 * queue for every worker sharing the store (omniq_queue_pause/resume).
 * Enqueue still works while a queue is paused, and running tasks finish.
 * Both are idempotent. */
#include "cli.h"

static const struct option options[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};

static int run_queue(cli_t *cli, const cli_command_t *cmd, int argc, char **argv,
                     int (*apply)(omniq_t *, const char *)) {
  omniq_t *oq;
  int code;
  if (cli_getopt(cli, cmd, argc, argv, ":", options) != -1) return cli->exit_code;
  if (optind >= argc) return cli_usage(cli, "missing queue name");
  if (optind + 1 < argc) return cli_usage(cli, "unexpected argument '%s'", argv[optind + 1]);
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;
  int rc = apply(oq, argv[optind]);
  if (rc != OMNIQ_OK) code = cli_fail_call(cli, oq, rc, "cannot change the queue", NULL);
  omniq_close(oq);
  return code;
}

static int run_pause(cli_t *cli, int argc, char **argv) {
  return run_queue(cli, &cli_cmd_pause, argc, argv, omniq_queue_pause);
}

static int run_resume(cli_t *cli, int argc, char **argv) {
  return run_queue(cli, &cli_cmd_resume, argc, argv, omniq_queue_resume);
}

const cli_command_t cli_cmd_pause = {
    "pause", "[OPTIONS] QUEUE",
    "Pause a queue: no worker starts its tasks until it is resumed.", "", 0, run_pause};
const cli_command_t cli_cmd_resume = {
    "resume", "[OPTIONS] QUEUE", "Resume a paused queue.", "", 0, run_resume};
