/* SPDX-License-Identifier: MIT */
/* One end-to-end run of OmniQ on SQLite, as the pool benchmarks measure
 * it: a fresh store, `tasks` no-op tasks enqueued with omniq_enqueue_many
 * in batches of POOL_DRAIN_BATCH, then drained by omniq_worker_process
 * with a pool of `threads` runners (thread isolation). Every task must end
 * SUCCESS, checked before the run counts. */
#ifndef OMNIQ_BENCH_POOL_DRAIN_H
#define OMNIQ_BENCH_POOL_DRAIN_H

#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bench_util.h"
#include "omniq.h"

#define POOL_DRAIN_BATCH 500
#define POOL_DRAIN_ARGS "[1,2,3]"

typedef struct pool_drain {
  int64_t enqueue_ns, process_ns;
  int64_t cpu_ns;       /* user + system CPU of the whole process over enqueue and drain */
  int64_t enq_cpu_ns;   /* the part of it spent enqueueing */
  long process_vcsw;    /* voluntary context switches of the process during the drain */
} pool_drain_t;

/* User + system CPU time of the process so far, and its voluntary context
 * switches: the figures that hold on a shared machine, where wall-clock
 * rates follow the other load. */
static inline int64_t pool_drain_cpu_ns(long *vcsw) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  if (vcsw != NULL) *vcsw = ru.ru_nvcsw;
  return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static inline int pool_drain_noop(omniq_job_t *job, void *userdata) {
  (void)job, (void)userdata;
  return OMNIQ_OK;
}

/* Opens (creates) a SQLite store in dir, with the store's lease lease_ms. */
static inline void pool_drain_open(const char *dir, int64_t lease_ms, omniq_t **oq) {
  omniq_settings_t s;
  omniq_settings_init(&s);
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  /* Every finished task logs an INFO line; a benchmark that printed them
   * would measure the terminal. Calls still pass the level check. */
  s.log_level = OMNIQ_LOG_ERROR;
  s.lease_ms = lease_ms;
  if (omniq_open(oq, &s) != OMNIQ_OK) die("omniq_open", omniq_errmsg(NULL));
}

/* tasks: a multiple of POOL_DRAIN_BATCH. lease_ms: the store's lease. */
static inline void pool_drain_run(int threads, long tasks, int64_t lease_ms, pool_drain_t *out) {
  char dir[] = "/tmp/omniq-bench-XXXXXX";
  static omniq_enqueue_item_t items[POOL_DRAIN_BATCH];
  omniq_t *oq;
  omniq_worker_opts_t wo;
  int64_t counts[OMNIQ_STATUS_COUNT];
  long done = 0, v0, v1;
  if (mkdtemp(dir) == NULL) die("mkdtemp", "failed");
  pool_drain_open(dir, lease_ms, &oq);
  if (omniq_register(oq, "bench.noop", pool_drain_noop, NULL) != OMNIQ_OK)
    die("register", omniq_errmsg(oq));
  for (size_t i = 0; i < POOL_DRAIN_BATCH; i++)
    items[i] = (omniq_enqueue_item_t){.func = "bench.noop", .args_json = POOL_DRAIN_ARGS};

  int64_t c0 = pool_drain_cpu_ns(NULL), t = now_ns();
  for (long n = 0; n < tasks; n += POOL_DRAIN_BATCH)
    if (omniq_enqueue_many(oq, items, POOL_DRAIN_BATCH, NULL) != OMNIQ_OK)
      die("omniq_enqueue_many", omniq_errmsg(oq));
  out->enqueue_ns = now_ns() - t;
  out->enq_cpu_ns = pool_drain_cpu_ns(&v0) - c0;

  omniq_worker_opts_init(&wo);
  wo.concurrency = threads;
  wo.isolation = OMNIQ_ISOLATION_THREAD;
  t = now_ns();
  if (omniq_worker_process(oq, &wo, 0, &done) != OMNIQ_OK)
    die("omniq_worker_process", omniq_errmsg(oq));
  out->process_ns = now_ns() - t;
  out->cpu_ns = pool_drain_cpu_ns(&v1) - c0;
  out->process_vcsw = v1 - v0;

  if (omniq_count_by_status(oq, counts) != OMNIQ_OK) die("count_by_status", omniq_errmsg(oq));
  if (done != tasks || counts[OMNIQ_SUCCESS] != tasks) die("omniq", "not every task succeeded");
  omniq_close(oq);
  bench_rmtree(dir);
}

#endif
