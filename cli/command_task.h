/* SPDX-License-Identifier: MIT */
/* Shell-command tasks: what `omniq enqueue -- CMD ARG...` stores and the
 * handler `omniq worker` registers to run it. */
#ifndef OMNIQ_CLI_COMMAND_TASK_H
#define OMNIQ_CLI_COMMAND_TASK_H

#include <stdint.h>

#include "omniq.h"

/* The reserved handler name. args is the argv vector (a JSON array of
 * strings, argv[0] first); kwargs must be {} (kept for later options). */
#define CLI_COMMAND_FUNC "omniq.command"

/* Bytes of stdout and of stderr kept in a command's result (the last ones). */
#define CLI_TAIL_BYTES 16384
/* Between SIGTERM and SIGKILL when a command is stopped. */
#define CLI_DEFAULT_KILL_AFTER_MS 5000
/* Used when the worker itself has no PATH. */
#define CLI_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
/* The variables a command gets from the worker's environment, if set. */
#define CLI_PASSED_ENV "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"

typedef struct cli_command_config {
  char **env;            /* "NAME=value" strings every command gets; NULL-terminated */
  int64_t kill_after_ms; /* SIGTERM -> SIGKILL grace */
} cli_command_config_t;

/* Builds the base environment: CLI_PASSED_ENV from this process, then each
 * of extra (n entries): "NAME" passes NAME through if set, "NAME=value"
 * sets it. Returns 0, or -1 with a reason in why (bad name, no memory).
 * Free with cli_command_config_free. */
int cli_command_config_init(cli_command_config_t *cfg, char *const *extra, int n, char *why,
                            size_t whylen);
void cli_command_config_free(cli_command_config_t *cfg);

/* The handler itself (userdata: the cli_command_config_t), for a caller
 * that wraps it, as `omniq serve --worker` does to time each run. */
int cli_command_handler(omniq_job_t *job, void *userdata);

/* Registers CLI_COMMAND_FUNC on oq; cfg is borrowed until oq is closed. */
int cli_command_register(omniq_t *oq, const cli_command_config_t *cfg);

/* The stored args for a command: argv as a JSON array. Yours: free(). NULL
 * when out of memory or an argument is not UTF-8 (why says which). */
char *cli_command_args(char *const *argv, int argc, char *why, size_t whylen);

#endif
