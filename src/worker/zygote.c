/* SPDX-License-Identifier: MIT */
/* The zygote of a process-isolation pool.
 *
 * Why a zygote. The worker is multi-threaded (runner threads, the keeper,
 * maybe other pools and the program's own threads), and a child forked
 * from it holds a copy of every lock as some thread held it at that
 * instant: a child that then ran arbitrary handler code could block for
 * ever on the registry, the library cache or the loader. So the pool forks
 * once, at start, from its keeper thread, holding the locks the children
 * need (oq->lock for the registry, the handler-library cache's), and that
 * copy - the zygote - forks every child of the pool. It is single-threaded
 * and does nothing but fork, reap and kill, so each child starts from the
 * same clean state: the worker as it was when the pool started. glibc
 * makes malloc and stdio safe across fork; a lock of the program's own
 * held by another thread at that instant stays held in every child
 * (docs/workers.md says so).
 *
 * Who dies with whom:
 * - The zygote has PR_SET_PDEATHSIG = SIGTERM, tied to the thread that
 *   forked it (the pool's keeper), and blocks SIGTERM to read it from a
 *   signalfd: when the worker dies, even by SIGKILL, it kills every child
 *   and exits. pool stop sends the same SIGTERM.
 * - Each child has PR_SET_PDEATHSIG = SIGKILL, tied to the zygote, so it
 *   cannot outlive the zygote either (child.c).
 * - Each child leads its own process group; when one ends, the zygote
 *   kills its group before reaping it, so what the handler started dies
 *   too. The zygote is a child subreaper: a descendant that left the group
 *   (setsid) is re-parented to it when its parent dies, and the zygote
 *   kills every such stray it finds after each death and at shutdown.
 *   Only a descendant of a zygote that is itself SIGKILLed escapes.
 *
 * Reaping without pid reuse: the zygote looks at a dead child with
 * WNOWAIT, kills its group while the zombie still holds the pid (so the
 * group id cannot belong to anyone else yet), then reaps it. Kills the pool
 * wants go through the zygote (OMNIQ__Z_KILL), which knows whether the pid
 * is still its child, so nobody ever signals a recycled pid.
 *
 * Channels: one SOCK_SEQPACKET pair per slot, made before the fork, so the
 * protocol is a request and its answer per slot with no demultiplexing; a
 * child's socket and stderr pipe travel to the pool with SCM_RIGHTS and
 * exist nowhere else (the zygote closes its copies at once), so the
 * descriptors of one child never leak into a sibling.
 */
#include "worker/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "core/handlers.h"
#include "worker/child.h"

/* Channels made and the zygote forked under one process-wide lock, so a
 * zygote forked by another pool at the same moment holds no copy of this
 * one's channel ends. */
static pthread_mutex_t zygote_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- messages ---------------------------------------------------------------- */

