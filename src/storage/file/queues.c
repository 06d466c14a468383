/* SPDX-License-Identifier: MIT */
/* Queue settings and chores of the file backend.
 *
 * A queue's settings live in queues/<qdir>.json, replaced whole (tmp,
 * fsync, rename) under the queue's lock in the meta lock space; every
 * process reads the same file, so a pause or a rate limit holds for all of
 * them. Lock order: a queue's lock before a task lock, never after.
 *
 * How a claim honours them (backend.c):
 * - Pause. A claim renames the task file into its slot, then reads the
 *   queue's settings, and puts the file back if the queue is paused. The
 *   rename decides the claim, so any claim that decides after
 *   omniq_queue_pause wrote the file sees the pause; one that decided
 *   before it was concurrent with the pause. No lock is taken: claims of an
 *   unlimited queue go on in parallel. Reads are cached per queue and kept
 *   while the file's inode and change time are the same (every write is a
 *   new inode), so a claim pays one fstatat.
 * - Rate limit. A claim from a limited queue holds the queue's lock from
 *   reading the window to writing it, and reads it from the file, not the
 *   cache (an inode number reused within one ctime tick would pass for an
 *   unchanged file, and an exact count cannot afford that): it counts the
 *   start first, claims, and gives the count back if the task was gone. A
 *   crash between the count and the claim loses one start of that window,
 *   never adds one, so the limit holds whatever happens. Claims of one
 *   limited queue are serialised across processes; that is the price of
 *   an exact count.
 *
 * Chores: chores/<name> holds the next time (ms, decimal), replaced under
 * the chore's lock. */
#include "storage/file/queues.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"

#define CACHE_MAX 64
#define LOCK_NAME_MAX (2 + OMNIQ__QDIR_MAX + 1)

typedef struct entry {
  char qdir[OMNIQ__QDIR_SIZE];
  dev_t dev;
  ino_t ino;
  struct timespec ctime;
  omniq__fqset_t set;
} entry_t;

struct omniq__fqstate {
  pthread_mutex_t lock;
  entry_t cache[CACHE_MAX];
  size_t n, next; /* next: the slot to reuse when full */
};

int omniq__fq_open(omniq__fs_t *fs) {
  fs->qstate = omniq__calloc(1, sizeof *fs->qstate);
  if (fs->qstate == NULL) return OMNIQ_ENOMEM;
  pthread_mutex_init(&fs->qstate->lock, NULL);
  return OMNIQ_OK;
}

void omniq__fq_close(omniq__fs_t *fs) {
  if (fs->qstate == NULL) return;
  pthread_mutex_destroy(&fs->qstate->lock);
  omniq__free(fs->qstate);
  fs->qstate = NULL;
}

static void file_name(const char *qdir, char out[OMNIQ__QDIR_SIZE + 6]) {
  snprintf(out, OMNIQ__QDIR_SIZE + 6, "%s.json", qdir);
}

