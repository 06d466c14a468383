/* SPDX-License-Identifier: MIT */
/* omniq cancel ID: PENDING or RUNNING -> CANCELLED. A running command is
 * stopped by its worker (its whole process group) once the worker learns
 * of the cancel: at once for a worker on the same handle, otherwise at its
 * next lease extension (within OMNIQ_LEASE / 3). Exit 1 if the task has
 * already finished, 3 if there is no such task. */
#include "cli.h"

static const struct option options[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};

static int run(cli_t *cli, int argc, char **argv) {
  const char *id;
  omniq_t *oq;
  int code;
  if (cli_getopt(cli, &cli_cmd_cancel, argc, argv, ":", options) != -1) return cli->exit_code;
  if (cli_one_id(cli, argc, argv, &id) != 0) return cli->exit_code;
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;
  int rc = omniq_cancel(oq, id);
  if (rc == OMNIQ_ESTATE)
    code = cli_error(cli, CLI_EXIT_FAILED, "task %s has already finished (%s)", id,
                     cli_status_now(oq, id));
  else if (rc != OMNIQ_OK)
    code = cli_fail_call(cli, oq, rc, "cannot cancel", id);
  omniq_close(oq);
  return code;
}

const cli_command_t cli_cmd_cancel = {
    "cancel", "[OPTIONS] ID",
    "Cancel a pending or running task (a running command is stopped).", "", 0, run};
