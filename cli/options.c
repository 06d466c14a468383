/* SPDX-License-Identifier: MIT */
/* Options every subcommand shares: the getopt_long loop with our own
 * one-line messages, typed option values, and the store's settings.
 *
 * getopt's own messages are switched off (opterr = 0): they name the program
 * but not the subcommand, and they do not say where to look next. Every
 * usage error here is one line on stderr and exit code 2.
 *
 * Settings come from omniq_settings_from_env (OMNIQ_*), then --backend,
 * --db and --base-dir override them, so a one-off command can point at
 * another store without touching the environment. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "duration.h"

static void print_help(const cli_command_t *cmd) {
  printf("usage: omniq %s %s\n\n%s\n\noptions:\n%s%s%s", cmd->name, cmd->synopsis, cmd->summary,
         cmd->help, cmd->reads ? CLI_JSON_HELP : "", CLI_COMMON_HELP);
  printf("\nexit codes: 0 ok, 1 task failed or not finished, 2 usage, 3 not found,\n"
         "4 timed out, 5 storage error. See omniq(1).\n");
}

/* The option as the user wrote it, without any "=value". */
static void option_text(int argc, char **argv, int code, char *out, size_t outlen) {
  if (code > 0 && code < 0x100) {
    snprintf(out, outlen, "-%c", code);
    return;
  }
  const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
  size_t n = strcspn(arg, "=");
  snprintf(out, outlen, "%.*s", (int)(n < 60 ? n : 60), arg);
}

int cli_getopt(cli_t *cli, const cli_command_t *cmd, int argc, char **argv,
               const char *shortopts, const struct option *longopts) {
  char opt[64];
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    switch (c) {
    case CLI_OPT_BACKEND:
      cli->backend = optarg;
      break;
    case CLI_OPT_DB:
      cli->db = optarg;
      break;
    case CLI_OPT_BASE_DIR:
      cli->base_dir = optarg;
      break;
    case CLI_OPT_JSON:
      cli->json = 1;
      break;
    case 'h':
      print_help(cmd);
      cli->exit_code = CLI_EXIT_OK;
      return CLI_GETOPT_EXIT;
    case '?': {
      /* optopt is 0 for an unknown long option, the unknown character for a
       * short one, and the option's code for a known long option that was
       * given a value it does not take ("--json=1"). */
      const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
      int is_long = strncmp(arg, "--", 2) == 0 && (optopt == 0 || strchr(arg, '=') != NULL);
      int known_long = is_long && optopt != 0;
      option_text(argc, argv, is_long ? 0 : optopt, opt, sizeof opt);
      cli->exit_code = known_long ? cli_usage(cli, "option '%s' takes no value", opt)
                                  : cli_usage(cli, "unknown option '%s'", opt);
      return CLI_GETOPT_EXIT;
    }
    case ':': {
      /* The option is the last word: show it as typed (long or short). */
      const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
      option_text(argc, argv, strncmp(arg, "--", 2) == 0 || optopt >= 0x100 ? 0 : optopt, opt,
                  sizeof opt);
      cli->exit_code = cli_usage(cli, "option '%s' needs a value", opt);
      return CLI_GETOPT_EXIT;
    }
    default:
      return c;
    }
  }
}

int cli_opt_duration(cli_t *cli, const char *option, const char *value, int64_t *ms) {
  char why[200];
  if (cli_parse_duration(value, ms, why, sizeof why) == 0) return 0;
  cli->exit_code = cli_usage(cli, "%s: %s", option, why);
  return -1;
}