static int send_msg(int fd, const omniq__zmsg_t *m, const int *fds, int nfds) {
  struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof *m};
  union {
    char buf[CMSG_SPACE(2 * sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(&ctl, 0, sizeof ctl);
    h.msg_control = ctl.buf;
    h.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
  }
  ssize_t n;
  while ((n = sendmsg(fd, &h, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return n == (ssize_t)sizeof *m ? 0 : -1;
}

int omniq__zygote_ask(int ctl, int type) {
  omniq__zmsg_t m = {.type = type};
  return send_msg(ctl, &m, NULL, 0);
}

int omniq__zygote_take(int ctl, omniq__zmsg_t *m, int fds[2]) {
  union {
    char buf[CMSG_SPACE(2 * sizeof(int))];
    struct cmsghdr align;
  } cbuf;
  struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
  struct msghdr h = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                     .msg_controllen = sizeof cbuf.buf};
  fds[0] = fds[1] = -1;
  ssize_t n;
  while ((n = recvmsg(ctl, &h, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  if (n != (ssize_t)sizeof *m) return -1; /* EOF: the zygote exited */
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c != NULL; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int got[2] = {-1, -1};
    memcpy(got, CMSG_DATA(c), (k < 2 ? k : 2) * sizeof(int));
    for (size_t i = 2; i < k; i++) { /* never sent; closed rather than leaked */
      int extra;
      memcpy(&extra, CMSG_DATA(c) + i * sizeof(int), sizeof extra);
      close(extra);
    }
    if (k == 2) {
      fds[0] = got[0];
      fds[1] = got[1];
    } else if (k == 1) {
      close(got[0]);
    }
  }
  return 1;
}

/* ---- the zygote process ---------------------------------------------------------- */

typedef struct zyg {
  omniq_t *oq;
  const char *handler_path; /* the pool's, in this copy of its memory */
  int n;
  int *fd;       /* the slots' channels; -1 once a slot closed its end */
  pid_t *child;  /* each slot's current child, 0 = none */
  int sfd;       /* signalfd: SIGCHLD and SIGTERM */
  pid_t self;
} zyg_t;

static int slot_of(const zyg_t *z, pid_t pid) {
  for (int i = 0; i < z->n; i++)
    if (z->child[i] == pid) return i;
  return -1;
}

static void kill_tree(pid_t pid) {
  kill(-pid, SIGKILL); /* its group: what it started */
  kill(pid, SIGKILL);
}

/* Kills every child of the zygote that is no slot's current child: children
 * it replaced, and descendants re-parented to it (it is a subreaper). */
static void kill_strays(const zyg_t *z) {
  char path[64], buf[8192];
  snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)z->self);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return; /* no CONFIG_PROC_CHILDREN: strays wait for shutdown */
  for (size_t keep = 0;;) { /* the file is "pid pid ... ", read a piece at a time */
    ssize_t len = read(fd, buf + keep, sizeof buf - 1 - keep);
    if (len <= 0) break;
    len += (ssize_t)keep;
    buf[len] = '\0';
    char *p = buf, *end;
    for (long pid; (pid = strtol(p, &end, 10)), end != p && *end == ' '; p = end + 1)
      if (pid > 0 && slot_of(z, (pid_t)pid) < 0) kill_tree((pid_t)pid);
    keep = (size_t)(buf + len - p); /* a pid cut in two: the rest comes next */
    memmove(buf, p, keep);
  }
  close(fd);
}

/* Reaps every child that has ended: its group is killed first, while its
 * zombie keeps the group id from being reused; a slot's current child is
 * reported to its slot. */
static void reap(zyg_t *z) {
  int any = 0;
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0) break;
    pid_t pid = si.si_pid;
    int status = 0;
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int slot = slot_of(z, pid);
    if (slot >= 0) {
      omniq__zmsg_t m = {.type = OMNIQ__Z_EXITED, .pid = pid, .status = status};
      z->child[slot] = 0;
      if (z->fd[slot] >= 0) send_msg(z->fd[slot], &m, NULL, 0);
    }
    any = 1;
  }
  if (any) kill_strays(z);
}

static _Noreturn void shutdown_all(zyg_t *z) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  for (int i = 0; i < z->n; i++)
    if (z->child[i] > 0) kill_tree(z->child[i]);
  memset(z->child, 0, (size_t)z->n * sizeof *z->child);
  for (;;) {
    kill_strays(z);
    pid_t pid = waitpid(-1, NULL, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0 && errno != EINTR) break; /* ECHILD: nobody left */
    /* Children left, none ended yet: wait for one, or a moment for a stray
     * re-parented meanwhile. */
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    sigtimedwait(&chld, NULL, &ts);
  }
  _exit(0);
}

static void spawn(zyg_t *z, int slot) {
  omniq__zmsg_t m = {.type = OMNIQ__Z_SPAWN_FAILED};
  int sv[2], ep[2];
  if (z->child[slot] > 0) { /* replaced: reaped as a stray when it ends */
    kill_tree(z->child[slot]);
    z->child[slot] = 0;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    m.err = errno;
    send_msg(z->fd[slot], &m, NULL, 0);
    return;
  }
  if (pipe2(ep, O_CLOEXEC) != 0) {
    m.err = errno;
    close(sv[0]);
    close(sv[1]);
    send_msg(z->fd[slot], &m, NULL, 0);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < z->n; i++)
      if (z->fd[i] >= 0) close(z->fd[i]);
    close(z->sfd);
    close(sv[0]);
    close(ep[0]);
    omniq__child_main(z->oq, z->handler_path, sv[1], ep[1], z->self);
  }
  m.err = errno;
  close(sv[1]);
  close(ep[1]);
  if (pid < 0) {
    close(sv[0]);
    close(ep[0]);
    send_msg(z->fd[slot], &m, NULL, 0);
    return;
  }
  setpgid(pid, pid); /* also done by the child; whichever runs first wins */
  z->child[slot] = pid;
  m = (omniq__zmsg_t){.type = OMNIQ__Z_SPAWNED, .pid = pid};
  int fds[2] = {sv[0], ep[0]};
  if (send_msg(z->fd[slot], &m, fds, 2) != 0) kill_tree(pid);
  close(sv[0]);
  close(ep[0]);
}

/* One request from a slot; a closed channel means the slot is gone. */
static void serve(zyg_t *z, int slot) {
  omniq__zmsg_t m;
  ssize_t n;
  while ((n = recv(z->fd[slot], &m, sizeof m, 0)) < 0 && errno == EINTR) {
  }
  if (n != (ssize_t)sizeof m) {
    if (n < 0 && errno == EAGAIN) return;
    close(z->fd[slot]);
    z->fd[slot] = -1;
    if (z->child[slot] > 0) kill_tree(z->child[slot]);
    z->child[slot] = 0;
    return;
  }
  if (m.type == OMNIQ__Z_SPAWN) spawn(z, slot);
  else if (m.type == OMNIQ__Z_KILL && z->child[slot] > 0) kill_tree(z->child[slot]);
}

