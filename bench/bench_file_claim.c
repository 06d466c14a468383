/* SPDX-License-Identifier: MIT */
/* Claim cost of the file backend at 100 and 100,000 pending tasks.
 *
 * One op = claim one task + complete it (SUCCESS, result stored): the two
 * calls a worker makes per task. After each op, outside the timing, one
 * new task is enqueued, so the number of pending tasks stays the same for
 * the whole run and both sizes do exactly the same file operations. The
 * clock is manual and moves 1 ms per op.
 *
 * Baseline, same process, same directory, same claim steps: the naive
 * claim that lists queue/pending/<q>/ on every call and picks the best
 * due name, then renames and rewrites exactly like the backend. The
 * difference between the two is the cost of finding the next task.
 *
 * Setup writes with fsync off (creating 100,000 files with fsync on takes
 * minutes); the measured ops run with fsync off too, so the numbers show
 * the index rather than the disk. The last line measures what fsync on
 * costs per op at 100 pending.
 *
 * Usage: bench_file_claim [dir]   (default $TMPDIR or /tmp) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/names.h"
#include "storage/file/record.h"
#include "storage/registry.h"

#define T0 INT64_C(1800000000000)
#define BATCH 1000
#define ROUNDS 4     /* index and naive take turns, so disk noise hits both alike */
#define ROUND_OPS 500
#define BUDGET_S 1.0 /* per turn: stop early when it runs longer */

static _Atomic int64_t clock_ms = T0;
static int64_t bench_clock(void *ud) {
  (void)ud;
  return clock_ms;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "bench_file_claim: %s: %s\n", what, err);
  exit(1);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static omniq__fs_t *open_store(const char *dir, int fsync_on) {
  omniq_settings_t s;
  void *b = NULL;
  char err[512];
  memset(&s, 0, sizeof s);
  snprintf(s.backend, sizeof s.backend, "file");
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  s.fsync = fsync_on;
  s.log_level = OMNIQ_LOG_ERROR;
  s.clock_fn = bench_clock;
  if (omniq__file_ops.open(&s, &b, err, sizeof err) != OMNIQ_OK) die("open", err);
  return b;
}

/* Enqueues n due tasks, in batches. */
static void fill(omniq__fs_t *fs, long n, int64_t eta) {
  char err[512];
  omniq_task_t *batch[BATCH];
  for (long i = 0; i < n; i += BATCH) {
    int k = n - i < BATCH ? (int)(n - i) : BATCH;
    for (int j = 0; j < k; j++) {
      omniq_task_t *t = batch[j] = omniq_task_new();
      omniq__id_new(clock_ms, t->id);
      t->func = omniq__strdup("work");
      t->queue = omniq__strdup(OMNIQ_DEFAULT_QUEUE);
      t->args = omniq__strdup("[1,2,3]");
      t->kwargs = omniq__strdup("{\"k\":\"v\"}");
      t->max_retries = 3;
      t->eta_ms = eta;
      t->created_at_ms = clock_ms;
    }
    if (omniq__file_ops.enqueue(fs, batch, (size_t)k, err, sizeof err) != OMNIQ_OK)
      die("enqueue", err);
    for (int j = 0; j < k; j++) omniq_task_free(batch[j]);
  }
}

/* The baseline: list the folder, take the best due name, then the same
 * rename + rewrite as the backend's claim. */
