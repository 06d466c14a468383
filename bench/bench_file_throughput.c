/* SPDX-License-Identifier: MIT */
/* End-to-end throughput of the file backend, beside the same number of
 * bare durable file writes by hand, in the same run.
 *
 * OmniQ: TASKS no-op tasks are enqueued with omniq_enqueue_many (batches of
 * BATCH) into a fresh file store, then omniq_worker_process drains them
 * with a pool of 1, 2 or 4 runner threads (thread isolation). Every task
 * must end SUCCESS. The figure is tasks per second from the first enqueue
 * to the last finish.
 *
 * Hand: as many threads as runners share TASKS operations of what any
 * durable file queue does at least once per task: write a small file in
 * tmp/, fdatasync it, rename it into a folder, fsync the folder (with
 * fsync off: the write and the rename). OmniQ does several such steps per
 * task (enqueue, claim, finish with its result), so a ratio near 1 means
 * its syncs are shared between tasks.
 *
 * Floor: the least file work a task's life takes in this layout, one file
 * per task, by hand, with nothing else (no JSON, no locks, no index, no
 * markers): one thread enqueues every task (a task file made and written
 * in tmp/, renamed into pending/q/), then c threads drain them, each task
 * renamed into running/, opened, read and closed, its result file made
 * and written in tmp/ and renamed into results/, and the task renamed
 * into success/. With fsync on, every file's data is synced before its
 * rename and every folder renamed into is synced after it, per task (no
 * sync is shared between tasks, which OmniQ does: with fsync on it may
 * pass its floor). Both figures count from the first enqueue to the last
 * finish; omniq/floor says how close OmniQ comes to what the layout
 * allows on this machine.
 *
 * All run with fsync on (the default) and off, on the file system of
 * BENCH_DIR (default /tmp). Each figure is one run; OmniQ, hand and floor
 * runs alternate, so drift hits them alike. Medians over repeated runs are left
 * to the caller (docs/benchmarks.md).
 *
 * Removed files slow the next ones made: ext4 without a journal scans
 * past every inode freed in the last 60 s for each file it creates. So
 * every store and hand folder is kept until all runs are done, and each
 * run measures its own code rather than the removal of the run before.
 * Stores are then removed, unless BENCH_KEEP=1 (their folders are printed
 * and left: a series of runs removes them once at its end). With
 * BENCH_REMOVE_EACH=1 each store and folder is removed right after its
 * run instead, as before: the figures then include what a store whose
 * retention or purge removes files pays (docs/benchmarks.md gives both).
 * BENCH_THREADS=c runs that pool size alone (for a profile of one). */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "omniq.h"

#define BATCH 500
#define ARGS "[1,2,3]"

static long tasks_on = 2000, tasks_off = 10000;

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_file_throughput: %s: %s\n", what, msg ? msg : "");
  exit(1);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double rate(long n, int64_t ns) { return ns > 0 ? (double)n * 1e9 / (double)ns : 0; }

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* Folders made so far and not yet removed (3 per run). */
#define MAX_DIRS 24
static char made[MAX_DIRS][512];
static int nmade, remove_each;

static void fresh_dir(char *dir, size_t len) {
  const char *base = getenv("BENCH_DIR");
  snprintf(dir, len, "%s/omniq-fbench-XXXXXX", base != NULL ? base : "/tmp");
  if (mkdtemp(dir) == NULL) die("mkdtemp", dir);
  if (!remove_each) {
    if (nmade == MAX_DIRS) die("fresh_dir", "too many folders");
    snprintf(made[nmade++], sizeof made[0], "%s", dir);
  }
}

/* After a run: removes its folder now (BENCH_REMOVE_EACH) or leaves it
 * for remove_all. */