static _Noreturn void zygote_main(omniq_t *oq, const char *handler_path, int *fd, int n,
                                  pid_t parent) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  /* Blocked first: a SIGTERM from PR_SET_PDEATHSIG then waits in the
   * signalfd instead of killing the zygote before it killed its children. */
  sigprocmask(SIG_BLOCK, &set, NULL);
  /* A program that ignores SIGCHLD has its children reaped for it: no
   * zombie to look at, no status to report. The zygote needs them. */
  signal(SIGCHLD, SIG_DFL);
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(0);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  setpgid(0, 0); /* a terminal's Ctrl-C is for the worker, which stops gracefully */

  zyg_t z = {.oq = oq, .handler_path = handler_path, .n = n, .fd = fd, .self = getpid()};
  z.child = omniq__calloc((size_t)n, sizeof *z.child);
  struct pollfd *p = omniq__calloc((size_t)n + 1, sizeof *p);
  int *slot = omniq__calloc((size_t)n + 1, sizeof *slot);
  z.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (z.child == NULL || p == NULL || slot == NULL || z.sfd < 0) _exit(1);

  for (;;) {
    int np = 0, open_slots = 0;
    p[np++] = (struct pollfd){.fd = z.sfd, .events = POLLIN};
    for (int i = 0; i < n; i++)
      if (fd[i] >= 0) {
        slot[np] = i;
        p[np++] = (struct pollfd){.fd = fd[i], .events = POLLIN};
        open_slots++;
      }
    if (open_slots == 0) shutdown_all(&z);
    if (poll(p, (nfds_t)np, -1) < 0) continue;
    if (p[0].revents) {
      struct signalfd_siginfo si;
      int stop = 0;
      while (read(z.sfd, &si, sizeof si) == (ssize_t)sizeof si)
        if (si.ssi_signo == SIGTERM) stop = 1;
      if (stop) shutdown_all(&z);
    }
    reap(&z); /* SIGCHLD coalesces: look every time */
    for (int i = 1; i < np; i++)
      if (p[i].revents) serve(&z, slot[i]);
  }
}

/* ---- the pool's side ----------------------------------------------------------- */

int omniq__zygote_start(omniq__zygote_t *z, omniq_t *oq, const char *handler_path, int nslots,
                        char *err, size_t errlen) {
  int *zfd = omniq__malloc((size_t)nslots * sizeof *zfd);
  memset(z, 0, sizeof *z);
  z->ctl = omniq__malloc((size_t)nslots * sizeof *z->ctl);
  if (zfd == NULL || z->ctl == NULL) {
    omniq__free(zfd);
    omniq__free(z->ctl);
    z->ctl = NULL;
    snprintf(err, errlen, "out of memory");
    return OMNIQ_ENOMEM;
  }
  pthread_mutex_lock(&zygote_lock);
  int made = 0, saved = 0;
  for (; made < nslots; made++) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      saved = errno;
      break;
    }
    z->ctl[made] = pair[0];
    zfd[made] = pair[1];
  }
  pid_t pid = -1;
  if (made == nslots) {
    pid_t parent = getpid();
    fflush(stdout); /* so no child inherits, and repeats, buffered output */
    pthread_mutex_lock(&oq->lock);
    omniq__handlers_fork_lock();
    pid = fork();
    if (pid == 0) {
      omniq__handlers_fork_unlock();
      pthread_mutex_unlock(&oq->lock);
      for (int i = 0; i < nslots; i++) close(z->ctl[i]);
      zygote_main(oq, handler_path, zfd, nslots, parent);
    }
    saved = errno;
    omniq__handlers_fork_unlock();
    pthread_mutex_unlock(&oq->lock);
  }
  for (int i = 0; i < made; i++) {
    close(zfd[i]);
    if (pid < 0) close(z->ctl[i]);
  }
  pthread_mutex_unlock(&zygote_lock);
  omniq__free(zfd);
  if (pid < 0) {
    omniq__free(z->ctl);
    z->ctl = NULL;
    snprintf(err, errlen, "cannot start the process that forks handler processes: %s",
             strerror(saved));
    return saved == ENOMEM || saved == EAGAIN ? OMNIQ_ENOMEM : OMNIQ_EIO;
  }
  z->pid = pid;
  z->nslots = nslots;
  return OMNIQ_OK;
}

void omniq__zygote_stop(omniq__zygote_t *z) {
  if (z->pid > 0) {
    kill(z->pid, SIGTERM); /* not yet reaped by us: the pid is still its */
    while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    z->pid = 0;
  }
  omniq__free(z->ctl);
  z->ctl = NULL;
}