static omniq_task_t *naive_claim(omniq__fs_t *fs, int qfd, int64_t now, int64_t lease) {
  int fd = openat(qfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fdopendir(fd);
  struct dirent *de;
  char best[OMNIQ__PNAME_SIZE] = "", id[OMNIQ_ID_SIZE], bid[OMNIQ_ID_SIZE] = "";
  char idname[OMNIQ__IDNAME_SIZE], err[512];
  uint32_t iprio, biprio = 0;
  int64_t eta, beta = 0;
  while ((de = readdir(d)) != NULL) {
    if (omniq__fname_pending_parse(de->d_name, &iprio, &eta, id) != OMNIQ_OK || eta > now)
      continue;
    if (best[0] == '\0' || iprio < biprio || (iprio == biprio && eta < beta) ||
        (iprio == biprio && eta == beta && strcmp(id, bid) < 0)) {
      memcpy(best, de->d_name, OMNIQ__PNAME_SIZE); /* parsed: exactly that long */
      memcpy(bid, id, sizeof bid);
      biprio = iprio;
      beta = eta;
    }
  }
  closedir(d);
  if (best[0] == '\0') return NULL;
  omniq_task_t *t = NULL;
  omniq__frec_t rec;
  omniq__fname_id(bid, idname);
  if (omniq__flock_take(&fs->locks, bid, err, sizeof err) != OMNIQ_OK) die("lock", err);
  if (renameat(qfd, best, fs->running_fd, idname) != 0) die("rename", strerror(errno));
  if (omniq__frec_read(fs->running_fd, idname, bid, &t, NULL, err, sizeof err) != OMNIQ_OK)
    die("read", err);
  t->status = OMNIQ_RUNNING;
  t->attempts++;
  t->token++;
  t->started_at_ms = now;
  t->lease_until_ms = lease;
  if (omniq__frec_encode(&rec, t, NULL, err, sizeof err) != OMNIQ_OK ||
      omniq__frec_write(&fs->io, fs->running_fd, idname, &rec, OMNIQ__FREC_TASK, err,
                        sizeof err) != OMNIQ_OK)
    die("write", err);
  omniq__frec_free(&rec);
  omniq__flock_release(&fs->locks, bid);
  return t;
}

typedef struct {
  long ops;
  double claim_s, op_s;
} result_t;

/* Runs up to max ops (or BUDGET_S seconds): claim (indexed or naive) then
 * complete; then, untimed, one new task to keep the count. */
static void run(omniq__fs_t *fs, int naive, long max, result_t *acc) {
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  result_t r = {0, 0, 0};
  char err[512], qdir[OMNIQ__QDIR_SIZE];
  int qfd;
  double start = now_s(), claim_s = 0, op_s = 0;
  if (omniq__fidx_queue(fs->idx, OMNIQ_DEFAULT_QUEUE, 0, qdir, err, sizeof err) != OMNIQ_OK ||
      omniq__fidx_open_dir(fs->idx, qdir, &qfd, err, sizeof err) != OMNIQ_OK)
    die("queue", err);
  while (r.ops < max && (r.ops < 20 || now_s() - start < BUDGET_S)) {
    int64_t now = ++clock_ms;
    omniq_claim_req_t req = {now, now + 30000, q, 1, 1};
    omniq_task_t **got = NULL, *t;
    size_t n = 0;
    double c0 = now_s();
    if (naive) {
      t = naive_claim(fs, qfd, now, now + 30000);
    } else {
      if (omniq__file_ops.claim(fs, &req, &got, &n, err, sizeof err) != OMNIQ_OK)
        die("claim", err);
      t = n == 1 ? got[0] : NULL;
    }
    double c1 = now_s();
    if (t == NULL) die("claim", "nothing due");
    omniq_result_t *res = omniq_result_new();
    memcpy(res->task_id, t->id, OMNIQ_ID_SIZE);
    res->status = OMNIQ_SUCCESS;
    res->value = omniq__strdup("42");
    res->attempts = t->attempts;
    res->finished_at_ms = res->last_attempt_at_ms = now;
    omniq_decision_t d = {.id = t->id, .token = t->token, .next_status = OMNIQ_SUCCESS, .result = res};
    if (omniq__file_ops.finish(fs, &d, err, sizeof err) != OMNIQ_OK) die("finish", err);
    claim_s += c1 - c0;
    op_s += now_s() - c0;
    omniq_result_free(res);
    if (naive)
      omniq_task_free(t);
    else
      omniq__tasks_free(got, n);
    fill(fs, 1, now);
    r.ops++;
  }
  close(qfd);
  acc->ops += r.ops;
  acc->claim_s += claim_s;
  acc->op_s += op_s;
}

static double us(double s, long ops) { return s / (double)ops * 1e6; }

int main(int argc, char **argv) {
  static const long sizes[2] = {100, 100000};
  const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
  result_t idx[2] = {{0, 0, 0}, {0, 0, 0}}, nv[2] = {{0, 0, 0}, {0, 0, 0}}, warm = {0, 0, 0};
  char dir[1024];
  if (base == NULL || base[0] == '\0') base = "/tmp";
  printf("file backend claim cost (claim + complete per op, fsync off), dir %s\n", base);
  printf("%9s  %14s %14s  %14s %14s  %9s\n", "pending", "index claim", "index op", "naive claim",
         "naive op", "naive/idx");
  for (int s = 0; s < 2; s++) {
    snprintf(dir, sizeof dir, "%s/omniq-bench-XXXXXX", base);
    if (mkdtemp(dir) == NULL) die("mkdtemp", strerror(errno));
    omniq__fs_t *fs = open_store(dir, 0);
    double t = now_s();
    fill(fs, sizes[s], T0 - 1);
    printf("%9s  (setup: %ld tasks in %.1f s)\n", "", sizes[s], now_s() - t);
    run(fs, 0, 100, &warm);
    for (int round = 0; round < ROUNDS; round++) {
      run(fs, 0, ROUND_OPS, &idx[s]);
      run(fs, 1, ROUND_OPS, &nv[s]);
    }
    printf("%9ld  %11.1f us %11.1f us  %11.1f us %11.1f us  %8.1fx   (%ld / %ld ops)\n",
           sizes[s], us(idx[s].claim_s, idx[s].ops), us(idx[s].op_s, idx[s].ops),
           us(nv[s].claim_s, nv[s].ops), us(nv[s].op_s, nv[s].ops),
           us(nv[s].op_s, nv[s].ops) / us(idx[s].op_s, idx[s].ops), idx[s].ops, nv[s].ops);
    omniq__file_ops.close(fs);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  }
  double ratio = us(idx[1].op_s, idx[1].ops) / us(idx[0].op_s, idx[0].ops);
  double nratio = us(nv[1].op_s, nv[1].ops) / us(nv[0].op_s, nv[0].ops);
  printf("cost at 100,000 / cost at 100: index %.2fx (must be < 3x: %s), naive %.1fx\n", ratio,
         ratio < 3.0 ? "ok" : "FAIL", nratio);
  printf("claim only at 100,000 / at 100: index %.2fx, naive %.1fx\n",
         us(idx[1].claim_s, idx[1].ops) / us(idx[0].claim_s, idx[0].ops),
         us(nv[1].claim_s, nv[1].ops) / us(nv[0].claim_s, nv[0].ops));

  /* fsync on vs off, taking turns on one store of 100 pending tasks. */
  result_t on = {0, 0, 0}, off = {0, 0, 0};
  snprintf(dir, sizeof dir, "%s/omniq-bench-XXXXXX", base);
  if (mkdtemp(dir) == NULL) die("mkdtemp", strerror(errno));
  omniq__fs_t *fs = open_store(dir, 0);
  fill(fs, 100, T0 - 1);
  for (int round = 0; round < ROUNDS; round++) {
    run(fs, 0, 100, &off);
    omniq__file_ops.close(fs);
    fs = open_store(dir, 1);
    run(fs, 0, 100, &on);
    omniq__file_ops.close(fs);
    fs = open_store(dir, 0);
  }
  omniq__file_ops.close(fs);
  printf("at 100 pending: fsync on %.1f us per op, off %.1f us (on/off %.1fx)\n",
         us(on.op_s, on.ops), us(off.op_s, off.ops), us(on.op_s, on.ops) / us(off.op_s, off.ops));
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return ratio < 3.0 ? 0 : 1;
}
