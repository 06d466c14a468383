/* SPDX-License-Identifier: MIT */
/* The supervisor: a small forked process between the worker and a
 * shell-command task, so that no process of the task outlives the task or
 * the worker.
 *
 *   worker thread (handler) --fork--> supervisor S --fork+exec--> command C
 *                                        (own group,             (group G = C,
 *                                         subreaper)              PDEATHSIG KILL)
 *
 * Who kills what:
 * - C runs in a new process group G, so one kill(-G) reaches the command
 *   and every process it starts that stays in its group (pipelines,
 *   background jobs of a script).
 * - S is a child subreaper (PR_SET_CHILD_SUBREAPER): a descendant whose
 *   parent dies is re-parented to S rather than to init, even one that left
 *   G with setsid() (a daemonising command). When C has exited, S kills G
 *   and then, until it has no child left, kills and reaps every child it
 *   has; a process re-parented later shows up as a child and is killed in
 *   the next round. So when S exits, the task's whole tree is gone.
 * - S has PR_SET_PDEATHSIG = SIGTERM: if the thread that forked it ends
 *   (the worker exits or is SIGKILLed), S gets SIGTERM, which is exactly
 *   the stop request the handler sends on a timeout, cancel or shutdown.
 * - C has PR_SET_PDEATHSIG = SIGKILL, so even if S itself is SIGKILLed the
 *   command dies (its own children then are init's: the one case we cannot
 *   cover, and S being SIGKILLed alone is not something the worker does).
 *
 * Stopping (SIGTERM to S): SIGTERM to G, then after kill_after_ms SIGKILL
 * to G and to every child of S. A command that exits on SIGTERM is thus
 * given the chance to clean up; one that ignores it is killed anyway.
 * Leftovers after C exits on its own (a background job still running) are
 * killed at once with SIGKILL: the task is over when its command is.
 *
 * S is the fork of a multi-threaded process and never execs, so it uses
 * only async-signal-safe calls (no malloc, no stdio, no locks): its argv,
 * environment and resolved path were built by the handler before the fork.
 * All signals are blocked in S and taken synchronously with sigtimedwait,
 * so there is no signal handler and no race between "C exited" and "stop".
 * S leaves the worker's process group: a terminal's Ctrl-C reaches the
 * worker (which stops gracefully), not the tasks, and in process isolation
 * the library's kill of its child's group leaves S alive to clean up.
 *
 * Descriptors: the three pipes are created, S forked and the parent's write
 * ends closed under fork_lock, so a supervisor forked at the same moment by
 * another runner thread never holds a copy of this task's write ends (which
 * would delay its EOF). S also closes every descriptor but its own three
 * and puts /dev/null on its stdin, stdout and stderr; C gets only stdin
 * (/dev/null), stdout and stderr (the pipes). */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Where S keeps its pipes once it has rearranged its descriptors. */
enum { FD_STATUS = 3, FD_OUT = 4, FD_ERR = 5, FD_EXEC_ERR = 6 };

static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- in the command (after the second fork) ------------------------------- */

static void write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static void __attribute__((noreturn)) exec_command(const cli_spawn_t *sp, pid_t supervisor,
                                                   int exec_err) {
  struct sigaction dfl;
  sigset_t none;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  /* Dispositions set to "ignore" survive execve; a command must start
   * with the defaults (SIGPIPE above all), whatever the worker did. */
  for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setpgid(0, 0);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != supervisor) _exit(127);

  /* stdin is already /dev/null (the supervisor's). */
  if (dup2(FD_OUT, 1) < 0 || dup2(FD_ERR, 2) < 0 || dup2(exec_err, FD_STATUS) < 0 ||
      fcntl(FD_STATUS, F_SETFD, FD_CLOEXEC) < 0)
    goto fail;
  close_range(FD_STATUS + 1, ~0U, 0);
  if (sp->path == NULL)
    errno = ENOENT;
  else
    execve(sp->path, sp->argv, sp->envp);
fail: {
  int err = errno;
  write_all(FD_STATUS, &err, sizeof err);
  _exit(127);
}
}

/* ---- in the supervisor ------------------------------------------------------ */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends sig to every child of this process but skip (0 = none), read from
 * /proc/thread-self/children (S has a single thread). */
static void signal_children(int sig, pid_t skip) {
  char buf[512];
  long pid = 0;
  int in_number = 0;
  int fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return; /* without /proc only the group kill applies */
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] >= '0' && buf[i] <= '9') {
        pid = pid * 10 + (buf[i] - '0');
        in_number = 1;
      } else if (in_number) {
        if ((pid_t)pid != skip) kill((pid_t)pid, sig);
        pid = 0;
        in_number = 0;
      }
    }
  }
  if (in_number && (pid_t)pid != skip) kill((pid_t)pid, sig);
  close(fd);
}

/* Reaps whatever has exited; notes C's status when C is among them. */
static void reap(pid_t c, int *c_done, int *c_status) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
    if (pid == c) {
      *c_done = 1;
      *c_status = st;
    }
}

