/* SPDX-License-Identifier: MIT */
/* SIGKILL storms: worker processes killed while they run tasks, on one
 * backend and one isolation (argv[1] "sqlite" or "file", argv[2] "thread"
 * or "process"; sqlite and thread by default).
 *
 * The test forks WORKERS worker processes (each a pool of CONCURRENCY on
 * its own handle, with a real-time lease of LEASE_MS) over TASKS tasks,
 * and kills a worker with SIGKILL at KILLS moments when it has runs in
 * flight, starting a fresh worker in its place each time. Each run of the
 * handler appends a start and an end record to a log file every process
 * shares (O_APPEND, one write per record) and tells the test through a pipe,
 * which is what the test waits on; a run's "work" is RUN_MS long, longer
 * than the test waits for a killed worker's handlers to be gone, so one
 * that outlived its worker is seen. The lease is long beside the extension
 * period (a third of it), so a live worker slowed by a loaded machine does
 * not lose its claims: an overlap here is a fault, never the load. Then it
 * proves:
 *
 *   - nothing is lost: every task ends SUCCESS with its own value, and no
 *     task is left RUNNING once the leases have passed;
 *   - no two runs of one task overlap (start..end intervals from the log;
 *     a run cut off by a kill ends at the kill);
 *   - no child survives its worker (process isolation: every handler
 *     process of a killed worker is gone within ORPHAN_WAIT_MS).
 *
 * Tasks have retries enough for every kill, and no crash budget, so
 * neither is ever the reason one fails. Nothing here sleeps to
 * synchronise: the test blocks on the pipe, on pidfds and on result waits. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/helpers.h"

#define TASKS 30 /* enough that every kill finds runs of tasks not killed before */
#define WORKERS 3
#define CONCURRENCY 2
#define KILLS 5
#define LEASE_MS 4000 /* extended every 1.3 s: a live worker would have to stall 2.7 s to lose it */
#define RUN_MS 1200   /* longer than ORPHAN_WAIT_MS, so a handler outliving its worker is seen */
#define EVENT_WAIT_MS 60000
#define ORPHAN_WAIT_MS 500
#define RESULT_WAIT_S 120.0
#define MAX_PROCS (WORKERS + KILLS)
#define MAX_RUNS 256

static const char *backend = "sqlite";
static int isolation = OMNIQ_ISOLATION_THREAD;

/* One line of the pipe: a run started or ended. */
typedef struct {
  char kind; /* 'S' or 'E' */
  pid_t worker, handler;
  char id[OMNIQ_ID_SIZE];
} event_t;

/* ---- the worker processes ------------------------------------------------------- */

static int log_fd = -1, event_fd = -1;
/* The worker process a handler runs for: set before its pool starts, so
 * the handler processes of process isolation (children of its zygote)
 * inherit it. */
static pid_t worker_pid;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void record(char kind, omniq_job_t *job) {
  event_t ev = {.kind = kind, .handler = getpid()};
  ev.worker = worker_pid;
  snprintf(ev.id, sizeof ev.id, "%s", omniq_job_id(job));
  char line[160];
  int n = snprintf(line, sizeof line, "%c %s %ld %ld %lld\n", kind, ev.id, (long)ev.worker,
                   (long)ev.handler, (long long)mono_ns());
  if (write(log_fd, line, (size_t)n) != n || write(event_fd, &ev, sizeof ev) != sizeof ev)
    _exit(9);
}

/* The run's work: RUN_MS of it. */
static int storm(omniq_job_t *job, void *ud) {
  (void)ud;
  record('S', job);
  struct timespec work = {RUN_MS / 1000, (RUN_MS % 1000) * 1000000L};
  while (nanosleep(&work, &work) != 0 && errno == EINTR) {
  }
  record('E', job);
  return omniq_job_return(job, omniq_job_args(job));
}

static void quiet(void *ud, int level, const char *line) {
  (void)ud;
  (void)level;
  (void)line;
}

static void worker_settings(omniq_settings_t *s, const char *dir) {
  th_settings(s, backend, dir, NULL); /* the real clock: several processes share it */
  s->lease_ms = LEASE_MS;
  /* A worker can be killed holding a claim whose run has not reported its
   * start yet, so a task may lose more than the one run the storm aims at;
   * what PoisonTask makes of lost runs is test_poison's business. */
  s->crash_budget = 0;
  s->log_fn = quiet;
}

