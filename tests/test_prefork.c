/* SPDX-License-Identifier: MIT */
/* Pre-forked process isolation: long-lived children that run task after
 * task, are replaced when they crash, hit a limit or have run
 * max_tasks_per_child tasks, and the per-task limits (memory, CPU time,
 * descriptors) with the failure each one gives. Handlers report the pid of
 * the child that ran them, so a test sees which child ran what. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "support/gate.h"
#include "support/helpers.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* ASan and TSan reserve terabytes of shadow memory at start-up and run
 * their own allocators: under an address-space limit (RLIMIT_AS) an
 * allocation past it does not return NULL - ASan reports "allocator is out
 * of memory", then fails its own internal mappings and hangs in its CHECK
 * handler. What the memory-limit tests look for cannot happen there, so
 * they are skipped in those builds (the CPU and descriptor limits are
 * not). */
#define ADDRESS_SPACE_LIMITS_WORK 0
#else
#define ADDRESS_SPACE_LIMITS_WORK 1
#endif

#define MIB (1 << 20)

typedef th_store_t fx_t;

static char *volatile sink; /* keeps allocations from being optimised away */

static int pid_handler(omniq_job_t *job, void *ud) {
  static int runs; /* this child's count: state a handler keeps between tasks */
  char v[64];
  (void)ud;
  snprintf(v, sizeof v, "[%d,%d]", (int)getpid(), ++runs);
  return omniq_job_return(job, v);
}

/* Crashes when its argument is 2 modulo 3: every third task. */
static int every_third_segv_handler(omniq_job_t *job, void *ud) {
  int n = atoi(omniq_job_args(job) + 1);
  if (n % 3 == 2) {
    volatile int *volatile p = NULL;
    *p = 1;
  }
  return pid_handler(job, ud);
}

/* Allocates 1 MiB blocks, touching each, up to 256 MiB, without looking at
 * what malloc returns. */
static int hog_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  for (int i = 0; i < 256; i++) {
    char *p = malloc(MIB);
    memset(p, 1, MIB);
    sink = p;
  }
  return omniq_job_return(job, "\"survived\"");
}

/* The same, but it notices the failure and says so. */
static int careful_hog_handler(omniq_job_t *job, void *ud) {
  (void)ud;
  for (int i = 0; i < 256; i++) {
    char *p = malloc(MIB);
    if (p == NULL) return OMNIQ_ENOMEM;
    memset(p, 1, MIB);
    sink = p;
  }
  return omniq_job_return(job, "\"survived\"");
}

/* 32 MiB, given back: within a 64 MiB limit. */
static int modest_handler(omniq_job_t *job, void *ud) {
  char *blocks[32];
  (void)ud;
  for (int i = 0; i < 32; i++) {
    if ((blocks[i] = malloc(MIB)) == NULL) return OMNIQ_ENOMEM;
    memset(blocks[i], 1, MIB);
  }
  for (int i = 0; i < 32; i++) free(blocks[i]);
  return omniq_job_return(job, "\"fits\"");
}

static int spin_handler(omniq_job_t *job, void *ud) {
  volatile unsigned long n = 0;
  (void)job;
  (void)ud;
  for (;;) n++;
  return OMNIQ_OK;
}

static int sigxcpu_handler(omniq_job_t *job, void *ud) {
  (void)job;
  (void)ud;
  raise(SIGXCPU);
  return OMNIQ_OK;
}

/* Opens /dev/null until it cannot, keeping every descriptor. */
static int fd_hog_handler(omniq_job_t *job, void *ud) {
  (void)job;
  (void)ud;
  for (int i = 0; i < 100000; i++)
    if (open("/dev/null", O_RDONLY) < 0) return OMNIQ_EIO;
  return OMNIQ_OK;
}

/* Opens and closes ten descriptors: within a 32-file limit. */
static int ten_files_handler(omniq_job_t *job, void *ud) {
  int fds[10];
  (void)ud;
  for (int i = 0; i < 10; i++)
    if ((fds[i] = open("/dev/null", O_RDONLY)) < 0) return OMNIQ_EIO;
  for (int i = 0; i < 10; i++) close(fds[i]);
  return pid_handler(job, ud);
}

