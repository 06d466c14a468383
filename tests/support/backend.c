/* SPDX-License-Identifier: MIT */
#include "support/backend.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"

static void on_log(void *ud, int level, const char *line) {
  th_be_t *f = ud;
  if (level >= OMNIQ_LOG_WARNING) atomic_fetch_add(&f->warnings, 1);
  pthread_mutex_lock(&f->lock);
  snprintf(f->last_line, sizeof f->last_line, "%s", line);
  pthread_mutex_unlock(&f->lock);
}

void th_be_settings(th_be_t *f, const char *backend, const char *dir, int fsync_on) {
  assert_true(strlen(dir) < sizeof f->s.base_dir);
  th_settings(&f->s, backend, dir, &f->clock);
  f->s.fsync = fsync_on;
  f->s.log_level = OMNIQ_LOG_WARNING;
  f->s.log_fn = on_log;
  f->s.log_userdata = f;
  f->ops = omniq_storage_find(backend);
  assert_non_null(f->ops);
}

int th_be_open(th_be_t *f) {
  f->err[0] = '\0';
  return f->ops->open(&f->s, &f->b, f->err, sizeof f->err);
}

void th_be_close(th_be_t *f) {
  if (f->b != NULL) f->ops->close(f->b);
  f->b = NULL;
}

void th_be_reopen(th_be_t *f) {
  th_be_close(f);
  if (th_be_open(f) != OMNIQ_OK) fail_msg("reopen: %s", f->err);
}

static th_be_t *alloc_be(void) {
  th_be_t *f = calloc(1, sizeof *f);
  assert_non_null(f);
  pthread_mutex_init(&f->lock, NULL);
  return f;
}

th_be_t *th_be_unopened(const char *backend, int fsync_on) {
  th_be_t *f = alloc_be();
  th_clock_init(&f->clock, TH_EPOCH_MS);
  f->dir = th_tmpdir();
  f->own_dir = 1;
  assert_non_null(f->dir);
  th_be_settings(f, backend, f->dir, fsync_on);
  return f;
}

th_be_t *th_be_new(const char *backend, int fsync_on) {
  th_be_t *f = th_be_unopened(backend, fsync_on);
  if (th_be_open(f) != OMNIQ_OK) fail_msg("open: %s", f->err);
  return f;
}

th_be_t *th_be_beside(th_be_t *f) {
  th_be_t *g = alloc_be();
  th_clock_init(&g->clock, th_be_now(f));
  g->dir = f->dir;
  th_be_settings(g, f->s.backend, f->dir, f->s.fsync);
  g->s.clock_userdata = &f->clock; /* one clock for both */
  if (th_be_open(g) != OMNIQ_OK) fail_msg("open beside: %s", g->err);
  return g;
}

void th_be_free(th_be_t *f) {
  if (f == NULL) return;
  th_be_close(f);
  if (f->own_dir) th_rmtree(f->dir);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

int64_t th_be_now(th_be_t *f) { return th_clock_now(&f->clock); }

omniq_task_t *th_be_task(th_be_t *f, const char *queue, int priority, int64_t eta) {
  omniq_task_t *t = omniq_task_new();
  assert_non_null(t);
  omniq__id_new(th_be_now(f), t->id);
  t->func = omniq__strdup("work");
  t->queue = omniq__strdup(queue != NULL ? queue : OMNIQ_DEFAULT_QUEUE);
  t->args = omniq__strdup("[1,2]");
  t->kwargs = omniq__strdup("{}");
  t->status = OMNIQ_PENDING;
  t->priority = priority;
  t->max_retries = 3;
  t->eta_ms = eta;
  t->created_at_ms = th_be_now(f);
  return t;
}

void th_be_add(th_be_t *f, const char *queue, int priority, int64_t eta, char *id) {
  omniq_task_t *t = th_be_task(f, queue, priority, eta);
  int rc = f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err);
  if (rc != OMNIQ_OK) fail_msg("enqueue: %s", f->err);
  if (id != NULL) memcpy(id, t->id, OMNIQ_ID_SIZE);
  omniq_task_free(t);
}

size_t th_be_claim(th_be_t *f, size_t max, omniq_task_t ***out) {
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  omniq_claim_req_t req = {th_be_now(f), th_be_now(f) + 30000, q, 1, max};
  size_t n = 0;
  int rc = f->ops->claim(f->b, &req, out, &n, f->err, sizeof f->err);
  if (rc != OMNIQ_OK) fail_msg("claim: %s", f->err);
  return n;
}

int th_be_finish(th_be_t *f, const omniq_decision_t *d) {
  return f->ops->finish(f->b, d, f->err, sizeof f->err);
}

omniq_result_t *th_be_result(const char *id, int status, int64_t finished) {
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

int th_be_count(const th_be_t *f, const char *sub) {
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

int th_be_has(const th_be_t *f, const char *sub, const char *id) {
  char path[2048];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s/%s.json", f->dir, sub, id);
  return stat(path, &st) == 0;
}

void th_be_only_name(const th_be_t *f, const char *sub, char *out) {
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

void th_be_plant(const th_be_t *f, const char *rel, const void *data, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", f->dir, rel);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  fclose(fp);
}
