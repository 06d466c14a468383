/* Process isolation.
 *
 * Each run forks a child (no exec: the handler is a function pointer, valid
 * in the copy). The child runs the handler on a fresh copy of the job,
 * writes one frame with its run report to the result pipe and _exit(0)s;
 * its stderr goes to a second pipe. The parent reads both until the child
 * is reaped: the frame becomes the job's report; a child that dies on a
 * signal or exits without a valid frame is reported as that kind of crash,
 * with the last TAIL_MAX bytes of its stderr (or the signal) as traceback.
 * What a crash is called and whether it retries is the engine's business.
 * The stderr bytes are also passed on to the parent's stderr, so handler
 * output is not lost.
 *
 * Frame (host byte order; parent and child are the same binary):
 *   "OQR2" | kind u8 | retryable u8 | has_value u8 | pad u8 |
 *   len(value) u32 | len(error_type) u32 | len(message) u32 | the bytes.
 * kind is the report's (OK, HANDLER_FAILED or HANDLER_ERROR in a child);
 * error_type and retryable are the handler's own, for HANDLER_FAILED.
 *
 * Why fork_lock: a child inherits every descriptor of the parent, and a
 * pipe reports EOF only when every copy of its write end is closed. If two
 * runner threads forked at once, each child would hold the other's write
 * end and a crash would go unseen until the sibling exited. Creating the
 * pipes, forking and closing the parent's write ends all happen under one
 * process-wide lock, so no write end ever exists during another fork. The
 * pipes are O_CLOEXEC for programs that fork and exec elsewhere.
 *
 * In the child nothing shared is touched: not the store, not the log, not
 * any lock another thread may have held at fork time (hence the job copy
 * with its own lock). The child leaves the parent's process group so a
 * terminal's Ctrl-C reaches the worker, which stops gracefully, and not the
 * running handlers; killing sends SIGKILL to the child's group.
 *
 * The parent wakes every OMNIQ__ISOLATE_TICK_MS to look at the job's
 * cancelled flag (set by the keeper at the deadline or when the claim is
 * lost, or by a stop that gives up) and kills the child when it is set. It
 * also checks for a child that exited while a grandchild keeps its pipes
 * open.
 */
#include "worker/isolate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"

#define TAIL_MAX 2048
#define RESULT_MAX (64u * 1024 * 1024)
#define FRAME_MAGIC "OQR2"

typedef struct {
  char magic[4];
  uint8_t kind, retryable, has_value, pad;
  uint32_t len[3]; /* value, error_type, message */
} frame_hdr_t;

static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- child --------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static void write_frame(int fd, const omniq__run_report_t *r) {
  int ok = r->kind == OMNIQ__RUN_OK;
  const char *parts[3] = {ok ? r->value : NULL, ok ? NULL : r->error_type,
                          ok ? NULL : r->message};
  frame_hdr_t h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, FRAME_MAGIC, 4);
  h.kind = (uint8_t)r->kind;
  h.retryable = (uint8_t)(r->retryable != 0);
  h.has_value = (uint8_t)(ok && r->value != NULL);
  for (int i = 0; i < 3; i++) h.len[i] = parts[i] ? (uint32_t)strlen(parts[i]) : 0;
  if (write_all(fd, &h, sizeof h) != 0) return;
  for (int i = 0; i < 3; i++)
    if (parts[i] != NULL && write_all(fd, parts[i], h.len[i]) != 0) return;
}

/* The program's own handlers for crash signals (a crash reporter, a test
 * framework that longjmps back into its runner) belong to the parent; in
 * the child they would turn a crash into anything at all. With the default
 * action a crash is reported as the signal it is. */
static void default_crash_signals(void) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &dfl, NULL);
}

static _Noreturn void child_main(const omniq_job_t *job, omniq_handler_fn fn, void *userdata,
                                 int res_fd, int err_fd) {
  sigset_t none;
  omniq_job_t cj;
  omniq__run_report_t r;
  char buf[256];

  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL); /* pool threads block SIGINT/SIGTERM */
  default_crash_signals();
  setpgid(0, 0);
  if (err_fd != STDERR_FILENO && dup2(err_fd, STDERR_FILENO) >= 0) close(err_fd);

  omniq__job_init_child(&cj, job);
  int rc = fn(&cj, userdata);
  if (rc == OMNIQ_DEFERRED)
    omniq__job_wait_deferred(&cj);
  else
    omniq__job_returned(&cj);
  omniq__job_report(&cj, rc, &r, buf, sizeof buf);
  write_frame(res_fd, &r);
  fflush(stdout); /* the parent flushed before fork, so this is the handler's own output */
  _exit(0);
}

