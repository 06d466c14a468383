/* SPDX-License-Identifier: MIT */
/* Process isolation, the pool's side of one run.
 *
 * Each runner thread owns a slot: a channel to the pool's zygote
 * (zygote.c) and the child the zygote forked for it, which runs the slot's
 * tasks one at a time (child.c). A run sends the task frame on the child's
 * socket and waits, with poll, for one of:
 * - a report frame: the run ended in the child, which lives on;
 * - the zygote's word that the child ended (waitpid status): a crash, an
 *   exit without a report, death by SIGXCPU (the CPU limit), or a crash
 *   preceded by a note (the memory or descriptor limit);
 * - the job's cancelled flag (set by the keeper at the deadline or when
 *   the claim is lost, or by a stop that gave up), or the child's CPU clock
 *   passing the task's CPU limit: the zygote is asked to kill the child
 *   (and its group), and the run ends once it has been reaped.
 * The child's stderr is read meanwhile: passed on to the worker's stderr,
 * and its last TAIL_MAX bytes kept as the traceback of a crash.
 *
 * What a crash or a limit is called and whether it retries is the
 * engine's business (core/report.c); this file only says what happened.
 *
 * A child is replaced - the slot asks the zygote for a new one, at once,
 * so it is ready for the next task - when it ended, was killed, hit a
 * limit, sent something malformed, or has run max_tasks tasks. The zygote
 * kills a replaced child that is still alive. Every kill goes through the
 * zygote, which knows whether the pid is still its child, so no recycled
 * pid is ever signalled.
 *
 * A cancel wakes the runner at once: the job writes to the slot's eventfd
 * (cancel_fd), which the runner polls with the child's descriptors. The
 * runner also wakes every OMNIQ__ISOLATE_TICK_MS while a run is quiet, to
 * look at the CPU clock (and at the cancelled flag, should the eventfd be
 * missing).
 */
#include "worker/isolate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "worker/zygote.h"

#define TAIL_MAX 2048
#define READ_CHUNK 65536
#define SPAWN_TRIES 3 /* children that die before their first task, in a row */
#define KEEP_BUFFER (1 << 20) /* frame buffers kept between runs up to this size */

enum { KILL_CANCEL = 1, KILL_CPU, KILL_TOO_LARGE, KILL_MALFORMED };

typedef struct run {
  size_t sent;  /* bytes of the task frame sent */
  int reported; /* a report frame is at the front of s->in, parsed into rep */
  omniq__wire_report_t rep;
  int note;   /* a crash note's kind; OMNIQ__RUN_OK = none */
  int ended;  /* the zygote said the child ended */
  int killed; /* why the child must be killed: KILL_*, 0 = it need not */
  int kill_asked;
  int sock_open, err_open;
  int has_cpu;
  clockid_t cpu_clock;
  int64_t cpu_start_ns;
  int64_t cpu_used_ms; /* when last looked at */
  char tail[TAIL_MAX + 1];
  size_t tail_len;
} run_t;

/* ---- the slot ------------------------------------------------------------------ */

static atomic_int tick_ms = OMNIQ__ISOLATE_TICK_MS;

void omniq__isolate_set_tick_ms(int ms) {
  atomic_store(&tick_ms, ms > 0 ? ms : OMNIQ__ISOLATE_TICK_MS);
}

void omniq__slot_init(omniq__slot_t *s, int ctl, long max_tasks, const omniq__limits_t *limits) {
  memset(s, 0, sizeof *s);
  s->ctl = ctl;
  s->sock = s->err = -1;
  s->cancel_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); /* -1: the tick sees cancels */
  s->max_tasks = max_tasks;
  s->limits = *limits;
  if (omniq__zygote_ask(ctl, OMNIQ__Z_SPAWN) == 0) s->spawning = 1;
  else s->zygote_gone = 1;
}

static void forget_child(omniq__slot_t *s) {
  if (s->sock >= 0) close(s->sock);
  if (s->err >= 0) close(s->err);
  s->sock = s->err = -1;
  s->pid = 0;
  s->ended = 0;
  s->tasks = 0;
}

/* Lets the current child go (the zygote kills it if it still lives) and
 * asks for the next one now. */
