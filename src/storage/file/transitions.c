/* Transitions of one task in the file backend, and the task locks that make
 * them safe across threads and processes.
 *
 * Every change to an existing task runs under its task lock and goes
 * through one slot, queue/running/<id>.json:
 *
 *   1. (cancel of a PENDING task only) rename pending/<q>/<name> to the slot.
 *   2. Write the slot with the new task state and, when the transition
 *      stores a result, that result embedded as "commit_result". This write
 *      is the commit point: before it the old state holds, after it the new.
 *   3. Write results/<id>.json from it.
 *   4. Rename the slot to where the new state lives: pending/<q>/<name>
 *      (first rewriting it without the embedded result) or a terminal
 *      folder. A RUNNING state stays in the slot.
 *
 * So a file in running/ whose status is not RUNNING is a transition that
 * stopped between steps 2 and 4, or a claim that stopped between its rename
 * and its rewrite (status still PENDING): whoever next holds the task lock
 * and finds it finishes steps 3-4 (omniq__fs_settle). Holding the lock
 * proves its writer is gone, since writers hold it from step 1 to step 4,
 * and an OFD lock dies with its process. Steps 3 and 4 are idempotent and
 * need no file but the slot, so no step fails because an intermediate file
 * is missing, in whatever order crashes and recoveries happen.
 *
 * Locks: a task lock is taken before the index lock, never after; no thread
 * holds two task locks except omniq__fs_lock_set, which holds the gate
 * exclusively (so no other thread of the process holds any) and takes the
 * OFD bytes in stripe order (so two processes' batches cannot deadlock).
 * Holding hundreds of stripe mutexes instead would work too, but lock
 * checkers (and readers) cope badly with that. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "storage/file/names.h"
#include "storage/file/backend.h"

/* ---- task locks ----------------------------------------------------------- */

static unsigned stripe_of(const char *id) {
  uint32_t h = 2166136261u;
  for (int i = 0; i < OMNIQ_ID_LEN; i++) h = (h ^ (unsigned char)id[i]) * 16777619u;
  return h % OMNIQ__FS_STRIPES;
}

static int ofd_lock(int fd, unsigned stripe, short type, int wait) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = (off_t)stripe;
  fl.l_len = 1;
  while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) != 0)
    if (errno != EINTR) return -1;
  return 0;
}

static int lock_stripe(omniq__fs_t *fs, unsigned s, char *err, size_t errlen) {
  pthread_rwlock_rdlock(&fs->gate);
  pthread_mutex_lock(&fs->stripes[s]);
  if (ofd_lock(fs->lock_fd, s, F_WRLCK, 1) == 0) return OMNIQ_OK;
  int e = errno;
  pthread_mutex_unlock(&fs->stripes[s]);
  pthread_rwlock_unlock(&fs->gate);
  return omniq__fio_errno(e, err, errlen, "file store: taking a task lock in %s/lock",
                          fs->settings.base_dir);
}

static void unlock_stripe(omniq__fs_t *fs, unsigned s) {
  ofd_lock(fs->lock_fd, s, F_UNLCK, 0);
  pthread_mutex_unlock(&fs->stripes[s]);
  pthread_rwlock_unlock(&fs->gate);
}

int omniq__fs_lock(omniq__fs_t *fs, const char *id, char *err, size_t errlen) {
  return lock_stripe(fs, stripe_of(id), err, errlen);
}

int omniq__fs_trylock(omniq__fs_t *fs, const char *id) {
  unsigned s = stripe_of(id);
  if (pthread_rwlock_tryrdlock(&fs->gate) != 0) return 0;
  if (pthread_mutex_trylock(&fs->stripes[s]) == 0) {
    if (ofd_lock(fs->lock_fd, s, F_WRLCK, 0) == 0) return 1;
    pthread_mutex_unlock(&fs->stripes[s]);
  }
  pthread_rwlock_unlock(&fs->gate);
  return 0;
}

void omniq__fs_unlock(omniq__fs_t *fs, const char *id) { unlock_stripe(fs, stripe_of(id)); }

