/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: the listener.
 *
 * One connection and one thread per backend handle. The connection
 * LISTENs on "<schema>_work" and "<schema>_result"; the backend's writes
 * send pg_notify on them right after they commit (conn.c says why not
 * inside the transaction). The thread sleeps in poll() on the connection's
 * socket and on a pipe that stop writes to; each notification becomes one
 * call of the wake function, which bumps the process's own wake-ups, so an
 * idle pool or a result waiter in this process looks at the store at once
 * instead of at its next poll.
 *
 * Notifications are hints, not messages: one sent while this connection is
 * down is lost. So after every (re)connect the wake function is called with
 * both events, and waiters re-check the store; polling stays the fallback
 * for anything else (and for tasks that become due by time, which nobody
 * notifies).
 *
 * Reconnects back off from OMNIQ__PG_BACKOFF_MIN_MS to _MAX_MS; the wait
 * is a poll on the stop pipe, so stop is never delayed by it.
 */
#include "storage/postgres/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "storage/postgres/conn.h"
#include "omniq.h"
#include "storage/postgres/schema.h"

struct omniq__pg_listener {
  char *conninfo;
  char channels[2][OMNIQ_NAME_MAX + 16];
  omniq__pg_wake_fn fn;
  void *userdata;
  PGconn *pg; /* owned by the thread once it runs */
  int stop_pipe[2];
  pthread_t thread;
};

void omniq__pg_channel(const char *schema, int event, char *out, size_t outlen) {
  snprintf(out, outlen, "%s_%s", schema, event == OMNIQ__PG_EV_RESULT ? "result" : "work");
}

static int listen_on(omniq__pg_listener_t *l, PGconn *pg, char *err, size_t errlen) {
  for (int i = 0; i < 2; i++) {
    char sql[OMNIQ_NAME_MAX + 32];
    snprintf(sql, sizeof sql, "LISTEN %s", l->channels[i]);
    int rc = omniq__pg_command(pg, sql, "listen", err, errlen);
    if (rc != OMNIQ_OK) return rc;
  }
  return OMNIQ_OK;
}

static int connect_and_listen(omniq__pg_listener_t *l, PGconn **out, char *err, size_t errlen) {
  PGconn *pg;
  int rc = omniq__pg_connect(l->conninfo, &pg, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if ((rc = listen_on(l, pg, err, errlen)) != OMNIQ_OK ||
      PQsetnonblocking(pg, 1) != 0) {
    PQfinish(pg);
    return rc != OMNIQ_OK ? rc : OMNIQ_ESTORAGE;
  }
  *out = pg;
  return OMNIQ_OK;
}

/* Waits up to ms for the stop pipe; 1 if stop was asked for. */
static int stop_requested(omniq__pg_listener_t *l, int ms) {
  struct pollfd p = {.fd = l->stop_pipe[0], .events = POLLIN};
  return poll(&p, 1, ms) > 0;
}

static void deliver(omniq__pg_listener_t *l, PGconn *pg) {
  int events = 0;
  PGnotify *n;
  while ((n = PQnotifies(pg)) != NULL) {
    events |= strcmp(n->relname, l->channels[1]) == 0 ? OMNIQ__PG_EV_RESULT : OMNIQ__PG_EV_WORK;
    PQfreemem(n);
  }
  if (events) l->fn(l->userdata, events);
}

static void *listener_main(void *arg) {
  omniq__pg_listener_t *l = arg;
  PGconn *pg = l->pg;
  int backoff = OMNIQ__PG_BACKOFF_MIN_MS;
  for (;;) {
    if (pg == NULL) {
      char err[256];
      if (stop_requested(l, backoff)) break;
      if (connect_and_listen(l, &pg, err, sizeof err) != OMNIQ_OK) {
        backoff = backoff * 2 > OMNIQ__PG_BACKOFF_MAX_MS ? OMNIQ__PG_BACKOFF_MAX_MS : backoff * 2;
        continue;
      }
      backoff = OMNIQ__PG_BACKOFF_MIN_MS;
      l->fn(l->userdata, OMNIQ__PG_EV_WORK | OMNIQ__PG_EV_RESULT);
    }
    struct pollfd p[2] = {{.fd = PQsocket(pg), .events = POLLIN},
                          {.fd = l->stop_pipe[0], .events = POLLIN}};
    int r = poll(p, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (p[1].revents) break;
    if (r < 0 || !PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) {
      PQfinish(pg);
      pg = NULL;
      l->fn(l->userdata, OMNIQ__PG_EV_LOST);
      continue;
    }
    deliver(l, pg);
  }
  if (pg != NULL) PQfinish(pg);
  return NULL;
}

static void listener_free(omniq__pg_listener_t *l) {
  if (l->stop_pipe[0] >= 0) close(l->stop_pipe[0]);
  if (l->stop_pipe[1] >= 0) close(l->stop_pipe[1]);
  omniq__free(l->conninfo);
  omniq__free(l);
}

int omniq__pg_listener_start(const char *conninfo, const char *schema, omniq__pg_wake_fn fn,
                             void *userdata, omniq__pg_listener_t **out, char *err,
                             size_t errlen) {
  *out = NULL;
  omniq__pg_listener_t *l = omniq__calloc(1, sizeof *l);
  if (l == NULL || (l->conninfo = omniq__strdup(conninfo)) == NULL) {
    omniq__free(l);
    snprintf(err, errlen, "postgres: out of memory");
    return OMNIQ_ENOMEM;
  }
  l->stop_pipe[0] = l->stop_pipe[1] = -1;
  omniq__pg_channel(schema, OMNIQ__PG_EV_WORK, l->channels[0], sizeof l->channels[0]);
  omniq__pg_channel(schema, OMNIQ__PG_EV_RESULT, l->channels[1], sizeof l->channels[1]);
  l->fn = fn;
  l->userdata = userdata;
  if (pipe2(l->stop_pipe, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "postgres listener: pipe: %s", strerror(errno));
    listener_free(l);
    return OMNIQ_EIO;
  }
  int rc = connect_and_listen(l, &l->pg, err, errlen);
  if (rc != OMNIQ_OK) {
    listener_free(l);
    return rc;
  }
  /* The thread must not take the program's SIGINT/SIGTERM. */
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  int prc = pthread_create(&l->thread, NULL, listener_main, l);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (prc != 0) {
    PQfinish(l->pg);
    listener_free(l);
    snprintf(err, errlen, "postgres listener: cannot start a thread");
    return OMNIQ_ENOMEM;
  }
  *out = l;
  return OMNIQ_OK;
}

void omniq__pg_listener_stop(omniq__pg_listener_t *l) {
  if (l == NULL) return;
  ssize_t w;
  do w = write(l->stop_pipe[1], "x", 1);
  while (w < 0 && errno == EINTR);
  pthread_join(l->thread, NULL);
  listener_free(l);
}