/* A worker process: runs its pool until the test closes the stop pipe. */
static int worker_main(const char *dir, int stop_fd) {
  omniq_settings_t s;
  omniq_t *oq = NULL;
  omniq_worker_t *w = NULL;
  omniq_worker_opts_t o;
  char c;
  worker_pid = getpid();
  worker_settings(&s, dir);
  if (omniq_open(&oq, &s) != OMNIQ_OK) return 2;
  if (omniq_register(oq, "storm", storm, NULL) != OMNIQ_OK) return 2;
  omniq_worker_opts_init(&o);
  o.concurrency = CONCURRENCY;
  o.isolation = isolation;
  o.poll_interval_ms = 100;
  if (omniq_worker_start(oq, &o, &w) != OMNIQ_OK) return 2;
  while (read(stop_fd, &c, 1) < 0 && errno == EINTR) {
  }
  int rc = omniq_worker_stop(w);
  omniq_close(oq);
  return rc == OMNIQ_OK ? 0 : 3;
}

/* ---- the test side ---------------------------------------------------------------- */

typedef struct {
  pid_t pid;
  int alive;
  int64_t killed_ns; /* 0 = not killed */
  pid_t handlers[CONCURRENCY * 4];
  char ids[CONCURRENCY * 4][OMNIQ_ID_SIZE];
  int inflight;
} proc_t;

typedef struct {
  char *dir;
  int events[2], stop[2];
  proc_t procs[MAX_PROCS];
  int nprocs;
  char ids[TASKS][OMNIQ_ID_SIZE];
  char killed_ids[KILLS * CONCURRENCY][OMNIQ_ID_SIZE];
  int nkilled_ids;
  int orphans;
} storm_t;

static void start_worker(storm_t *st) {
  assert_true(st->nprocs < MAX_PROCS);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(st->events[0]);
    close(st->stop[1]);
    event_fd = st->events[1];
    _exit(worker_main(st->dir, st->stop[0]));
  }
  proc_t *p = &st->procs[st->nprocs++];
  memset(p, 0, sizeof *p);
  p->pid = pid;
  p->alive = 1;
}

/* The worker a run reported, or NULL. */
static proc_t *proc_of(storm_t *st, pid_t pid) {
  for (int i = 0; i < st->nprocs; i++)
    if (st->procs[i].pid == pid) return &st->procs[i];
  return NULL;
}

static void read_event(storm_t *st, event_t *ev) {
  struct pollfd pfd = {st->events[0], POLLIN, 0};
  int rc;
  while ((rc = poll(&pfd, 1, EVENT_WAIT_MS)) < 0 && errno == EINTR) {
  }
  if (rc != 1) fail_msg("no run started or ended within %d ms", EVENT_WAIT_MS);
  assert_int_equal(th_read_full(st->events[0], ev, sizeof *ev), 0);
}

static int was_killed(const storm_t *st, const char *id) {
  for (int i = 0; i < st->nkilled_ids; i++)
    if (strcmp(st->killed_ids[i], id) == 0) return 1;
  return 0;
}

/* Waits up to ORPHAN_WAIT_MS for process pid to be gone; kills it if not. */
static int gone_in_time(pid_t pid) {
  int fd = pidfd_open(pid, 0);
  if (fd < 0) return errno == ESRCH; /* already gone (and reaped) */
  struct pollfd pfd = {fd, POLLIN, 0};
  int rc;
  while ((rc = poll(&pfd, 1, ORPHAN_WAIT_MS)) < 0 && errno == EINTR) {
  }
  if (rc != 1) pidfd_send_signal(fd, SIGKILL, NULL, 0); /* do not leave it running */
  close(fd);
  return rc == 1;
}

static void kill_worker(storm_t *st, proc_t *p) {
  int status;
  for (int i = 0; i < p->inflight; i++)
    snprintf(st->killed_ids[st->nkilled_ids++], OMNIQ_ID_SIZE, "%s", p->ids[i]);
  assert_int_equal(kill(p->pid, SIGKILL), 0);
  assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
  p->killed_ns = mono_ns(); /* dead by now: every run it recorded started before */
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  p->alive = 0;
  /* Its handler processes must die with it. */
  for (int i = 0; i < p->inflight; i++)
    if (p->handlers[i] != p->pid && !gone_in_time(p->handlers[i])) st->orphans++;
}