static int cmp_u16(const void *a, const void *b) {
  return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static void unlock_bytes(omniq__fs_t *fs, const uint16_t *set, size_t n) {
  for (size_t i = n; i > 0; i--) ofd_lock(fs->lock_fd, set[i - 1], F_UNLCK, 0);
}

int omniq__fs_lock_set(omniq__fs_t *fs, const char *const *ids, size_t n, uint16_t **set,
                       size_t *nset, char *err, size_t errlen) {
  uint16_t *s = omniq__malloc((n ? n : 1) * sizeof *s);
  size_t k = 0;
  *set = NULL;
  *nset = 0;
  if (s == NULL) {
    snprintf(err, errlen, "file store: out of memory");
    return OMNIQ_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) s[i] = (uint16_t)stripe_of(ids[i]);
  qsort(s, n, sizeof *s, cmp_u16);
  for (size_t i = 0; i < n; i++)
    if (k == 0 || s[k - 1] != s[i]) s[k++] = s[i];
  pthread_rwlock_wrlock(&fs->gate);
  for (size_t i = 0; i < k; i++) {
    if (ofd_lock(fs->lock_fd, s[i], F_WRLCK, 1) != 0) {
      int e = errno;
      unlock_bytes(fs, s, i);
      pthread_rwlock_unlock(&fs->gate);
      omniq__free(s);
      return omniq__fio_errno(e, err, errlen, "file store: taking task locks in %s/lock",
                              fs->settings.base_dir);
    }
  }
  *set = s;
  *nset = k;
  return OMNIQ_OK;
}

void omniq__fs_unlock_set(omniq__fs_t *fs, uint16_t *set, size_t nset) {
  unlock_bytes(fs, set, nset);
  pthread_rwlock_unlock(&fs->gate);
  omniq__free(set);
}

/* ---- task files ----------------------------------------------------------- */

/* 1 if s is NULL or well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), which is what JSON text can carry. */
static int utf8_ok(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (p != NULL && *p) {
    unsigned c = *p++, lo = 0x80, hi = 0xBF;
    int n;
    if (c < 0x80) continue;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return 0;
    }
    for (int i = 0; i < n; i++, p++) {
      if (*p < (i == 0 ? lo : 0x80) || *p > (i == 0 ? hi : 0xBF)) return 0;
    }
  }
  return 1;
}

static int error_utf8_ok(const omniq_task_error_t *e) {
  return e == NULL || (utf8_ok(e->error_type) && utf8_ok(e->message) && utf8_ok(e->traceback));
}

int omniq__fs_encode_failure(const omniq_task_t *t, const omniq_result_t *r, char *err,
                             size_t errlen) {
  if (utf8_ok(t->func) && utf8_ok(t->queue) && utf8_ok(t->args) && utf8_ok(t->kwargs) &&
      error_utf8_ok(t->last_error) &&
      (r == NULL || (utf8_ok(r->value) && error_utf8_ok(r->error)))) {
    snprintf(err, errlen, "file store: out of memory writing task %s", t->id);
    return OMNIQ_ENOMEM;
  }
  snprintf(err, errlen,
           "file store: task %s holds bytes that are not UTF-8; the file backend stores "
           "JSON text only",
           t->id);
  return OMNIQ_ESERIALIZE;
}

char *omniq__fs_encode(const omniq_task_t *t, const omniq_result_t *r, size_t *len) {
  static const char key[] = ",\"commit_result\":";
  char *tj = omniq_task_to_json(t), *rj = r != NULL ? omniq_result_to_json(r) : NULL, *out = NULL;
  if (tj != NULL && (r == NULL || rj != NULL)) {
    size_t tl = strlen(tj), rl = rj != NULL ? strlen(rj) : 0;
    out = omniq__malloc(tl + rl + sizeof key + 2);
    if (out != NULL && rj != NULL) {
      /* tj is one compact object: open it up before its closing brace. */
      *len = (size_t)sprintf(out, "%.*s%s%s}\n", (int)(tl - 1), tj, key, rj);
    } else if (out != NULL) {
      *len = (size_t)sprintf(out, "%s\n", tj);
    }
  }
  omniq__free(tj);
  omniq__free(rj);
  return out;
}

