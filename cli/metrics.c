/* SPDX-License-Identifier: MIT */
/* omniq serve's /metrics: the Prometheus text exposition format, 0.0.4.
 *
 * Every family has its HELP and TYPE lines first and all its samples
 * together, as the format requires; names follow Prometheus conventions
 * (omniq_ prefix, base units, _total for counters, _seconds for times).
 * Label values go through serve_metrics_label, which escapes what the
 * format says must be escaped, whatever the queue-name rule allows today.
 *
 * The store's numbers come from an omniq_stats call that started after the
 * scrape arrived (sampler.c), so a scrape is as fresh as the store; on a
 * big store that call is the cost of a scrape, reported as
 * omniq_stats_duration_seconds. The run-duration
 * histogram exists only when this process runs a pool (serve --worker):
 * no other process's run times reach the store. docs/monitoring.md lists
 * every family. */
#include <stdio.h>

#include "serve.h"

static const char *const run_kinds[OMNIQ_RUNS_KINDS] = {"succeeded", "failed", "retried",
                                                        "lost"};
static const char *const outcomes[SERVE_RUN_OUTCOMES] = {"succeeded", "failed"};

void serve_metrics_label(FILE *f, const char *s) {
  for (; *s != '\0'; s++) {
    if (*s == '\\')
      fputs("\\\\", f);
    else if (*s == '"')
      fputs("\\\"", f);
    else if (*s == '\n')
      fputs("\\n", f);
    else
      fputc(*s, f);
  }
}

static void family(FILE *f, const char *name, const char *type, const char *help) {
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void queue_label(FILE *f, const char *name, const omniq_queue_info_t *q) {
  fprintf(f, "%s{queue=\"", name);
  serve_metrics_label(f, omniq_queue_info_name(q));
  fputc('"', f);
}

/* One sample per queue: name{queue="q"} value. */
static void per_queue(FILE *f, const omniq_stats_t *st, const char *name,
                      double (*value)(const omniq_queue_info_t *q)) {
  for (size_t i = 0; i < omniq_stats_count(st); i++) {
    const omniq_queue_info_t *q = omniq_stats_queue(st, i);
    queue_label(f, name, q);
    fprintf(f, "} %.15g\n", value(q));
  }
}

static double oldest_due_s(const omniq_queue_info_t *q) {
  return (double)omniq_queue_info_oldest_due_ms(q) / 1000.0;
}
static double paused(const omniq_queue_info_t *q) { return omniq_queue_info_paused(q) ? 1 : 0; }
static double rate_limit(const omniq_queue_info_t *q) {
  return (double)omniq_queue_info_rate_limit(q);
}
static double rate_period_s(const omniq_queue_info_t *q) {
  return omniq_queue_info_rate_limit(q) > 0 ? (double)omniq_queue_info_rate_period_ms(q) / 1000.0
                                            : 0;
}

static void store_families(FILE *f, const omniq_stats_t *st) {
  size_t n = omniq_stats_count(st);
  family(f, "omniq_tasks", "gauge", "Tasks in the store, by queue and status.");
  for (size_t i = 0; i < n; i++) {
    const omniq_queue_info_t *q = omniq_stats_queue(st, i);
    for (int s = 0; s < OMNIQ_STATUS_COUNT; s++) {
      queue_label(f, "omniq_tasks", q);
      fprintf(f, ",status=\"%s\"} %lld\n", omniq_status_name(s),
              (long long)omniq_queue_info_count(q, s));
    }
  }
  family(f, "omniq_queue_oldest_due_age_seconds", "gauge",
         "How long the oldest due pending task of the queue has waited since it became due.");
  per_queue(f, st, "omniq_queue_oldest_due_age_seconds", oldest_due_s);
  family(f, "omniq_queue_paused", "gauge", "1 if the queue is paused, else 0.");
  per_queue(f, st, "omniq_queue_paused", paused);
  family(f, "omniq_queue_rate_limit", "gauge",
         "Starts allowed per rate period (0 = no limit).");
  per_queue(f, st, "omniq_queue_rate_limit", rate_limit);
  family(f, "omniq_queue_rate_period_seconds", "gauge",
         "The rate limit's period (0 when the queue has no limit).");
  per_queue(f, st, "omniq_queue_rate_period_seconds", rate_period_s);
  family(f, "omniq_runs_total", "counter",
         "Finished runs since the store was created, by queue and how they ended: succeeded, "
         "failed (for good), retried (failed and put back), lost (WorkerLost).");
  for (size_t i = 0; i < n; i++) {
    const omniq_queue_info_t *q = omniq_stats_queue(st, i);
    for (int k = 0; k < OMNIQ_RUNS_KINDS; k++) {
      queue_label(f, "omniq_runs_total", q);
      fprintf(f, ",outcome=\"%s\"} %lld\n", run_kinds[k],
              (long long)omniq_queue_info_runs(q, k));
    }
  }
}

static void histogram(FILE *f, serve_runs_t *runs) {
  uint64_t counts[SERVE_RUN_OUTCOMES][SERVE_RUN_BUCKETS], total[SERVE_RUN_OUTCOMES];
  double sum[SERVE_RUN_OUTCOMES];
  serve_runs_read(runs, counts, total, sum);
  family(f, "omniq_run_duration_seconds", "histogram",
         "How long the handlers of this process's pool ran, by outcome.");
  for (int o = 0; o < SERVE_RUN_OUTCOMES; o++) {
    for (int b = 0; b < SERVE_RUN_BUCKETS; b++)
      fprintf(f, "omniq_run_duration_seconds_bucket{outcome=\"%s\",le=\"%g\"} %llu\n",
              outcomes[o], serve_run_bucket_le[b], (unsigned long long)counts[o][b]);
    fprintf(f, "omniq_run_duration_seconds_bucket{outcome=\"%s\",le=\"+Inf\"} %llu\n",
            outcomes[o], (unsigned long long)total[o]);
    fprintf(f, "omniq_run_duration_seconds_sum{outcome=\"%s\"} %.15g\n", outcomes[o], sum[o]);
    fprintf(f, "omniq_run_duration_seconds_count{outcome=\"%s\"} %llu\n", outcomes[o],
            (unsigned long long)total[o]);
  }
}

int serve_metrics_write(FILE *f, const omniq_stats_t *st, int64_t stats_cost_ms,
                        serve_runs_t *runs) {
  store_families(f, st);
  family(f, "omniq_stats_duration_seconds", "gauge",
         "How long the store took to count its tasks for this scrape.");
  fprintf(f, "omniq_stats_duration_seconds %.3f\n", (double)stats_cost_ms / 1000.0);
  if (runs != NULL) histogram(f, runs);
  return ferror(f) ? -1 : 0;
}
