/* SPDX-License-Identifier: MIT */
/* OmniQ beside beanstalkd and Redis: the same two workloads, in one run.
 *
 *   bench_peers REDIS_PORT BEANSTALKD_PORT BEANSTALKD_BINLOG_PORT [samples]
 *
 * The servers are started (and stopped) by bench/peers/run.sh, bound to
 * 127.0.0.1. This program is their client, and runs OmniQ (SQLite, a fresh
 * store in a temporary folder, default settings) beside them.
 *
 * Start latency, one job at a time (samples jobs): the time from just
 * before the enqueue call until the consumer holds the job, the next job
 * sent only once the last was taken. Redis: LPUSH by one connection, BRPOP
 * by a consumer thread on another. beanstalkd: put / reserve (+ delete),
 * likewise. OmniQ: omniq_enqueue, then the handler's start in a pool
 * (default options, poll 1 s) in this process, and in a worker process
 * forked for it (its own handle on the same store). Each consumer passes the
 * CLOCK_MONOTONIC time at which it got the job back through a pipe (one
 * clock for every process), so a sample is that time minus the send time.
 *
 * Throughput, 20,000 no-op jobs: enqueued in bulk (OmniQ: omniq_enqueue_many
 * in batches of 500; Redis: 20,000 LPUSH pipelined; beanstalkd: 20,000 puts
 * pipelined), then drained by 1, 2 and 4 consumers (OmniQ:
 * omniq_worker_process with that concurrency; peers: that many threads, each
 * with its own connection, one job per round trip: BRPOP; reserve then
 * delete). The figure is jobs / (enqueue time + drain time).
 *
 * Every figure is the median of REPS runs, the runs of the systems
 * interleaved so that drift hits all alike. Ratios are OmniQ / peer: for a
 * latency above 1 OmniQ is slower, for a throughput below 1.
 *
 * OMNIQ_BENCH_SMOKE=1 (bench/bench_smoke.h): 500 jobs for the throughput,
 * one run; the samples are the argument's. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "omniq.h"
#include "../bench_smoke.h"
#include "../bench_util.h"

#define REPS 3
static int tasks = 20000; /* TASKS */
#define BATCH 500
#define MAX_CONSUMERS 4

static int nsamples = 1000;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int reps = REPS; /* 1 in a smoke run */

static double median(double v[REPS]) {
  qsort(v, (size_t)reps, sizeof v[0], cmp_double);
  return v[reps / 2];
}

/* p50 and p99 of n samples, in microseconds (sorts s). */
static void percentiles(int64_t *s, int n, double *p50, double *p99) {
  qsort(s, (size_t)n, sizeof *s, cmp_i64);
  *p50 = (double)s[n / 2] / 1000.0;
  *p99 = (double)s[(n * 99) / 100] / 1000.0;
}

static void write_ns(int fd, int64_t t) {
  if (write(fd, &t, sizeof t) != (ssize_t)sizeof t) die("pipe", "write failed");
}

static int64_t read_ns(int fd) {
  int64_t t;
  if (read(fd, &t, sizeof t) != (ssize_t)sizeof t) die("pipe", "read failed");
  return t;
}

/* ---- beanstalkd: the text protocol over a socket ------------------------------ */

typedef struct bs {
  int fd;
  char buf[65536];
  size_t len;
} bs_t;

static void bs_connect(bs_t *b, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  b->len = 0;
  b->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (b->fd < 0 || connect(b->fd, (struct sockaddr *)&a, sizeof a) != 0)
    die("beanstalkd", "cannot connect");
}

static void bs_send(bs_t *b, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(b->fd, p, n);
    if (w <= 0) die("beanstalkd", "write failed");
    p += w;
    n -= (size_t)w;
  }
}