static int embedded_result(const char *text, const char *id, omniq_result_t **out) {
  json_t *j = json_loads(text, 0, NULL), *o;
  int rc = OMNIQ_OK;
  *out = NULL;
  /* text already parsed as a task: failing now can only be memory. */
  if (j == NULL) return OMNIQ_ENOMEM;
  o = json_object_get(j, "commit_result");
  if (o != NULL && !json_is_null(o)) {
    char *rj = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = rj != NULL ? omniq_result_from_json(rj, out) : OMNIQ_ENOMEM;
    free(rj);
    if (rc == OMNIQ_OK && strcmp((*out)->task_id, id) != 0) {
      omniq_result_free(*out);
      *out = NULL;
      rc = OMNIQ_ESERIALIZE;
    }
  }
  json_decref(j);
  return rc;
}

int omniq__fs_read_task(omniq__fs_t *fs, int dirfd, const char *name, const char *id,
                        omniq_task_t **t, omniq_result_t **result, char *err, size_t errlen) {
  char *text = NULL;
  (void)fs;
  *t = NULL;
  if (result != NULL) *result = NULL;
  int rc = omniq__fio_read(dirfd, name, &text, NULL, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq_task_from_json(text, t);
  if (rc == OMNIQ_OK && strcmp((*t)->id, id) != 0) rc = OMNIQ_ESERIALIZE;
  if (rc == OMNIQ_OK && result != NULL) rc = embedded_result(text, id, result);
  omniq__free(text);
  if (rc == OMNIQ_OK) return OMNIQ_OK;
  omniq_task_free(*t);
  *t = NULL;
  if (rc == OMNIQ_ENOMEM) {
    snprintf(err, errlen, "file store: out of memory reading %s", name);
    return rc;
  }
  snprintf(err, errlen, "not a task record for %s", id);
  return OMNIQ_ECORRUPT;
}

int omniq__fs_exists_outside_pending(omniq__fs_t *fs, const char *id) {
  char idname[OMNIQ__IDNAME_SIZE];
  struct stat st;
  if (omniq__fname_id(id, idname) != OMNIQ_OK) return 0;
  if (fstatat(fs->running_fd, idname, &st, AT_SYMLINK_NOFOLLOW) == 0) return 1;
  for (int k = 0; k < OMNIQ__FS_NDONE; k++)
    if (fstatat(fs->done_fd[k], idname, &st, AT_SYMLINK_NOFOLLOW) == 0) return 1;
  return 0;
}

/* Step 4: moves the slot to where t's state lives. had_result: the slot
 * still embeds a result, which a pending file must not carry (a later
 * recovery would publish it again). */
static int move_out(omniq__fs_t *fs, const omniq_task_t *t, int had_result, char *err,
                    size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE], qdir[OMNIQ__QDIR_SIZE];
  omniq__fname_id(t->id, idname);
  if (t->status == OMNIQ_PENDING) {
    omniq__pending_t p;
    int qfd, rc = OMNIQ_OK;
    if (had_result) {
      size_t len;
      char *text = omniq__fs_encode(t, NULL, &len);
      if (text == NULL) return omniq__fs_encode_failure(t, NULL, err, errlen);
      rc = omniq__fio_write(&fs->io, fs->running_fd, idname, text, len, err, errlen);
      omniq__free(text);
    }
    if (rc == OMNIQ_OK) rc = omniq__fidx_queue(fs->idx, t->queue, 1, &qfd, qdir, err, errlen);
    if (rc != OMNIQ_OK) return rc;
    omniq__fidx_describe(fs->idx, qdir, t->priority, t->eta_ms, t->id, &p);
    if (renameat(fs->running_fd, idname, p.dirfd, p.name) != 0)
      return omniq__fio_errno(errno, err, errlen, "file store: moving %s to queue/pending/%s",
                              idname, qdir);
    if ((rc = omniq__fio_sync_dir(&fs->io, p.dirfd, err, errlen)) != OMNIQ_OK ||
        (rc = omniq__fio_sync_dir(&fs->io, fs->running_fd, err, errlen)) != OMNIQ_OK)
      return rc;
    omniq__fidx_announce(fs->idx, &p, 1);
    return OMNIQ_OK;
  }
  int k = t->status - OMNIQ_SUCCESS, rc;
  if (k < 0 || k >= OMNIQ__FS_NDONE) return OMNIQ_OK; /* RUNNING stays in the slot */
  if (renameat(fs->running_fd, idname, fs->done_fd[k], idname) != 0)
    return omniq__fio_errno(errno, err, errlen, "file store: moving %s to queue/%s", idname,
                            omniq__fname_done[k]);
  if ((rc = omniq__fio_sync_dir(&fs->io, fs->done_fd[k], err, errlen)) != OMNIQ_OK) return rc;
  return omniq__fio_sync_dir(&fs->io, fs->running_fd, err, errlen);
}

