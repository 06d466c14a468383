/* SPDX-License-Identifier: MIT */
/* The file backend's system calls per task, step by step: a census that
 * does not depend on the load of the machine.
 *
 * The program runs itself under strace(1) (-f, every thread) and counts
 * the calls each step made, per task:
 *
 *   enqueue_many  TASKS tasks given to the backend's enqueue in batches of
 *                 500 (what omniq_enqueue_many passes down);
 *   claim         claims of C tasks (a pool of C runners with free slots);
 *   finish_many   finish_many of those C outcomes (SUCCESS with a result),
 *                 with no claim riding along (the claim is counted above);
 *
 * until every task is done, with fsync on and off, each in a fresh store.
 * Opening and closing the store are not counted. Beside them, the hand
 * baseline of bench_file_throughput: one openat, write, close and renameat
 * per operation (+ fdatasync and a folder fsync with fsync on), and a task
 * needs at least three such writes (enqueue, claim, result).
 *
 * Steps are told apart by markers the child writes to descriptor -1
 * (write fails with EBADF and does nothing); they are not counted. Two
 * lines beside the calls: files and folders made (openat with O_CREAT,
 * mkdirat) and names removed (unlinkat), when they succeeded. Those are
 * what ext4 makes expensive: each new inode is looked for past every inode
 * freed in the last 60 s (docs/benchmarks.md).
 *
 * Usage: bench_file_syscalls [tasks] [c]   (default 2000 tasks, c = 4;
 * BENCH_DIR as bench_file_throughput). Without strace on the PATH, or where
 * it may not trace, it says so and exits 0. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "bench_util.h"
#include "omniq.h"
#include "omniq/storage.h"

#define BATCH 500
#define STEPS 3
#define MAX_NAMES 96

static const char *const step_names[STEPS] = {"enqueue_many", "claim", "finish_many"};
static const char *const queues[] = {OMNIQ_DEFAULT_QUEUE};

static void mark(const char *step) {
  char m[64];
  int n = snprintf(m, sizeof m, "census:%s", step);
  if (write(-1, m, (size_t)n) >= 0) die("mark", "write to -1 succeeded");
}

/* ---- the child: the steps, under strace ------------------------------------ */

/* The store's clock: the real time at the start, moved by hand. */
static int64_t fake_now;

static int64_t clock_fn(void *ud) {
  (void)ud;
  return fake_now;
}

static omniq_task_t *new_task(void) {
  omniq_task_t *t = omniq_task_new();
  if (t == NULL) die("task", "out of memory");
  omniq__id_new(fake_now, t->id);
  t->id_fresh = 1; /* made for this enqueue, as omniq_enqueue_many marks its ids */
  t->func = omniq__strdup("bench.noop");
  t->queue = omniq__strdup(OMNIQ_DEFAULT_QUEUE);
  t->args = omniq__strdup("[1,2,3]");
  t->kwargs = omniq__strdup("{}");
  t->status = OMNIQ_PENDING;
  t->eta_ms = fake_now;
  t->created_at_ms = fake_now;
  return t;
}

