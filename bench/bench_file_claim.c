/* SPDX-License-Identifier: MIT */
/* Claim cost of the file backend at 1,000 and 1,000,000 pending tasks, and
 * what a fresh handle on the large store costs to open.
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
 * difference between the two is the cost of finding the next task. The
 * two sizes and the two claims take turns in rounds, so a load that
 * changes during the run weighs on every figure alike. Beside them, the
 * index's own share: taking the best due name out of it and putting it
 * back, no file touched.
 *
 * Beside the index's share, the file system's: the rename a claim makes
 * out of the pending folder (and one back in), alone.
 *
 * The age of the records: the 10^3 store is filled by this run and each
 * task is claimed seconds after it was written, before the kernel wrote
 * its file to the disk; the kept 10^6 store's records were written long
 * before. That changes two file system costs whatever the size: the
 * claim's read (a record no longer in the page cache waits for the disk;
 * the claim reads ahead the next records, claim.c, which a worker's loop
 * gives time to arrive), and the claim's rewrite, whose rename over the
 * record frees the record's blocks if it reached the disk (on a file
 * system mounted with online discard, such as this machine's ext4, that
 * is a discard the rename waits for). So beside the claim as a worker
 * makes it, the same claim in the same rounds at both sizes with the
 * record of the task it will take first synced to the disk (fdatasync,
 * untimed: a backlog older than the kernel's writeback delay), and then
 * also evicted from the page cache (POSIX_FADV_DONTNEED; mincore counts
 * any that stayed). And, no OmniQ code, at each size on records of each
 * store: the same 4 KiB read by hand (open, read, close) evicted and
 * warm, and the rewrite's rename by hand (a copy renamed over the
 * record) over a record on the disk and over one not yet written back.
 *
 * Open: with the large store filled and closed (the close saves the
 * pending snapshot), a new process (this program again, run as `--open
 * DIR`) opens a handle on it and reports the time the open took and its
 * resident memory (VmRSS, VmHWM from /proc/self/status). Baselines, also
 * in new processes: `--open-listing DIR`, the same open ignoring the
 * snapshot (listing the folders, as every open did before it); and
 * `--array DIR`, the pending folder listed into a plain array of
 * (priority, eta, id): the least a process that lists every pending task
 * must do. They take turns, 3 times each.
 *
 * Setup writes with fsync off (creating 10^6 files with fsync on takes
 * hours); the measured ops run with fsync off too, so the numbers show
 * the index rather than the disk. The last line measures what fsync on
 * costs per op at 1,000 pending.
 *
 * Usage: bench_file_claim [dir]   (default $TMPDIR or /tmp)
 * OMNIQ_BENCH_TASKS sets the large size (default 1000000).
 * OMNIQ_BENCH_STORE names a folder to keep the large store in: filling 10^6
 * tasks takes minutes, so a later run tops up that store and reuses it.
 * OMNIQ_BENCH_SMOKE=1 (bench_smoke.h): one round of 50 ops (with
 * OMNIQ_BENCH_TASKS=1001, the least run). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/names.h"
#include "storage/file/record.h"
#include "storage/file/snapshot.h"
#include "storage/registry.h"
#include "bench_smoke.h"

#define T0 INT64_C(1800000000000)
#define BATCH 1000
static int rounds = 4; /* index and naive take turns, so disk noise hits both alike */
static int round_ops = 500;
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
  long stayed; /* COLD: records still in memory after the eviction */
} result_t;

enum { INDEX, NAIVE, SYNCED, COLD };

/* 1 if the first page of the file open at fd is in the page cache. */
static int resident(int fd) {
  unsigned char v = 0;
  void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return 0;
  int in = mincore(m, 4096, &v) == 0 && (v & 1);
  munmap(m, 4096);
  return in;
}

/* Writes the record of pending file p to the disk and, with drop, drops
 * it from the page cache (dirty pages are not dropped); 1 if it is still
 * there after a drop. */
static int age(omniq__fs_t *fs, const omniq__pending_t *p, int drop) {
  char err[512];
  int qfd, fd;
  if (omniq__fidx_open_dir(fs->idx, p->qdir, &qfd, err, sizeof err) != OMNIQ_OK) die("queue", err);
  fd = openat(qfd, p->name, O_RDONLY | O_CLOEXEC);
  close(qfd);
  if (fd < 0) return 0;
  fdatasync(fd);
  if (drop) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  int in = drop && resident(fd);
  close(fd);
  return in;
}