/* Reads one reply line (without CRLF) into line. */
static void bs_line(bs_t *b, char *line, size_t cap) {
  for (;;) {
    char *end = memmem(b->buf, b->len, "\r\n", 2);
    if (end != NULL) {
      size_t n = (size_t)(end - b->buf);
      if (n >= cap) die("beanstalkd", "reply too long");
      memcpy(line, b->buf, n);
      line[n] = '\0';
      b->len -= n + 2;
      memmove(b->buf, end + 2, b->len);
      return;
    }
    ssize_t r = read(b->fd, b->buf + b->len, sizeof b->buf - b->len);
    if (r <= 0) die("beanstalkd", "connection closed");
    b->len += (size_t)r;
  }
}

static void bs_expect(bs_t *b, const char *prefix) {
  char line[256];
  bs_line(b, line, sizeof line);
  if (strncmp(line, prefix, strlen(prefix)) != 0) die("beanstalkd: unexpected reply", line);
}

static void bs_put(bs_t *b) { bs_send(b, "put 0 0 60 1\r\nx\r\n", 17); }

/* Reserves a job (waiting up to timeout_s); returns its id, or 0 on a
 * timeout. */
static unsigned long bs_reserve(bs_t *b, int timeout_s) {
  char cmd[64], line[256];
  int n = snprintf(cmd, sizeof cmd, "reserve-with-timeout %d\r\n", timeout_s);
  bs_send(b, cmd, (size_t)n);
  bs_line(b, line, sizeof line);
  if (strncmp(line, "TIMED_OUT", 9) == 0) return 0;
  unsigned long id = 0, bytes = 0;
  if (sscanf(line, "RESERVED %lu %lu", &id, &bytes) != 2) die("beanstalkd: reserve", line);
  bs_line(b, line, sizeof line); /* the body: one byte */
  return id;
}

static void bs_delete(bs_t *b, unsigned long id) {
  char cmd[64];
  int n = snprintf(cmd, sizeof cmd, "delete %lu\r\n", id);
  bs_send(b, cmd, (size_t)n);
  bs_expect(b, "DELETED");
}

/* ---- the peers' workloads ---------------------------------------------------------- */

typedef struct peer {
  const char *name;
  int redis; /* 1 = Redis, 0 = beanstalkd */
  int port;
} peer_t;

typedef struct consumer {
  const peer_t *peer;
  int pipe_fd; /* latency: where the time a job was taken goes */
  atomic_long *left; /* throughput: jobs not yet taken */
  _Atomic int64_t *end_ns; /* throughput: when the last job was taken */
  pthread_t tid;
} consumer_t;

static redisContext *redis_open(int port) {
  redisContext *c = redisConnect("127.0.0.1", port);
  if (c == NULL || c->err) die("redis", c ? c->errstr : "cannot connect");
  return c;
}

static void redis_ok(redisReply *r, const char *what) {
  if (r == NULL || r->type == REDIS_REPLY_ERROR) die("redis", what);
  freeReplyObject(r);
}

/* Latency consumer: takes `nsamples` jobs one by one. */
static void *latency_consumer(void *arg) {
  consumer_t *c = arg;
  if (c->peer->redis) {
    redisContext *rc = redis_open(c->peer->port);
    for (int i = 0; i < nsamples; i++) {
      redisReply *r = redisCommand(rc, "BRPOP q 0");
      int64_t t = now_ns();
      if (r == NULL || r->type != REDIS_REPLY_ARRAY) die("redis", "BRPOP");
      freeReplyObject(r);
      write_ns(c->pipe_fd, t);
    }
    redisFree(rc);
  } else {
    bs_t b;
    bs_connect(&b, c->peer->port);
    for (int i = 0; i < nsamples; i++) {
      unsigned long id = bs_reserve(&b, 60);
      int64_t t = now_ns();
      if (id == 0) die("beanstalkd", "reserve timed out");
      write_ns(c->pipe_fd, t);
      bs_delete(&b, id);
    }
    close(b.fd);
  }
  return NULL;
}