/* A kill when a run starts on a worker whose runs all belong to tasks that
 * never lost a run yet, two starts at least after the last kill. */
static int kill_now(const storm_t *st, const proc_t *p, long since_kill) {
  if (since_kill < 2 || !p->alive) return 0;
  for (int i = 0; i < p->inflight; i++)
    if (was_killed(st, p->ids[i])) return 0;
  return 1;
}

static void storm_until_killed(storm_t *st) {
  long since_kill = 2;
  int kills = 0;
  while (kills < KILLS) {
    event_t ev;
    read_event(st, &ev);
    proc_t *p = proc_of(st, ev.worker);
    if (p == NULL || !p->alive) continue; /* outlived its worker: the checks below see it */
    if (ev.kind == 'E') {
      for (int i = 0; i < p->inflight; i++)
        if (p->handlers[i] == ev.handler && strcmp(p->ids[i], ev.id) == 0) {
          p->handlers[i] = p->handlers[p->inflight - 1];
          memcpy(p->ids[i], p->ids[p->inflight - 1], OMNIQ_ID_SIZE);
          p->inflight--;
          break;
        }
      continue;
    }
    assert_true(p->inflight < CONCURRENCY * 4);
    p->handlers[p->inflight] = ev.handler;
    memcpy(p->ids[p->inflight++], ev.id, OMNIQ_ID_SIZE);
    if (!kill_now(st, p, since_kill++)) continue;
    kill_worker(st, p);
    kills++;
    since_kill = 0;
    start_worker(st);
  }
}

/* ---- the checks ---------------------------------------------------------------- */

typedef struct {
  char id[OMNIQ_ID_SIZE];
  long worker, handler;
  int64_t start, end; /* end 0: none recorded */
} run_t;

static int cmp_runs(const void *a, const void *b) {
  const run_t *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  if (c != 0) return c;
  return (x->start > y->start) - (x->start < y->start);
}