/* Runs up to max ops (or BUDGET_S seconds): claim (indexed, naive, or
 * indexed with the record of the task it will take synced, or synced and
 * evicted, first) then complete; then, untimed, one new task to keep the
 * count. */
static void run(omniq__fs_t *fs, int mode, long max, result_t *acc) {
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  result_t r = {0, 0, 0, 0};
  char err[512], qdir[OMNIQ__QDIR_SIZE];
  int naive = mode == NAIVE;
  int qfd;
  double start = now_s(), claim_s = 0, op_s = 0;
  if (omniq__fidx_queue(fs->idx, OMNIQ_DEFAULT_QUEUE, 0, qdir, err, sizeof err) != OMNIQ_OK ||
      omniq__fidx_open_dir(fs->idx, qdir, &qfd, err, sizeof err) != OMNIQ_OK)
    die("queue", err);
  long min_ops = naive ? 3 : 20; /* a naive claim on 10^6 files takes most of a second */
  while (r.ops < max && (r.ops < min_ops || now_s() - start < BUDGET_S)) {
    int64_t now = ++clock_ms;
    omniq_claim_req_t req = {now, now + 30000, q, 1, 1};
    omniq_task_t **got = NULL, *t;
    size_t n = 0;
    omniq__pending_t next;
    if (mode >= SYNCED && omniq__fidx_peek_due(fs->idx, q, 1, now, &next, 1) == 1)
      r.stayed += age(fs, &next, mode == COLD);
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
  acc->stayed += r.stayed;
}

static double us(double s, long ops) { return s / (double)ops * 1e6; }

/* The index's own share of a claim: take the best due name out of the
 * pending index and put it back, no file touched. Seconds per pair. */
static double index_only(omniq__fs_t *fs, long pairs) {
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  omniq__pending_t p;
  double t = now_s();
  for (long i = 0; i < pairs; i++) {
    if (omniq__fidx_take_due(fs->idx, q, 1, clock_ms, 0, &p, 1) != 1) die("index", "nothing due");
    omniq__fidx_put_back(fs->idx, &p);
  }
  return (now_s() - t) / (double)pairs;
}

/* The file system's share: the rename a claim makes out of the pending
 * folder and the one back in, on the best due name, timed alone (finding
 * the name, untimed, is the index's). Seconds per pair of renames. */
static double rename_only(omniq__fs_t *fs, long pairs) {
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  omniq__pending_t p;
  char idname[OMNIQ__IDNAME_SIZE], err[512];
  int qfd;
  double total = 0;
  for (long i = 0; i < pairs;) {
    if (omniq__fidx_take_due(fs->idx, q, 1, clock_ms, 0, &p, 1) != 1) die("index", "nothing due");
    if (omniq__fidx_open_dir(fs->idx, p.qdir, &qfd, err, sizeof err) != OMNIQ_OK) die("queue", err);
    omniq__fname_id(p.id, idname);
    double t = now_s();
    int out = renameat(qfd, p.name, fs->running_fd, idname);
    if (out != 0 && errno == ENOENT) { /* taken by a naive claim: the index learns it so */
      close(qfd);
      continue;
    }
    if (out != 0 || renameat(fs->running_fd, idname, qfd, p.name) != 0)
      die("rename", strerror(errno));
    total += now_s() - t;
    close(qfd);
    omniq__fidx_put_back(fs->idx, &p);
    i++;
  }
  return total / (double)pairs;
}

/* The bytes a claim reads, read by hand: open, read 4 KiB, close, of the
 * records of the next due tasks, first evicted, then again from memory.
 * Mean seconds per file into cold and warm. */
static void read_by_hand(omniq__fs_t *fs, double *cold, double *warm) {
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  enum { K = 100 };
  omniq__pending_t p[K];
  char buf[4096], err[512];
  int qfd;
  size_t n = omniq__fidx_peek_due(fs->idx, q, 1, clock_ms, p, K);
  if (n == 0) die("index", "nothing due");
  if (omniq__fidx_open_dir(fs->idx, p[0].qdir, &qfd, err, sizeof err) != OMNIQ_OK) die("queue", err);
  for (size_t i = 0; i < n; i++) age(fs, &p[i], 1);
  for (int pass = 0; pass < 2; pass++) {
    double t = now_s();
    for (size_t i = 0; i < n; i++) {
      int fd = openat(qfd, p[i].name, O_RDONLY | O_CLOEXEC);
      if (fd < 0 || read(fd, buf, sizeof buf) <= 0) die("read", strerror(errno));
      close(fd);
    }
    *(pass == 0 ? cold : warm) = (now_s() - t) / (double)n;
  }
  close(qfd);
}

/* A copy of len bytes in tmp/, its name in tmp (64 bytes). */
static void tmp_copy(omniq__fs_t *fs, const char *buf, ssize_t len, char *tmp) {
  static int seq;
  snprintf(tmp, 64, "bench-%ld-%d.tmp", (long)getpid(), seq++);
  int fd = openat(fs->tmp_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, buf, (size_t)len) != len) die("write", strerror(errno));
  close(fd);
}

