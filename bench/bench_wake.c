/* SPDX-License-Identifier: MIT */
/* Latency across processes, and what an idle pool costs, beside baselines
 * taken in the same run.
 *
 * Latency: a worker process runs a pool with default options (4 threads,
 * poll_interval 1 s) on a store; this process enqueues one task at a time
 * and waits for its result with omniq_get_result. The handler returns the
 * CLOCK_MONOTONIC times (system-wide, so comparable across processes) at
 * which it started and returned:
 *   start   enqueue call -> handler start in the other process (the
 *           enqueue's durable commit included);
 *   result  handler return -> omniq_get_result returning here.
 * Baselines, same run: the same two figures with the pool in this process
 * (no process boundary), the enqueue call alone, and the floor of any
 * cross-process wake-up on this machine: a byte through a pipe to a
 * process blocked in read(2).
 *
 * Idle CPU: a pool with default options that has nothing to do, for
 * IDLE_S seconds of wall time, measured as the CPU time (user + system) of
 * its process; beside it the same pool polling every 10 ms, what a worker
 * needs without wake-ups to start work within ~5 ms.
 *
 * Usage: bench_wake [sqlite|file] [samples]; OMNIQ_FSYNC=0 turns the file
 * backend's syncs off (what then remains is the wake-up itself). Medians over repeated runs are
 * left to the caller (docs/benchmarks.md). OMNIQ_BENCH_SMOKE=1 (bench_smoke.h):
 * the idle pools for 1 s each. */
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "omniq.h"
#include "bench_smoke.h"
#include "bench_util.h"

static int idle_s = 10; /* IDLE_S */
#define WARMUP 50

static const char *backend = "sqlite";
static int samples = 2000;

static void settings_for(const char *dir, omniq_settings_t *s) {
  omniq_settings_init(s);
  snprintf(s->backend, sizeof s->backend, "%s", backend);
  snprintf(s->base_dir, sizeof s->base_dir, "%s", dir);
  s->log_level = OMNIQ_LOG_ERROR; /* a log line per task would measure the terminal */
  const char *f = getenv("OMNIQ_FSYNC");
  if (f != NULL && strcmp(f, "0") == 0) s->fsync = 0;
}

/* Returns [start_ns, return_ns]. */
static int stamp(omniq_job_t *job, void *ud) {
  char buf[64];
  (void)ud;
  int64_t start = now_ns();
  snprintf(buf, sizeof buf, "[%" PRId64 ",%" PRId64 "]", start, now_ns());
  return omniq_job_return(job, buf);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(int64_t *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, cmp_i64);
  int i = (int)(p * (n - 1) + 0.5);
  return (double)v[i] / 1000.0;
}

/* A worker process: a default pool until its stdin pipe closes. */
static pid_t start_worker(const char *dir, int64_t poll_ms, int ready_fd[2], int stop_fd[2]) {
  pid_t pid = fork();
  if (pid < 0) die("fork", NULL);
  if (pid > 0) return pid;
  omniq_settings_t s;
  omniq_t *oq;
  omniq_worker_t *w;
  omniq_worker_opts_t o;
  char b;
  close(ready_fd[0]);
  close(stop_fd[1]);
  settings_for(dir, &s);
  if (omniq_open(&oq, &s) != OMNIQ_OK) die("worker open", omniq_errmsg(NULL));
  omniq_register(oq, "stamp", stamp, NULL);
  omniq_worker_opts_init(&o);
  o.poll_interval_ms = poll_ms;
  if (omniq_worker_start(oq, &o, &w) != OMNIQ_OK) die("worker start", omniq_errmsg(oq));
  if (write(ready_fd[1], "r", 1) != 1) _exit(2);
  while (read(stop_fd[0], &b, 1) < 0) {
  }
  omniq_worker_stop(w);
  omniq_close(oq);
  _exit(0);
}

typedef struct {
  int64_t *start, *result, *enqueue;
} lat_t;

/* samples tasks one at a time on oq, whose pool runs elsewhere or here. */
static void measure(omniq_t *oq, lat_t *l) {
  for (int i = -WARMUP; i < samples; i++) {
    char id[OMNIQ_ID_SIZE];
    omniq_result_t *r = NULL;
    int64_t t0 = now_ns();
    if (omniq_enqueue(oq, "stamp", NULL, NULL, NULL, id) != OMNIQ_OK)
      die("enqueue", omniq_errmsg(oq));
    int64_t t1 = now_ns();
    if (omniq_get_result(oq, id, 30, &r) != OMNIQ_OK) die("get_result", omniq_errmsg(oq));
    int64_t got = now_ns();
    long long start = 0, ret = 0;
    if (sscanf(omniq_result_value(r), "[%lld,%lld]", &start, &ret) != 2) die("result", "bad");
    omniq_result_free(r);
    if (i < 0) continue;
    l->start[i] = start - t0;
    l->result[i] = got - ret;
    l->enqueue[i] = t1 - t0;
  }
}

