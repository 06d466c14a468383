/* SPDX-License-Identifier: MIT */
/* Unique keys of the file backend.
 *
 * A key of a queue lives in keys/<qdir>/<h>.<n>: h is a 64-bit FNV-1a hash
 * of the key in hex, n the first free of KEY_CHAIN slots for keys that
 * share a hash. The file holds {"key": ..., "task_id": ...}: the task that
 * took the key last. Whether that task still holds it is read from the
 * task itself, as SQLite does: it holds the key while PENDING or RUNNING,
 * or until finished_at + unique_for_ms; a task that is gone holds nothing.
 * So finishing, cancelling or deleting a task never has to write its key
 * file, and a file left by an enqueue that died before placing its task
 * names a task that does not exist: free.
 *
 * Atomic across processes: a key's lock (in the meta lock space, so it
 * never nests with a task lock the wrong way round) is held from reading
 * the file, through reading its holder (under the holder's task lock,
 * taken and released alone), to placing the new task. A second enqueue of
 * the key waits for the lock and then finds the first task. */
#include "storage/file/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "storage/file/record.h"

#define KEY_CHAIN 8
#define LOCK_SIZE (2 + OMNIQ__QDIR_MAX + 1 + 16 + 1)
#define NAME_SIZE 32

static uint64_t key_hash(const char *key) {
  uint64_t h = 14695981039346656037ull;
  for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
    h = (h ^ *p) * 1099511628211ull;
  return h;
}

static int lock_name(const char *queue, const char *key, char out[LOCK_SIZE]) {
  char qdir[OMNIQ__QDIR_SIZE];
  if (omniq__fname_qdir(queue, qdir) != OMNIQ_OK) return OMNIQ_EINVAL;
  snprintf(out, LOCK_SIZE, "k:%s/%016llx", qdir, (unsigned long long)key_hash(key));
  return OMNIQ_OK;
}

int omniq__fkeys_lock(omniq__fs_t *fs, omniq_task_t *const *tasks, size_t n, uint16_t **set,
                      size_t *nset, char *err, size_t errlen) {
  char(*names)[LOCK_SIZE] = omniq__calloc(n ? n : 1, sizeof *names);
  const char **ptrs = omniq__calloc(n ? n : 1, sizeof *ptrs);
  size_t k = 0;
  int rc = names != NULL && ptrs != NULL ? OMNIQ_OK : OMNIQ_ENOMEM;
  for (size_t i = 0; rc == OMNIQ_OK && i < n; i++) {
    if (tasks[i]->unique_key == NULL) continue;
    if (lock_name(tasks[i]->queue, tasks[i]->unique_key, names[k]) != OMNIQ_OK) {
      snprintf(err, errlen, "file store: task %zu: its queue cannot be a folder", i);
      rc = OMNIQ_EINVAL;
    }
    ptrs[k] = names[k];
    k++;
  }
  if (rc == OMNIQ_OK) rc = omniq__flock_take_set(&fs->meta, ptrs, k, set, nset, err, errlen);
  else if (rc == OMNIQ_ENOMEM) snprintf(err, errlen, "file store: out of memory");
  omniq__free(names);
  omniq__free(ptrs);
  return rc;
}

void omniq__fkeys_release(omniq__fs_t *fs, uint16_t *set, size_t nset) {
  omniq__flock_release_set(&fs->meta, set, nset);
}

/* ---- one key's file -------------------------------------------------------- */

/* Where a key's file is. No descriptor is kept: a batch of n keyed tasks
 * must not hold n folders open at once (descriptors stay bounded). */
typedef struct found {
  char qdir[OMNIQ__QDIR_SIZE]; /* keys/<qdir>; "" if that folder is absent */
  char name[NAME_SIZE];        /* the key's file, or the first free slot */
  char holder[OMNIQ_ID_SIZE];  /* "" if no file for this key */
} found_t;