/* The rewrite's rename by hand: a copy of the record renamed over it (the
 * record stays the same), for the records of the next due tasks: over the
 * record synced to the disk, and over one made just before (the record
 * unlinked and its copy renamed in, untimed: a file created by a rename
 * that replaces nothing stays unwritten for a while, like a task just
 * enqueued). Mean seconds per rename into on_disk and in_memory. */
static void replace_by_hand(omniq__fs_t *fs, double *on_disk, double *in_memory) {
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  enum { K = 50 };
  omniq__pending_t p[K];
  char buf[4096], err[512], tmp[64];
  int qfd;
  size_t n = omniq__fidx_peek_due(fs->idx, q, 1, clock_ms, p, K);
  if (n == 0) die("index", "nothing due");
  if (omniq__fidx_open_dir(fs->idx, p[0].qdir, &qfd, err, sizeof err) != OMNIQ_OK) die("queue", err);
  for (int pass = 0; pass < 2; pass++) {
    double total = 0;
    for (size_t i = 0; i < n; i++) {
      int fd = openat(qfd, p[i].name, O_RDONLY | O_CLOEXEC);
      ssize_t len = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
      if (len <= 0) die("read", strerror(errno));
      if (pass == 0) fdatasync(fd);
      close(fd);
      if (pass == 1) { /* a fresh record in its place */
        tmp_copy(fs, buf, len, tmp);
        if (unlinkat(qfd, p[i].name, 0) != 0 || renameat(fs->tmp_fd, tmp, qfd, p[i].name) != 0)
          die("rename", strerror(errno));
      }
      tmp_copy(fs, buf, len, tmp);
      double t = now_s();
      if (renameat(fs->tmp_fd, tmp, qfd, p[i].name) != 0) die("rename", strerror(errno));
      total += now_s() - t;
    }
    *(pass == 0 ? on_disk : in_memory) = total / (double)n;
  }
  close(qfd);
}

/* ---- open of a fresh handle, in a process of its own ---------------------- */

typedef struct {
  double open_s, cpu_s; /* wall, and user + system: on a loaded machine the wall time
                           says more about the other processes */
  long rss_kib, hwm_kib;
  size_t entries;
} open_cost_t;

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long status_kib(const char *key) {
  char line[256];
  long v = -1;
  size_t klen = strlen(key);
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') v = strtol(line + klen + 1, NULL, 10);
  fclose(f);
  return v;
}

static void report_child(double open_s, double cpu0, size_t entries) {
  printf("%.6f %.6f %ld %ld %zu\n", open_s, cpu_s() - cpu0, status_kib("VmRSS"),
         status_kib("VmHWM"), entries);
  fflush(stdout);
}

/* `--open DIR`: a handle as a worker opens it (fsync on, the default),
 * from the pending snapshot its last close saved. `--open-listing DIR`:
 * the same with the snapshot ignored, the folders listed (the open as it
 * was before the snapshot, and as it is after a crash). */
static int child_open(const char *dir, int listing) {
  if (listing) {
    omniq__fsnap_use = 0;
    omniq__fsnap_min_tasks = (size_t)-1; /* leave the saved one alone */
  }
  double t = now_s(), c = cpu_s();
  omniq__fs_t *fs = open_store(dir, 1);
  report_child(now_s() - t, c, 0);
  omniq__file_ops.close(fs);
  return 0;
}

/* `--array DIR`: the baseline, the pending folder listed into an array. */
typedef struct {
  uint32_t iprio;
  int64_t eta;
  char id[OMNIQ_ID_SIZE];
} plain_t;