static int publish_result(omniq__fs_t *fs, const omniq_result_t *r, char *err, size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE];
  char *rj = omniq_result_to_json(r), *line = NULL;
  size_t len = rj != NULL ? strlen(rj) : 0;
  if (rj == NULL || (line = omniq__malloc(len + 2)) == NULL) {
    omniq__free(rj);
    snprintf(err, errlen, "file store: out of memory writing results/%s.json", r->task_id);
    return OMNIQ_ENOMEM;
  }
  memcpy(line, rj, len);
  line[len++] = '\n'; /* so `cat` shows one whole line */
  omniq__fname_id(r->task_id, idname);
  int rc = omniq__fio_write(&fs->io, fs->results_fd, idname, line, len, err, errlen);
  omniq__free(rj);
  omniq__free(line);
  return rc;
}

int omniq__fs_settle(omniq__fs_t *fs, const char *id, char *err, size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE];
  omniq_task_t *t;
  omniq_result_t *r;
  omniq__fname_id(id, idname);
  int rc = omniq__fs_read_task(fs, fs->running_fd, idname, id, &t, &r, err, errlen);
  if (rc == OMNIQ_ENOTFOUND) return OMNIQ_OK;
  if (rc == OMNIQ_ECORRUPT) {
    omniq__fio_quarantine(&fs->io, fs->running_fd, "queue/running", idname, err);
    return OMNIQ_OK;
  }
  if (rc != OMNIQ_OK || t->status == OMNIQ_RUNNING) {
    omniq_task_free(t);
    omniq_result_free(r);
    return rc;
  }
  if (r != NULL) rc = publish_result(fs, r, err, errlen);
  if (rc == OMNIQ_OK) rc = move_out(fs, t, r != NULL, err, errlen);
  if (rc == OMNIQ_OK)
    omniq__log(&fs->log, OMNIQ_LOG_INFO, "storage.recovered", id,
               "finished an interrupted step: task is %s", omniq_status_name(t->status));
  omniq_task_free(t);
  omniq_result_free(r);
  return rc;
}

static void quarantine_done(omniq__fs_t *fs, int k, const char *name, const char *reason) {
  char from[32];
  snprintf(from, sizeof from, "queue/%s", omniq__fname_done[k]);
  omniq__fio_quarantine(&fs->io, fs->done_fd[k], from, name, reason);
}

int omniq__fs_locate(omniq__fs_t *fs, const char *id, omniq__fs_at_t *at, omniq__pending_t *p,
                     omniq_task_t **t, char *err, size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE];
  omniq_task_t *task = NULL;
  int rc;
  *at = OMNIQ__AT_NONE;
  if (t != NULL) *t = NULL;
  omniq__fname_id(id, idname);
  for (int attempt = 0; attempt < 2; attempt++) {
    rc = omniq__fs_read_task(fs, fs->running_fd, idname, id, &task, NULL, err, errlen);
    if (rc == OMNIQ_OK && task->status != OMNIQ_RUNNING && attempt == 0) {
      omniq_task_free(task);
      if ((rc = omniq__fs_settle(fs, id, err, errlen)) != OMNIQ_OK) return rc;
      continue;
    }
    if (rc == OMNIQ_OK) *at = OMNIQ__AT_RUNNING;
    if (rc == OMNIQ_ECORRUPT)
      omniq__fio_quarantine(&fs->io, fs->running_fd, "queue/running", idname, err);
    else if (rc != OMNIQ_ENOTFOUND && rc != OMNIQ_OK)
      return rc;
    for (int k = 0; k < OMNIQ__FS_NDONE && *at == OMNIQ__AT_NONE; k++) {
      rc = omniq__fs_read_task(fs, fs->done_fd[k], idname, id, &task, NULL, err, errlen);
      if (rc == OMNIQ_OK) *at = OMNIQ__AT_DONE;
      if (rc == OMNIQ_ECORRUPT) quarantine_done(fs, k, idname, err);
      else if (rc != OMNIQ_ENOTFOUND && rc != OMNIQ_OK)
        return rc;
    }
    if (*at == OMNIQ__AT_NONE && omniq__fidx_find(fs->idx, id, 1, p)) {
      rc = omniq__fs_read_task(fs, p->dirfd, p->name, id, &task, NULL, err, errlen);
      if (rc == OMNIQ_OK) {
        *at = OMNIQ__AT_PENDING;
      } else if (rc == OMNIQ_ECORRUPT || rc == OMNIQ_ENOTFOUND) {
        if (rc == OMNIQ_ECORRUPT)
          omniq__fio_quarantine(&fs->io, p->dirfd, "queue/pending", p->name, err);
        omniq__fidx_forget(fs->idx, id);
        if (attempt == 0) continue; /* the index was stale: look once more */
      } else {
        return rc;
      }
    }
    break;
  }
  err[0] = '\0';
  if (t != NULL)
    *t = task;
  else
    omniq_task_free(task);
  return OMNIQ_OK;
}