static void replace(omniq__slot_t *s) {
  forget_child(s);
  if (s->zygote_gone || s->spawning) return;
  if (omniq__zygote_ask(s->ctl, OMNIQ__Z_SPAWN) == 0) s->spawning = 1;
  else s->zygote_gone = 1;
}

void omniq__slot_close(omniq__slot_t *s) {
  forget_child(s);
  if (s->ctl >= 0) close(s->ctl); /* the zygote kills the slot's child */
  s->ctl = -1;
  if (s->cancel_fd >= 0) close(s->cancel_fd);
  s->cancel_fd = -1;
  omniq__buf_free(&s->out);
  omniq__buf_free(&s->in);
}

/* Takes what the zygote sent. Sets s->ended if the current child has ended
 * (its status in s->exit_status; its descriptors are still open, for what
 * it wrote before it died). */
static void take_messages(omniq__slot_t *s) {
  for (;;) {
    omniq__zmsg_t m;
    int fds[2];
    int rc = omniq__zygote_take(s->ctl, &m, fds);
    if (rc == 0) break;
    if (rc < 0) { /* the zygote exited, and its children with it */
      s->zygote_gone = 1;
      s->spawning = 0;
      s->exit_status = -1;
      s->ended = s->pid != 0;
      break;
    }
    if (m.type == OMNIQ__Z_SPAWNED && s->spawning && s->pid == 0) {
      s->spawning = 0;
      if (fds[0] < 0) { /* no room for its descriptors here */
        s->spawn_errno = EMFILE;
        omniq__zygote_ask(s->ctl, OMNIQ__Z_KILL);
        continue;
      }
      s->pid = m.pid;
      s->sock = fds[0];
      s->err = fds[1];
      s->tasks = 0;
      fcntl(s->sock, F_SETFL, O_NONBLOCK);
      fcntl(s->err, F_SETFL, O_NONBLOCK);
      continue;
    }
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    if (m.type == OMNIQ__Z_SPAWN_FAILED) {
      s->spawning = 0;
      s->spawn_errno = m.err != 0 ? m.err : EAGAIN;
    } else if (m.type == OMNIQ__Z_EXITED && s->pid != 0 && m.pid == s->pid) {
      s->exit_status = m.status;
      s->ended = 1;
    }
  }
}

int omniq__slot_usable(omniq__slot_t *s) {
  if (!s->zygote_gone) take_messages(s);
  return !s->zygote_gone;
}

/* ---- stderr ------------------------------------------------------------------------ */

/* Keeps the last TAIL_MAX bytes. */
static void tail_append(run_t *r, const char *p, size_t n) {
  if (n >= TAIL_MAX) {
    memcpy(r->tail, p + n - TAIL_MAX, TAIL_MAX);
    r->tail_len = TAIL_MAX;
    return;
  }
  if (r->tail_len + n > TAIL_MAX) {
    size_t drop = r->tail_len + n - TAIL_MAX;
    memmove(r->tail, r->tail + drop, r->tail_len - drop);
    r->tail_len -= drop;
  }
  memcpy(r->tail + r->tail_len, p, n);
  r->tail_len += n;
}

/* Reads what is in the child's stderr pipe now, passes it on to ours and,
 * with r, keeps its tail. Returns 0 once the pipe is closed. */
static int read_stderr(int fd, run_t *r) {
  char chunk[4096];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    if (n == 0) return 0;
    if (r != NULL) tail_append(r, chunk, (size_t)n);
    ssize_t ignored = write(STDERR_FILENO, chunk, (size_t)n);
    (void)ignored;
  }
}

/* The traceback is stored as JSON text and shown by tools that print one
 * line per field: every byte that is not printable ASCII, newlines and
 * tabs included, becomes '?'. */
static void make_printable(char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c >= 0x7f) s[i] = '?';
  }
  s[n] = '\0';
}

/* ---- getting a child ------------------------------------------------------------- */

static int no_child(omniq_job_t *job, const char *why) {
  char msg[160];
  snprintf(msg, sizeof msg, "cannot start a handler process: %s", why);
  omniq__job_fail(job, OMNIQ__RUN_FORK_FAILED, NULL, msg, NULL, 0);
  return OMNIQ_EIO;
}

/* Makes sure the slot has a live child. OMNIQ_OK; OMNIQ_ECLOSED if the job
 * was cancelled meanwhile; OMNIQ_EIO with the failure recorded on job. */
