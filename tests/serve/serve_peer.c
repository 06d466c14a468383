/* SPDX-License-Identifier: MIT */
/* The store as the library sees it, for the omniq serve tests: what the
 * dashboard and /metrics show is compared with what this prints.
 *
 *   serve_peer truth              one JSON object: per queue, the tasks of
 *                                 each status counted by listing every task
 *                                 (omniq_list_tasks, page by page: not the
 *                                 omniq_stats call the server makes), and
 *                                 paused, rate limit and run totals from
 *                                 omniq_queue_info
 *   serve_peer set-rate Q N MS    omniq_queue_set_rate (no CLI command has it)
 *
 * The store comes from the OMNIQ_* environment, as for the omniq command. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omniq.h"

static const char *const run_kinds[OMNIQ_RUNS_KINDS] = {"succeeded", "failed", "retried",
                                                        "lost"};

static int fail(omniq_t *oq, const char *what, int rc) {
  fprintf(stderr, "serve_peer: %s: %s (%s)\n", what, omniq_strerror(rc), omniq_errmsg(oq));
  return 1;
}

static json_t *queue_entry(json_t *all, const char *name) {
  json_t *q = json_object_get(all, name);
  if (q != NULL) return q;
  q = json_pack("{s:{s:i, s:i, s:i, s:i, s:i}}", "counts", "PENDING", 0, "RUNNING", 0,
                "SUCCESS", 0, "FAILED", 0, "CANCELLED", 0);
  json_object_set_new(all, name, q);
  return q;
}

/* Counts by walking every page of the listing. */
static int count_by_listing(omniq_t *oq, json_t *all) {
  omniq_list_opts_t o;
  char cursor[128] = "";
  omniq_list_opts_init(&o);
  o.limit = OMNIQ_LIST_MAX_LIMIT;
  for (;;) {
    omniq_task_list_t *l;
    o.cursor = cursor[0] ? cursor : NULL;
    int rc = omniq_list_tasks(oq, &o, &l);
    if (rc != OMNIQ_OK) return fail(oq, "list", rc);
    for (size_t i = 0; i < omniq_task_list_count(l); i++) {
      const omniq_task_t *t = omniq_task_list_at(l, i);
      json_t *counts = json_object_get(queue_entry(all, omniq_task_queue(t)), "counts");
      const char *st = omniq_status_name(omniq_task_status(t));
      json_object_set_new(counts, st, json_integer(json_integer_value(json_object_get(counts, st)) + 1));
    }
    const char *next = omniq_task_list_next_cursor(l);
    if (next != NULL) snprintf(cursor, sizeof cursor, "%s", next);
    omniq_task_list_free(l);
    if (next == NULL) return 0;
  }
}

static int truth(omniq_t *oq) {
  json_t *all = json_object();
  omniq_stats_t *st;
  if (count_by_listing(oq, all) != 0) return 1;
  /* Queues with settings or totals but no task: the names omniq_stats
   * knows; their numbers come from omniq_queue_info below. */
  int rc = omniq_stats(oq, &st);
  if (rc != OMNIQ_OK) return fail(oq, "stats", rc);
  for (size_t i = 0; i < omniq_stats_count(st); i++)
    queue_entry(all, omniq_queue_info_name(omniq_stats_queue(st, i)));
  omniq_stats_free(st);
  const char *name;
  json_t *q;
  json_object_foreach(all, name, q) {
    omniq_queue_info_t *info;
    if ((rc = omniq_queue_info(oq, name, &info)) != OMNIQ_OK) return fail(oq, "queue_info", rc);
    json_t *runs = json_object();
    for (int k = 0; k < OMNIQ_RUNS_KINDS; k++)
      json_object_set_new(runs, run_kinds[k], json_integer(omniq_queue_info_runs(info, k)));
    json_object_set_new(q, "runs", runs);
    json_object_set_new(q, "paused", json_boolean(omniq_queue_info_paused(info)));
    json_object_set_new(q, "rate_limit", json_integer(omniq_queue_info_rate_limit(info)));
    json_object_set_new(q, "rate_period_ms", json_integer(omniq_queue_info_rate_period_ms(info)));
    omniq_queue_info_free(info);
  }
  json_dumpf(all, stdout, JSON_COMPACT | JSON_SORT_KEYS);
  putchar('\n');
  json_decref(all);
  return 0;
}

int main(int argc, char **argv) {
  omniq_t *oq;
  int rc = omniq_open(&oq, NULL), code;
  if (rc != OMNIQ_OK) return fail(NULL, "open", rc);
  if (argc == 2 && strcmp(argv[1], "truth") == 0) {
    code = truth(oq);
  } else if (argc == 5 && strcmp(argv[1], "set-rate") == 0) {
    rc = omniq_queue_set_rate(oq, argv[2], atoll(argv[3]), atoll(argv[4]));
    code = rc == OMNIQ_OK ? 0 : fail(oq, "set-rate", rc);
  } else {
    fprintf(stderr, "usage: serve_peer truth | set-rate QUEUE LIMIT PERIOD_MS\n");
    code = 2;
  }
  omniq_close(oq);
  return code;
}