static void peer_latency(const peer_t *p, double *p50, double *p99) {
  int fds[2];
  int64_t *s = malloc(sizeof *s * (size_t)nsamples);
  if (s == NULL || pipe(fds) != 0) die("latency", "no memory or pipe");
  consumer_t c = {.peer = p, .pipe_fd = fds[1]};
  pthread_create(&c.tid, NULL, latency_consumer, &c);
  redisContext *rc = p->redis ? redis_open(p->port) : NULL;
  bs_t b;
  if (!p->redis) bs_connect(&b, p->port);
  for (int i = 0; i < nsamples; i++) {
    int64_t t0 = now_ns();
    if (p->redis) {
      redis_ok(redisCommand(rc, "LPUSH q x"), "LPUSH");
    } else {
      bs_put(&b);
      bs_expect(&b, "INSERTED");
    }
    s[i] = read_ns(fds[0]) - t0;
  }
  pthread_join(c.tid, NULL);
  if (rc != NULL) redisFree(rc);
  else close(b.fd);
  close(fds[0]);
  close(fds[1]);
  percentiles(s, nsamples, p50, p99);
  free(s);
}

static void *drain_consumer(void *arg) {
  consumer_t *c = arg;
  if (c->peer->redis) {
    redisContext *rc = redis_open(c->peer->port);
    while (atomic_load(c->left) > 0) {
      redisReply *r = redisCommand(rc, "BRPOP q 1");
      if (r == NULL || r->type == REDIS_REPLY_ERROR) die("redis", "BRPOP");
      if (r->type == REDIS_REPLY_ARRAY && atomic_fetch_sub(c->left, 1) == 1)
        atomic_store(c->end_ns, now_ns());
      freeReplyObject(r);
    }
    redisFree(rc);
  } else {
    bs_t b;
    bs_connect(&b, c->peer->port);
    while (atomic_load(c->left) > 0) {
      unsigned long id = bs_reserve(&b, 1);
      if (id == 0) continue;
      bs_delete(&b, id);
      if (atomic_fetch_sub(c->left, 1) == 1) atomic_store(c->end_ns, now_ns());
    }
    close(b.fd);
  }
  return NULL;
}

/* Jobs per second, end to end, with n consumers: until the last job is
 * taken, not until every consumer has returned (the others may still be
 * blocked for up to a second in BRPOP or reserve-with-timeout). */
static double peer_throughput(const peer_t *p, int n) {
  atomic_long left = tasks;
  _Atomic int64_t end_ns = 0;
  consumer_t c[MAX_CONSUMERS];
  int64_t t0 = now_ns();
  if (p->redis) {
    redisContext *rc = redis_open(p->port);
    for (int i = 0; i < tasks; i++) redisAppendCommand(rc, "LPUSH q x");
    for (int i = 0; i < tasks; i++) {
      void *r = NULL;
      if (redisGetReply(rc, &r) != REDIS_OK) die("redis", "pipelined LPUSH");
      redis_ok(r, "LPUSH");
    }
    redisFree(rc);
  } else {
    bs_t b;
    bs_connect(&b, p->port);
    char *all = malloc((size_t)tasks * 17);
    if (all == NULL) die("beanstalkd", "no memory");
    for (int i = 0; i < tasks; i++) memcpy(all + (size_t)i * 17, "put 0 0 60 1\r\nx\r\n", 17);
    /* Written in pieces while the replies are read, so neither side's
     * socket buffer fills. */
    int sent = 0, got = 0;
    while (got < tasks) {
      int upto = sent + 1000 < tasks ? sent + 1000 : tasks;
      if (sent < upto) bs_send(&b, all + (size_t)sent * 17, (size_t)(upto - sent) * 17);
      sent = upto;
      for (int stop = sent - 500 > got ? sent - 500 : sent; got < stop; got++)
        bs_expect(&b, "INSERTED");
    }
    free(all);
    close(b.fd);
  }
  for (int i = 0; i < n; i++) {
    c[i] = (consumer_t){.peer = p, .left = &left, .end_ns = &end_ns};
    pthread_create(&c[i].tid, NULL, drain_consumer, &c[i]);
  }
  for (int i = 0; i < n; i++) pthread_join(c[i].tid, NULL);
  return tasks / ((double)(atomic_load(&end_ns) - t0) / 1e9);
}

/* ---- OmniQ's workloads ---------------------------------------------------------- */

static char store_dir[64];