static int ensure_child(omniq__slot_t *s, omniq_job_t *job) {
  int tries = 0;
  for (;;) {
    take_messages(s);
    if (s->ended) { /* it ended between tasks */
      read_stderr(s->err, NULL);
      forget_child(s);
      if (++tries >= SPAWN_TRIES) return no_child(job, "handler processes exit as they start");
    }
    if (s->pid != 0) return OMNIQ_OK;
    if (s->zygote_gone) return no_child(job, "the process that forks them has exited");
    if (s->spawn_errno != 0) {
      int e = s->spawn_errno;
      s->spawn_errno = 0;
      return no_child(job, strerror(e));
    }
    if (!s->spawning) {
      if (omniq__zygote_ask(s->ctl, OMNIQ__Z_SPAWN) != 0) {
        s->zygote_gone = 1;
        continue;
      }
      s->spawning = 1;
    }
    if (omniq_job_cancelled(job)) return OMNIQ_ECLOSED;
    struct pollfd p[2] = {{.fd = s->ctl, .events = POLLIN}, {.fd = s->cancel_fd, .events = POLLIN}};
    poll(p, s->cancel_fd >= 0 ? 2 : 1, atomic_load(&tick_ms));
  }
}

/* ---- one run ---------------------------------------------------------------------- */

static int64_t clock_ns(clockid_t c) {
  struct timespec ts;
  if (clock_gettime(c, &ts) != 0) return -1;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time the task has used so far, in ms (-1 if it cannot be read). */
static int64_t cpu_used_ms(const run_t *r) {
  int64_t now = r->has_cpu ? clock_ns(r->cpu_clock) : -1;
  return now < 0 ? -1 : (now - r->cpu_start_ns) / 1000000;
}

static void send_some(omniq__slot_t *s, run_t *r) {
  ssize_t n = send(s->sock, s->out.data + r->sent, s->out.len - r->sent,
                   MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n > 0) r->sent += (size_t)n;
  else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    r->sent = s->out.len; /* the child is gone; the zygote will say how */
}

/* Reads report frames; sets r->reported, r->note, or a reason to kill. */
static void read_reports(omniq__slot_t *s, run_t *r) {
  char chunk[READ_CHUNK];
  while (!r->reported && !r->killed) {
    ssize_t n = read(s->sock, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) r->sock_open = 0;
      return;
    }
    if (omniq__buf_append(&s->in, chunk, (size_t)n, OMNIQ__WIRE_RESULT_MAX + READ_CHUNK) != 0) {
      r->killed = KILL_TOO_LARGE;
      return;
    }
    for (;;) {
      size_t used;
      int rc = omniq__wire_report_parse(&s->in, &r->rep, &used);
      if (rc == 0) break;
      if (rc < 0) {
        r->killed = rc == -2 ? KILL_TOO_LARGE : KILL_MALFORMED;
        return;
      }
      if (!r->rep.note) {
        r->reported = 1; /* stays in s->in until applied */
        return;
      }
      r->note = r->rep.kind;
      omniq__buf_consume(&s->in, used);
    }
  }
}

/* Empties the slot's cancel eventfd (it stays readable until read). */
static void drain_cancel(omniq__slot_t *s) {
  uint64_t n;
  ssize_t got;
  if (s->cancel_fd < 0) return;
  do got = read(s->cancel_fd, &n, sizeof n);
  while (got < 0 && errno == EINTR);
}

/* Waits until the child reports, ends, or the zygote is gone; asks for a
 * kill when the job is cancelled, the CPU limit passes, or the child sends
 * what cannot be taken. */