/* ---- parent -------------------------------------------------------------- */

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

static int buf_append(buf_t *b, const char *p, size_t n) {
  if (b->len + n > RESULT_MAX) return -1;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = omniq__realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* Keeps the last TAIL_MAX bytes. */
static void tail_append(char *tail, size_t *len, const char *p, size_t n) {
  if (n >= TAIL_MAX) {
    memcpy(tail, p + n - TAIL_MAX, TAIL_MAX);
    *len = TAIL_MAX;
    return;
  }
  if (*len + n > TAIL_MAX) {
    size_t drop = *len + n - TAIL_MAX;
    memmove(tail, tail + drop, *len - drop);
    *len -= drop;
  }
  memcpy(tail + *len, p, n);
  *len += n;
}

static const char *signal_name(int sig) {
  switch (sig) {
  case SIGSEGV: return "SIGSEGV";
  case SIGBUS: return "SIGBUS";
  case SIGABRT: return "SIGABRT";
  case SIGFPE: return "SIGFPE";
  case SIGILL: return "SIGILL";
  case SIGKILL: return "SIGKILL";
  case SIGTERM: return "SIGTERM";
  case SIGINT: return "SIGINT";
  case SIGPIPE: return "SIGPIPE";
  case SIGTRAP: return "SIGTRAP";
  case SIGSYS: return "SIGSYS";
  default: return "signal";
  }
}

static void kill_child(pid_t pid) {
  kill(-pid, SIGKILL); /* its group, grandchildren included */
  kill(pid, SIGKILL);  /* in case it had not left our group yet */
}

/* Reads what is there on fd. Returns 0 at EOF or on error, 1 otherwise. */
static int read_some(int fd, buf_t *out, char *tail, size_t *tail_len, int *overflow) {
  char chunk[4096];
  ssize_t r = read(fd, chunk, sizeof chunk);
  if (r < 0) return errno == EINTR || errno == EAGAIN;
  if (r == 0) return 0;
  if (out != NULL) {
    if (buf_append(out, chunk, (size_t)r) != 0) *overflow = 1;
  } else {
    tail_append(tail, tail_len, chunk, (size_t)r);
    ssize_t ignored = write(STDERR_FILENO, chunk, (size_t)r);
    (void)ignored;
  }
  return 1;
}

/* Reads whatever is already buffered on fd without waiting. */
static void drain(int fd, buf_t *out, char *tail, size_t *tail_len, int *overflow) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (poll(&p, 1, 0) > 0 && read_some(fd, out, tail, tail_len, overflow)) {
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

/* Applies a frame to the job. -1 if it is malformed. */
static int apply_frame(omniq_job_t *job, const buf_t *b) {
  frame_hdr_t h;
  if (b->len < sizeof h) return -1;
  memcpy(&h, b->data, sizeof h);
  if (memcmp(h.magic, FRAME_MAGIC, 4) != 0) return -1;
  if (h.kind != OMNIQ__RUN_OK && h.kind != OMNIQ__RUN_HANDLER_FAILED &&
      h.kind != OMNIQ__RUN_HANDLER_ERROR)
    return -1; /* the only kinds a child reports */
  size_t total = sizeof h;
  for (int i = 0; i < 3; i++) total += h.len[i];
  if (total != b->len) return -1;
  const char *p = b->data + sizeof h;
  if (h.kind == OMNIQ__RUN_OK) {
    char *value = h.has_value ? dup_n(p, h.len[0]) : NULL;
    if (h.has_value && value == NULL) return -1;
    pthread_mutex_lock(&job->lock);
    omniq__free(job->value);
    job->value = value;
    pthread_mutex_unlock(&job->lock);
    return 0;
  }
  char *type = dup_n(p + h.len[0], h.len[1]);
  char *msg = dup_n(p + h.len[0] + h.len[1], h.len[2]);
  int rc = type && msg ? omniq__job_fail(job, (omniq__run_kind_t)h.kind, type[0] ? type : NULL,
                                         msg, NULL, h.retryable)
                       : -1;
  omniq__free(type);
  omniq__free(msg);
  return rc == OMNIQ_OK ? 0 : -1;
}

/* Stored records are JSON, which needs valid UTF-8: keep printable ASCII,
 * newlines and tabs, and mark everything else. */
static void make_printable(char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f))) s[i] = '?';
  }
  s[n] = '\0';
}