static void done_dir(const char *dir) {
  if (remove_each) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_all(void) {
  const char *keep = getenv("BENCH_KEEP");
  for (int i = 0; i < nmade; i++) {
    if (keep != NULL && strcmp(keep, "1") == 0)
      printf("kept: %s\n", made[i]);
    else
      nftw(made[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  }
}

/* ---- through OmniQ ---------------------------------------------------------- */

static int noop(omniq_job_t *job, void *userdata) {
  (void)job, (void)userdata;
  return OMNIQ_OK;
}

/* Tasks per second, first enqueue to last finish. */
static double run_omniq(int threads, int fsync_on, long tasks) {
  char dir[512];
  static omniq_enqueue_item_t items[BATCH];
  omniq_settings_t s;
  omniq_t *oq;
  omniq_worker_opts_t wo;
  int64_t counts[OMNIQ_STATUS_COUNT];
  long done = 0;
  fresh_dir(dir, sizeof dir);
  omniq_settings_init(&s);
  snprintf(s.backend, sizeof s.backend, "file");
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  s.fsync = fsync_on;
  s.log_level = OMNIQ_LOG_ERROR; /* a log line per task would measure the terminal */
  if (omniq_open(&oq, &s) != OMNIQ_OK) die("omniq_open", omniq_errmsg(NULL));
  if (omniq_register(oq, "bench.noop", noop, NULL) != OMNIQ_OK) die("register", omniq_errmsg(oq));
  for (size_t i = 0; i < BATCH; i++)
    items[i] = (omniq_enqueue_item_t){.func = "bench.noop", .args_json = ARGS};
  int64_t t = now_ns();
  for (long n = 0; n < tasks; n += BATCH) {
    size_t k = tasks - n < BATCH ? (size_t)(tasks - n) : BATCH;
    if (omniq_enqueue_many(oq, items, k, NULL) != OMNIQ_OK)
      die("omniq_enqueue_many", omniq_errmsg(oq));
  }
  omniq_worker_opts_init(&wo);
  wo.concurrency = threads;
  wo.isolation = OMNIQ_ISOLATION_THREAD;
  if (omniq_worker_process(oq, &wo, 0, &done) != OMNIQ_OK)
    die("omniq_worker_process", omniq_errmsg(oq));
  int64_t ns = now_ns() - t;
  if (omniq_count_by_status(oq, counts) != OMNIQ_OK) die("count_by_status", omniq_errmsg(oq));
  if (done != tasks || counts[OMNIQ_SUCCESS] != tasks) die("omniq", "not every task succeeded");
  omniq_close(oq);
  done_dir(dir);
  return rate(tasks, ns);
}

/* ---- the same number of bare durable writes by hand -------------------------- */

typedef struct hand {
  int tmp_fd, out_fd, fsync_on, index;
  long ops;
} hand_t;

static void *hand_main(void *arg) {
  hand_t *h = arg;
  static const char body[] = "{\"format\":1,\"id\":\"01a3185c-5000-7000-8aa4-6f5b2c1e0d11\","
                             "\"status\":\"SUCCESS\",\"value\":null}\n";
  char name[64];
  for (long i = 0; i < h->ops; i++) {
    snprintf(name, sizeof name, "%d-%ld", h->index, i);
    int fd = openat(h->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, body, sizeof body - 1) != (ssize_t)(sizeof body - 1) ||
        (h->fsync_on && fdatasync(fd) != 0) || close(fd) != 0)
      die("hand", "write");
    if (renameat(h->tmp_fd, name, h->out_fd, name) != 0) die("hand", "rename");
    if (h->fsync_on && fsync(h->out_fd) != 0) die("hand", "fsync");
  }
  return NULL;
}

/* Operations per second. */
static double run_hand(int threads, int fsync_on, long tasks) {
  char dir[512];
  hand_t h[4];
  pthread_t tid[4];
  fresh_dir(dir, sizeof dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || mkdirat(dfd, "tmp", 0755) != 0 || mkdirat(dfd, "out", 0755) != 0)
    die("hand", "folders");
  int tmp_fd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int out_fd = openat(dfd, "out", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int64_t t = now_ns();
  for (int i = 0; i < threads; i++) {
    h[i] = (hand_t){tmp_fd, out_fd, fsync_on, i, tasks / threads + (i < tasks % threads)};
    pthread_create(&tid[i], NULL, hand_main, &h[i]);
  }
  for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
  int64_t ns = now_ns() - t;
  close(tmp_fd);
  close(out_fd);
  close(dfd);
  done_dir(dir);
  return rate(tasks, ns);
}

/* ---- the layout's floor by hand ------------------------------------------- */

typedef struct floor_run {
  int fsync_on, index, threads;
  long tasks;
} floor_run_t;

static const char floor_task[] =
    "{\"format\":1,\"id\":\"01a3185c-5000-7000-8aa4-6f5b2c1e0d11\",\"queue\":\"default\","
    "\"func\":\"bench.noop\",\"args\":[1,2,3],\"kwargs\":{},\"status\":\"PENDING\","
    "\"priority\":0,\"attempts\":0,\"max_retries\":3,\"created_at\":\"2026-12-01T00:00:00.000Z\","
    "\"eta\":\"2026-12-01T00:00:00.000Z\"}\n";
static const char floor_result[] = "{\"format\":1,\"task_id\":\"01a3185c-5000-7000-8aa4-"
                                   "6f5b2c1e0d11\",\"status\":\"SUCCESS\",\"value\":null}\n";

/* Folders under the floor's store, opened once (the store keeps its
 * folders open too). */
enum { F_TMP, F_PENDING, F_RUNNING, F_RESULTS, F_SUCCESS, F_NDIRS };
static const char *const floor_dirs[F_NDIRS] = {"tmp", "pending/default", "running", "results",
                                                "success"};
static int floor_fd[F_NDIRS];

static void floor_sync_dir(int fsync_on, int dir) {
  if (fsync_on && fsync(floor_fd[dir]) != 0) die("floor", "fsync of a folder");
}

/* A new file in tmp/ with body, its data synced, renamed to name in dir
 * (and dir synced). */
static void floor_put(int fsync_on, const char *tmp, const char *body, size_t len, int dir,
                      const char *name) {
  int fd = openat(floor_fd[F_TMP], tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, body, len) != (ssize_t)len || (fsync_on && fdatasync(fd) != 0) ||
      close(fd) != 0)
    die("floor", "write");
  if (renameat(floor_fd[F_TMP], tmp, floor_fd[dir], name) != 0) die("floor", "rename");
  floor_sync_dir(fsync_on, dir);
}

static void floor_names(long i, char *pending, char *id) {
  snprintf(pending, 96, "2147483647_%015ld_%08lx-5000-7000-8aa4-%012lx.json", i, i, i);
  snprintf(id, 64, "%08lx-5000-7000-8aa4-%012lx.json", i, i);
}

static void *floor_drain(void *arg) {
  floor_run_t *f = arg;
  char pending[96], id[64], tmp[64], buf[1024];
  for (long i = f->index; i < f->tasks; i += f->threads) {
    floor_names(i, pending, id);
    if (renameat(floor_fd[F_PENDING], pending, floor_fd[F_RUNNING], id) != 0)
      die("floor", "claim");
    floor_sync_dir(f->fsync_on, F_RUNNING);
    int fd = openat(floor_fd[F_RUNNING], id, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, buf, sizeof buf) <= 0 || close(fd) != 0) die("floor", "read");
    snprintf(tmp, sizeof tmp, "r%ld.tmp", i);
    floor_put(f->fsync_on, tmp, floor_result, sizeof floor_result - 1, F_RESULTS, id);
    if (renameat(floor_fd[F_RUNNING], id, floor_fd[F_SUCCESS], id) != 0) die("floor", "finish");
    floor_sync_dir(f->fsync_on, F_SUCCESS);
  }
  return NULL;
}

/* Tasks per second, first enqueue to last finish. */
static double run_floor(int threads, int fsync_on, long tasks) {
  char dir[512], pending[96], id[64], tmp[64];
  floor_run_t f[4];
  pthread_t tid[4];
  fresh_dir(dir, sizeof dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || mkdirat(dfd, "pending", 0755) != 0) die("floor", "folders");
  for (int k = 0; k < F_NDIRS; k++)
    if (mkdirat(dfd, floor_dirs[k], 0755) != 0 ||
        (floor_fd[k] = openat(dfd, floor_dirs[k], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
      die("floor", floor_dirs[k]);
  int64_t t = now_ns();
  for (long i = 0; i < tasks; i++) {
    floor_names(i, pending, id);
    snprintf(tmp, sizeof tmp, "e%ld.tmp", i);
    floor_put(fsync_on, tmp, floor_task, sizeof floor_task - 1, F_PENDING, pending);
  }
  for (int i = 0; i < threads; i++) {
    f[i] = (floor_run_t){fsync_on, i, threads, tasks};
    pthread_create(&tid[i], NULL, floor_drain, &f[i]);
  }
  for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
  int64_t ns = now_ns() - t;
  for (int k = 0; k < F_NDIRS; k++) close(floor_fd[k]);
  close(dfd);
  done_dir(dir);
  return rate(tasks, ns);
}

int main(int argc, char **argv) {
  if (argc > 1) tasks_on = atol(argv[1]);
  if (argc > 2) tasks_off = atol(argv[2]);
  if (tasks_on < 1 || tasks_off < 1)
    die("usage", "bench_file_throughput [tasks with fsync on] [tasks with fsync off]");
  static const int threads[] = {1, 2, 4};
  const char *each = getenv("BENCH_REMOVE_EACH");
  remove_each = each != NULL && strcmp(each, "1") == 0;
  const char *only_c = getenv("BENCH_THREADS");
  int only = only_c != NULL ? atoi(only_c) : 0;
  printf("File backend end to end: no-op tasks, omniq_enqueue_many then a pool of c threads;\n"
         "hand: the same number of write + rename (+ fdatasync + folder fsync) by c threads;\n"
         "floor: each task's life in one file by hand (enqueue, claim, read, result, finish)\n"
         "%s\n",
         remove_each ? "each store removed right after its run (the next pays for the removal)"
                     : "stores kept until every run is done");
  printf("%-6s %3s %7s %14s %14s %8s %14s %12s\n", "fsync", "c", "tasks", "omniq tasks/s",
         "hand ops/s", "ratio", "floor tasks/s", "omniq/floor");
  for (int on = 1; on >= 0; on--) {
    long n = on ? tasks_on : tasks_off;
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) {
      if (only > 0 && threads[i] != only) continue;
      double o = run_omniq(threads[i], on, n);
      double h = run_hand(threads[i], on, n);
      double fl = run_floor(threads[i], on, n);
      printf("%-6s %3d %7ld %14.0f %14.0f %8.2f %14.0f %12.2f\n", on ? "on" : "off", threads[i],
             n, o, h, h > 0 ? o / h : 0.0, fl, fl > 0 ? o / fl : 0.0);
      fflush(stdout);
    }
  }
  remove_all();
  return 0;
}
