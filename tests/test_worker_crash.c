/* SPDX-License-Identifier: MIT */
/* A worker process killed with SIGKILL in the middle of its tasks loses
 * nothing: once the leases expire (the manual clock moves past them),
 * another worker runs those tasks to completion, and each keeps the lost
 * run as a "WorkerLost" attempt. In process isolation, no process of the
 * dead worker's runs outlives it: not the children, not what they
 * started, so a task runs again only once its first run is dead. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/helpers.h"
#include "support/gate.h"

enum { TASKS = 3 };

static int started_fd = -1;

/* In the doomed worker: tells the test it holds the task, then never
 * returns. */
static int hold_handler(omniq_job_t *job, void *ud) {
  (void)job;
  (void)ud;
  ssize_t n = write(started_fd, "s", 1);
  (void)n;
  for (;;) pause();
  return OMNIQ_OK;
}

static int ok_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, "\"recovered\"");
}

/* The doomed worker process: its own handle on the same store, a pool
 * holding every task. Never returns; the test kills it. */
static _Noreturn void doomed_worker(const omniq_settings_t *s, int fd, int isolation,
                                    omniq_handler_fn fn) {
  omniq_t *oq;
  omniq_worker_t *w;
  omniq_worker_opts_t o;
  started_fd = fd;
  if (omniq_open(&oq, s) != OMNIQ_OK) _exit(2);
  omniq_register(oq, "work", fn, NULL);
  omniq_worker_opts_init(&o);
  o.concurrency = TASKS;
  o.isolation = isolation;
  if (omniq_worker_start(oq, &o, &w) != OMNIQ_OK) _exit(3);
  for (;;) pause();
}

/* Forks the doomed worker on a store holding ids' tasks. */
static pid_t start_doomed(const omniq_settings_t *s, int isolation, omniq_handler_fn fn,
                          int fds[2]) {
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    doomed_worker(s, fds[1], isolation, fn);
  }
  close(fds[1]);
  return pid;
}

static void kill_doomed(pid_t pid) {
  int status;
  kill(pid, SIGKILL);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* A fresh store on the manual clock holding TASKS tasks of "work". It is
 * closed again: no store connection is carried across fork. */
static char *fill(omniq_settings_t *s, th_clock_t *clock, const char *backend,
                  char ids[TASKS][OMNIQ_ID_SIZE]) {
  char *dir = th_tmpdir();
  omniq_t *oq;
  th_clock_init(clock, TH_EPOCH_MS);
  th_settings(s, backend, dir, clock);
  th_ok(NULL, omniq_open(&oq, s));
  for (int i = 0; i < TASKS; i++) th_ok(oq, omniq_enqueue(oq, "work", NULL, NULL, NULL, ids[i]));
  omniq_close(oq);
  return dir;
}

/* Reads n bytes the doomed worker's handlers write. */
static void read_from_doomed(int fd, void *buf, size_t n) {
  for (size_t got = 0; got < n;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, TH_WAIT_MS), 1);
    ssize_t k = read(fd, (char *)buf + got, n - got);
    assert_true(k > 0);
    got += (size_t)k;
  }
}

/* The dead worker's tasks are still RUNNING under its lease; once the lease
 * has expired (the manual clock moves past it), a pool running fn in
 * isolation recovers them: each ends SUCCESS with "recovered" on its second
 * attempt, the first recorded as "WorkerLost". */
static void recover(const omniq_settings_t *s, th_clock_t *clock, char ids[TASKS][OMNIQ_ID_SIZE],
                    int isolation, omniq_handler_fn fn) {
  omniq_t *oq;
  omniq_worker_opts_t o;
  long done = 0;
  th_ok(NULL, omniq_open(&oq, s));
  th_ok(oq, omniq_register(oq, "work", fn, NULL));
  for (int i = 0; i < TASKS; i++) {
    omniq_task_t *t;
    th_ok(oq, omniq_get_task(oq, ids[i], &t));
    assert_int_equal(omniq_task_status(t), OMNIQ_RUNNING);
    omniq_task_free(t);
  }
  th_clock_advance(clock, s->lease_ms + 1000);
  omniq_worker_opts_init(&o);
  o.isolation = isolation;
  th_ok(oq, omniq_worker_process(oq, &o, 0, &done));
  assert_int_equal(done, TASKS);
  for (int i = 0; i < TASKS; i++) {
    omniq_result_t *r;
    omniq_task_t *t;
    th_ok(oq, omniq_get_result(oq, ids[i], 0, &r));
    if (omniq_result_status(r) != OMNIQ_SUCCESS)
      fail_msg("%s: %s", omniq_error_type(omniq_result_error(r)),
               omniq_error_message(omniq_result_error(r)));
    assert_int_equal(omniq_result_attempts(r), 2);
    assert_string_equal(omniq_result_value(r), "\"recovered\"");
    omniq_result_free(r);
    th_ok(oq, omniq_get_task(oq, ids[i], &t));
    assert_int_equal(omniq_task_attempts(t), 2);
    assert_string_equal(omniq_error_type(omniq_task_last_error(t)), "WorkerLost");
    assert_int_equal(omniq_error_retry_count(omniq_task_last_error(t)), 1);
    omniq_task_free(t);
  }
  omniq_close(oq);
}