/* A child that died on a signal, or exited without a valid frame. */
static void record_crash(omniq_job_t *job, int status, char *tail, size_t tail_len) {
  omniq__run_kind_t kind = OMNIQ__RUN_CRASH_EXIT;
  char msg[160];
  if (WIFSIGNALED(status)) {
    kind = OMNIQ__RUN_CRASH_SIGNAL;
    snprintf(msg, sizeof msg, "handler process killed by signal %d (%s)", WTERMSIG(status),
             signal_name(WTERMSIG(status)));
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    snprintf(msg, sizeof msg, "handler process exited without a valid result");
  } else {
    snprintf(msg, sizeof msg, "handler process exited with status %d before reporting a result",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  make_printable(tail, tail_len);
  omniq__job_fail(job, kind, NULL, msg, tail_len > 0 ? tail : msg, 0);
}

/* Waits for the child, reading its pipes, killing it if the job is
 * cancelled. Returns 1 if it was killed. */
static int watch(omniq_job_t *job, pid_t pid, int res_fd, int err_fd, buf_t *out, char *tail,
                 size_t *tail_len, int *status, int *overflow) {
  int res_open = 1, err_open = 1, killed = 0, backoff = 1;
  for (;;) {
    if (!killed && (omniq_job_cancelled(job) || *overflow)) {
      kill_child(pid);
      killed = 1;
    }
    struct pollfd fds[2];
    int nf = 0, ires = -1, ierr = -1;
    int reading_res = res_open && !killed;
    if (reading_res) ires = nf, fds[nf++] = (struct pollfd){.fd = res_fd, .events = POLLIN};
    if (err_open) ierr = nf, fds[nf++] = (struct pollfd){.fd = err_fd, .events = POLLIN};
    int pr = poll(fds, (nfds_t)nf, reading_res ? OMNIQ__ISOLATE_TICK_MS : backoff);
    if (pr > 0 && ires >= 0 && fds[ires].revents)
      res_open = read_some(res_fd, out, NULL, NULL, overflow);
    if (pr > 0 && ierr >= 0 && fds[ierr].revents)
      err_open = read_some(err_fd, NULL, tail, tail_len, overflow);
    /* Normally the result pipe closes as the child exits. Look for the exit
     * once it has, and on every quiet tick in case a grandchild holds it. */
    if (!reading_res || pr == 0) {
      pid_t w = waitpid(pid, status, WNOHANG);
      if (w == pid || (w < 0 && errno != EINTR)) break;
      if (!reading_res && backoff < OMNIQ__ISOLATE_TICK_MS) backoff *= 2;
    }
  }
  if (res_open && !killed) drain(res_fd, out, NULL, NULL, overflow);
  if (err_open) drain(err_fd, NULL, tail, tail_len, overflow);
  return killed;
}

int omniq__isolate_run(omniq_job_t *job, omniq_handler_fn fn, void *userdata) {
  int res[2], err[2];
  pid_t pid = -1;
  int saved = 0;

  pthread_mutex_lock(&fork_lock);
  if (pipe2(res, O_CLOEXEC) != 0) {
    saved = errno;
  } else if (pipe2(err, O_CLOEXEC) != 0) {
    saved = errno;
    close(res[0]);
    close(res[1]);
  } else {
    fflush(stdout); /* so the child does not inherit, and repeat, buffered output */
    pid = fork();
    if (pid == 0) {
      close(res[0]);
      close(err[0]);
      child_main(job, fn, userdata, res[1], err[1]);
    }
    saved = errno;
    close(res[1]);
    close(err[1]);
    if (pid < 0) {
      close(res[0]);
      close(err[0]);
    }
  }
  pthread_mutex_unlock(&fork_lock);
  if (pid < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "cannot start a handler process: %s", strerror(saved));
    omniq__job_fail(job, OMNIQ__RUN_FORK_FAILED, NULL, msg, NULL, 0);
    return OMNIQ_OK;
  }
  setpgid(pid, pid); /* also done by the child; whichever runs first wins */

  buf_t out = {0};
  char tail[TAIL_MAX + 1];
  size_t tail_len = 0;
  int status = 0, overflow = 0;
  int killed = watch(job, pid, res[0], err[0], &out, tail, &tail_len, &status, &overflow);
  close(res[0]);
  close(err[0]);

  int rc = OMNIQ_OK;
  if (killed && !overflow) {
    rc = OMNIQ_ECLOSED;
  } else if (overflow) {
    omniq__job_fail(job, OMNIQ__RUN_TOO_LARGE, NULL,
                    "handler result exceeds 64 MiB or memory ran out", NULL, 0);
  } else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || apply_frame(job, &out) != 0) {
    record_crash(job, status, tail, tail_len);
  }
  omniq__free(out.data);
  return rc;
}