static void fresh_store(omniq_settings_t *s) {
  if (store_dir[0] != '\0') bench_rmtree(store_dir);
  snprintf(store_dir, sizeof store_dir, "/tmp/omniq-peers-XXXXXX");
  if (mkdtemp(store_dir) == NULL) die("mkdtemp", "failed");
  omniq_settings_init(s);
  snprintf(s->backend, sizeof s->backend, "sqlite");
  snprintf(s->base_dir, sizeof s->base_dir, "%s", store_dir);
  s->log_level = OMNIQ_LOG_ERROR;
}

static int started_handler(omniq_job_t *job, void *userdata) {
  (void)job;
  write_ns(*(int *)userdata, now_ns());
  return OMNIQ_OK;
}

static int noop_handler(omniq_job_t *job, void *userdata) {
  (void)job;
  (void)userdata;
  return OMNIQ_OK;
}

static void check(omniq_t *oq, int rc, const char *what) {
  if (rc != OMNIQ_OK) die(what, omniq_errmsg(oq));
}

/* A pool with default options on s's store, its handler writing start times
 * to fd, until SIGTERM (run in a forked process). */
static _Noreturn void worker_process(const omniq_settings_t *s, int fd, int ready_fd) {
  omniq_t *oq;
  omniq_worker_t *w;
  omniq_worker_opts_t o;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  if (omniq_open(&oq, s) != OMNIQ_OK) _exit(2);
  omniq_register(oq, "start", started_handler, &fd);
  omniq_worker_opts_init(&o);
  if (omniq_worker_start(oq, &o, &w) != OMNIQ_OK) _exit(3);
  write_ns(ready_fd, 0);
  int sig;
  sigwait(&set, &sig);
  omniq_worker_stop(w);
  omniq_close(oq);
  _exit(0);
}

/* enqueue -> handler start; cross = pool in another process. */
static void omniq_latency(int cross, double *p50, double *p99) {
  omniq_settings_t s;
  omniq_t *oq;
  omniq_worker_t *w = NULL;
  omniq_worker_opts_t o;
  int fds[2], ready[2];
  pid_t pid = 0;
  int64_t *samples = malloc(sizeof *samples * (size_t)nsamples);
  if (samples == NULL || pipe(fds) != 0 || pipe(ready) != 0) die("latency", "no memory or pipe");
  fresh_store(&s);
  check(NULL, omniq_open(&oq, &s), "omniq_open");
  if (cross) {
    if ((pid = fork()) == 0) worker_process(&s, fds[1], ready[1]);
    read_ns(ready[0]);
  } else {
    check(oq, omniq_register(oq, "start", started_handler, &fds[1]), "register");
    omniq_worker_opts_init(&o);
    check(oq, omniq_worker_start(oq, &o, &w), "omniq_worker_start");
  }
  for (int i = 0; i < nsamples; i++) {
    int64_t t0 = now_ns();
    check(oq, omniq_enqueue(oq, "start", "[]", NULL, NULL, NULL), "omniq_enqueue");
    samples[i] = read_ns(fds[0]) - t0;
  }
  if (cross) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  } else {
    omniq_worker_stop(w);
  }
  omniq_close(oq);
  for (int i = 0; i < 2; i++) {
    close(fds[i]);
    close(ready[i]);
  }
  percentiles(samples, nsamples, p50, p99);
  free(samples);
}

static double omniq_throughput(int n) {
  omniq_settings_t s;
  omniq_t *oq;
  omniq_worker_opts_t o;
  omniq_enqueue_item_t items[BATCH];
  long done = 0;
  fresh_store(&s);
  check(NULL, omniq_open(&oq, &s), "omniq_open");
  check(oq, omniq_register(oq, "noop", noop_handler, NULL), "register");
  for (int i = 0; i < BATCH; i++) items[i] = (omniq_enqueue_item_t){"noop", "[]", NULL, NULL};
  int64_t t0 = now_ns();
  for (int i = 0; i < tasks; i += BATCH)
    check(oq, omniq_enqueue_many(oq, items, BATCH, NULL), "omniq_enqueue_many");
  omniq_worker_opts_init(&o);
  o.concurrency = n;
  check(oq, omniq_worker_process(oq, &o, 0, &done), "omniq_worker_process");
  double rate = tasks / ((double)(now_ns() - t0) / 1e9);
  if (done != tasks) die("omniq_worker_process", "did not run every task");
  omniq_close(oq);
  return rate;
}

