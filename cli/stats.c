/* SPDX-License-Identifier: MIT */
/* omniq stats [--watch [--every D]]: each queue as the store sees it now:
 * tasks in each status, how long the oldest due task has waited, whether
 * the queue is paused, its rate limit, and the runs it has finished since
 * the store was created (succeeded, failed, retried, lost), then the
 * totals over every queue (omniq_stats).
 *
 * --watch draws it again every --every (default 2s) until SIGINT or
 * SIGTERM, which end it with exit 0: on a terminal the screen is redrawn
 * in place; otherwise each refresh follows the last (with --json, one
 * document per line). The wait is sigtimedwait on the blocked signals, so
 * a signal ends the wait at once and never interrupts a read of the store. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "duration.h"
#include "output.h"

enum { OPT_WATCH = CLI_OPT_FIRST_FREE, OPT_EVERY };

#define DEFAULT_EVERY_MS 2000

static const struct option options[] = {{"watch", no_argument, NULL, OPT_WATCH},
                                        {"every", required_argument, NULL, OPT_EVERY},
                                        CLI_JSON_OPTION,
                                        CLI_COMMON_OPTIONS,
                                        {NULL, 0, NULL, 0}};

static const char *const run_names[OMNIQ_RUNS_KINDS] = {"succeeded", "failed", "retried",
                                                         "lost"};

typedef struct totals {
  int64_t counts[OMNIQ_STATUS_COUNT];
  int64_t runs[OMNIQ_RUNS_KINDS];
} totals_t;

static json_t *counts_json(const int64_t *counts) {
  json_t *o = json_object();
  for (int s = 0; s < OMNIQ_STATUS_COUNT; s++)
    json_object_set_new(o, omniq_status_name(s), json_integer((json_int_t)counts[s]));
  return o;
}

static json_t *runs_json(const int64_t *runs) {
  json_t *o = json_object();
  for (int k = 0; k < OMNIQ_RUNS_KINDS; k++)
    json_object_set_new(o, run_names[k], json_integer((json_int_t)runs[k]));
  return o;
}

/* The queue's numbers, added to the totals as they are read. */
static void read_queue(const omniq_queue_info_t *q, totals_t *one, totals_t *all) {
  for (int s = 0; s < OMNIQ_STATUS_COUNT; s++) {
    one->counts[s] = omniq_queue_info_count(q, s);
    all->counts[s] += one->counts[s];
  }
  for (int k = 0; k < OMNIQ_RUNS_KINDS; k++) {
    one->runs[k] = omniq_queue_info_runs(q, k);
    all->runs[k] += one->runs[k];
  }
}

static int print_json(const omniq_stats_t *st) {
  totals_t all;
  memset(&all, 0, sizeof all);
  json_t *queues = json_array();
  for (size_t i = 0; i < omniq_stats_count(st); i++) {
    const omniq_queue_info_t *q = omniq_stats_queue(st, i);
    totals_t one;
    read_queue(q, &one, &all);
    json_array_append_new(
        queues, json_pack("{s:s, s:b, s:o, s:I, s:o, s:I, s:I}", "name", omniq_queue_info_name(q),
                          "paused", omniq_queue_info_paused(q), "counts", counts_json(one.counts),
                          "oldest_due_ms", (json_int_t)omniq_queue_info_oldest_due_ms(q), "runs",
                          runs_json(one.runs), "rate_limit",
                          (json_int_t)omniq_queue_info_rate_limit(q), "rate_period_ms",
                          (json_int_t)omniq_queue_info_rate_period_ms(q)));
  }
  return cli_print_json(json_pack("{s:o, s:{s:o, s:o}}", "queues", queues, "totals", "counts",
                                  counts_json(all.counts), "runs", runs_json(all.runs)));
}

static void print_row(const char *name, const char *state, const totals_t *t, const char *due) {
  printf("%-16s %-7s %8lld %8lld %8lld %8lld %9lld %10s %9lld %7lld %7lld %5lld\n", name, state,
         (long long)t->counts[OMNIQ_PENDING], (long long)t->counts[OMNIQ_RUNNING],
         (long long)t->counts[OMNIQ_SUCCESS], (long long)t->counts[OMNIQ_FAILED],
         (long long)t->counts[OMNIQ_CANCELLED], due, (long long)t->runs[OMNIQ_RUNS_SUCCEEDED],
         (long long)t->runs[OMNIQ_RUNS_FAILED], (long long)t->runs[OMNIQ_RUNS_RETRIED],
         (long long)t->runs[OMNIQ_RUNS_LOST]);
}