static void watch(omniq__slot_t *s, omniq_job_t *job, run_t *r) {
  for (;;) {
    if (!r->killed && omniq_job_cancelled(job)) r->killed = KILL_CANCEL;
    int64_t cpu_left = -1;
    if (!r->killed && s->limits.cpu_ms > 0 && (r->cpu_used_ms = cpu_used_ms(r)) >= 0) {
      cpu_left = s->limits.cpu_ms - r->cpu_used_ms;
      if (cpu_left <= 0) r->killed = KILL_CPU;
    }
    if (r->killed && !r->kill_asked) {
      r->kill_asked = 1;
      if (omniq__zygote_ask(s->ctl, OMNIQ__Z_KILL) != 0) s->zygote_gone = 1;
    }

    struct pollfd p[4];
    int nf = 0, isock = -1, ierr = -1, icancel = -1;
    p[nf++] = (struct pollfd){.fd = s->ctl, .events = POLLIN};
    if (s->cancel_fd >= 0 && !r->killed) {
      icancel = nf;
      p[nf++] = (struct pollfd){.fd = s->cancel_fd, .events = POLLIN};
    }
    if (r->sock_open) {
      isock = nf;
      p[nf++] = (struct pollfd){.fd = s->sock,
                                .events = (short)(POLLIN | (r->sent < s->out.len ? POLLOUT : 0))};
    }
    if (r->err_open) {
      ierr = nf;
      p[nf++] = (struct pollfd){.fd = s->err, .events = POLLIN};
    }
    /* One thread's CPU time passes no faster than real time: look again when
     * the limit could be reached (a handler with more threads is caught at
     * the next tick). */
    int timeout = atomic_load(&tick_ms);
    if (cpu_left > 0 && cpu_left < timeout) timeout = (int)cpu_left;
    int n = poll(p, (nfds_t)nf, timeout);
    if (n > 0 && p[0].revents) take_messages(s);
    if (n > 0 && icancel >= 0 && p[icancel].revents) drain_cancel(s); /* the flag says it */
    r->ended = s->ended;
    if (n > 0 && isock >= 0 && p[isock].revents) {
      if ((p[isock].revents & POLLOUT) && r->sent < s->out.len) send_some(s, r);
      if (p[isock].revents & (POLLIN | POLLHUP | POLLERR)) read_reports(s, r);
    }
    if (n > 0 && ierr >= 0 && p[ierr].revents) r->err_open = read_stderr(s->err, r);
    if (r->ended && r->sock_open && !r->reported) read_reports(s, r); /* its last words */
    if (r->reported || r->ended || s->zygote_gone) return;
  }
}

static char *dup_n(const char *p, size_t n) {
  char *s = omniq__malloc(n + 1);
  if (s != NULL) {
    memcpy(s, p, n);
    s[n] = '\0';
  }
  return s;
}

static int apply_report(omniq_job_t *job, const omniq__wire_report_t *rep) {
  if (rep->kind == OMNIQ__RUN_OK) {
    char *value = rep->has_value ? dup_n(rep->str[0], rep->len[0]) : NULL;
    if (rep->has_value && value == NULL) return -1;
    pthread_mutex_lock(&job->lock);
    omniq__free(job->value);
    job->value = value;
    pthread_mutex_unlock(&job->lock);
    return 0;
  }
  char *type = dup_n(rep->str[1], rep->len[1]);
  char *msg = dup_n(rep->str[2], rep->len[2]);
  int rc = type && msg ? omniq__job_fail(job, rep->kind, type[0] ? type : NULL, msg, NULL,
                                         rep->retryable)
                       : OMNIQ_ENOMEM;
  omniq__free(type);
  omniq__free(msg);
  return rc == OMNIQ_OK ? 0 : -1;
}

