/* SPDX-License-Identifier: MIT */
/* omniq serve --worker N: a pool in the dashboard's own process, running
 * command tasks as `omniq worker` does, with each run timed for the
 * omniq_run_duration_seconds histogram.
 *
 * Why here: the store keeps how many runs ended each way, but not how long
 * they took, so only the process that ran a handler knows its duration.
 * The pool registers the command handler through a wrapper that reads a
 * monotonic clock around it; the outcome is the handler's own verdict
 * (OMNIQ_OK = succeeded). Tasks a pool runs without a handler of ours
 * (lib.so:symbol ones, which the library resolves itself) are not timed;
 * docs/monitoring.md says so.
 *
 * The histogram is a fixed set of counters under one mutex: a run adds to
 * it once, a scrape copies it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "command_task.h"
#include "serve.h"

const double serve_run_bucket_le[SERVE_RUN_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5,   1,    2.5,   5,    10,  30,
                                                       60,    300,  900,   3600};

struct serve_runs {
  pthread_mutex_t lock;
  uint64_t counts[SERVE_RUN_OUTCOMES][SERVE_RUN_BUCKETS]; /* per bucket, not cumulative */
  uint64_t total[SERVE_RUN_OUTCOMES];
  double sum_s[SERVE_RUN_OUTCOMES];
};

struct serve_pool {
  omniq_t *oq;
  cli_command_config_t cfg;
  serve_runs_t runs;
  omniq_worker_t *worker;
};

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record(serve_runs_t *r, int outcome, double seconds) {
  int b = 0;
  while (b < SERVE_RUN_BUCKETS && seconds > serve_run_bucket_le[b]) b++;
  pthread_mutex_lock(&r->lock);
  if (b < SERVE_RUN_BUCKETS) r->counts[outcome][b]++;
  r->total[outcome]++;
  r->sum_s[outcome] += seconds;
  pthread_mutex_unlock(&r->lock);
}

static int timed_command(omniq_job_t *job, void *userdata) {
  serve_pool_t *p = userdata;
  double t0 = mono_s();
  int rc = cli_command_handler(job, &p->cfg);
  record(&p->runs, rc == OMNIQ_OK ? 0 : 1, mono_s() - t0);
  return rc;
}

void serve_runs_read(serve_runs_t *r, uint64_t counts[SERVE_RUN_OUTCOMES][SERVE_RUN_BUCKETS],
                     uint64_t total[SERVE_RUN_OUTCOMES], double sum_s[SERVE_RUN_OUTCOMES]) {
  pthread_mutex_lock(&r->lock);
  for (int o = 0; o < SERVE_RUN_OUTCOMES; o++) {
    uint64_t acc = 0;
    for (int b = 0; b < SERVE_RUN_BUCKETS; b++) counts[o][b] = acc += r->counts[o][b];
    total[o] = r->total[o];
    sum_s[o] = r->sum_s[o];
  }
  pthread_mutex_unlock(&r->lock);
}

serve_pool_t *serve_pool_start(omniq_t *oq, const omniq_worker_opts_t *opts, char *why,
                               size_t whylen) {
  serve_pool_t *p = calloc(1, sizeof *p);
  if (p == NULL) {
    snprintf(why, whylen, "out of memory");
    return NULL;
  }
  p->oq = oq;
  pthread_mutex_init(&p->runs.lock, NULL);
  if (cli_command_config_init(&p->cfg, NULL, 0, why, whylen) != 0) goto fail;
  p->cfg.kill_after_ms = CLI_DEFAULT_KILL_AFTER_MS;
  int rc = omniq_register(oq, CLI_COMMAND_FUNC, timed_command, p);
  if (rc == OMNIQ_OK) rc = omniq_worker_start(oq, opts, &p->worker);
  if (rc == OMNIQ_OK) return p;
  snprintf(why, whylen, "cannot start the pool: %s (%s)", omniq_strerror(rc), omniq_errmsg(oq));
  cli_command_config_free(&p->cfg);
fail:
  pthread_mutex_destroy(&p->runs.lock);
  free(p);
  return NULL;
}

serve_runs_t *serve_pool_runs(serve_pool_t *p) { return p != NULL ? &p->runs : NULL; }

int serve_pool_stop(serve_pool_t *p) { return p != NULL ? omniq_worker_stop(p->worker) : OMNIQ_OK; }

void serve_pool_free(serve_pool_t *p) {
  if (p == NULL) return;
  cli_command_config_free(&p->cfg);
  pthread_mutex_destroy(&p->runs.lock);
  free(p);
}