static int setup(void **state) {
  static const th_handler_t handlers[] = {
      {"pid", pid_handler},         {"every_third_segv", every_third_segv_handler},
      {"hog", hog_handler},         {"careful_hog", careful_hog_handler},
      {"modest", modest_handler},   {"spin", spin_handler},
      {"sigxcpu", sigxcpu_handler}, {"fd_hog", fd_hog_handler},
      {"ten_files", ten_files_handler}};
  return th_store_setup_handlers(state, handlers, sizeof handlers / sizeof handlers[0]);
}

static omniq_result_t *result(fx_t *fx, const char *id) {
  omniq_result_t *r = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &r));
  return r;
}

/* The pid in a pid_handler value. */
static int value_pid(const omniq_result_t *r) {
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  return atoi(omniq_result_value(r) + 1);
}

/* Drains what is queued; every run must be reported. */
static void drain(fx_t *fx, const omniq_worker_opts_t *o, long want) {
  long done = 0;
  th_ok(fx->oq, omniq_worker_process(fx->oq, o, 0, &done));
  assert_int_equal(done, want);
}

/* The task failed, not to be retried, with type and a message saying what. */
static void assert_failed_with(fx_t *fx, const char *id, const char *type, const char *what) {
  omniq_result_t *r = result(fx, id);
  assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
  const omniq_task_error_t *e = omniq_result_error(r);
  if (strcmp(omniq_error_type(e), type) != 0 || strstr(omniq_error_message(e), what) == NULL)
    fail_msg("%s: %s; want %s: ...%s...", omniq_error_type(e), omniq_error_message(e), type,
             what);
  assert_int_equal(omniq_error_is_retryable(e), 0);
  omniq_result_free(r);
}

/* The pool goes on: with the same options, the next task succeeds. */
static void assert_succeeds_after(fx_t *fx, const omniq_worker_opts_t *o) {
  char id[OMNIQ_ID_SIZE];
  th_enqueue_once(fx->oq, "pid", NULL, -1, id);
  drain(fx, o, 1);
  omniq_result_t *r = result(fx, id);
  value_pid(r);
  omniq_result_free(r);
}

/* ---- children live on and are replaced ---------------------------------------------- */