static int64_t int_of(json_t *j, const char *key) {
  json_t *v = json_object_get(j, key);
  return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* Reads the settings file as it is now (no cache). */
static int read_file(omniq__fs_t *fs, const char *qdir, omniq__fqset_t *out, struct stat *st) {
  char name[OMNIQ__QDIR_SIZE + 6], e[OMNIQ__ERRMSG_MAX], *text = NULL;
  memset(out, 0, sizeof *out);
  file_name(qdir, name);
  int rc = omniq__fio_read(fs->queues_fd, name, &text, NULL, e, sizeof e);
  if (rc == OMNIQ_ENOTFOUND) return OMNIQ_OK;
  if (rc != OMNIQ_OK) return rc;
  json_t *j = json_loads(text, 0, NULL);
  omniq__free(text);
  if (!json_is_object(j)) {
    /* A file this backend did not write: settings off, and say so once. */
    json_decref(j);
    omniq__fio_quarantine(&fs->io, fs->queues_fd, "queues", name, "not a queue settings file");
    return OMNIQ_OK;
  }
  out->paused = json_is_true(json_object_get(j, "paused"));
  out->rate_limit = int_of(j, "rate_limit");
  out->rate_period_ms = int_of(j, "rate_period_ms");
  out->window_start = int_of(j, "window_start");
  out->window_count = int_of(j, "window_count");
  json_decref(j);
  if (st != NULL && fstatat(fs->queues_fd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
    memset(st, 0, sizeof *st);
  return OMNIQ_OK;
}

int omniq__fq_read(omniq__fs_t *fs, const char *qdir, omniq__fqset_t *out) {
  char name[OMNIQ__QDIR_SIZE + 6];
  struct stat st;
  struct omniq__fqstate *q = fs->qstate;
  file_name(qdir, name);
  memset(out, 0, sizeof *out);
  if (fstatat(fs->queues_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? OMNIQ_OK : omniq__errno_code(errno);
  pthread_mutex_lock(&q->lock);
  for (size_t i = 0; i < q->n; i++) {
    entry_t *c = &q->cache[i];
    if (strcmp(c->qdir, qdir) == 0 && c->dev == st.st_dev && c->ino == st.st_ino &&
        c->ctime.tv_sec == st.st_ctim.tv_sec && c->ctime.tv_nsec == st.st_ctim.tv_nsec) {
      *out = c->set;
      pthread_mutex_unlock(&q->lock);
      return OMNIQ_OK;
    }
  }
  pthread_mutex_unlock(&q->lock);
  struct stat after;
  int rc = read_file(fs, qdir, out, &after);
  /* Cache only a read known to be of the file stat named: without the
   * lock, a writer may have replaced it between the stat and the read,
   * and the old text must not be kept under the new file's key. */
  if (rc != OMNIQ_OK || after.st_ino == 0 || after.st_dev != st.st_dev ||
      after.st_ino != st.st_ino || after.st_ctim.tv_sec != st.st_ctim.tv_sec ||
      after.st_ctim.tv_nsec != st.st_ctim.tv_nsec)
    return rc;
  pthread_mutex_lock(&q->lock);
  size_t slot = q->n;
  for (size_t i = 0; i < q->n; i++)
    if (strcmp(q->cache[i].qdir, qdir) == 0) slot = i;
  if (slot == q->n && q->n == CACHE_MAX) slot = q->next++ % CACHE_MAX;
  else if (slot == q->n) q->n++;
  entry_t *c = &q->cache[slot];
  snprintf(c->qdir, sizeof c->qdir, "%s", qdir);
  c->dev = st.st_dev;
  c->ino = st.st_ino;
  c->ctime = st.st_ctim;
  c->set = *out;
  pthread_mutex_unlock(&q->lock);
  return OMNIQ_OK;
}

int omniq__fq_read_locked(omniq__fs_t *fs, const char *qdir, omniq__fqset_t *out) {
  return read_file(fs, qdir, out, NULL);
}

static void lock_name(char out[LOCK_NAME_MAX], char kind, const char *name) {
  snprintf(out, LOCK_NAME_MAX, "%c:%s", kind, name);
}

int omniq__fq_lock(omniq__fs_t *fs, const char *qdir, char *err, size_t errlen) {
  char name[LOCK_NAME_MAX];
  lock_name(name, 'q', qdir);
  return omniq__flock_take(&fs->meta, name, err, errlen);
}

void omniq__fq_unlock(omniq__fs_t *fs, const char *qdir) {
  char name[LOCK_NAME_MAX];
  lock_name(name, 'q', qdir);
  omniq__flock_release(&fs->meta, name);
}

int omniq__fq_write(omniq__fs_t *fs, const char *qdir, const omniq__fqset_t *set, char *err,
                    size_t errlen) {
  char name[OMNIQ__QDIR_SIZE + 6], text[256];
  file_name(qdir, name);
  int n = snprintf(text, sizeof text,
                   "{\"paused\":%s,\"rate_limit\":%lld,\"rate_period_ms\":%lld,"
                   "\"window_start\":%lld,\"window_count\":%lld}\n",
                   set->paused ? "true" : "false", (long long)set->rate_limit,
                   (long long)set->rate_period_ms, (long long)set->window_start,
                   (long long)set->window_count);
  return omniq__fio_write(&fs->io, fs->queues_fd, name, text, (size_t)n, err, errlen);
}

int64_t omniq__fq_allowance(const omniq__fqset_t *set, int64_t now, int64_t *window) {
  *window = 0;
  if (set->paused) return 0;
  if (set->rate_limit <= 0 || set->rate_period_ms <= 0) return INT64_MAX;
  *window = now - now % set->rate_period_ms;
  /* Behind the window already counting: nothing (see storage.h). */
  if (set->window_start > *window) return 0;
  int64_t used = set->window_start == *window ? set->window_count : 0;
  return set->rate_limit > used ? set->rate_limit - used : 0;
}

/* ---- the operations --------------------------------------------------------- */

/* Read, change and write a queue's settings under its lock. */
static int update(omniq__fs_t *fs, const char *queue, int paused, int64_t limit, int64_t period,
                  int what, char *err, size_t errlen) {
  char qdir[OMNIQ__QDIR_SIZE];
  omniq__fqset_t set;
  if (omniq__fname_qdir(queue, qdir) != OMNIQ_OK) {
    snprintf(err, errlen, "file store: '%.64s' cannot be a queue folder", queue ? queue : "");
    return OMNIQ_EINVAL;
  }
  int rc = omniq__fq_lock(fs, qdir, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = read_file(fs, qdir, &set, NULL);
  if (rc == OMNIQ_OK) {
    if (what == 'p') {
      set.paused = paused;
    } else {
      if (set.rate_period_ms != period) set.window_count = 0; /* a new kind of window */
      set.rate_limit = limit;
      set.rate_period_ms = limit > 0 ? period : 0;
    }
    rc = omniq__fq_write(fs, qdir, &set, err, errlen);
  } else {
    snprintf(err, errlen, "file store: reading queues/%s.json failed", qdir);
  }
  omniq__fq_unlock(fs, qdir);
  return rc;
}

int omniq__fs_set_paused(void *backend, const char *queue, int paused, char *err, size_t errlen) {
  return update(backend, queue, paused != 0, 0, 0, 'p', err, errlen);
}

int omniq__fs_set_rate(void *backend, const char *queue, int64_t limit, int64_t period_ms,
                       char *err, size_t errlen) {
  if (limit < 0 || (limit > 0 && period_ms < 1)) {
    snprintf(err, errlen, "file store: set_rate: a negative limit or period");
    return OMNIQ_EINVAL;
  }
  return update(backend, queue, 0, limit, period_ms, 'r', err, errlen);
}

int omniq__fs_claim_chore(void *backend, const char *chore, int64_t now_ms, int64_t next_ms,
                          int *won, char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  char lock[LOCK_NAME_MAX], *text = NULL, num[32];
  *won = 0;
  if (chore == NULL || chore[0] == '\0' || strlen(chore) > 64 || strchr(chore, '/') != NULL ||
      chore[0] == '.') {
    snprintf(err, errlen, "file store: claim_chore: not a chore name");
    return OMNIQ_EINVAL;
  }
  lock_name(lock, 'c', chore);
  int rc = omniq__flock_take(&fs->meta, lock, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fio_read(fs->chores_fd, chore, &text, NULL, err, errlen);
  if (rc == OMNIQ_ENOTFOUND || (rc == OMNIQ_OK && strtoll(text, NULL, 10) <= now_ms)) {
    int n = snprintf(num, sizeof num, "%lld\n", (long long)next_ms);
    rc = omniq__fio_write(&fs->io, fs->chores_fd, chore, num, (size_t)n, err, errlen);
    *won = rc == OMNIQ_OK;
  }
  omniq__flock_release(&fs->meta, lock);
  omniq__free(text);
  return rc;
}

typedef struct {
  omniq__fq_fn fn;
  void *ud;
} each_t;

static int each_entry(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  each_t *e = ud;
  char qdir[OMNIQ__QDIR_SIZE];
  omniq__fqset_t set;
  size_t n = strlen(name);
  (void)dirfd;
  if (n <= 5 || n - 5 > OMNIQ__QDIR_MAX || strcmp(name + n - 5, ".json") != 0) return 0;
  memcpy(qdir, name, n - 5);
  qdir[n - 5] = '\0';
  if (!omniq__fname_qdir_valid(qdir, n - 5) || read_file(fs, qdir, &set, NULL) != OMNIQ_OK)
    return 0;
  return e->fn(fs, qdir, &set, e->ud);
}

int omniq__fq_each(omniq__fs_t *fs, omniq__fq_fn fn, void *ud) {
  each_t e = {fn, ud};
  return omniq__fs_each(fs, fs->queues_fd, each_entry, &e);
}
