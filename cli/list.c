/* SPDX-License-Identifier: MIT */
/* omniq list: one page of tasks, oldest first, filtered by status, queue
 * and func (omniq_list_tasks).
 *
 * A page is at most --limit tasks (default 100, at most 1000). When there
 * are more, the text form ends with a line naming the --cursor of the next
 * page; --json prints JSON lines: one task object per line (the form of
 * `omniq show --json`), then, only when there is a next page, a last line
 * {"next_cursor": "..."}. A script pages by feeding that cursor back. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "command_task.h"
#include "duration.h"
#include "output.h"

enum { OPT_STATUS = CLI_OPT_FIRST_FREE, OPT_QUEUE, OPT_FUNC, OPT_LIMIT, OPT_CURSOR };

static const struct option options[] = {
    {"status", required_argument, NULL, OPT_STATUS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"func", required_argument, NULL, OPT_FUNC},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"cursor", required_argument, NULL, OPT_CURSOR},
    CLI_JSON_OPTION,
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0}};

/* "failed,cancelled" -> the status bits; any case. */
static int parse_statuses(cli_t *cli, const char *text, unsigned *bits) {
  char buf[128];
  if (strlen(text) >= sizeof buf) return cli_usage(cli, "--status: the list is too long");
  size_t i;
  for (i = 0; text[i] != '\0'; i++) buf[i] = (char)toupper((unsigned char)text[i]);
  buf[i] = '\0';
  *bits = 0;
  for (char *save = NULL, *name = strtok_r(buf, ",", &save); name != NULL;
       name = strtok_r(NULL, ",", &save)) {
    int status;
    if (omniq_status_parse(name, &status) != OMNIQ_OK)
      return cli_usage(cli,
                       "--status: '%s' is not one of pending, running, success, failed, "
                       "cancelled",
                       name);
    *bits |= OMNIQ_STATUS_BIT(status);
  }
  if (*bits == 0) return cli_usage(cli, "--status: give at least one status");
  return CLI_EXIT_OK;
}

static void print_line(const omniq_task_t *t) {
  char when[CLI_TIME_SIZE], what[160] = "";
  cli_format_time(omniq_task_created_at(t), when);
  if (strcmp(omniq_task_func(t), CLI_COMMAND_FUNC) == 0)
    cli_shell_words(omniq_task_args(t), what, sizeof what);
  else
    snprintf(what, sizeof what, "%s", omniq_task_func(t));
  printf("%s  %-9s  %-12s  %s  %s\n", omniq_task_id(t), omniq_status_name(omniq_task_status(t)),
         omniq_task_queue(t), when, what);
}

static int print_page(cli_t *cli, const omniq_task_list_t *page) {
  const char *next = omniq_task_list_next_cursor(page);
  for (size_t i = 0; i < omniq_task_list_count(page); i++) {
    const omniq_task_t *t = omniq_task_list_at(page, i);
    if (!cli->json)
      print_line(t);
    else if (cli_print_json(cli_task_json(t)) != 0)
      return cli_error(cli, CLI_EXIT_STORAGE, "cannot write the list");
  }
  if (next == NULL) return CLI_EXIT_OK;
  if (!cli->json) {
    printf("more: omniq list --cursor %s\n", next);
    return CLI_EXIT_OK;
  }
  if (cli_print_json(json_pack("{s:s}", "next_cursor", next)) != 0)
    return cli_error(cli, CLI_EXIT_STORAGE, "cannot write the list");
  return CLI_EXIT_OK;
}

static int run(cli_t *cli, int argc, char **argv) {
  omniq_list_opts_t o;
  omniq_task_list_t *page = NULL;
  omniq_t *oq;
  long n;
  int c, code;
  omniq_list_opts_init(&o);
  while ((c = cli_getopt(cli, &cli_cmd_list, argc, argv, ":", options)) != -1) {
    switch (c) {
    case OPT_STATUS:
      if ((cli->exit_code = parse_statuses(cli, optarg, &o.statuses)) != CLI_EXIT_OK)
        return cli->exit_code;
      break;
    case OPT_QUEUE:
      o.queue = optarg;
      break;
    case OPT_FUNC:
      o.func = optarg;
      break;
    case OPT_LIMIT:
      if (cli_opt_int(cli, "--limit", optarg, 1, OMNIQ_LIST_MAX_LIMIT, &n)) return cli->exit_code;
      o.limit = (size_t)n;
      break;
    case OPT_CURSOR:
      o.cursor = optarg;
      break;
    default:
      return cli->exit_code;
    }
  }
  if (optind < argc) return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;
  int rc = omniq_list_tasks(oq, &o, &page);
  if (rc != OMNIQ_OK)
    code = cli_fail_call(cli, oq, rc, "cannot list", NULL);
  else
    code = print_page(cli, page);
  omniq_task_list_free(page);
  omniq_close(oq);
  return code;
}

const cli_command_t cli_cmd_list = {
    "list",
    "[OPTIONS]",
    "List tasks, oldest first, by status, queue and func; a page at a time.",
    "  --status S[,S...]   only tasks in these statuses (pending, running, success,\n"
    "                      failed, cancelled)\n"
    "  --queue NAME        only tasks of this queue\n"
    "  --func NAME         only tasks of this func (" CLI_COMMAND_FUNC " for commands)\n"
    "  --limit N           tasks per page (default " CLI_STR(OMNIQ_LIST_DEFAULT_LIMIT)
    ", at most " CLI_STR(OMNIQ_LIST_MAX_LIMIT) ")\n"
    "  --cursor C          the page after the one that printed this cursor\n"
    "with --json: one task object per line, then {\"next_cursor\": C} if there is more\n",
    1,
    run};