static void __attribute__((noreturn)) supervise(const cli_spawn_t *sp, pid_t parent) {
  sigset_t all, wanted;
  struct sigaction dfl;
  cli_run_record_t rec = {0};
  int exec_err[2], c_done = 0, c_status = 0, stopping = 0;
  int64_t kill_at = 0;

  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &dfl, NULL); /* an ignored SIGCHLD would auto-reap C */
  setpgid(0, 0);
  /* If the worker died before this line, nobody is left to report to. */
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(0);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  close_range(FD_EXEC_ERR, ~0U, 0);
  /* The worker's stdio (a terminal, a journal, a caller's pipe) is not the
   * supervisor's to hold open: it may outlive the worker while it stops a
   * command. */
  int nul = open("/dev/null", O_RDWR);
  if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0) _exit(0);
  if (nul > 2) close(nul);

  if (pipe2(exec_err, O_CLOEXEC) != 0) {
    rec = (cli_run_record_t){CLI_RUN_SPAWN_FAILED, errno, 0};
    write_all(FD_STATUS, &rec, sizeof rec);
    _exit(0);
  }
  pid_t self = getpid();
  pid_t c = fork();
  if (c == 0) exec_command(sp, self, exec_err[1]);
  if (c < 0) {
    rec = (cli_run_record_t){CLI_RUN_SPAWN_FAILED, errno, 0};
    write_all(FD_STATUS, &rec, sizeof rec);
    _exit(0);
  }
  setpgid(c, c); /* also done by C: whichever runs first, G exists from here on */
  close(FD_OUT);
  close(FD_ERR);
  close(exec_err[1]);
  /* The exec pipe closes on a successful execve, or carries errno. */
  int err = 0;
  ssize_t got;
  while ((got = read(exec_err[0], &err, sizeof err)) < 0 && errno == EINTR) {
  }
  close(exec_err[0]);

  sigemptyset(&wanted);
  sigaddset(&wanted, SIGCHLD);
  sigaddset(&wanted, SIGTERM);
  for (;;) {
    reap(c, &c_done, &c_status);
    if (c_done) break;
    struct timespec wait = {0, 0};
    if (stopping == 1) {
      int64_t left = kill_at - mono_ms();
      if (left <= 0) {
        kill(-c, SIGKILL);
        signal_children(SIGKILL, 0);
        stopping = 2;
        continue;
      }
      wait.tv_sec = left / 1000;
      wait.tv_nsec = (left % 1000) * 1000000;
    }
    int sig = sigtimedwait(&wanted, NULL, stopping == 1 ? &wait : NULL);
    if (sig == SIGTERM && stopping == 0) {
      kill(-c, SIGTERM);
      stopping = 1;
      kill_at = mono_ms() + sp->kill_after_ms;
    }
  }

  /* C is gone: nothing of the task may stay behind. */
  kill(-c, SIGKILL);
  for (;;) {
    signal_children(SIGKILL, 0);
    int st;
    pid_t pid = waitpid(-1, &st, 0);
    if (pid < 0 && errno != EINTR) break; /* ECHILD: the tree is empty */
  }

  if (got == (ssize_t)sizeof err)
    rec = (cli_run_record_t){CLI_RUN_SPAWN_FAILED, err, stopping > 0};
  else if (WIFSIGNALED(c_status))
    rec = (cli_run_record_t){CLI_RUN_SIGNALED, WTERMSIG(c_status), stopping > 0};
  else
    rec = (cli_run_record_t){CLI_RUN_EXITED, WEXITSTATUS(c_status), stopping > 0};
  write_all(FD_STATUS, &rec, sizeof rec);
  _exit(0);
}

/* ---- in the worker ------------------------------------------------------------ */

/* Moves the three write ends to FD_STATUS, FD_OUT, FD_ERR in the child.
 * They are first copied above every target, so a source that already sits
 * on a target number is never clobbered. */
static int arrange(int status_w, int out_w, int err_w) {
  int a = fcntl(status_w, F_DUPFD, 10), b = fcntl(out_w, F_DUPFD, 10),
      c = fcntl(err_w, F_DUPFD, 10);
  if (a < 0 || b < 0 || c < 0) return -1;
  if (dup2(a, FD_STATUS) < 0 || dup2(b, FD_OUT) < 0 || dup2(c, FD_ERR) < 0) return -1;
  return 0;
}

int cli_supervisor_start(const cli_spawn_t *sp, int fds[3], pid_t *pid) {
  int out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
  pid_t parent = getpid();
  int saved = 0;

  pthread_mutex_lock(&fork_lock);
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(st, O_CLOEXEC) != 0) {
    saved = errno;
    goto fail;
  }
  pid_t s = fork();
  if (s == 0) {
    if (arrange(st[1], out[1], err[1]) != 0) _exit(0); /* EOF, no record: reported as a crash */
    supervise(sp, parent);
  }
  if (s < 0) {
    saved = errno;
    goto fail;
  }
  close(out[1]);
  close(err[1]);
  close(st[1]);
  pthread_mutex_unlock(&fork_lock);
  fds[0] = out[0];
  fds[1] = err[0];
  fds[2] = st[0];
  *pid = s;
  return 0;

fail:
  for (int i = 0; i < 2; i++) {
    if (out[i] >= 0) close(out[i]);
    if (err[i] >= 0) close(err[i]);
    if (st[i] >= 0) close(st[i]);
  }
  pthread_mutex_unlock(&fork_lock);
  errno = saved;
  return -1;
}
