/* SPDX-License-Identifier: MIT */
/* omniq show ID: everything stored about one task. Exit 3 if there is no
 * such task. */
#include <stdio.h>

#include "cli.h"
#include "duration.h"
#include "output.h"

static const struct option options[] = {CLI_JSON_OPTION, CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};

static int run(cli_t *cli, int argc, char **argv) {
  const char *id;
  omniq_t *oq;
  omniq_task_t *t = NULL;
  int code;
  if (cli_getopt(cli, &cli_cmd_show, argc, argv, ":", options) != -1) return cli->exit_code;
  if (cli_one_id(cli, argc, argv, &id) != 0) return cli->exit_code;
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;
  int rc = omniq_get_task(oq, id, &t);
  if (rc != OMNIQ_OK)
    code = cli_fail_call(cli, oq, rc, "cannot read the task", id);
  else if (!cli->json)
    cli_print_task(t, cli_now_ms());
  else if (cli_print_json(cli_task_json(t)) != 0)
    code = cli_error(cli, CLI_EXIT_STORAGE, "cannot write the task");
  omniq_task_free(t);
  omniq_close(oq);
  return code;
}

const cli_command_t cli_cmd_show = {
    "show", "[OPTIONS] ID",
    "Show a task: command or func and args, status, attempts, eta, last error.", "", 1, run};