static void test_one_child_runs_task_after_task_and_keeps_its_globals(void **state) {
  fx_t *fx = *state;
  char ids[5][OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  for (int i = 0; i < 5; i++) th_enqueue_once(fx->oq, "pid", NULL, -1, ids[i]);
  th_process_opts(&o, 1);
  drain(fx, &o, 5);
  int first = 0;
  for (int i = 0; i < 5; i++) {
    omniq_result_t *r = result(fx, ids[i]);
    int pid = value_pid(r);
    assert_int_not_equal(pid, getpid());
    if (i == 0) first = pid;
    assert_int_equal(pid, first);
    assert_int_equal(atoi(strchr(omniq_result_value(r), ',') + 1), i + 1); /* its own count */
    omniq_result_free(r);
  }
}

static void test_segfault_every_third_task_fails_only_those_tasks(void **state) {
  enum { N = 30 };
  fx_t *fx = *state;
  char ids[N][OMNIQ_ID_SIZE], args[16];
  omniq_worker_opts_t o;
  for (int i = 0; i < N; i++) {
    snprintf(args, sizeof args, "[%d]", i);
    th_enqueue_once(fx->oq, "every_third_segv", args, -1, ids[i]);
  }
  th_process_opts(&o, 2);
  drain(fx, &o, N);
  for (int i = 0; i < N; i++) {
    omniq_result_t *r = result(fx, ids[i]);
    if (i % 3 == 2) {
      assert_int_equal(omniq_result_status(r), OMNIQ_FAILED);
      assert_string_equal(omniq_error_type(omniq_result_error(r)), "Crash");
    } else {
      value_pid(r);
    }
    omniq_result_free(r);
  }
}

static void test_max_tasks_per_child_10_replaces_the_child_after_exactly_10_tasks(void **state) {
  enum { N = 25 };
  fx_t *fx = *state;
  char ids[N][OMNIQ_ID_SIZE];
  int pids[N];
  omniq_worker_opts_t o;
  for (int i = 0; i < N; i++) th_enqueue_once(fx->oq, "pid", NULL, -1, ids[i]);
  th_process_opts(&o, 1);
  o.max_tasks_per_child = 10;
  drain(fx, &o, N);
  for (int i = 0; i < N; i++) {
    omniq_result_t *r = result(fx, ids[i]);
    pids[i] = value_pid(r);
    assert_int_equal(atoi(strchr(omniq_result_value(r), ',') + 1), i % 10 + 1);
    omniq_result_free(r);
  }
  for (int i = 1; i < N; i++) {
    if (i % 10 == 0)
      assert_int_not_equal(pids[i], pids[i - 1]); /* a new child after each tenth task */
    else
      assert_int_equal(pids[i], pids[i - 1]);
  }
}

static void test_handler_registered_after_the_pool_started_is_unknown_to_its_children(
    void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  omniq_result_t *r = NULL;
  th_process_opts(&o, 1);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  th_ok(fx->oq, omniq_register(fx->oq, "late", pid_handler, NULL));
  th_enqueue_once(fx->oq, "late", NULL, -1, id);
  th_ok(fx->oq, omniq_get_result(fx->oq, id, TH_WAIT_MS / 1000.0, &r));
  const omniq_task_error_t *e = omniq_result_error(r);
  assert_string_equal(omniq_error_type(e), "HandlerNotFound");
  assert_non_null(strstr(omniq_error_message(e), "registered before the worker started"));
  omniq_result_free(r);
  th_ok(fx->oq, omniq_worker_stop(w));
}

static void test_a_crash_is_seen_when_the_program_ignores_sigchld(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  /* A crash that went unseen would leave the drain waiting for the news of
   * the child's end for ever: ctest's timeout is how this test fails. */
  th_enqueue_once(fx->oq, "every_third_segv", "[2]", -1, id);
  th_process_opts(&o, 1);
  signal(SIGCHLD, SIG_IGN); /* the kernel reaps this program's children for it */
  drain(fx, &o, 1);
  signal(SIGCHLD, SIG_DFL);
  omniq_result_t *r = result(fx, id);
  assert_string_equal(omniq_error_type(omniq_result_error(r)), "Crash");
  omniq_result_free(r);
}

/* The zygote, the process that forks a pool's children, is their parent. */
static int parent_handler(omniq_job_t *job, void *ud) {
  char v[32];
  (void)ud;
  snprintf(v, sizeof v, "%d", (int)getppid());
  return omniq_job_return(job, v);
}

static int run_parent_task(fx_t *fx) {
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  th_enqueue_once(fx->oq, "parent", NULL, -1, id);
  th_ok(fx->oq, omniq_get_result(fx->oq, id, TH_WAIT_MS / 1000.0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  int pid = atoi(omniq_result_value(r));
  omniq_result_free(r);
  return pid;
}

static void test_a_zygote_killed_from_outside_is_replaced_and_the_pool_goes_on(void **state) {
  fx_t *fx = *state;
  omniq_worker_opts_t o;
  omniq_worker_t *w;
  th_ok(fx->oq, omniq_register(fx->oq, "parent", parent_handler, NULL));
  th_process_opts(&o, 1);
  th_ok(fx->oq, omniq_worker_start(fx->oq, &o, &w));
  int zygote = run_parent_task(fx);
  assert_int_not_equal(zygote, getpid());
  int fd = (int)syscall(SYS_pidfd_open, zygote, 0);
  assert_true(fd >= 0);
  kill(zygote, SIGKILL); /* our child, not yet reaped: the pid is still its */
  struct pollfd p = {.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, TH_WAIT_MS), 1);
  close(fd);
  int next = run_parent_task(fx);
  assert_int_not_equal(next, zygote);
  assert_int_not_equal(next, getpid());
  th_ok(fx->oq, omniq_worker_stop(w));
}

/* ---- limits -------------------------------------------------------------------------- */

static void test_allocations_past_a_64_mib_limit_fail_with_memory_limit_and_the_pool_goes_on(
    void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  if (!ADDRESS_SPACE_LIMITS_WORK) skip();
  th_enqueue_once(fx->oq, "hog", NULL, -1, id); /* crashes on the NULL it does not check */
  th_process_opts(&o, 1);
  o.memory_limit_bytes = 64 * MIB;
  drain(fx, &o, 1);
  assert_failed_with(fx, id, "MemoryLimit",
                     "killed by signal 11 (SIGSEGV) after the task ran out of memory");
  assert_succeeds_after(fx, &o);
}

static void test_out_of_memory_returned_by_the_handler_is_memory_limit(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  if (!ADDRESS_SPACE_LIMITS_WORK) skip();
  th_enqueue_once(fx->oq, "careful_hog", NULL, -1, id);
  th_process_opts(&o, 1);
  o.memory_limit_bytes = 64 * MIB;
  drain(fx, &o, 1);
  assert_failed_with(fx, id, "MemoryLimit", "ran out of memory at its limit of 67108864 bytes");
}

static void test_memory_limit_counts_what_the_task_adds_not_the_worker(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  if (!ADDRESS_SPACE_LIMITS_WORK) skip();
  th_enqueue_once(fx->oq, "modest", NULL, -1, id);
  th_process_opts(&o, 1);
  o.memory_limit_bytes = 64 * MIB;
  drain(fx, &o, 1);
  omniq_result_t *r = result(fx, id);
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  omniq_result_free(r);
}

static void test_cpu_loop_past_its_cpu_limit_fails_with_cpu_limit(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  th_enqueue_once(fx->oq, "spin", NULL, -1, id);
  th_process_opts(&o, 1);
  /* CPU time, which no test clock moves: the child spins until it has
   * used the limit, so the limit is as small as still tells a loop apart
   * from a child's start. */
  o.cpu_limit_ms = 100;
  drain(fx, &o, 1);
  assert_failed_with(fx, id, "CpuLimit", "CPU time");
  assert_succeeds_after(fx, &o);
}

static void test_a_child_killed_by_sigxcpu_fails_with_cpu_limit(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  th_enqueue_once(fx->oq, "sigxcpu", NULL, -1, id);
  th_process_opts(&o, 1);
  drain(fx, &o, 1);
  assert_failed_with(fx, id, "CpuLimit", "killed by SIGXCPU");
}

static void test_descriptors_past_the_files_limit_fail_with_file_limit(void **state) {
  fx_t *fx = *state;
  char hog[OMNIQ_ID_SIZE], ten[OMNIQ_ID_SIZE];
  omniq_worker_opts_t o;
  th_enqueue_once(fx->oq, "ten_files", NULL, -1, ten);
  th_enqueue_once(fx->oq, "fd_hog", NULL, -1, hog);
  th_process_opts(&o, 1);
  o.files_limit = 32;
  drain(fx, &o, 2);
  omniq_result_t *r = result(fx, ten); /* within the limit */
  value_pid(r);
  omniq_result_free(r);
  assert_failed_with(fx, hog, "FileLimit", "ran out of descriptors at its limit of 32 files");
  assert_succeeds_after(fx, &o);
}

static void test_limits_need_process_isolation_and_cannot_be_negative(void **state) {
  fx_t *fx = *state;
  omniq_worker_opts_t o;
  long done;
  omniq_worker_opts_init(&o);
  o.cpu_limit_ms = 1000;
  assert_int_equal(omniq_worker_process(fx->oq, &o, 0, &done), OMNIQ_EINVAL);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "cpu_limit_ms needs isolation"));
  th_process_opts(&o, 1);
  o.memory_limit_bytes = -1;
  assert_int_equal(omniq_worker_process(fx->oq, &o, 0, &done), OMNIQ_EINVAL);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "memory_limit_bytes must be >= 0"));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, th_store_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_one_child_runs_task_after_task_and_keeps_its_globals),
      T(test_segfault_every_third_task_fails_only_those_tasks),
      T(test_max_tasks_per_child_10_replaces_the_child_after_exactly_10_tasks),
      T(test_handler_registered_after_the_pool_started_is_unknown_to_its_children),
      T(test_a_zygote_killed_from_outside_is_replaced_and_the_pool_goes_on),
      T(test_a_crash_is_seen_when_the_program_ignores_sigchld),
      T(test_allocations_past_a_64_mib_limit_fail_with_memory_limit_and_the_pool_goes_on),
      T(test_out_of_memory_returned_by_the_handler_is_memory_limit),
      T(test_memory_limit_counts_what_the_task_adds_not_the_worker),
      T(test_cpu_loop_past_its_cpu_limit_fails_with_cpu_limit),
      T(test_a_child_killed_by_sigxcpu_fails_with_cpu_limit),
      T(test_descriptors_past_the_files_limit_fail_with_file_limit),
      T(test_limits_need_process_isolation_and_cannot_be_negative),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