/* Steps 2-4 for t's new state (lock held, t's file in the slot). */
static int commit(omniq__fs_t *fs, const omniq_task_t *t, const omniq_result_t *r, char *err,
                  size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE];
  size_t len;
  char *text = omniq__fs_encode(t, r, &len);
  if (text == NULL) return omniq__fs_encode_failure(t, r, err, errlen);
  omniq__fname_id(t->id, idname);
  int rc = omniq__fio_write(&fs->io, fs->running_fd, idname, text, len, err, errlen);
  omniq__free(text);
  if (rc != OMNIQ_OK) return rc;
  /* Committed. A failure from here on leaves the slot for recovery to
   * finish; the caller's transition did happen, so it is told so. */
  if (r != NULL) rc = publish_result(fs, r, err, errlen);
  if (rc == OMNIQ_OK) rc = move_out(fs, t, r != NULL, err, errlen);
  if (rc != OMNIQ_OK)
    omniq__log(&fs->log, OMNIQ_LOG_ERROR, "storage.incomplete", t->id,
               "transition committed, finishing it failed (retried on recovery): %s", err);
  err[0] = '\0';
  return OMNIQ_OK;
}

/* Reads the RUNNING task id (lock held): ENOTFOUND / ESTATE otherwise. */
static int load_running(omniq__fs_t *fs, const char *id, omniq_task_t **t, char *err,
                        size_t errlen) {
  omniq__fs_at_t at;
  omniq__pending_t p;
  int rc = omniq__fs_locate(fs, id, &at, &p, t, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (at == OMNIQ__AT_RUNNING) return OMNIQ_OK;
  int status = *t != NULL ? (*t)->status : -1;
  omniq_task_free(*t);
  *t = NULL;
  if (at == OMNIQ__AT_NONE) {
    snprintf(err, errlen, "no task %s", id);
    return OMNIQ_ENOTFOUND;
  }
  snprintf(err, errlen, "task %s is %s, not RUNNING", id, omniq_status_name(status));
  return OMNIQ_ESTATE;
}

static int apply_outcome(omniq__fs_t *fs, const omniq_outcome_t *o, char *err, size_t errlen) {
  omniq_task_t *t = NULL;
  if (o == NULL || !omniq_id_valid(o->id)) {
    snprintf(err, errlen, "file store: not a task id");
    return OMNIQ_EINVAL;
  }
  if (o->next_status != OMNIQ_PENDING && o->next_status != OMNIQ_SUCCESS &&
      o->next_status != OMNIQ_FAILED) {
    snprintf(err, errlen, "file store: a run cannot end in status %s",
             omniq_status_name(o->next_status));
    return OMNIQ_EINVAL;
  }
  int rc = omniq__fs_lock(fs, o->id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = load_running(fs, o->id, &t, err, errlen);
  if (rc == OMNIQ_OK && t->token != o->token) {
    snprintf(err, errlen, "task %s: claim token %lld is no longer current (now %lld)", o->id,
             (long long)o->token, (long long)t->token);
    rc = OMNIQ_ESTATE;
  }
  if (rc == OMNIQ_OK && o->error != NULL) {
    omniq_task_error_t *e = omniq_task_error_dup(o->error);
    if (e == NULL) rc = OMNIQ_ENOMEM;
    omniq_task_error_free(t->last_error);
    t->last_error = e;
  }
  if (rc == OMNIQ_OK) {
    t->status = o->next_status;
    if (o->next_status == OMNIQ_PENDING) {
      t->eta_ms = o->eta_ms;
      if (o->reset_attempts) t->attempts = 0;
    }
    rc = commit(fs, t, o->result, err, errlen);
  }
  omniq__fs_unlock(fs, o->id);
  omniq_task_free(t);
  return rc;
}

int omniq__fs_complete(void *backend, const omniq_outcome_t *o, char *err, size_t errlen) {
  return apply_outcome(backend, o, err, errlen);
}

int omniq__fs_fail(void *backend, const omniq_outcome_t *o, char *err, size_t errlen) {
  return apply_outcome(backend, o, err, errlen);
}

int omniq__fs_extend_lease(void *backend, const char *id, int64_t token, int64_t lease_until_ms,
                           char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq_task_t *t = NULL;
  char idname[OMNIQ__IDNAME_SIZE];
  if (omniq__fname_id(id, idname) != OMNIQ_OK) {
    snprintf(err, errlen, "file store: not a task id");
    return OMNIQ_EINVAL;
  }
  int rc = omniq__fs_lock(fs, id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = load_running(fs, id, &t, err, errlen);
  if (rc == OMNIQ_OK && t->token != token) {
    snprintf(err, errlen, "task %s: claim token %lld is no longer current", id, (long long)token);
    rc = OMNIQ_ESTATE;
  }
  if (rc == OMNIQ_OK) {
    size_t len;
    t->lease_until_ms = lease_until_ms;
    char *text = omniq__fs_encode(t, NULL, &len);
    rc = text != NULL ? omniq__fio_write(&fs->io, fs->running_fd, idname, text, len, err, errlen)
                      : OMNIQ_ENOMEM;
    omniq__free(text);
  }
  omniq__fs_unlock(fs, id);
  omniq_task_free(t);
  return rc;
}

int omniq__fs_cancel(void *backend, const char *id, const omniq_result_t *result, char *err,
                     size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq_task_t *t = NULL;
  omniq__fs_at_t at;
  omniq__pending_t p;
  char idname[OMNIQ__IDNAME_SIZE];
  if (omniq__fname_id(id, idname) != OMNIQ_OK ||
      (result != NULL && strcmp(result->task_id, id) != 0)) {
    snprintf(err, errlen, "file store: not a task id, or a result for another task");
    return OMNIQ_EINVAL;
  }
  int rc = omniq__fs_lock(fs, id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fs_locate(fs, id, &at, &p, &t, err, errlen);
  if (rc == OMNIQ_OK && at == OMNIQ__AT_NONE) {
    snprintf(err, errlen, "no task %s", id);
    rc = OMNIQ_ENOTFOUND;
  } else if (rc == OMNIQ_OK && at == OMNIQ__AT_DONE) {
    snprintf(err, errlen, "task %s is already %s", id, omniq_status_name(t->status));
    rc = OMNIQ_ESTATE;
  } else if (rc == OMNIQ_OK && at == OMNIQ__AT_PENDING) {
    /* Step 1: into the slot, so the commit below is one rename away from
     * either state. A crash right after this rename leaves a PENDING file
     * in the slot, which recovery puts back. */
    if (renameat(p.dirfd, p.name, fs->running_fd, idname) != 0)
      rc = omniq__fio_errno(errno, err, errlen, "file store: moving %s to queue/running", p.name);
  }
  if (rc == OMNIQ_OK) {
    t->status = OMNIQ_CANCELLED;
    rc = commit(fs, t, result, err, errlen);
    /* The commit did not happen (a full disk, no memory): the slot still
     * holds the PENDING file. Put it back now, as a claim does, rather than
     * leave it counted as RUNNING and out of claimers' reach until a
     * recovery runs. */
    if (rc != OMNIQ_OK && at == OMNIQ__AT_PENDING)
      renameat(fs->running_fd, idname, p.dirfd, p.name);
    else if (rc == OMNIQ_OK && at == OMNIQ__AT_PENDING)
      omniq__fidx_forget(fs->idx, id);
  }
  omniq__fs_unlock(fs, id);
  omniq_task_free(t);
  return rc;
}
