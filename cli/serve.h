/* SPDX-License-Identifier: MIT */
/* omniq serve: what its modules share.
 *
 *   serve.c         the subcommand: options, the token, start and stop
 *   http.c          libmicrohttpd: listening, the security gate, headers
 *   api.c           the routes: the JSON API, the page's assets, /metrics
 *   metrics.c       the Prometheus text
 *   sampler.c       the store's statistics, sampled in the background
 *   serve_worker.c  the optional in-process pool and its run durations
 *   assets.c        the page (cli/web/), embedded by CMake at build time
 *
 * Everything here reads the store through the public header only. */
#ifndef OMNIQ_CLI_SERVE_H
#define OMNIQ_CLI_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "omniq.h"

/* Defaults, used by the option parser, `omniq serve --help` and the docs. */
#define SERVE_DEFAULT_LISTEN "127.0.0.1:8080"
#define SERVE_DEFAULT_SAMPLE_MS 10000
#define SERVE_MIN_SAMPLE_MS 1000
#define SERVE_MAX_SAMPLE_MS 300000
#define SERVE_WINDOW_MS 3600000 /* the throughput chart's window: one hour */
#define SERVE_TOKEN_ENV "OMNIQ_DASHBOARD_TOKEN"
#define SERVE_TOKEN_HEADER "X-OmniQ-Token"
#define SERVE_TOKEN_MIN 16 /* characters of a token given in the environment */
#define SERVE_TOKEN_MAX 128

typedef struct serve_sampler serve_sampler_t;
typedef struct serve_runs serve_runs_t;

typedef struct serve {
  omniq_t *oq; /* the routes' handle: lists, lookups, actions (and the pool) */
  /* The sampler's own handle: a count of a big store holds its handle's
   * connection for seconds, and must not hold up the page's lookups. */
  omniq_t *stats_oq;
  /* The action token, or "" when started --read-only: then every action is
   * refused whatever a request carries. */
  char token[SERVE_TOKEN_MAX + 1];
  int show_args;             /* --show-args: args, kwargs and result values */
  int64_t sample_ms;         /* --sample: the sampler's interval */
  serve_sampler_t *sampler;  /* the page's statistics */
  serve_runs_t *runs;        /* run durations; NULL without --worker */
  /* Host headers accepted; none listed = any (a non-loopback listen). */
  char hosts[3][80];
  int nhosts;
} serve_t;

/* ---- sampler.c ----------------------------------------------------------- */

/* One point of the throughput chart: the store's running totals, summed
 * over queues, and the counts by status, at t_ms (wall clock). */
typedef struct serve_sample {
  int64_t t_ms;
  int64_t runs[OMNIQ_RUNS_KINDS];
  int64_t counts[OMNIQ_STATUS_COUNT];
} serve_sample_t;

/* Starts a thread that calls omniq_stats now and then every interval_ms,
 * and never sooner than SERVE_SAMPLER_COST_FACTOR times the last call took
 * (but at once for serve_sampler_fresh).
 * The first sample is taken before this returns. NULL when out of memory or
 * no thread could start (the reason is in why). */
#define SERVE_SAMPLER_COST_FACTOR 4
serve_sampler_t *serve_sampler_start(omniq_t *oq, int64_t interval_ms, char *why, size_t whylen);
/* Stops and joins the thread, and frees everything. NULL is fine. */
void serve_sampler_stop(serve_sampler_t *s);
/* Asks for a sample soon (after an action), within the cost bound. */
void serve_sampler_poke(serve_sampler_t *s);

/* Calls fn with the latest statistics (NULL if no sample succeeded yet),
 * when they were taken (wall ms), how long the call took, and the last
 * sampling error ("" if the latest sample succeeded), under the sampler's
 * lock: fn must be quick and must not call the sampler. Returns fn's
 * result. */
typedef void *(*serve_stats_fn)(const omniq_stats_t *st, int64_t taken_ms, int64_t cost_ms,
                                const char *error, void *arg);
void *serve_sampler_with_stats(serve_sampler_t *s, serve_stats_fn fn, void *arg);
/* The same with a sample that started after this call: takes one now (or
 * shares the one the next caller also waits for) and waits for it. For
 * /metrics, whose scrapes must not see numbers older than themselves. If
 * the sampler stops meanwhile, fn gets the last sample. */
void *serve_sampler_fresh(serve_sampler_t *s, serve_stats_fn fn, void *arg);

/* Copies the samples taken at or after since_ms, oldest first, into a new
 * array (*out, yours: free(); NULL when there are none). Returns how many,
 * or -1 when out of memory. *interval_ms gets the configured interval. */
long serve_sampler_series(serve_sampler_t *s, int64_t since_ms, serve_sample_t **out,
                          int64_t *interval_ms);

/* ---- serve_worker.c ------------------------------------------------------ */

typedef struct serve_pool serve_pool_t;

/* Registers the command-task handler, timed, on oq and starts a pool with
 * opts. NULL on failure, with the reason in why. */
serve_pool_t *serve_pool_start(omniq_t *oq, const omniq_worker_opts_t *opts, char *why,
                               size_t whylen);
/* The pool's run durations (borrowed until serve_pool_free); NULL for NULL. */
serve_runs_t *serve_pool_runs(serve_pool_t *p);
/* Stops the pool (omniq_worker_stop: OMNIQ_ETIMEDOUT when runs were left
 * to their lease). NULL is fine. */
int serve_pool_stop(serve_pool_t *p);
/* Frees the pool: only after omniq_close(oq), which waits for every run a
 * stop gave up on, since those still use it. NULL is fine. */
void serve_pool_free(serve_pool_t *p);

/* Run durations of the in-process pool, by outcome, as a histogram. */
#define SERVE_RUN_OUTCOMES 2 /* 0 succeeded, 1 failed */
#define SERVE_RUN_BUCKETS 16
extern const double serve_run_bucket_le[SERVE_RUN_BUCKETS]; /* seconds, increasing */

/* Copies the histogram: counts[o][b] is the runs of outcome o that took at
 * most serve_run_bucket_le[b] (cumulative, as Prometheus wants them),
 * total[o] all runs of o, sum_s[o] their seconds. */
void serve_runs_read(serve_runs_t *r, uint64_t counts[SERVE_RUN_OUTCOMES][SERVE_RUN_BUCKETS],
                     uint64_t total[SERVE_RUN_OUTCOMES], double sum_s[SERVE_RUN_OUTCOMES]);

/* ---- metrics.c ----------------------------------------------------------- */

/* Writes the Prometheus text exposition (format 0.0.4) of st to f: tasks
 * by queue and status, oldest due age, paused, rate limits, run totals,
 * stats_cost_ms as the cost of this scrape, and the run-duration histogram
 * when runs is not NULL. Returns 0, or -1 if a write failed. */
int serve_metrics_write(FILE *f, const omniq_stats_t *st, int64_t stats_cost_ms,
                        serve_runs_t *runs);
/* Writes s as a label value: backslash, double quote and newline escaped,
 * as the exposition format requires. */
void serve_metrics_label(FILE *f, const char *s);

/* ---- assets.c (generated) ------------------------------------------------ */

typedef struct serve_asset {
  const char *path; /* "/app.js" */
  const char *type; /* its Content-Type */
  const unsigned char *data;
  size_t size;
} serve_asset_t;

/* The asset served at path ("/" is "/index.html"), or NULL. */
const serve_asset_t *serve_asset_find(const char *path);

#endif