/* Where the slow starts go: a histogram of enqueue -> start across
 * processes, and for the slowest 1% of samples how much of each was the
 * enqueue's own commit (the call) and how much came after it (the wake-up,
 * the claim, the hand-off to a runner). Takes the samples unsorted. */
static void tail_report(const lat_t *l) {
  static const int64_t edges_us[] = {100, 200, 500, 1000, 2000, 5000, 10000};
  enum { NB = sizeof edges_us / sizeof edges_us[0] + 1 };
  long counts[NB] = {0};
  int64_t *sorted = malloc((size_t)samples * sizeof *sorted);
  int64_t *commit = malloc((size_t)samples * sizeof *commit);
  int64_t *after = malloc((size_t)samples * sizeof *after);
  if (sorted == NULL || commit == NULL || after == NULL) die("malloc", NULL);
  for (int i = 0; i < samples; i++) {
    int b = 0;
    while (b < NB - 1 && l->start[i] >= edges_us[b] * 1000) b++;
    counts[b]++;
    sorted[i] = l->start[i];
  }
  printf("enqueue -> start, other process, histogram (us):");
  for (int b = 0; b < NB; b++) {
    if (b < NB - 1)
      printf(" <%" PRId64 ": %ld", edges_us[b], counts[b]);
    else
      printf(" >=%" PRId64 ": %ld", edges_us[NB - 2], counts[b]);
  }
  printf("\n");
  double p99 = pct_us(sorted, samples, .99);
  int n = 0;
  for (int i = 0; i < samples; i++)
    if ((double)l->start[i] / 1000.0 >= p99) {
      commit[n] = l->enqueue[i];
      after[n++] = l->start[i] - l->enqueue[i];
    }
  printf("slowest 1%% (%d samples, >= %.1f us): median enqueue commit %.1f us, median after it "
         "(wake, claim, hand-off) %.1f us\n",
         n, p99, pct_us(commit, n, .5), pct_us(after, n, .5));
  free(sorted);
  free(commit);
  free(after);
}

static void lat_alloc(lat_t *l) {
  l->start = calloc((size_t)samples, sizeof(int64_t));
  l->result = calloc((size_t)samples, sizeof(int64_t));
  l->enqueue = calloc((size_t)samples, sizeof(int64_t));
  if (!l->start || !l->result || !l->enqueue) die("calloc", NULL);
}

static void lat_free(lat_t *l) {
  free(l->start);
  free(l->result);
  free(l->enqueue);
}

static void cross_process(lat_t *l) {
  char dir[] = "/tmp/omniq-bench-wake-XXXXXX";
  int ready[2], stop[2];
  char b;
  omniq_settings_t s;
  omniq_t *oq;
  if (mkdtemp(dir) == NULL || pipe(ready) || pipe(stop)) die("setup", NULL);
  pid_t pid = start_worker(dir, OMNIQ_DEFAULT_POLL_INTERVAL_MS, ready, stop);
  close(ready[1]);
  close(stop[0]);
  if (read(ready[0], &b, 1) != 1) die("worker", "never ready");
  settings_for(dir, &s);
  if (omniq_open(&oq, &s) != OMNIQ_OK) die("open", omniq_errmsg(NULL));
  measure(oq, l);
  omniq_close(oq);
  close(stop[1]);
  waitpid(pid, NULL, 0);
  close(ready[0]);
  bench_rmtree(dir);
}

static void same_process(lat_t *l) {
  char dir[] = "/tmp/omniq-bench-wake-XXXXXX";
  omniq_settings_t s;
  omniq_t *oq;
  omniq_worker_t *w;
  if (mkdtemp(dir) == NULL) die("mkdtemp", NULL);
  settings_for(dir, &s);
  if (omniq_open(&oq, &s) != OMNIQ_OK) die("open", omniq_errmsg(NULL));
  omniq_register(oq, "stamp", stamp, NULL);
  if (omniq_worker_start(oq, NULL, &w) != OMNIQ_OK) die("start", omniq_errmsg(oq));
  measure(oq, l);
  omniq_worker_stop(w);
  omniq_close(oq);
  bench_rmtree(dir);
}

/* The floor: one byte to a process blocked in read(2), which stamps it. */
static void pipe_floor(int64_t *out) {
  int ping[2], pong[2];
  if (pipe(ping) || pipe(pong)) die("pipe", NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int64_t t;
    close(ping[1]);
    close(pong[0]);
    char b;
    while (read(ping[0], &b, 1) == 1) {
      t = now_ns();
      if (write(pong[1], &t, sizeof t) != sizeof t) _exit(1);
    }
    _exit(0);
  }
  close(ping[0]);
  close(pong[1]);
  for (int i = -WARMUP; i < samples; i++) {
    int64_t t0 = now_ns(), t1;
    if (write(ping[1], "p", 1) != 1 || read(pong[0], &t1, sizeof t1) != sizeof t1)
      die("pipe floor", NULL);
    if (i >= 0) out[i] = t1 - t0;
  }
  close(ping[1]);
  close(pong[0]);
  waitpid(pid, NULL, 0);
}