static int child(const char *dir, int fsync_on, long tasks, size_t c) {
  const omniq_storage_ops_t *ops = omniq_storage_find("file");
  omniq_settings_t s;
  void *b = NULL;
  char err[512];
  static omniq_task_t *batch[BATCH];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  fake_now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  omniq_settings_init(&s);
  snprintf(s.backend, sizeof s.backend, "file");
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  s.fsync = fsync_on;
  s.log_level = OMNIQ_LOG_ERROR;
  s.clock_fn = clock_fn;
  if (ops == NULL || ops->open(&s, &b, err, sizeof err) != OMNIQ_OK) die("open", err);
  for (long n = 0; n < tasks; n += BATCH) {
    size_t k = tasks - n < BATCH ? (size_t)(tasks - n) : BATCH;
    for (size_t i = 0; i < k; i++) batch[i] = new_task();
    mark("enqueue_many");
    if (ops->enqueue(b, batch, k, err, sizeof err) != OMNIQ_OK) die("enqueue", err);
    mark("-");
    for (size_t i = 0; i < k; i++) omniq_task_free(batch[i]);
  }
  fake_now += 1000;
  omniq_claim_req_t req = {fake_now, fake_now + 60000, queues, 1, c};
  long done = 0;
  while (done < tasks) {
    omniq_task_t **got = NULL, **none = NULL;
    size_t n = 0, nnone = 0;
    int claimed = 0, rcs[64];
    omniq_decision_t ds[64];
    omniq_result_t *rs[64];
    mark("claim");
    if (ops->claim(b, &req, &got, &n, err, sizeof err) != OMNIQ_OK) die("claim", err);
    mark("-");
    if (n == 0) die("claim", "nothing claimed");
    for (size_t i = 0; i < n; i++) {
      rs[i] = omniq_result_new();
      memcpy(rs[i]->task_id, got[i]->id, OMNIQ_ID_SIZE);
      rs[i]->status = OMNIQ_SUCCESS;
      rs[i]->value = omniq__strdup("null");
      rs[i]->attempts = 1;
      rs[i]->finished_at_ms = rs[i]->last_attempt_at_ms = fake_now;
      ds[i] = (omniq_decision_t){.id = got[i]->id,
                                 .token = got[i]->token,
                                 .next_status = OMNIQ_SUCCESS,
                                 .result = rs[i],
                                 .queue = got[i]->queue,
                                 .runs = OMNIQ_RUNS_SUCCEEDED};
    }
    mark("finish_many");
    if (ops->finish_many(b, ds, n, rcs, NULL, &none, &nnone, &claimed, err, sizeof err) !=
        OMNIQ_OK)
      die("finish_many", err);
    mark("-");
    for (size_t i = 0; i < n; i++) {
      if (rcs[i] != OMNIQ_OK) die("finish_many", "a decision failed");
      omniq_result_free(rs[i]);
      omniq_task_free(got[i]);
    }
    omniq__free(got);
    done += (long)n;
  }
  ops->close(b);
  return 0;
}

/* ---- the parent: runs the child under strace and counts -------------------- */

typedef struct census {
  char names[MAX_NAMES][32];
  long counts[MAX_NAMES][STEPS];
  int nnames;
  long made[STEPS];    /* inodes made: openat with O_CREAT, mkdirat, that succeeded */
  long removed[STEPS]; /* names removed: unlinkat that succeeded (files and folders) */
} census_t;

static void count(census_t *cs, const char *name, int step) {
  int i = 0;
  while (i < cs->nnames && strcmp(cs->names[i], name) != 0) i++;
  if (i == cs->nnames) {
    if (cs->nnames == MAX_NAMES) return;
    snprintf(cs->names[cs->nnames++], sizeof cs->names[0], "%s", name);
  }
  cs->counts[i][step]++;
}

/* One line of strace -f output: "PID name(args...) = ret", or the start of
 * a call another thread interrupted ("<unfinished ...>", counted) or its
 * end ("<... name resumed>", not counted again). */
static void read_trace(census_t *cs, FILE *f) {
  char line[4096], name[32];
  int step = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    char *p = line;
    while (isdigit((unsigned char)*p)) p++;
    while (*p == ' ') p++;
    if (strncmp(p, "<...", 4) == 0) continue;
    size_t n = 0;
    while ((isalnum((unsigned char)p[n]) || p[n] == '_') && n < sizeof name - 1) n++;
    if (n == 0 || p[n] != '(') continue;
    memcpy(name, p, n);
    name[n] = '\0';
    const char *m = strstr(p, "\"census:");
    if (strcmp(name, "write") == 0 && strncmp(p + n, "(-1,", 4) == 0 && m != NULL) {
      step = -1;
      for (int i = 0; i < STEPS; i++)
        if (strncmp(m + 8, step_names[i], strlen(step_names[i])) == 0 &&
            m[8 + strlen(step_names[i])] == '"')
          step = i;
      continue;
    }
    if (step < 0) continue;
    count(cs, name, step);
    int ok = strstr(p, ") = -1 ") == NULL;
    if (ok && (strcmp(name, "mkdirat") == 0 ||
               (strcmp(name, "openat") == 0 && strstr(p, "O_CREAT") != NULL)))
      cs->made[step]++;
    if (ok && strcmp(name, "unlinkat") == 0) cs->removed[step]++;
  }
}

