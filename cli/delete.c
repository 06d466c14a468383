/* SPDX-License-Identifier: MIT */
/* omniq delete ID: removes a finished task (SUCCESS, FAILED or CANCELLED)
 * and its result, and releases its unique key (omniq_delete). Exit 1 for a
 * PENDING or RUNNING task (cancel it first), 3 if there is no such task. */

#include "cli.h"

static const struct option options[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};

static int run(cli_t *cli, int argc, char **argv) {
  const char *id;
  omniq_t *oq;
  int code;
  if (cli_getopt(cli, &cli_cmd_delete, argc, argv, ":", options) != -1) return cli->exit_code;
  if (cli_one_id(cli, argc, argv, &id) != 0) return cli->exit_code;
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;
  int rc = omniq_delete(oq, id);
  if (rc == OMNIQ_ESTATE)
    code = cli_error(cli, CLI_EXIT_FAILED, "task %s is %s: cancel it first", id,
                     cli_status_now(oq, id));
  else if (rc != OMNIQ_OK)
    code = cli_fail_call(cli, oq, rc, "cannot delete", id);
  omniq_close(oq);
  return code;
}

const cli_command_t cli_cmd_delete = {
    "delete", "[OPTIONS] ID", "Delete a finished task and its result.", "", 0, run};