int cli_opt_int(cli_t *cli, const char *option, const char *value, long min, long max,
                long *out) {
  char *end;
  errno = 0;
  long v = strtol(value, &end, 10);
  if (value[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max ||
      value[0] == ' ' || value[0] == '+') {
    cli->exit_code = cli_usage(cli, "%s: '%s' is not a whole number from %ld to %ld", option,
                               value, min, max);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_opt_queues(cli_t *cli, const char *list, char buf[CLI_QUEUES_BUF],
                   const char *queues[OMNIQ_MAX_QUEUES]) {
  size_t len = strlen(list);
  int n = 0;
  if (len >= CLI_QUEUES_BUF) return cli_usage(cli, "--queues: the list is too long");
  memcpy(buf, list, len + 1);
  for (char *save = NULL, *q = strtok_r(buf, ",", &save); q != NULL;
       q = strtok_r(NULL, ",", &save)) {
    if (n == OMNIQ_MAX_QUEUES)
      return cli_usage(cli, "--queues: at most %d queues", OMNIQ_MAX_QUEUES);
    queues[n++] = q;
  }
  if (n == 0) return cli_usage(cli, "--queues: give at least one name (a,b)");
  if (n < OMNIQ_MAX_QUEUES) queues[n] = NULL;
  return CLI_EXIT_OK;
}

int cli_one_id(cli_t *cli, int argc, char **argv, const char **id) {
  if (optind >= argc) {
    cli->exit_code = cli_usage(cli, "missing task ID");
    return -1;
  }
  if (optind + 1 < argc) {
    cli->exit_code = cli_usage(cli, "unexpected argument '%s'", argv[optind + 1]);
    return -1;
  }
  *id = argv[optind];
  return 0;
}

int cli_opt_size(cli_t *cli, const char *option, const char *value, int64_t *bytes) {
  static const struct {
    const char *unit;
    int shift;
  } units[] = {{"", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
  char *end;
  errno = 0;
  long long v = value[0] >= '0' && value[0] <= '9' ? strtoll(value, &end, 10) : -1;
  for (size_t i = 0; v >= 0 && errno == 0 && i < sizeof units / sizeof units[0]; i++)
    if (strcmp(end, units[i].unit) == 0 && v <= (INT64_MAX >> units[i].shift)) {
      *bytes = (int64_t)v << units[i].shift;
      return 0;
    }
  cli->exit_code =
      cli_usage(cli, "%s: '%s' is not a size (bytes, or a number with K, M or G)", option, value);
  return -1;
}

/* Copies an override into a fixed-size settings field. */
static int override(cli_t *cli, const char *option, const char *value, char *field,
                    size_t size) {
  if (value == NULL) return CLI_EXIT_OK;
  if (value[0] == '\0') return cli_usage(cli, "%s: the value is empty", option);
  if (strlen(value) >= size)
    return cli_usage(cli, "%s: the value is longer than %zu bytes", option, size - 1);
  memcpy(field, value, strlen(value) + 1);
  return CLI_EXIT_OK;
}

int cli_settings(cli_t *cli, omniq_settings_t *s, int quiet_log) {
  int code;
  omniq_settings_init(s);
  if (omniq_settings_from_env(s) != OMNIQ_OK)
    return cli_error(cli, CLI_EXIT_USAGE, "%s", omniq_errmsg(NULL));
  if ((code = override(cli, "--backend", cli->backend, s->backend, sizeof s->backend)) ||
      (code = override(cli, "--db", cli->db, s->db_url, sizeof s->db_url)) ||
      (code = override(cli, "--base-dir", cli->base_dir, s->base_dir, sizeof s->base_dir)))
    return code;
  /* A one-shot command's output is its answer; the library's INFO lines
   * ("task.enqueued") would only get in the way of scripts. */
  const char *level = getenv("OMNIQ_LOG_LEVEL");
  if (quiet_log && (level == NULL || level[0] == '\0') && s->log_level < OMNIQ_LOG_WARNING)
    s->log_level = OMNIQ_LOG_WARNING;
  return CLI_EXIT_OK;
}

int cli_open(cli_t *cli, omniq_t **oq) {
  omniq_settings_t s;
  int code = cli_settings(cli, &s, 1);
  *oq = NULL;
  if (code != CLI_EXIT_OK) return code;
  int rc = omniq_open(oq, &s);
  if (rc == OMNIQ_OK) return CLI_EXIT_OK;
  code = rc == OMNIQ_ECONFIG || rc == OMNIQ_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_STORAGE;
  return cli_error(cli, code, "cannot open the store: %s", omniq_errmsg(NULL));
}

void cli_block_stop_signals(sigset_t *set, int extra) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  if (extra != 0) sigaddset(set, extra);
  pthread_sigmask(SIG_BLOCK, set, NULL);
  signal(SIGPIPE, SIG_IGN);
}
