/* SPDX-License-Identifier: MIT */
/* The raw-backend fixture: a backend opened straight from its ops table on
 * a fresh base_dir, a manual clock, and a log sink that counts warnings and
 * keeps the last line. For the tests of one backend (test_store_file*.c,
 * test_store_sqlite.c); the storage contract has its own fixture, built on
 * the public API alone (tests/contract/). */
#ifndef OMNIQ_TEST_BACKEND_H
#define OMNIQ_TEST_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>

#include "omniq/storage.h"
#include "support/helpers.h"

typedef struct th_be {
  char *dir;
  int own_dir; /* th_be_free removes dir */
  th_clock_t clock;
  omniq_settings_t s;
  const omniq_storage_ops_t *ops;
  void *b; /* the open backend, or NULL */
  atomic_int warnings;
  pthread_mutex_t lock;
  char last_line[1024];
  char err[512];
} th_be_t;

/* A fresh directory and the named backend opened on it (fails the test if
 * it cannot open). Free with th_be_free. */
th_be_t *th_be_new(const char *backend, int fsync_on);
/* The same, not yet opened: settings filled for th_be_open. */
th_be_t *th_be_unopened(const char *backend, int fsync_on);
/* A second fixture on f's directory and clock, opened (a second handle).
 * Free with th_be_free. */
th_be_t *th_be_beside(th_be_t *f);
void th_be_free(th_be_t *f);

/* Fills f->s for backend on dir: test settings, f's clock and log sink. */
void th_be_settings(th_be_t *f, const char *backend, const char *dir, int fsync_on);
/* ops->open on f->s; f->err says why on error. */
int th_be_open(th_be_t *f);
void th_be_close(th_be_t *f);
/* Closes and opens again; fails the test if it cannot. */
void th_be_reopen(th_be_t *f);

int64_t th_be_now(th_be_t *f);
/* A new PENDING task in queue (NULL = "default"); yours. */
omniq_task_t *th_be_task(th_be_t *f, const char *queue, int priority, int64_t eta);
/* Enqueues one task; its id goes to id (may be NULL). */
void th_be_add(th_be_t *f, const char *queue, int priority, int64_t eta, char *id);
/* Claims up to max from "default" at the clock's now; returns how many. */
size_t th_be_claim(th_be_t *f, size_t max, omniq_task_t ***out);
/* ops->finish. */
int th_be_finish(th_be_t *f, const omniq_decision_t *d);
/* A result of status for id; yours. */
omniq_result_t *th_be_result(const char *id, int status, int64_t finished);

/* Files under f->dir, for the file backend's tests. Number of entries in
 * dir/sub (-1 if unreadable); whether dir/sub/<id>.json exists; the name of
 * the only file in dir/sub or "" (out: 256 bytes); and a plain write of
 * len bytes to dir/rel, for planting bad files. */
int th_be_count(const th_be_t *f, const char *sub);
int th_be_has(const th_be_t *f, const char *sub, const char *id);
void th_be_only_name(const th_be_t *f, const char *sub, char *out);
void th_be_plant(const th_be_t *f, const char *rel, const void *data, size_t len);

#endif
