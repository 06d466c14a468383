/* A worker process killed with SIGKILL in the middle of its tasks loses
 * nothing: once the leases expire (the manual clock moves past them),
 * another worker runs those tasks to completion, and each keeps the lost
 * run as a "WorkerLost" attempt. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
static _Noreturn void doomed_worker(const omniq_settings_t *s, int fd) {
  omniq_t *oq;
  omniq_worker_t *w;
  omniq_worker_opts_t o;
  started_fd = fd;
  if (omniq_open(&oq, s) != OMNIQ_OK) _exit(2);
  omniq_register(oq, "work", hold_handler, NULL);
  omniq_worker_opts_init(&o);
  o.concurrency = TASKS;
  if (omniq_worker_start(oq, &o, &w) != OMNIQ_OK) _exit(3);
  for (;;) pause();
}

static void run(const char *backend) {
  char *dir = th_tmpdir();
  th_clock_t clock;
  omniq_settings_t s;
  omniq_t *oq;
  char ids[TASKS][OMNIQ_ID_SIZE];
  int fds[2];
  long done = 0;

  th_clock_init(&clock, TH_EPOCH_MS);
  th_settings(&s, backend, dir, &clock);
  /* Enqueue, then close: no store connection is carried across fork. */
  th_ok(NULL, omniq_open(&oq, &s));
  for (int i = 0; i < TASKS; i++) th_ok(oq, omniq_enqueue(oq, "work", NULL, NULL, NULL, ids[i]));
  omniq_close(oq);

  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    doomed_worker(&s, fds[1]);
  }
  close(fds[1]);
  for (int got = 0; got < TASKS;) { /* every task is in a handler */
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    char buf[TASKS];
    assert_int_equal(poll(&p, 1, TH_WAIT_MS), 1);
    ssize_t n = read(fds[0], buf, sizeof buf);
    assert_true(n > 0);
    got += (int)n;
  }
  close(fds[0]);
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  th_ok(NULL, omniq_open(&oq, &s));
  th_ok(oq, omniq_register(oq, "work", ok_handler, NULL));
  for (int i = 0; i < TASKS; i++) { /* still RUNNING, under a dead worker's lease */
    omniq_task_t *t;
    th_ok(oq, omniq_get_task(oq, ids[i], &t));
    assert_int_equal(omniq_task_status(t), OMNIQ_RUNNING);
    omniq_task_free(t);
  }
  th_clock_advance(&clock, s.lease_ms + 1000);
  th_ok(oq, omniq_worker_process(oq, NULL, 0, &done));
  assert_int_equal(done, TASKS);
  for (int i = 0; i < TASKS; i++) {
    omniq_result_t *r;
    omniq_task_t *t;
    th_ok(oq, omniq_get_result(oq, ids[i], 0, &r));
    assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
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
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