static int child_array(const char *dir) {
  char path[2048], id[OMNIQ_ID_SIZE];
  plain_t *a = NULL;
  size_t n = 0, cap = 0;
  uint32_t iprio;
  int64_t eta;
  struct dirent *de;
  double t = now_s(), c = cpu_s();
  snprintf(path, sizeof path, "%s/queue/pending/%s", dir, OMNIQ_DEFAULT_QUEUE);
  DIR *d = opendir(path);
  if (d == NULL) die("opendir", strerror(errno));
  while ((de = readdir(d)) != NULL) {
    if (omniq__fname_pending_parse(de->d_name, &iprio, &eta, id) != OMNIQ_OK) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 1024;
      a = realloc(a, cap * sizeof *a);
      if (a == NULL) die("array", "out of memory");
    }
    a[n].iprio = iprio;
    a[n].eta = eta;
    memcpy(a[n].id, id, sizeof id);
    n++;
  }
  closedir(d);
  report_child(now_s() - t, c, n);
  free(a);
  return 0;
}

/* Runs this program again as `mode dir` and reads its one line. */
static open_cost_t measure(const char *self, const char *mode, const char *dir) {
  int p[2], status;
  open_cost_t c = {0, 0, 0, 0, 0};
  char line[256];
  if (pipe(p) != 0) die("pipe", strerror(errno));
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) die("fork", strerror(errno));
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    close(p[0]);
    close(p[1]);
    execl(self, self, mode, dir, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  FILE *f = fdopen(p[0], "r");
  if (f == NULL || fgets(line, sizeof line, f) == NULL ||
      sscanf(line, "%lf %lf %ld %ld %zu", &c.open_s, &c.cpu_s, &c.rss_kib, &c.hwm_kib,
             &c.entries) != 5)
    die(mode, "no report from the child");
  fclose(f);
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die(mode, "child failed");
  return c;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median3(double a, double b, double c) {
  double v[3] = {a, b, c};
  qsort(v, 3, sizeof v[0], cmp_double);
  return v[1];
}

static void open_costs(const char *dir) {
  char self[1024];
  open_cost_t o[3], a[3], l[3];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) die("readlink", strerror(errno));
  self[len] = '\0';
  for (int i = 0; i < 3; i++) {
    o[i] = measure(self, "--open", dir);
    l[i] = measure(self, "--open-listing", dir);
    a[i] = measure(self, "--array", dir);
  }
  double os = median3(o[0].open_s, o[1].open_s, o[2].open_s);
  double ls = median3(l[0].open_s, l[1].open_s, l[2].open_s);
  double oc = median3(o[0].cpu_s, o[1].cpu_s, o[2].cpu_s);
  double lc = median3(l[0].cpu_s, l[1].cpu_s, l[2].cpu_s);
  double ac = median3(a[0].cpu_s, a[1].cpu_s, a[2].cpu_s);
  double lhwm = median3(l[0].hwm_kib, l[1].hwm_kib, l[2].hwm_kib) / 1024.0;
  double as = median3(a[0].open_s, a[1].open_s, a[2].open_s);
  double orss = median3(o[0].rss_kib, o[1].rss_kib, o[2].rss_kib) / 1024.0;
  double arss = median3(a[0].rss_kib, a[1].rss_kib, a[2].rss_kib) / 1024.0;
  double ohwm = median3(o[0].hwm_kib, o[1].hwm_kib, o[2].hwm_kib) / 1024.0;
  double ahwm = median3(a[0].hwm_kib, a[1].hwm_kib, a[2].hwm_kib) / 1024.0;
  printf("fresh handle on %zu pending (medians of 3, each in a new process):\n", a[0].entries);
  printf("  %-34s %8.3f s (cpu %.3f s)  RSS %7.1f MiB  peak %7.1f MiB\n",
         "open (fsync on, from the snapshot)", os, oc, orss, ohwm);
  printf("  %-34s %8.3f s (cpu %.3f s)  peak %7.1f MiB  (snapshot/listing: %.2fx, cpu %.2fx)\n",
         "open listing the folders instead", ls, lc, lhwm, os / ls, oc / lc);
  printf("  %-34s %8.3f s (cpu %.3f s)  RSS %7.1f MiB  peak %7.1f MiB  (%zu entries)\n",
         "baseline: folder into plain array", as, ac, arss, ahwm, a[0].entries);
  printf("  open/baseline: time %.2fx, RSS %.2fx, peak %.2fx\n", os / as, orss / arss,
         ohwm / ahwm);
  printf("  targets at 10^6: open <= 0.5 s: %s; RSS <= 64 MiB: %s\n",
         os <= 0.5 ? "met" : "NOT met", ohwm <= 64.0 ? "met" : "NOT met");
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--open") == 0) return child_open(argv[2], 0);
  if (argc == 3 && strcmp(argv[1], "--open-listing") == 0) return child_open(argv[2], 1);
  if (argc == 3 && strcmp(argv[1], "--array") == 0) return child_array(argv[2]);
  const char *big = getenv("OMNIQ_BENCH_TASKS");
  if (bench_smoke()) rounds = 1, round_ops = 50;
  const long sizes[2] = {1000, big != NULL && atol(big) > 1000 ? atol(big) : 1000000};
  const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
  const char *kept = getenv("OMNIQ_BENCH_STORE");
  result_t idx[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}}, nv[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  result_t cold[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}}, synced[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  result_t warm = {0, 0, 0, 0};
  char dir[1024];
  if (base == NULL || base[0] == '\0') base = "/tmp";
  printf("file backend claim cost (claim + complete per op, fsync off), dir %s\n", base);
  printf("%9s  %14s %14s  %14s %14s  %9s\n", "pending", "index claim", "index op", "naive claim",
         "naive op", "naive/idx");
  omniq__fs_t *fs2[2];
  char dirs[2][1024];
  int keep[2] = {0, kept != NULL && kept[0] != '\0'};
  for (int s = 0; s < 2; s++) {
    int64_t have = 0;
    char err[512];
    if (keep[s]) {
      snprintf(dirs[s], sizeof dirs[s], "%s", kept);
    } else {
      snprintf(dirs[s], sizeof dirs[s], "%s/omniq-bench-XXXXXX", base);
      if (mkdtemp(dirs[s]) == NULL) die("mkdtemp", strerror(errno));
    }
    fs2[s] = open_store(dirs[s], 0);
    if (keep[s] && omniq__fidx_count(fs2[s]->idx, &have, err, sizeof err) != OMNIQ_OK)
      die("count", err);
    double t = now_s();
    fill(fs2[s], sizes[s] - (long)have, T0 - 1);
    printf("%9s  (setup: %ld tasks in %.1f s, %ld there before)\n", "", sizes[s] - (long)have,
           now_s() - t, (long)have);
    run(fs2[s], INDEX, 100, &warm);
  }
  double pair_s[2] = {0, 0}, ren_s[2] = {0, 0};
  for (int round = 0; round < rounds; round++)
    for (int s = 0; s < 2; s++) {
      run(fs2[s], INDEX, round_ops, &idx[s]);
      run(fs2[s], NAIVE, round_ops, &nv[s]);
      run(fs2[s], SYNCED, round_ops / 5, &synced[s]);
      run(fs2[s], COLD, round_ops / 5, &cold[s]);
      pair_s[s] += index_only(fs2[s], 20000) / rounds;
      ren_s[s] += rename_only(fs2[s], 200) / rounds;
    }
  double rcold[2], rwarm[2], rdisk[2], rmem[2];
  for (int s = 0; s < 2; s++) {
    read_by_hand(fs2[s], &rcold[s], &rwarm[s]);
    replace_by_hand(fs2[s], &rdisk[s], &rmem[s]);
  }
  for (int s = 0; s < 2; s++) {
    printf("%9ld  %11.1f us %11.1f us  %11.1f us %11.1f us  %8.1fx   (%ld / %ld ops)\n",
           sizes[s], us(idx[s].claim_s, idx[s].ops), us(idx[s].op_s, idx[s].ops),
           us(nv[s].claim_s, nv[s].ops), us(nv[s].op_s, nv[s].ops),
           us(nv[s].op_s, nv[s].ops) / us(idx[s].op_s, idx[s].ops), idx[s].ops, nv[s].ops);
    double t = now_s();
    omniq__file_ops.close(fs2[s]);
    if (s == 1) printf("%9s  (close of the large store, saving its snapshot: %.2f s)\n", "", now_s() - t);
  }
  open_costs(dirs[1]);
  for (int s = 0; s < 2; s++)
    if (!keep[s]) nftw(dirs[s], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  double ratio = us(idx[1].op_s, idx[1].ops) / us(idx[0].op_s, idx[0].ops);
  double cratio = us(idx[1].claim_s, idx[1].ops) / us(idx[0].claim_s, idx[0].ops);
  printf("cost at %ld / cost at %ld: index %.2fx, naive %.1fx\n", sizes[1], sizes[0], ratio,
         us(nv[1].op_s, nv[1].ops) / us(nv[0].op_s, nv[0].ops));
  printf("claim only at %ld / at %ld: index %.2fx (target <= 1.5x: %s), naive %.1fx\n", sizes[1],
         sizes[0], cratio, cratio <= 1.5 ? "met" : "NOT met",
         us(nv[1].claim_s, nv[1].ops) / us(nv[0].claim_s, nv[0].ops));
  printf("the index alone (take the best due name, put it back): %.2f us at %ld, %.2f us at %ld "
         "(%.2fx)\n",
         pair_s[0] * 1e6, sizes[0], pair_s[1] * 1e6, sizes[1], pair_s[1] / pair_s[0]);
  printf("the file system alone (the claim's rename out of the folder and back, no OmniQ code): "
         "%.1f us at %ld, %.1f us at %ld (%.2fx)\n",
         ren_s[0] * 1e6, sizes[0], ren_s[1] * 1e6, sizes[1], ren_s[1] / ren_s[0]);
  double y0 = us(synced[0].claim_s, synced[0].ops), y1 = us(synced[1].claim_s, synced[1].ops);
  double c0 = us(cold[0].claim_s, cold[0].ops), c1 = us(cold[1].claim_s, cold[1].ops);
  printf("claim, its record first synced to the disk: %.1f us at %ld, %.1f us at %ld (%.2fx)\n",
         y0, sizes[0], y1, sizes[1], y1 / y0);
  printf("claim, its record first synced and evicted: %.1f us at %ld, %.1f us at %ld (%.2fx); "
         "records that stayed in memory: %ld of %ld, %ld of %ld\n",
         c0, sizes[0], c1, sizes[1], c1 / c0, cold[0].stayed, cold[0].ops, cold[1].stayed,
         cold[1].ops);
  printf("by hand, the claim's read (open, read 4 KiB, close): evicted %.1f us, warm %.1f us at "
         "%ld; evicted %.1f us, warm %.1f us at %ld\n",
         rcold[0] * 1e6, rwarm[0] * 1e6, sizes[0], rcold[1] * 1e6, rwarm[1] * 1e6, sizes[1]);
  printf("by hand, the rewrite's rename over the record: on the disk %.1f us, not yet written "
         "%.1f us at %ld; on the disk %.1f us, not yet written %.1f us at %ld\n",
         rdisk[0] * 1e6, rmem[0] * 1e6, sizes[0], rdisk[1] * 1e6, rmem[1] * 1e6, sizes[1]);

  /* fsync on vs off, taking turns on one store of the small size. */
  result_t on = {0, 0, 0, 0}, off = {0, 0, 0, 0};
  snprintf(dir, sizeof dir, "%s/omniq-bench-XXXXXX", base);
  if (mkdtemp(dir) == NULL) die("mkdtemp", strerror(errno));
  omniq__fs_t *fs = open_store(dir, 0);
  fill(fs, sizes[0], T0 - 1);
  for (int round = 0; round < rounds; round++) {
    run(fs, INDEX, 100, &off);
    omniq__file_ops.close(fs);
    fs = open_store(dir, 1);
    run(fs, INDEX, 100, &on);
    omniq__file_ops.close(fs);
    fs = open_store(dir, 0);
  }
  omniq__file_ops.close(fs);
  printf("at %ld pending: fsync on %.1f us per op, off %.1f us (on/off %.1fx)\n", sizes[0],
         us(on.op_s, on.ops), us(off.op_s, off.ops), us(on.op_s, on.ops) / us(off.op_s, off.ops));
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  /* A gross regression (the index gone linear) fails `make bench`. It is
   * judged on the index alone: a claim's file operations in a folder of
   * 10^6 names swing by more than 3x on a loaded disk, so the 1.5x target
   * on the whole claim is printed, not enforced. A smoke run (the suite's)
   * compares two stores of about 10^3 in one short round, so its ratio is
   * the machine's load alone and swings past 3x on a loaded machine: there
   * it fails only past 30x, as a crashed or hung index still does. */
  return pair_s[1] / pair_s[0] < (bench_smoke() ? 30.0 : 3.0) ? 0 : 1;
}