/* The run ended without a report: say how. */
static void record_end(omniq_job_t *job, const omniq__slot_t *s, run_t *r) {
  omniq__run_kind_t kind = OMNIQ__RUN_CRASH_EXIT;
  int status = s->exit_status;
  char msg[200];
  if (!r->ended || status == -1) {
    snprintf(msg, sizeof msg, "handler process lost: the process that forked it has exited");
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU) {
    kind = OMNIQ__RUN_CPU_LIMIT;
    snprintf(msg, sizeof msg, "handler process killed by SIGXCPU: the task used up its CPU time");
  } else if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    kind = r->note != OMNIQ__RUN_OK ? (omniq__run_kind_t)r->note : OMNIQ__RUN_CRASH_SIGNAL;
    int n = snprintf(msg, sizeof msg, "handler process killed by signal %d (SIG%s)", sig,
                     sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    if (kind == OMNIQ__RUN_MEMORY_LIMIT)
      snprintf(msg + n, sizeof msg - (size_t)n,
               " after the task ran out of memory at its limit of %lld bytes",
               (long long)s->limits.memory_bytes);
    else if (kind == OMNIQ__RUN_FILE_LIMIT)
      snprintf(msg + n, sizeof msg - (size_t)n,
               " after the task ran out of descriptors at its limit of %lld files",
               (long long)s->limits.files);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    snprintf(msg, sizeof msg, "handler process exited without a valid result");
  } else {
    snprintf(msg, sizeof msg, "handler process exited with status %d before reporting a result",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  make_printable(r->tail, r->tail_len);
  omniq__job_fail(job, kind, NULL, msg, r->tail_len > 0 ? r->tail : msg, 0);
}

static void conclude(omniq__slot_t *s, omniq_job_t *job, run_t *r) {
  char msg[160];
  if (r->killed == KILL_CANCEL) return; /* whoever cancelled it owns the run */
  if (r->reported) {
    if (apply_report(job, &r->rep) != 0)
      omniq__job_fail(job, OMNIQ__RUN_TOO_LARGE, NULL, "no memory to take the handler's result",
                      NULL, 0);
  } else if (r->killed == KILL_CPU) {
    snprintf(msg, sizeof msg, "the task used %lld ms of CPU time, past its limit of %lld ms",
             (long long)r->cpu_used_ms, (long long)s->limits.cpu_ms);
    omniq__job_fail(job, OMNIQ__RUN_CPU_LIMIT, NULL, msg, NULL, 0);
  } else if (r->killed == KILL_TOO_LARGE) {
    omniq__job_fail(job, OMNIQ__RUN_TOO_LARGE, NULL,
                    "handler result exceeds 64 MiB or memory ran out", NULL, 0);
  } else if (r->killed == KILL_MALFORMED) {
    omniq__job_fail(job, OMNIQ__RUN_CRASH_EXIT, NULL, "handler process sent a malformed report",
                    NULL, 0);
  } else {
    record_end(job, s, r);
  }
}

static int run_in_child(omniq__slot_t *s, omniq_job_t *job);

/* Runs with the job's cancel writing to the slot's eventfd. Emptied once
 * the job can no longer write to it, the eventfd starts every run empty. */
int omniq__isolate_run(omniq__slot_t *s, omniq_job_t *job) {
  omniq__job_set_cancel_fd(job, s->cancel_fd);
  int rc = run_in_child(s, job);
  omniq__job_set_cancel_fd(job, -1);
  drain_cancel(s);
  return rc;
}

static int run_in_child(omniq__slot_t *s, omniq_job_t *job) {
  int rc = ensure_child(s, job);
  if (rc != OMNIQ_OK) return rc == OMNIQ_ECLOSED ? rc : OMNIQ_OK;
  if (omniq__wire_task_encode(&s->out, job->task, job->deadline_ms, &s->limits) != OMNIQ_OK) {
    omniq__job_fail(job, OMNIQ__RUN_NO_MEMORY, NULL,
                    "out of memory handing the task to its handler process", NULL, 0);
    return OMNIQ_OK;
  }
  run_t r;
  memset(&r, 0, sizeof r);
  r.sock_open = r.err_open = 1;
  read_stderr(s->err, NULL); /* what the idle child wrote is not this run's */
  s->in.len = 0;
  if (s->limits.cpu_ms > 0 && clock_getcpuclockid(s->pid, &r.cpu_clock) == 0) {
    r.cpu_start_ns = clock_ns(r.cpu_clock);
    r.has_cpu = r.cpu_start_ns >= 0;
  }
  send_some(s, &r); /* a task frame usually fits the socket at once */
  watch(s, job, &r);
  if (r.err_open) read_stderr(s->err, &r); /* written before the report or the end */
  conclude(s, job, &r);

  int limit = r.reported && (r.rep.kind == OMNIQ__RUN_MEMORY_LIMIT ||
                             r.rep.kind == OMNIQ__RUN_FILE_LIMIT);
  s->in.len = 0;
  if (s->in.cap > KEEP_BUFFER) omniq__buf_free(&s->in); /* a large result is not kept */
  if (s->out.cap > KEEP_BUFFER) omniq__buf_free(&s->out);
  if (r.reported && !r.killed && !r.ended && !s->zygote_gone && !limit &&
      (s->max_tasks == 0 || ++s->tasks < s->max_tasks))
    return OMNIQ_OK; /* the child lives on */
  replace(s);
  return r.killed == KILL_CANCEL ? OMNIQ_ECLOSED : OMNIQ_OK;
}
