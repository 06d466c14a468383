/* SPDX-License-Identifier: MIT */
/* omniq: the command-line tool for OmniQ queues.
 *
 *   omniq [--backend NAME] [--db URL] [--base-dir DIR] COMMAND [OPTIONS] [ARGS]
 *
 * main only dispatches: the store options may come before the command (as
 * here) or after it (each command takes them too), and the command is
 * looked up in the table built from commands.def. `omniq --help` lists that
 * table, so it shows exactly the commands that exist. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command_t *const commands[] = {
#define OMNIQ_CLI_COMMAND(name) &cli_cmd_##name,
#include "commands.def"
#undef OMNIQ_CLI_COMMAND
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const struct option options[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"backend", required_argument, NULL, CLI_OPT_BACKEND},
    {"db", required_argument, NULL, CLI_OPT_DB},
    {"base-dir", required_argument, NULL, CLI_OPT_BASE_DIR},
    {NULL, 0, NULL, 0}};

static void help(void) {
  printf("usage: omniq [--backend NAME] [--db URL] [--base-dir DIR] COMMAND [OPTIONS] [ARGS]\n"
         "\n"
         "OmniQ: a durable background task queue. Commands:\n\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    printf("  %-9s %s\n", commands[i]->name, commands[i]->summary);
  printf("\n"
         "Settings come from OMNIQ_* variables (OMNIQ_BACKEND, OMNIQ_DB_URL,\n"
         "OMNIQ_BASE_DIR, ...); --backend, --db and --base-dir override them. The\n"
         "default store is SQLite under ./omniq-data.\n"
         "\n"
         "'omniq COMMAND --help' lists a command's options; omniq(1) has the rest.\n"
         "exit codes: 0 ok, 1 task failed or not finished, 2 usage, 3 not found,\n"
         "4 timed out, 5 storage error.\n");
}

int main(int argc, char **argv) {
  cli_t cli = {.cmd = NULL};
  int c;
  opterr = 0;
  /* "+": stop at the command's name; its options are its own. */
  while ((c = getopt_long(argc, argv, "+:hV", options, NULL)) != -1) {
    switch (c) {
    case 'h':
      help();
      return CLI_EXIT_OK;
    case 'V':
      printf("omniq %s\n", OMNIQ_VERSION_STRING);
      return CLI_EXIT_OK;
    case CLI_OPT_BACKEND:
      cli.backend = optarg;
      break;
    case CLI_OPT_DB:
      cli.db = optarg;
      break;
    case CLI_OPT_BASE_DIR:
      cli.base_dir = optarg;
      break;
    case ':':
      return cli_usage(&cli, "option '%s' needs a value", argv[optind - 1]);
    default:
      if (optopt > 0 && optopt < 0x100) return cli_usage(&cli, "unknown option '-%c'", optopt);
      return cli_usage(&cli, "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc) return cli_usage(&cli, "missing command");
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(argv[optind], commands[i]->name) == 0) {
      cli.cmd = commands[i]->name;
      int first = optind;
      optind = 0; /* glibc: start the command's own parse afresh */
      return commands[i]->run(&cli, argc - first, argv + first);
    }
  return cli_usage(&cli, "unknown command '%s'", argv[optind]);
}
