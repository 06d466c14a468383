/* Fixture for the file backend's own tests: a fresh base_dir, the backend
 * opened straight from its ops table on a manual clock, and a log sink that
 * counts warnings. Header-only so each test program stays one file. */
#ifndef OMNIQ_TEST_FILE_FIXTURE_H
#define OMNIQ_TEST_FILE_FIXTURE_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "helpers.h"
#include "base/alloc.h"
#include "storage/file/backend.h"
#include "base/ids.h"
#include "base/records.h"
#include "core/store.h"

typedef struct fx {
  char *dir;
  th_clock_t clock;
  omniq_settings_t s;
  void *b;
  const omniq_storage_ops_t *ops;
  atomic_int warnings;
  pthread_mutex_t lock;
  char last_line[1024];
  char err[512];
} fx_t;

static inline void fx_log(void *ud, int level, const char *line) {
  fx_t *f = ud;
  if (level >= OMNIQ_LOG_WARNING) atomic_fetch_add(&f->warnings, 1);
  pthread_mutex_lock(&f->lock);
  snprintf(f->last_line, sizeof f->last_line, "%s", line);
  pthread_mutex_unlock(&f->lock);
}

/* Defaults, then what these tests need: a manual clock and a log sink. */
static inline void fx_settings(fx_t *f, const char *dir, int fsync_on) {
  omniq_settings_init(&f->s);
  snprintf(f->s.backend, sizeof f->s.backend, "file");
  assert_true(strlen(dir) < sizeof f->s.base_dir);
  memcpy(f->s.base_dir, dir, strlen(dir) + 1);
  f->s.fsync = fsync_on;
  f->s.log_level = OMNIQ_LOG_WARNING;
  f->s.log_fn = fx_log;
  f->s.log_userdata = f;
  f->s.clock_fn = th_clock_now;
  f->s.clock_userdata = &f->clock;
}

static inline int fx_open(fx_t *f) {
  f->err[0] = '\0';
  return f->ops->open(&f->s, &f->b, f->err, sizeof f->err);
}

static inline fx_t *fx_new(int fsync_on) {
  fx_t *f = calloc(1, sizeof *f);
  assert_non_null(f);
  pthread_mutex_init(&f->lock, NULL);
  th_clock_init(&f->clock, TH_EPOCH_MS);
  f->dir = th_tmpdir();
  assert_non_null(f->dir);
  f->ops = &omniq__file_ops;
  fx_settings(f, f->dir, fsync_on);
  if (fx_open(f) != OMNIQ_OK) fail_msg("open: %s", f->err);
  return f;
}

static inline void fx_close(fx_t *f) {
  if (f->b != NULL) f->ops->close(f->b);
  f->b = NULL;
}

static inline void fx_reopen(fx_t *f) {
  fx_close(f);
  if (fx_open(f) != OMNIQ_OK) fail_msg("reopen: %s", f->err);
}

static inline void fx_free(fx_t *f) {
  fx_close(f);
  th_rmtree(f->dir);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

static inline int64_t fx_now(fx_t *f) { return th_clock_now(&f->clock); }

/* A new PENDING task in queue (NULL = "default"). */
static inline omniq_task_t *fx_task(fx_t *f, const char *queue, int priority, int64_t eta) {
  omniq_task_t *t = omniq_task_new();
  assert_non_null(t);
  omniq__id_new(fx_now(f), t->id);
  t->func = omniq__strdup("work");
  t->queue = omniq__strdup(queue != NULL ? queue : OMNIQ_DEFAULT_QUEUE);
  t->args = omniq__strdup("[1,2]");
  t->kwargs = omniq__strdup("{}");
  t->status = OMNIQ_PENDING;
  t->priority = priority;
  t->max_retries = 3;
  t->eta_ms = eta;
  t->created_at_ms = fx_now(f);
  return t;
}

/* Enqueues one task; its id goes to id (may be NULL). */
static inline void fx_add(fx_t *f, const char *queue, int priority, int64_t eta, char *id) {
  omniq_task_t *t = fx_task(f, queue, priority, eta);
  int rc = f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err);
  if (rc != OMNIQ_OK) fail_msg("enqueue: %s", f->err);
  if (id != NULL) memcpy(id, t->id, OMNIQ_ID_SIZE);
  omniq_task_free(t);
}

/* Claims up to max from "default"; returns how many. */
static inline size_t fx_claim(fx_t *f, size_t max, omniq_task_t ***out) {
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  omniq_claim_req_t req = {fx_now(f), fx_now(f) + 30000, q, 1, max};
  size_t n = 0;
  int rc = f->ops->claim(f->b, &req, out, &n, f->err, sizeof f->err);
  if (rc != OMNIQ_OK) fail_msg("claim: %s", f->err);
  return n;
}

static inline omniq_result_t *fx_result(const char *id, int status, int64_t finished) {
  omniq_result_t *r = omniq_result_new();
  assert_non_null(r);
  memcpy(r->task_id, id, OMNIQ_ID_SIZE);
  r->status = status;
  r->value = status == OMNIQ_SUCCESS ? omniq__strdup("42") : (char *)NULL;
  r->attempts = 1;
  r->finished_at_ms = finished;
  r->last_attempt_at_ms = finished;
  return r;
}

/* ops->fail, called around cmocka's fail() macro. */
static inline int fx_fail(fx_t *f, const omniq_outcome_t *o) {
  return (f->ops->fail)(f->b, o, f->err, sizeof f->err);
}

/* Number of entries (not . and ..) in dir/sub; -1 if it cannot be read. */
static inline int fx_count(const fx_t *f, const char *sub) {
  char path[2048];
  int n = 0;
  snprintf(path, sizeof path, "%s/%s", f->dir, sub);
  DIR *d = opendir(path);
  struct dirent *de;
  if (d == NULL) return -1;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) n++;
  closedir(d);
  return n;
}

/* 1 if dir/sub/<id>.json exists. */
static inline int fx_has(const fx_t *f, const char *sub, const char *id) {
  char path[2048];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s/%s.json", f->dir, sub, id);
  return stat(path, &st) == 0;
}

/* The name of the only file in dir/sub, or "" (out: 256 bytes). */
static inline void fx_only_name(const fx_t *f, const char *sub, char *out) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s", f->dir, sub);
  DIR *d = opendir(path);
  struct dirent *de;
  out[0] = '\0';
  if (d == NULL) return;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      snprintf(out, 256, "%s", de->d_name);
  closedir(d);
}

/* Writes len bytes to dir/rel (a plain write: for planting bad files). */
static inline void fx_plant(const fx_t *f, const char *rel, const void *data, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", f->dir, rel);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  fclose(fp);
}

#endif