/* CPU seconds a pool polling every poll_ms uses in IDLE_S seconds idle. */
static double idle_cpu(int64_t poll_ms) {
  char dir[] = "/tmp/omniq-bench-wake-XXXXXX";
  int ready[2], stop[2];
  char b;
  struct rusage ru;
  int status;
  if (mkdtemp(dir) == NULL || pipe(ready) || pipe(stop)) die("setup", NULL);
  pid_t pid = start_worker(dir, poll_ms, ready, stop);
  close(ready[1]);
  close(stop[0]);
  if (read(ready[0], &b, 1) != 1) die("worker", "never ready");
  struct timespec idle = {idle_s, 0};
  while (nanosleep(&idle, &idle) != 0) {
  }
  /* The CPU time so far, read before the stop adds its own. */
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL || fgets(line, sizeof line, f) == NULL) die("stat", path);
  fclose(f);
  unsigned long utime = 0, stime = 0;
  char *p = strrchr(line, ')');
  if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                          &stime) != 2)
    die("stat", "unreadable");
  close(stop[1]);
  wait4(pid, &status, 0, &ru);
  close(ready[0]);
  bench_rmtree(dir);
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (argc > 2) samples = atoi(argv[2]);
  if (samples < 10) die("usage", "bench_wake [sqlite|file] [samples >= 10]");
  if (bench_smoke()) idle_s = 1;
  signal(SIGPIPE, SIG_IGN);
  lat_t x, y;
  int64_t *floor_ns = calloc((size_t)samples, sizeof(int64_t));
  lat_alloc(&x);
  lat_alloc(&y);
  pipe_floor(floor_ns);
  cross_process(&x);
  same_process(&y);
  tail_report(&x); /* before pct_us sorts x.start apart from x.enqueue */
  double fl50 = pct_us(floor_ns, samples, .5), fl99 = pct_us(floor_ns, samples, .99);
  double xs50 = pct_us(x.start, samples, .5), xs99 = pct_us(x.start, samples, .99);
  double xr50 = pct_us(x.result, samples, .5), xr99 = pct_us(x.result, samples, .99);
  double ys50 = pct_us(y.start, samples, .5), ys99 = pct_us(y.start, samples, .99);
  double yr50 = pct_us(y.result, samples, .5), yr99 = pct_us(y.result, samples, .99);
  double e50 = pct_us(x.enqueue, samples, .5), e99 = pct_us(x.enqueue, samples, .99);
  omniq_settings_t shown;
  settings_for("", &shown);
  printf("Wake-ups on %s%s, default worker options (poll_interval %d ms); %d tasks one at a "
         "time; microseconds\n",
         backend, strcmp(backend, "file") == 0 && !shown.fsync ? " (fsync off)" : "",
         OMNIQ_DEFAULT_POLL_INTERVAL_MS, samples);
  printf("%-44s %9s %9s %12s\n", "figure", "p50", "p99", "p50/floor");
  printf("%-44s %9.1f %9.1f %12s\n", "floor: pipe byte to a blocked process", fl50, fl99, "1.0");
  printf("%-44s %9.1f %9.1f %12s\n", "enqueue call alone (its commit)", e50, e99, "");
  printf("%-44s %9.1f %9.1f %12.1f\n", "enqueue -> start, other process", xs50, xs99, xs50 / fl50);
  printf("%-44s %9.1f %9.1f %12.1f\n", "return -> get_result, other process", xr50, xr99,
         xr50 / fl50);
  printf("%-44s %9.1f %9.1f %12.1f\n", "enqueue -> start, same process", ys50, ys99, ys50 / fl50);
  printf("%-44s %9.1f %9.1f %12.1f\n", "return -> get_result, same process", yr50, yr99,
         yr50 / fl50);
  printf("cross / same process: start %.2fx, result %.2fx\n", xs50 / ys50, xr50 / yr50);
  double idle_default = idle_cpu(OMNIQ_DEFAULT_POLL_INTERVAL_MS);
  double idle_10 = idle_cpu(10);
  printf("idle pool over %d s: %.3f s CPU = %.2f%% of a core (poll %d ms); baseline polling "
         "every 10 ms: %.2f%%; ratio %.3f\n",
         idle_s, idle_default, 100.0 * idle_default / idle_s, OMNIQ_DEFAULT_POLL_INTERVAL_MS,
         100.0 * idle_10 / idle_s, idle_10 > 0 ? idle_default / idle_10 : 0.0);
  lat_free(&x);
  lat_free(&y);
  free(floor_ns);
  return 0;
}