/* ---- the run ------------------------------------------------------------------- */

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bench_peers REDIS_PORT BEANSTALKD_PORT BEANSTALKD_BINLOG_PORT "
                    "[samples]\n");
    return 2;
  }
  if (argc > 4) nsamples = atoi(argv[4]);
  if (nsamples < 10) die("samples", "at least 10");
  if (bench_smoke()) tasks = 500, reps = 1;
  peer_t peers[] = {{"Redis (LPUSH/BRPOP)", 1, atoi(argv[1])},
                    {"beanstalkd (put/reserve)", 0, atoi(argv[2])},
                    {"beanstalkd -b (binlog)", 0, atoi(argv[3])}};
  enum { NPEERS = 3 };
  const int consumers[] = {1, 2, 4};

  /* [rep] of: OmniQ same-process p50 p99, cross-process p50 p99, then each
   * peer's p50 p99; throughput per consumer count for OmniQ then peers. */
  double lat[2 + NPEERS][2][REPS], thr[1 + NPEERS][3][REPS];
  for (int r = 0; r < reps; r++) {
    fprintf(stderr, "run %d of %d\n", r + 1, reps);
    for (int c = 0; c < 2; c++) omniq_latency(c, &lat[c][0][r], &lat[c][1][r]);
    for (int p = 0; p < NPEERS; p++) peer_latency(&peers[p], &lat[2 + p][0][r], &lat[2 + p][1][r]);
    for (int k = 0; k < 3; k++) {
      thr[0][k][r] = omniq_throughput(consumers[k]);
      for (int p = 0; p < NPEERS; p++) thr[1 + p][k][r] = peer_throughput(&peers[p], consumers[k]);
    }
  }
  if (store_dir[0] != '\0') bench_rmtree(store_dir);

  double m[2 + NPEERS][2], t[1 + NPEERS][3];
  for (int i = 0; i < 2 + NPEERS; i++)
    for (int j = 0; j < 2; j++) m[i][j] = median(lat[i][j]);
  for (int i = 0; i < 1 + NPEERS; i++)
    for (int k = 0; k < 3; k++) t[i][k] = median(thr[i][k]);

  printf("enqueue -> start, one job at a time, %d samples; medians of %d runs; microseconds\n",
         nsamples, reps);
  printf("%-34s %10s %10s %16s %16s\n", "system", "p50", "p99", "same-proc/peer", "cross-proc/peer");
  printf("%-34s %10.1f %10.1f\n", "OmniQ SQLite, pool in this process", m[0][0], m[0][1]);
  printf("%-34s %10.1f %10.1f\n", "OmniQ SQLite, pool in another", m[1][0], m[1][1]);
  for (int p = 0; p < NPEERS; p++)
    printf("%-34s %10.1f %10.1f %15.1fx %15.1fx\n", peers[p].name, m[2 + p][0], m[2 + p][1],
           m[0][0] / m[2 + p][0], m[1][0] / m[2 + p][0]);

  printf("\nthroughput, %d no-op jobs, bulk enqueue then N consumers; medians of %d runs; "
         "jobs per second (omniq/peer)\n",
         tasks, reps);
  printf("%-34s %18s %18s %18s\n", "system", "N=1", "N=2", "N=4");
  printf("%-34s %18.0f %18.0f %18.0f\n", "OmniQ SQLite (omniq_worker_process)", t[0][0], t[0][1],
         t[0][2]);
  for (int p = 0; p < NPEERS; p++) {
    printf("%-34s", peers[p].name);
    for (int k = 0; k < 3; k++) {
      char cell[40];
      snprintf(cell, sizeof cell, "%.0f (%.2fx)", t[1 + p][k], t[0][k] / t[1 + p][k]);
      printf(" %18s", cell);
    }
    printf("\n");
  }
  return 0;
}
