/* SPDX-License-Identifier: MIT */
/* Process isolation beside thread isolation, on SQLite, in one run.
 *
 * Throughput: TASKS tasks are enqueued with omniq_enqueue_many into a fresh
 * store, then omniq_worker_process drains them with CONCURRENCY runners,
 * once in thread isolation (the baseline) and once in process isolation
 * (pre-forked children); every task must end SUCCESS. Two handlers: a
 * no-op, and one that allocates 10 MiB, touches every page and frees it.
 * The ratio is process / thread; the target for the no-op is >= 0.5.
 *
 * Replacing a crashed child: CRASHES tasks whose handler kills its own
 * process (SIGKILL, so no core file is written) against as many no-op
 * tasks, both in process isolation: the difference per task is what a
 * crash costs - the zygote forking a new child, the pool learning of the
 * death, the failure's storage. Beside it, the bare fork + _exit + waitpid
 * of this process, which is what every task paid when each run forked.
 *
 * Each figure is the best of REPS runs; runs alternate so drift hits both
 * sides alike. OMNIQ_BENCH_SMOKE=1 (bench_smoke.h): 100 tasks of each
 * handler, 20 crashes, one run. */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "omniq.h"
#include "bench_smoke.h"
#include "bench_util.h"

static long tasks = 4000;    /* TASKS */
static long big_tasks = 1000; /* BIG_TASKS */
static int crashes = 300;     /* CRASHES */
static int reps = 3;          /* REPS */
#define BATCH 500
#define CONCURRENCY 2
#define BIG_BYTES (10u << 20)

static int noop(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  return OMNIQ_OK;
}

static int alloc_10mib(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  volatile char *p = malloc(BIG_BYTES);
  if (p == NULL) return OMNIQ_ENOMEM;
  for (size_t i = 0; i < BIG_BYTES; i += 4096) p[i] = (char)i;
  free((void *)p);
  return OMNIQ_OK;
}

static int crash(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  raise(SIGKILL);
  return OMNIQ_OK;
}

/* Drains n tasks of func in a fresh store; returns the drain's time in ns.
 * want: the status every task must end in. */
static int64_t drain(const char *func, long n, int isolation, int want) {
  char dir[] = "/tmp/omniq-bench-XXXXXX";
  static omniq_enqueue_item_t items[BATCH];
  omniq_enqueue_opts_t eo;
  omniq_settings_t s;
  omniq_worker_opts_t wo;
  omniq_t *oq;
  int64_t counts[OMNIQ_STATUS_COUNT];
  long done = 0;
  if (mkdtemp(dir) == NULL) die("mkdtemp", "failed");
  omniq_settings_init(&s);
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  s.log_level = OMNIQ_LOG_ERROR; /* a line per task would measure the terminal */
  if (omniq_open(&oq, &s) != OMNIQ_OK) die("omniq_open", omniq_errmsg(NULL));
  if (omniq_register(oq, "noop", noop, NULL) != OMNIQ_OK ||
      omniq_register(oq, "alloc_10mib", alloc_10mib, NULL) != OMNIQ_OK ||
      omniq_register(oq, "crash", crash, NULL) != OMNIQ_OK)
    die("omniq_register", omniq_errmsg(oq));
  omniq_enqueue_opts_init(&eo);
  eo.max_retries = 1; /* a crash fails its task at once */
  for (long left = n; left > 0; left -= BATCH) {
    size_t k = left < BATCH ? (size_t)left : BATCH;
    for (size_t i = 0; i < k; i++)
      items[i] = (omniq_enqueue_item_t){.func = func, .args_json = "[1,2,3]", .opts = &eo};
    if (omniq_enqueue_many(oq, items, k, NULL) != OMNIQ_OK)
      die("omniq_enqueue_many", omniq_errmsg(oq));
  }
  omniq_worker_opts_init(&wo);
  wo.concurrency = CONCURRENCY;
  wo.isolation = isolation;
  int64_t t = now_ns();
  if (omniq_worker_process(oq, &wo, 0, &done) != OMNIQ_OK)
    die("omniq_worker_process", omniq_errmsg(oq));
  t = now_ns() - t;
  if (omniq_count_by_status(oq, counts) != OMNIQ_OK) die("count_by_status", omniq_errmsg(oq));
  if (done != n || counts[want] != n) die(func, "not every task ended as expected");
  omniq_close(oq);
  bench_rmtree(dir);
  return t;
}

static int64_t best(int64_t a, int64_t b) { return a == 0 || b < a ? b : a; }

static double per_s(long n, int64_t ns) { return (double)n * 1e9 / (double)ns; }

static void throughput(const char *func, long n) {
  int64_t th = 0, pr = 0;
  for (int rep = 0; rep < reps; rep++) {
    th = best(th, drain(func, n, OMNIQ_ISOLATION_THREAD, OMNIQ_SUCCESS));
    pr = best(pr, drain(func, n, OMNIQ_ISOLATION_PROCESS, OMNIQ_SUCCESS));
  }
  printf("%-12s %6ld %12.0f %12.0f %7.2f\n", func, n, per_s(n, th), per_s(n, pr),
         (double)th / (double)pr);
}

/* The bare cost of one fork + _exit + waitpid of this process, in ns. */
static int64_t bare_fork_ns(void) {
  enum { N = 200 };
  int64_t t = now_ns();
  for (int i = 0; i < N; i++) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) die("fork", strerror(errno));
    waitpid(pid, NULL, 0);
  }
  return (now_ns() - t) / N;
}

int main(void) {
  if (bench_smoke()) tasks = big_tasks = 100, crashes = 20, reps = 1;
  printf("Isolation on SQLite, concurrency %d: thread (baseline) vs process (pre-forked children);"
         " best of %d runs; tasks per second\n",
         CONCURRENCY, reps);
  printf("%-12s %6s %12s %12s %7s\n", "handler", "tasks", "thread", "process", "ratio");
  throughput("noop", tasks);
  throughput("alloc_10mib", big_tasks);

  int64_t ok = 0, crashed = 0, bare = 0;
  for (int rep = 0; rep < reps; rep++) {
    ok = best(ok, drain("noop", crashes, OMNIQ_ISOLATION_PROCESS, OMNIQ_SUCCESS));
    crashed = best(crashed, drain("crash", crashes, OMNIQ_ISOLATION_PROCESS, OMNIQ_FAILED));
    bare = best(bare, bare_fork_ns());
  }
  double ok_us = (double)ok / crashes / 1e3, crash_us = (double)crashed / crashes / 1e3;
  printf("\nReplacing a crashed child (%d tasks, process isolation): us per task\n", crashes);
  printf("%12s %12s %12s %16s %7s\n", "no-op", "crash", "crash cost", "bare fork+wait", "ratio");
  printf("%12.1f %12.1f %12.1f %16.1f %7.2f\n", ok_us, crash_us, crash_us - ok_us,
         (double)bare / 1e3, (crash_us - ok_us) / ((double)bare / 1e3));
  return 0;
}
