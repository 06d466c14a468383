/* SPDX-License-Identifier: MIT */
/* A process-isolation child.
 *
 * Forked by the zygote (zygote.c), it is a copy of the worker as it was
 * when the pool started, with one thread. It reads a task frame, runs the
 * handler, writes a report frame and waits for the next task, until its
 * pool closes the socket or the zygote kills it. Nothing it changes goes
 * back to the worker except its reports; what a handler leaves behind
 * (globals, caches, open descriptors) is still there for the next task in
 * this child (docs/workers.md).
 *
 * Handlers are resolved here, in the copy's registry: the zygote was
 * forked after every handler registered before the pool started, so those
 * are found; one registered later is not, and fails the task as a missing
 * handler. A deferred handler is waited for: the child takes its next task
 * only after omniq_job_complete.
 *
 * Limits, per task (wire.h), as soft rlimits set just before the handler
 * and restored just after, so they bind the task and not the child's own
 * bookkeeping:
 * - memory: RLIMIT_AS = the address space mapped when the task starts +
 *   the limit. An allocation past it fails (malloc returns NULL, errno
 *   ENOMEM). The task fails with a memory-limit report when the handler
 *   returns an error code and memory ran out (errno is ENOMEM, it returned
 *   OMNIQ_ENOMEM, or less than PROBE_BYTES of the limit is left); when the
 *   handler crashes instead (a NULL it did not check, abort() in an
 *   allocator wrapper), a signal handler sends a note saying so first.
 * - descriptors: RLIMIT_NOFILE = the highest descriptor open when the task
 *   starts + 1 + the limit. Detected the same way (EMFILE, or not one more
 *   descriptor can be had).
 * - CPU: the pool reads this process's CPU clock and has it killed at the
 *   exact limit, which a handler cannot escape. RLIMIT_CPU's soft limit,
 *   a second or two past the task's share (it counts whole seconds of the
 *   child's life), sends SIGXCPU should the pool not look in time; either
 *   way the task fails as a CPU limit.
 * Only soft limits change: an unprivileged process cannot raise a hard
 * limit again. A child whose task hit a limit is replaced by the pool.
 *
 * The crash-note handler (SIGSEGV, SIGBUS, SIGABRT) is installed only while
 * a task with a memory or descriptor limit runs; otherwise crash signals
 * keep their default action, so a crash is reported as the signal it is.
 * It runs on its own stack (the task may have died of stack growth), uses
 * only system calls, and re-raises the signal with its default action.
 */
#include "worker/child.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "core/handlers.h"
#include "worker/job.h"
#include "worker/wire.h"

/* Memory counts as run out when less than this is left under the limit. */
#define PROBE_BYTES (1 << 20)
#define ALT_STACK_BYTES (64 * 1024)

static const int note_signals[] = {SIGSEGV, SIGBUS, SIGABRT};

/* The child is single-threaded: these describe the task running now. */
static int sock_fd = -1;
static const char *allowed_path; /* the pool's handler_path, or NULL */
static omniq__limits_t limits;
static struct rlimit as0, cpu0, nofile0; /* as the child found them */
static char alt_stack[ALT_STACK_BYTES];

/* ---- limits ------------------------------------------------------------------ */

/* Bytes of address space mapped now, or 0 if /proc cannot say. */
static int64_t mapped_bytes(void) {
  char buf[64];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  return strtoll(buf, NULL, 10) * (int64_t)sysconf(_SC_PAGESIZE);
}

/* One past the highest open descriptor. */
static int64_t descriptors_top(void) {
  int64_t top = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return sock_fd + 1;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    long fd = strtol(e->d_name, NULL, 10);
    if (e->d_name[0] != '.' && fd + 1 > top) top = fd + 1;
  }
  closedir(d);
  return top;
}

static rlim_t capped(int64_t want, rlim_t hard) {
  return hard != RLIM_INFINITY && (rlim_t)want > hard ? hard : (rlim_t)want;
}

static void set_soft(int resource, rlim_t soft, const struct rlimit *found) {
  struct rlimit r = {.rlim_cur = soft, .rlim_max = found->rlim_max};
  setrlimit(resource, &r);
}