static int open_qdir(omniq__fs_t *fs, const char *qdir) {
  return openat(fs->keys_fd, qdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Finds the file of queue/key in folder qfd. */
static int find_in(int qfd, const char *queue, const char *key, found_t *f, char *err,
                   size_t errlen) {
  char e[OMNIQ__ERRMSG_MAX];
  int free_slot = -1;
  uint64_t h = key_hash(key);
  for (int n = 0; n < KEY_CHAIN; n++) {
    char name[NAME_SIZE], *text = NULL;
    snprintf(name, sizeof name, "%016llx.%d", (unsigned long long)h, n);
    int rc = omniq__fio_read(qfd, name, &text, NULL, e, sizeof e);
    if (rc == OMNIQ_ENOTFOUND) {
      if (free_slot < 0) free_slot = n;
      continue;
    }
    if (rc != OMNIQ_OK) return rc;
    json_t *j = json_loads(text, 0, NULL);
    const char *k = json_string_value(json_object_get(j, "key"));
    const char *id = json_string_value(json_object_get(j, "task_id"));
    int mine = k != NULL && strcmp(k, key) == 0;
    if (mine) {
      memcpy(f->name, name, sizeof name);
      if (id != NULL && omniq_id_valid(id)) memcpy(f->holder, id, OMNIQ_ID_SIZE);
    } else if (k == NULL && free_slot < 0) {
      free_slot = n; /* not a key file: reuse the slot */
    }
    json_decref(j);
    omniq__free(text);
    if (mine) return OMNIQ_OK;
  }
  if (free_slot < 0) {
    snprintf(err, errlen, "file store: more than %d keys of queue %s share a hash", KEY_CHAIN,
             queue);
    return OMNIQ_ESTORAGE;
  }
  snprintf(f->name, sizeof f->name, "%016llx.%d", (unsigned long long)h, free_slot);
  return OMNIQ_OK;
}

/* Finds the file of queue/key (making keys/<qdir> when make). */
static int find(omniq__fs_t *fs, const char *queue, const char *key, int make, found_t *f,
                char *err, size_t errlen) {
  memset(f, 0, sizeof *f);
  if (omniq__fname_qdir(queue, f->qdir) != OMNIQ_OK) return OMNIQ_EINVAL;
  if (make && mkdirat(fs->keys_fd, f->qdir, 0777) != 0 && errno != EEXIST)
    return omniq__fio_errno(errno, err, errlen, "file store: keys/%s", f->qdir);
  int qfd = open_qdir(fs, f->qdir);
  if (qfd < 0) {
    int en = errno;
    f->qdir[0] = '\0';
    if (en == ENOENT) return OMNIQ_OK;
    return omniq__fio_errno(en, err, errlen, "file store: keys/ of queue %s", queue);
  }
  int rc = find_in(qfd, queue, key, f, err, errlen);
  close(qfd);
  return rc;
}

/* Whether task `holder` holds queue/key at now: read under its lock. */
static int holds(omniq__fs_t *fs, const char *holder, const char *queue, const char *key,
                 int64_t now, int *held, char *err, size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE];
  omniq__fs_at_t at;
  omniq__pending_t p;
  omniq_task_t *t = NULL;
  *held = 0;
  if (holder[0] == '\0' || omniq__fname_id(holder, idname) != OMNIQ_OK) return OMNIQ_OK;
  int rc = omniq__flock_take(&fs->locks, holder, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fs_locate(fs, holder, idname, &at, &p, &t, err, errlen);
  omniq__flock_release(&fs->locks, holder);
  if (rc == OMNIQ_OK && at != OMNIQ__AT_NONE && t->unique_key != NULL &&
      strcmp(t->unique_key, key) == 0 && strcmp(t->queue, queue) == 0)
    *held = !omniq_status_is_terminal(t->status) ||
            omniq__add_ms(t->finished_at_ms, t->unique_for_ms) > now; /* a row need not be sane */
  omniq_task_free(t);
  return rc;
}

static int write_key(omniq__fs_t *fs, const found_t *f, const char *key, const char *id, char *err,
                     size_t errlen) {
  json_t *j = json_pack("{s:s, s:s}", "key", key, "task_id", id);
  char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (text == NULL) {
    snprintf(err, errlen, "file store: out of memory writing a key");
    return OMNIQ_ENOMEM;
  }
  int qfd = open_qdir(fs, f->qdir);
  int rc = qfd >= 0 ? omniq__fio_write(&fs->io, qfd, f->name, text, strlen(text), err, errlen)
                    : omniq__fio_errno(errno, err, errlen, "file store: keys/%s", f->qdir);
  if (qfd >= 0) close(qfd);
  free(text);
  return rc;
}

/* ---- the operations' part --------------------------------------------------- */

int omniq__fkeys_take(omniq__fs_t *fs, omniq_task_t *const *tasks, size_t n,
                      char (*holders)[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  found_t *fs_of = omniq__calloc(n ? n : 1, sizeof *fs_of);
  int rc = fs_of != NULL ? OMNIQ_OK : OMNIQ_ENOMEM, any = 0;
  for (size_t i = 0; holders != NULL && i < n; i++) holders[i][0] = '\0';
  for (size_t i = 0; rc == OMNIQ_OK && i < n; i++) {
    const omniq_task_t *t = tasks[i];
    int held = 0;
    if (t->unique_key == NULL) continue;
    rc = find(fs, t->queue, t->unique_key, 1, &fs_of[i], err, errlen);
    if (rc == OMNIQ_OK)
      rc = holds(fs, fs_of[i].holder, t->queue, t->unique_key, t->created_at_ms, &held, err,
                 errlen);
    if (rc == OMNIQ_OK && held) {
      any = 1;
      if (holders != NULL) memcpy(holders[i], fs_of[i].holder, OMNIQ_ID_SIZE);
    }
  }
  if (rc == OMNIQ_OK && any) {
    snprintf(err, errlen, "file store: a unique key is held; nothing stored");
    rc = OMNIQ_EEXISTS;
  }
  for (size_t i = 0; rc == OMNIQ_OK && i < n; i++)
    if (tasks[i]->unique_key != NULL)
      rc = write_key(fs, &fs_of[i], tasks[i]->unique_key, tasks[i]->id, err, errlen);
  omniq__free(fs_of);
  if (rc == OMNIQ_ENOMEM && err[0] == '\0') snprintf(err, errlen, "file store: out of memory");
  return rc;
}

int omniq__fkeys_take_for(omniq__fs_t *fs, const omniq_task_t *t, int64_t now,
                          char holder[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  found_t f;
  int held = 0;
  holder[0] = '\0';
  int rc = find(fs, t->queue, t->unique_key, 1, &f, err, errlen);
  if (rc == OMNIQ_OK && strcmp(f.holder, t->id) != 0)
    rc = holds(fs, f.holder, t->queue, t->unique_key, now, &held, err, errlen);
  if (rc == OMNIQ_OK && held) {
    memcpy(holder, f.holder, OMNIQ_ID_SIZE);
    snprintf(err, errlen, "unique key of queue %s is held by task %s", t->queue, holder);
    rc = OMNIQ_EEXISTS;
  }
  if (rc == OMNIQ_OK && strcmp(f.holder, t->id) != 0)
    rc = write_key(fs, &f, t->unique_key, t->id, err, errlen);
  return rc;
}

void omniq__fkeys_forget(omniq__fs_t *fs, const char *id, const char *queue, const char *key) {
  char lock[LOCK_SIZE], e[OMNIQ__ERRMSG_MAX];
  found_t f;
  if (key == NULL || lock_name(queue, key, lock) != OMNIQ_OK) return;
  if (omniq__flock_take(&fs->meta, lock, e, sizeof e) != OMNIQ_OK) return;
  if (find(fs, queue, key, 0, &f, e, sizeof e) == OMNIQ_OK && f.holder[0] != '\0' &&
      strcmp(f.holder, id) == 0) {
    int qfd = open_qdir(fs, f.qdir);
    if (qfd >= 0) {
      unlinkat(qfd, f.name, 0);
      close(qfd);
    }
  }
  omniq__flock_release(&fs->meta, lock);
}
