/* SPDX-License-Identifier: MIT */
/* The omniq command: what every subcommand module shares.
 *
 * A subcommand is one file defining one cli_command_t named cli_cmd_<name>
 * and one line in commands.def; main.c builds its dispatch table and
 * `omniq --help` from that list, so a subcommand that is not listed there
 * does not exist and is never shown. The program uses omniq.h only. */
#ifndef OMNIQ_CLI_H
#define OMNIQ_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdint.h>

#include "omniq.h"

/* A default's value in help text, from the constant itself (so the two
 * cannot drift): "(default " CLI_STR(OMNIQ_DEFAULT_CONCURRENCY) ")". */
#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)

/* Exit codes, the same for every subcommand (docs/cli.md, omniq(1)). */
enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_FAILED = 1,   /* the task failed, was cancelled or has not finished; or the
                            task's state refused the request */
  CLI_EXIT_USAGE = 2,    /* bad command line, bad value, bad OMNIQ_* setting */
  CLI_EXIT_NOTFOUND = 3, /* no task with that id */
  CLI_EXIT_TIMEOUT = 4,  /* a --wait ran out */
  CLI_EXIT_STORAGE = 5   /* the store could not be opened, read or written */
};

typedef struct cli {
  const char *cmd;      /* the subcommand's name, for messages */
  const char *backend;  /* --backend, or NULL */
  const char *db;       /* --db, or NULL */
  const char *base_dir; /* --base-dir, or NULL */
  int json;             /* --json */
  int exit_code;        /* set by cli_getopt when it returns CLI_GETOPT_EXIT */
} cli_t;

typedef struct cli_command {
  const char *name;
  const char *synopsis; /* what follows the name in a usage line */
  const char *summary;  /* one line for `omniq --help` */
  const char *help;     /* the options, for `omniq NAME --help` */
  int reads;            /* 1: takes --json */
  int (*run)(cli_t *cli, int argc, char **argv); /* returns an exit code */
} cli_command_t;

#define OMNIQ_CLI_COMMAND(name) extern const cli_command_t cli_cmd_##name;
#include "commands.def"
#undef OMNIQ_CLI_COMMAND

/* ---- options (options.c) --------------------------------------------------- */

/* Option codes shared by every subcommand; above any character. */
enum { CLI_OPT_BACKEND = 0x1000, CLI_OPT_DB, CLI_OPT_BASE_DIR, CLI_OPT_JSON, CLI_OPT_FIRST_FREE };

/* Put these at the end of a subcommand's long options (before the zero
 * row): the store options and --help, plus --json for reading commands. */
#define CLI_COMMON_OPTIONS                                    \
  {"backend", required_argument, NULL, CLI_OPT_BACKEND},     \
      {"db", required_argument, NULL, CLI_OPT_DB},           \
      {"base-dir", required_argument, NULL, CLI_OPT_BASE_DIR}, \
      {"help", no_argument, NULL, 'h'}
#define CLI_JSON_OPTION {"json", no_argument, NULL, CLI_OPT_JSON}

/* The text --help prints for CLI_COMMON_OPTIONS (and --json). */
#define CLI_COMMON_HELP                                                      \
  "  --backend NAME      sqlite, file or postgres (OMNIQ_BACKEND)\n"        \
  "  --db URL            SQLite database or PostgreSQL URL (OMNIQ_DB_URL)\n" \
  "  --base-dir DIR      data directory (OMNIQ_BASE_DIR; ./omniq-data)\n"   \
  "  -h, --help          show this help\n"
#define CLI_JSON_HELP "  --json              print one JSON document\n"

/* getopt_long for a subcommand, with the shared options handled here and
 * messages of our own (one line, naming the subcommand). Returns the next
 * option of the subcommand's own, -1 at the end, or CLI_GETOPT_EXIT when
 * the subcommand must return cli->exit_code now (--help printed, or a usage
 * error reported). shortopts must start with ':' (or "+:" to stop at the
 * first operand). Call with optind = 0 the first time for argv. */
#define CLI_GETOPT_EXIT (-2)
int cli_getopt(cli_t *cli, const cli_command_t *cmd, int argc, char **argv,
               const char *shortopts, const struct option *longopts);

/* Parses a duration option's value; on error reports it and returns -1. */
int cli_opt_duration(cli_t *cli, const char *option, const char *value, int64_t *ms);
/* Parses a whole number in [min, max]; on error reports it and returns -1. */
int cli_opt_int(cli_t *cli, const char *option, const char *value, long min, long max,
                long *out);

/* Parses --queues A,B into queues (NULL-terminated unless full, as
 * omniq_worker_opts_t wants them), pointing into buf. Returns an exit code
 * (a usage error reported). */
#define CLI_QUEUES_BUF (OMNIQ_MAX_QUEUES * OMNIQ_NAME_MAX)
int cli_opt_queues(cli_t *cli, const char *list, char buf[CLI_QUEUES_BUF],
                   const char *queues[OMNIQ_MAX_QUEUES]);

/* After the options: exactly one operand, a task id, into *id. On error
 * reports it and returns -1. */
int cli_one_id(cli_t *cli, int argc, char **argv, const char **id);

/* Parses a size in bytes: a whole number with an optional unit K, M or G
 * (powers of 1024; "KiB", "MiB", "GiB" too). On error reports it and
 * returns -1. */
int cli_opt_size(cli_t *cli, const char *option, const char *value, int64_t *bytes);

/* Settings from OMNIQ_* with the command line's overrides. quiet_log keeps
 * the library's INFO lines out of a one-shot command's output unless
 * OMNIQ_LOG_LEVEL asks for them. Returns an exit code. */
int cli_settings(cli_t *cli, omniq_settings_t *s, int quiet_log);
/* Opens the store with cli_settings(..., 1). Returns an exit code; on
 * CLI_EXIT_OK *oq is yours (omniq_close). */
int cli_open(cli_t *cli, omniq_t **oq);

/* For a command that runs until SIGINT or SIGTERM (worker, serve): blocks
 * those two and extra (0 = none) in the calling thread, and so in every
 * thread it starts later, for its own sigwait/sigtimedwait on *set to take;
 * and ignores SIGPIPE, so a reader that went away (a log pipe, an HTTP
 * client) fails a write instead of killing the process. Call it before any
 * thread exists. */
void cli_block_stop_signals(sigset_t *set, int extra);

/* ---- messages and exit codes (output.c) ------------------------------------ */

/* Prints "omniq CMD: message" on one line to stderr; returns code. */
int cli_error(const cli_t *cli, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A usage error: the message, then a hint to --help; returns 2. */
int cli_usage(const cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The exit code for a library status code. */
int cli_exit_for(int rc);
/* The name of task id's status now, for a message after OMNIQ_ESTATE
 * ("UNKNOWN" if it cannot be read). Static text. */
const char *cli_status_now(omniq_t *oq, const char *id);
/* Reports a failed library call about task id: the right exit code and the
 * library's message (omniq_errmsg(oq)). */
int cli_fail_call(const cli_t *cli, omniq_t *oq, int rc, const char *what, const char *id);

#endif