static void run(const char *backend) {
  th_clock_t clock;
  omniq_settings_t s;
  char ids[TASKS][OMNIQ_ID_SIZE], buf[TASKS];
  int fds[2];
  char *dir = fill(&s, &clock, backend, ids);
  pid_t pid = start_doomed(&s, OMNIQ_ISOLATION_THREAD, hold_handler, fds);
  read_from_doomed(fds[0], buf, TASKS); /* every task is in a handler */
  close(fds[0]);
  kill_doomed(pid);
  recover(&s, &clock, ids, OMNIQ_ISOLATION_THREAD, ok_handler);
  th_rmtree(dir);
}

/* ---- process isolation: nothing outlives the worker ------------------------------- */

typedef struct proc_note {
  char kind; /* Z zygote, C child, G its grandchild, S a grandchild in a session of its own */
  int pid;
} proc_note_t;

enum { NOTES = 4 * TASKS };

static void say(char kind, pid_t pid) {
  proc_note_t n = {.kind = kind, .pid = (int)pid};
  ssize_t w = write(started_fd, &n, sizeof n); /* less than PIPE_BUF: one piece */
  (void)w;
}

/* In a child of the doomed worker: starts a grandchild in its process group
 * and one that leaves it (setsid), tells the test every pid (its own, its
 * parent's: the zygote, and theirs), then holds its task for ever. */
static int tree_handler(omniq_job_t *job, void *ud) {
  pid_t me = getpid(), zygote = getppid();
  (void)job;
  (void)ud;
  if (fork() == 0) {
    say('G', getpid());
    for (;;) pause();
  }
  if (fork() == 0) {
    setsid();
    say('S', getpid());
    for (;;) pause();
  }
  say('Z', zygote);
  say('C', me);
  for (;;) pause();
  return OMNIQ_OK;
}

/* pidfds of the first run's processes, opened while they lived: readable
 * once the process has ended, and never another process's. */
static int first_run[NOTES];
static int nfirst;

/* Runs in a child of the recovering worker (which inherited the pidfds). */
static int rerun_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  for (int i = 0; i < nfirst; i++) {
    struct pollfd p = {.fd = first_run[i], .events = POLLIN};
    if (poll(&p, 1, 0) != 1) {
      omniq_job_fail(job, "FirstRunAlive", "a process of the first run is still alive", 0);
      return OMNIQ_EFAILED;
    }
  }
  return omniq_job_return(job, "\"recovered\"");
}

static void test_sigkilled_process_worker_leaves_no_process_of_its_runs_alive(void **state) {
  th_clock_t clock;
  omniq_settings_t s;
  char ids[TASKS][OMNIQ_ID_SIZE];
  proc_note_t notes[NOTES];
  int fds[2];
  (void)state;
  char *dir = fill(&s, &clock, "sqlite", ids);
  pid_t worker = start_doomed(&s, OMNIQ_ISOLATION_PROCESS, tree_handler, fds);
  read_from_doomed(fds[0], notes, sizeof notes);
  close(fds[0]);

  nfirst = 0;
  for (int i = 0; i < NOTES; i++) {
    int seen = 0;
    for (int j = 0; j < i; j++) seen |= notes[j].pid == notes[i].pid; /* the zygote, twice */
    if (seen) continue;
    int fd = (int)syscall(SYS_pidfd_open, notes[i].pid, 0);
    if (fd < 0) {
      kill_doomed(worker);
      fail_msg("pidfd_open(%d): %s", notes[i].pid, strerror(errno));
    }
    notes[nfirst] = notes[i];
    first_run[nfirst++] = fd;
  }
  assert_int_equal(nfirst, 1 + 3 * TASKS);
  kill_doomed(worker);

  /* Every one ends on its own, without anyone else's help. */
  int64_t until = th_mono_ms() + TH_WAIT_MS;
  int alive = 0;
  for (int i = 0; i < nfirst; i++) {
    struct pollfd p = {.fd = first_run[i], .events = POLLIN};
    int64_t left = until - th_mono_ms();
    if (poll(&p, 1, left > 0 ? (int)left : 0) == 1) continue;
    print_error("%c %d outlived its worker\n", notes[i].kind, notes[i].pid);
    syscall(SYS_pidfd_send_signal, first_run[i], SIGKILL, NULL, 0);
    alive++;
  }
  assert_int_equal(alive, 0);

  recover(&s, &clock, ids, OMNIQ_ISOLATION_PROCESS, rerun_handler);
  for (int i = 0; i < nfirst; i++) close(first_run[i]);
  th_rmtree(dir);
}

static void test_sigkilled_worker_tasks_are_rerun_after_lease_expiry_sqlite(void **state) {
  (void)state;
  run("sqlite");
}

static void test_sigkilled_worker_tasks_are_rerun_after_lease_expiry_file(void **state) {
  (void)state;
  run("file");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sigkilled_worker_tasks_are_rerun_after_lease_expiry_sqlite),
      cmocka_unit_test(test_sigkilled_worker_tasks_are_rerun_after_lease_expiry_file),
      cmocka_unit_test(test_sigkilled_process_worker_leaves_no_process_of_its_runs_alive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