/* Async-signal-safe: system calls only. */
static int address_space_full(void) {
  void *p = mmap(NULL, PROBE_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return errno == ENOMEM;
  munmap(p, PROBE_BYTES);
  return 0;
}

/* Async-signal-safe. */
static int descriptors_full(void) {
  int fd = fcntl(sock_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return errno == EMFILE;
  close(fd);
  return 0;
}

/* Which limit the task ran into, if any. err is errno as the handler left
 * it, rc what it returned (0 from a signal handler). Async-signal-safe. */
static omniq__run_kind_t limit_reached(int err, int rc) {
  if (limits.memory_bytes > 0 && (err == ENOMEM || rc == OMNIQ_ENOMEM || address_space_full()))
    return OMNIQ__RUN_MEMORY_LIMIT;
  if (limits.files > 0 && (err == EMFILE || descriptors_full())) return OMNIQ__RUN_FILE_LIMIT;
  return OMNIQ__RUN_OK;
}

static void note_handler(int sig) {
  int saved = errno;
  omniq__run_kind_t kind = limit_reached(saved, 0);
  if (kind != OMNIQ__RUN_OK) {
    char note[OMNIQ__WIRE_NOTE_SIZE];
    omniq__wire_note(kind, note);
    ssize_t ignored = send(sock_fd, note, sizeof note, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
  }
  /* SA_RESETHAND restored the default action; the signal is blocked until
   * this returns, then delivered again: the child dies of it. */
  raise(sig);
  errno = saved;
}

static void set_note_handler(int on) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on ? note_handler : SIG_DFL;
  sa.sa_flags = on ? SA_ONSTACK | SA_RESETHAND : 0;
  for (size_t i = 0; i < sizeof note_signals / sizeof note_signals[0]; i++)
    sigaction(note_signals[i], &sa, NULL);
}

static void apply_limits(const omniq__limits_t *l) {
  limits = *l;
  if (l->memory_bytes > 0)
    set_soft(RLIMIT_AS, capped(mapped_bytes() + l->memory_bytes, as0.rlim_max), &as0);
  if (l->files > 0)
    set_soft(RLIMIT_NOFILE, capped(descriptors_top() + l->files, nofile0.rlim_max), &nofile0);
  if (l->cpu_ms > 0) {
    struct timespec used;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    int64_t end_ms = (int64_t)used.tv_sec * 1000 + used.tv_nsec / 1000000 + l->cpu_ms;
    /* A second of slack: the pool's exact check comes first, this is for
     * a pool that cannot look. */
    set_soft(RLIMIT_CPU, capped((end_ms + 999) / 1000 + 1, cpu0.rlim_max), &cpu0);
  }
  if (l->memory_bytes > 0 || l->files > 0) set_note_handler(1);
}

static void restore_limits(void) {
  if (limits.memory_bytes > 0 || limits.files > 0) set_note_handler(0);
  if (limits.memory_bytes > 0) setrlimit(RLIMIT_AS, &as0);
  if (limits.files > 0) setrlimit(RLIMIT_NOFILE, &nofile0);
  if (limits.cpu_ms > 0) setrlimit(RLIMIT_CPU, &cpu0);
  limits = (omniq__limits_t){0};
}

/* ---- one task ---------------------------------------------------------------- */

static void limit_message(char *buf, size_t len, omniq__run_kind_t kind, const char *what) {
  if (kind == OMNIQ__RUN_MEMORY_LIMIT)
    snprintf(buf, len, "the task ran out of memory at its limit of %lld bytes (%s)",
             (long long)limits.memory_bytes, what);
  else
    snprintf(buf, len, "the task ran out of descriptors at its limit of %lld files (%s)",
             (long long)limits.files, what);
}

static void run_one(omniq_t *oq, omniq__wire_task_t *wt) {
  omniq_job_t job;
  omniq__run_report_t r;
  omniq_handler_fn fn;
  void *userdata;
  char err[OMNIQ__ERRMSG_MAX], msg[OMNIQ__ERRMSG_MAX + 128], buf[160];

  omniq__job_init_child(&job, oq, &wt->task, wt->deadline_ms);
  if (omniq__handlers_resolve(oq, wt->task.func, allowed_path, &fn, &userdata, err, sizeof err) !=
      OMNIQ_OK) {
    /* The pool found it, so it came after the pool started (or its library
     * went away since). */
    snprintf(msg, sizeof msg,
             "%s in the handler process: it knows the handlers registered before the worker "
             "started",
             err);
    r = (omniq__run_report_t){.kind = OMNIQ__RUN_NO_HANDLER, .message = msg};
  } else {
    apply_limits(&wt->limits);
    errno = 0;
    int rc = fn(&job, userdata);
    int saved = errno;
    if (rc == OMNIQ_DEFERRED)
      omniq__job_wait_deferred(&job);
    else
      omniq__job_returned(&job);
    omniq__job_report(&job, rc, &r, buf, sizeof buf);
    if (r.kind == OMNIQ__RUN_HANDLER_ERROR) {
      omniq__run_kind_t kind = limit_reached(saved, rc);
      if (kind != OMNIQ__RUN_OK) {
        limit_message(msg, sizeof msg, kind, r.message);
        r.kind = kind;
        r.message = msg;
      }
    }
    restore_limits();
  }
  omniq__wire_report_write(sock_fd, &r);
  fflush(stdout); /* the handler's own output, before the next task or a kill */
  omniq__job_fini_child(&job);
}

/* ---- the child's life ------------------------------------------------------------- */

/* The program's own handlers for crash signals (a crash reporter, a test
 * framework that longjmps back into its runner) belong to the worker; in a
 * child they would turn a crash into anything at all. */
static void default_crash_signals(void) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &dfl, NULL);
}

_Noreturn void omniq__child_main(omniq_t *oq, const char *handler_path, int sock, int err_fd,
                                 pid_t zygote) {
  sigset_t none;
  /* Die with the zygote, which dies with the worker. The zygote may have
   * died between fork and prctl: then the parent is already someone else. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != zygote) _exit(0);
  setpgid(0, 0); /* its own group, so one kill reaches what it starts */
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL); /* the zygote and pool threads block some */
  default_crash_signals();
  if (err_fd != STDERR_FILENO && dup2(err_fd, STDERR_FILENO) >= 0) close(err_fd);
  stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack};
  sigaltstack(&ss, NULL);
  getrlimit(RLIMIT_AS, &as0);
  getrlimit(RLIMIT_CPU, &cpu0);
  getrlimit(RLIMIT_NOFILE, &nofile0);
  sock_fd = sock;
  allowed_path = handler_path;

  omniq__wire_task_t wt;
  while (omniq__wire_task_read(sock, &wt) == 1) {
    run_one(oq, &wt);
    omniq__wire_task_free(&wt);
  }
  fflush(stdout);
  _exit(0);
}