/* Reads the log into runs, pairing each end with its start. */
static size_t read_runs(const storm_t *st, run_t *runs) {
  char path[2048], line[256];
  size_t n = 0;
  snprintf(path, sizeof path, "%s/runs.log", st->dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  while (fgets(line, sizeof line, f) != NULL) {
    char kind, id[OMNIQ_ID_SIZE];
    long worker, handler;
    long long t;
    assert_int_equal(sscanf(line, "%c %36s %ld %ld %lld", &kind, id, &worker, &handler, &t), 5);
    if (kind == 'S') {
      assert_true(n < MAX_RUNS);
      run_t *r = &runs[n++];
      memcpy(r->id, id, OMNIQ_ID_SIZE);
      r->worker = worker;
      r->handler = handler;
      r->start = t;
      r->end = 0;
      continue;
    }
    size_t i = n;
    while (i > 0 && !(runs[i - 1].handler == handler && strcmp(runs[i - 1].id, id) == 0)) i--;
    if (i == 0 || runs[i - 1].end != 0) fail_msg("an end without its start: %s", line);
    runs[i - 1].end = t;
  }
  fclose(f);
  return n;
}

static void assert_no_overlap(const storm_t *st) {
  static run_t runs[MAX_RUNS];
  size_t n = read_runs(st, runs);
  for (size_t i = 0; i < n; i++) {
    if (runs[i].end != 0) continue;
    /* Cut off by a kill: it ended when its worker did. */
    for (int k = 0; k < st->nprocs && runs[i].end == 0; k++)
      if (st->procs[k].pid == runs[i].worker) runs[i].end = st->procs[k].killed_ns;
    if (runs[i].end == 0) fail_msg("task %s: a run on a live worker never ended", runs[i].id);
  }
  qsort(runs, n, sizeof *runs, cmp_runs);
  for (size_t i = 1; i < n; i++)
    if (strcmp(runs[i].id, runs[i - 1].id) == 0 && runs[i].start < runs[i - 1].end)
      fail_msg("task %s: two runs overlap by %lld ms (workers %ld and %ld)", runs[i].id,
               (long long)((runs[i - 1].end - runs[i].start) / 1000000), runs[i - 1].worker,
               runs[i].worker);
}

static void assert_nothing_lost(omniq_t *oq, const storm_t *st) {
  for (int i = 0; i < TASKS; i++) {
    omniq_result_t *r = NULL;
    char want[32];
    int rc = omniq_get_result(oq, st->ids[i], RESULT_WAIT_S, &r);
    if (rc != OMNIQ_OK) fail_msg("task %s: %s", st->ids[i], omniq_err_name(rc));
    snprintf(want, sizeof want, "[%d]", i);
    if (omniq_result_status(r) != OMNIQ_SUCCESS)
      fail_msg("task %s: %s after %d attempt(s): %s: %s", st->ids[i],
               omniq_status_name(omniq_result_status(r)), omniq_result_attempts(r),
               omniq_error_type(omniq_result_error(r)), omniq_error_message(omniq_result_error(r)));
    assert_string_equal(omniq_result_value(r), want);
    omniq_result_free(r);
    /* A lookup finishes a transition its killed worker left half done. */
    omniq_task_t *t = NULL;
    th_ok(oq, omniq_get_task(oq, st->ids[i], &t));
    assert_int_equal(omniq_task_status(t), OMNIQ_SUCCESS);
    omniq_task_free(t);
  }
}

/* Once the workers stopped, the folders or rows hold every task as done. */
static void assert_none_left_running(omniq_t *oq) {
  int64_t c[OMNIQ_STATUS_COUNT];
  th_ok(oq, omniq_count_by_status(oq, c));
  assert_int_equal(c[OMNIQ_SUCCESS], TASKS);
  assert_int_equal(c[OMNIQ_PENDING] + c[OMNIQ_RUNNING] + c[OMNIQ_FAILED] + c[OMNIQ_CANCELLED], 0);
}

static void stop_workers(storm_t *st) {
  close(st->stop[1]); /* EOF: each live worker stops gracefully */
  for (int i = 0; i < st->nprocs; i++) {
    int status;
    if (!st->procs[i].alive) continue;
    assert_int_equal(waitpid(st->procs[i].pid, &status, 0), st->procs[i].pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail_msg("worker %ld ended with status %d", (long)st->procs[i].pid, status);
  }
}

static void test_sigkill_storm_loses_nothing_and_never_runs_a_task_twice_at_once(void **state) {
  storm_t st;
  omniq_settings_t s;
  omniq_t *oq = NULL;
  char path[2048];
  (void)state;
  memset(&st, 0, sizeof st);
  st.dir = th_tmpdir();
  assert_non_null(st.dir);
  snprintf(path, sizeof path, "%s/runs.log", st.dir);
  log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  assert_true(log_fd >= 0);
  assert_int_equal(pipe(st.events), 0);
  assert_int_equal(pipe(st.stop), 0);
  signal(SIGPIPE, SIG_IGN);

  worker_settings(&s, st.dir);
  th_ok(NULL, omniq_open(&oq, &s));
  for (int i = 0; i < TASKS; i++) {
    omniq_enqueue_opts_t o;
    char args[32];
    omniq_enqueue_opts_init(&o);
    o.max_retries = 10;
    snprintf(args, sizeof args, "[%d]", i);
    th_ok(oq, omniq_enqueue(oq, "storm", args, NULL, &o, st.ids[i]));
  }
  omniq_close(oq); /* nothing the test opened crosses a fork */
  for (int i = 0; i < WORKERS; i++) start_worker(&st);
  storm_until_killed(&st);
  th_ok(NULL, omniq_open(&oq, &s));
  assert_nothing_lost(oq, &st);
  stop_workers(&st);
  assert_none_left_running(oq);
  omniq_close(oq);

  if (st.orphans > 0)
    fail_msg("%d handler process(es) outlived their killed worker", st.orphans);
  assert_no_overlap(&st);
  close(log_fd);
  close(st.events[0]);
  close(st.events[1]);
  close(st.stop[0]);
  th_rmtree(st.dir);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (argc > 2 && strcmp(argv[2], "process") == 0) isolation = OMNIQ_ISOLATION_PROCESS;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sigkill_storm_loses_nothing_and_never_runs_a_task_twice_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