/* Whole seconds past one ("waited 12s" is what a person reads here). */
static void format_wait(int64_t ms, char out[CLI_DURATION_SIZE]) {
  cli_format_duration(ms >= 1000 ? ms / 1000 * 1000 : ms, out);
}

static void print_text(const omniq_stats_t *st) {
  totals_t all;
  char due[CLI_DURATION_SIZE];
  int64_t oldest = 0;
  memset(&all, 0, sizeof all);
  printf("%-16s %-7s %8s %8s %8s %8s %9s %10s %9s %7s %7s %5s\n", "QUEUE", "STATE", "PENDING",
         "RUNNING", "SUCCESS", "FAILED", "CANCELLED", "OLDEST DUE", "SUCCEEDED", "FAILED",
         "RETRIED", "LOST");
  for (size_t i = 0; i < omniq_stats_count(st); i++) {
    const omniq_queue_info_t *q = omniq_stats_queue(st, i);
    totals_t one;
    int64_t d = omniq_queue_info_oldest_due_ms(q);
    read_queue(q, &one, &all);
    if (d > oldest) oldest = d;
    format_wait(d, due);
    print_row(omniq_queue_info_name(q), omniq_queue_info_paused(q) ? "paused" : "active", &one,
              d > 0 ? due : "-");
  }
  format_wait(oldest, due);
  print_row("(all)", "", &all, oldest > 0 ? due : "-");
  printf("(tasks by status now; then oldest due task's wait; then runs finished since the "
         "store began)\n");
}

static int show(cli_t *cli, omniq_t *oq, int clear) {
  omniq_stats_t *st = NULL;
  int rc = omniq_stats(oq, &st);
  if (rc != OMNIQ_OK) return cli_fail_call(cli, oq, rc, "cannot read the statistics", NULL);
  int code = CLI_EXIT_OK;
  if (cli->json) {
    if (print_json(st) != 0) code = cli_error(cli, CLI_EXIT_STORAGE, "cannot write the statistics");
  } else {
    if (clear) fputs("\033[H\033[2J", stdout);
    print_text(st);
    fflush(stdout);
  }
  omniq_stats_free(st);
  return code;
}

static int run(cli_t *cli, int argc, char **argv) {
  int watch = 0, c, code;
  int64_t every = DEFAULT_EVERY_MS;
  omniq_t *oq;
  while ((c = cli_getopt(cli, &cli_cmd_stats, argc, argv, ":", options)) != -1) {
    if (c == OPT_WATCH)
      watch = 1;
    else if (c != OPT_EVERY || cli_opt_duration(cli, "--every", optarg, &every) != 0)
      return cli->exit_code;
  }
  if (optind < argc) return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
  if (every <= 0) return cli_usage(cli, "--every: must be more than 0");

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (watch) pthread_sigmask(SIG_BLOCK, &set, NULL);
  if ((code = cli_open(cli, &oq)) != CLI_EXIT_OK) return code;
  int clear = watch && !cli->json && isatty(STDOUT_FILENO);
  for (;;) {
    if ((code = show(cli, oq, clear)) != CLI_EXIT_OK || !watch) break;
    struct timespec wait = {(time_t)(every / 1000), (long)(every % 1000) * 1000000L};
    int sig = sigtimedwait(&set, NULL, &wait);
    if (sig == SIGINT || sig == SIGTERM) break;
  }
  omniq_close(oq);
  return code;
}

const cli_command_t cli_cmd_stats = {
    "stats",
    "[OPTIONS]",
    "Per queue: tasks by status, oldest due task's wait, paused, runs; and totals.",
    "  --watch             draw it again every --every until SIGINT (with --json,\n"
    "                      one document per line)\n"
    "  --every DURATION    how often --watch refreshes (default 2s)\n",
    1,
    run};