static void census(const char *self, int fsync_on, long tasks, size_t c) {
  char dir[512], trace[600], targ[32], carg[32];
  const char *base = getenv("BENCH_DIR");
  snprintf(dir, sizeof dir, "%s/omniq-fcensus-XXXXXX", base != NULL ? base : "/tmp");
  if (mkdtemp(dir) == NULL) die("mkdtemp", dir);
  snprintf(trace, sizeof trace, "%s.trace", dir);
  snprintf(targ, sizeof targ, "%ld", tasks);
  snprintf(carg, sizeof carg, "%zu", c);
  pid_t pid = fork();
  if (pid < 0) die("fork", NULL);
  if (pid == 0) {
    execlp("strace", "strace", "-f", "-qq", "-s", "24", "-o", trace, self, "--child", dir,
           fsync_on ? "1" : "0", targ, carg, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    die("strace", "the traced run failed");
  census_t cs = {0};
  FILE *f = fopen(trace, "r");
  if (f == NULL) die("open trace", trace);
  read_trace(&cs, f);
  fclose(f);
  remove(trace);
  bench_rmtree(dir);

  double total[STEPS] = {0};
  printf("\nfsync %s: system calls per task, %ld tasks, claims and finishes of %zu\n",
         fsync_on ? "on" : "off", tasks, c);
  printf("%-18s %13s %13s %13s %9s\n", "call", step_names[0], step_names[1], step_names[2],
         "task");
  for (int i = 0; i < cs.nnames; i++) {
    double sum = 0;
    for (int s = 0; s < STEPS; s++) {
      total[s] += (double)cs.counts[i][s] / (double)tasks;
      sum += (double)cs.counts[i][s] / (double)tasks;
    }
    if (sum < 0.005) continue; /* the run's own allocations and such */
    printf("%-18s", cs.names[i]);
    for (int s = 0; s < STEPS; s++) printf(" %13.2f", (double)cs.counts[i][s] / (double)tasks);
    printf(" %9.2f\n", sum);
  }
  printf("%-18s %13.2f %13.2f %13.2f %9.2f\n", "all", total[0], total[1], total[2],
         total[0] + total[1] + total[2]);
  const char *what[2] = {"(files made)", "(removed)"};
  const long *v[2] = {cs.made, cs.removed};
  for (int k = 0; k < 2; k++) {
    double d[STEPS];
    for (int s = 0; s < STEPS; s++) d[s] = (double)v[k][s] / (double)tasks;
    printf("%-18s %13.2f %13.2f %13.2f %9.2f\n", what[k], d[0], d[1], d[2], d[0] + d[1] + d[2]);
  }
  double hand = fsync_on ? 6 : 4;
  printf("hand baseline: %.0f calls per write, 3 writes a task: %.0f; ratio %.2f\n", hand,
         3 * hand, (total[0] + total[1] + total[2]) / (3 * hand));
}

int main(int argc, char **argv) {
  if (argc == 6 && strcmp(argv[1], "--child") == 0)
    return child(argv[2], atoi(argv[3]), atol(argv[4]), (size_t)atol(argv[5]));
  long tasks = argc > 1 ? atol(argv[1]) : 2000;
  long c = argc > 2 ? atol(argv[2]) : 4;
  if (tasks < 1 || c < 1 || c > 64) die("usage", "bench_file_syscalls [tasks] [c 1..64]");
  if (system("strace -f -qq -o /dev/null true >/dev/null 2>&1") != 0) {
    printf("bench_file_syscalls: strace not found or not allowed to trace, no census taken\n");
    return 0;
  }
  for (int on = 1; on >= 0; on--) census(argv[0], on, tasks, (size_t)c);
  return 0;
}
