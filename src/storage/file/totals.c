/* SPDX-License-Identifier: MIT */
/* Running totals of the file backend.
 *
 * One file per handle, stats/h-<owner>.json, named after the handle's
 * owner number (owner.c):
 *   {"runs":{"<qdir>":[succeeded,failed,retried,lost],...},
 *    "pending":["<id>:<token>",...],"absorbed":["<owner>",...]}
 * The handle keeps its totals in memory and writes the file whole (a new
 * file renamed over the old, never synced) once per batch of finishes,
 * not once per finish: a pool's batch of 8 to 64 outcomes is one write,
 * where one file per lock stripe made one write per task (1,024 stripes:
 * a batch's tasks almost never share one). Reading the totals sums every
 * handle's file.
 *
 * Exactly once. The run's kind is in the commit slot ("commit_runs"), and
 * counting is a step after the commit that a roll-forward repeats
 * (transitions.c). A finish counts its run and writes its handle's file
 * before its task leaves the slot, listing the run under "pending" until
 * the move is done (the next write drops it). So after a crash a run is
 * either in no file (the roll-forward counts it) or in a file's "pending"
 * (the roll-forward finds it there and does not count it again): a
 * roll-forward reads every handle's "pending" first (omniq__ftotals_counted).
 * A process crash loses no count (the kernel has the file); a power loss
 * may lose the counts of the last moments, as the files are not synced.
 *
 * Handles come and go, so their files are folded: an open takes every
 * file of a handle that is gone (its owner byte unlocked) into its own
 * totals, writes its own file (synced: it now carries counts another
 * file held) naming what it absorbed, then removes the absorbed files. A
 * reader skips a file some other file names as absorbed, so a crash
 * between the write and the removals counts nothing twice. A gone
 * handle's file is absorbed only when every run it lists as pending is
 * settled (its slot no longer an unfinished transition): until then a
 * roll-forward may still need to find it there. Absorbing and reading
 * take the meta lock "t:totals", so a reader never sees a file absorbed
 * and its absorber's old version.
 *
 * Stores written before this layout have stats/<stripe>.json files, each
 * with a "last" run; they are read and summed, and a roll-forward also
 * looks at "last", but nothing writes them any more. */
#include "storage/file/totals.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "storage/file/batch.h"
#include "storage/file/owner.h"
#include "storage/file/record.h"

#define KEY_SIZE (OMNIQ_ID_LEN + 1 + 24)
#define NAME_SIZE 40
#define LOCK "t:totals"

struct omniq__ftotals {
  pthread_mutex_t mu;
  json_t *runs;     /* {qdir: [4 counts]}: this handle's, absorbed ones included */
  json_t *pending;  /* ["id:token"]: counted, the task not yet out of its slot */
  json_t *absorbed; /* ["owner"]: handles whose counts runs includes */
  int dirty;        /* memory differs from the file */
  unsigned long writes; /* of the file, for tests */
  char name[NAME_SIZE];
  int cur_fd;       /* the file now at stats/<name>, once this handle wrote it; else -1 */
  int spare_fd;     /* the handle's other file, tmp/<spare>, written next; else -1 */
  char spare[OMNIQ__TMP_NAME_SIZE];
};

static void run_key(const char *id, int64_t token, char key[KEY_SIZE]) {
  snprintf(key, KEY_SIZE, "%.36s:%" PRId64, id, token);
}

/* The owner number of "h-<owner>.json"; 0 for any other name. */
static unsigned long long owner_of(const char *name) {
  char *end;
  if (strncmp(name, "h-", 2) != 0 || name[2] < '1' || name[2] > '9') return 0;
  errno = 0;
  unsigned long long n = strtoull(name + 2, &end, 10);
  return errno == 0 && strcmp(end, ".json") == 0 ? n : 0;
}

/* A file of stats/ as JSON; NULL when it is missing or not an object. */
static json_t *load(omniq__fs_t *fs, const char *name) {
  char *text = NULL, e[OMNIQ__ERRMSG_MAX];
  json_t *j = NULL;
  if (omniq__fio_read_shared(fs->stats_fd, name, &text, NULL, e, sizeof e) == OMNIQ_OK)
    j = json_loads(text, 0, NULL);
  omniq__free(text);
  if (!json_is_object(j)) {
    json_decref(j);
    j = NULL;
  }
  return j;
}

static int has_string(const json_t *arr, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    const char *x = json_string_value(v);
    if (x != NULL && strcmp(x, s) == 0) return 1;
  }
  return 0;
}

/* Adds the counts of src ({qdir: [4]}) to dst. 0, or -1 out of memory. */
static int add_runs(json_t *dst, const json_t *src) {
  const char *qdir;
  json_t *q;
  json_object_foreach((json_t *)src, qdir, q) {
    if (!json_is_array(q) || !omniq__fname_qdir_valid(qdir, strlen(qdir))) continue;
    json_t *d = json_object_get(dst, qdir);
    if (!json_is_array(d) || json_array_size(d) != OMNIQ_RUNS_KINDS) {
      d = json_pack("[IIII]", (json_int_t)0, (json_int_t)0, (json_int_t)0, (json_int_t)0);
      if (d == NULL || json_object_set_new(dst, qdir, d) != 0) return -1;
    }
    for (size_t k = 0; k < OMNIQ_RUNS_KINDS; k++) {
      json_int_t n;
      /* Files are read from disk: a count out of range saturates. */
      if (__builtin_add_overflow(json_integer_value(json_array_get(d, k)),
                                 json_integer_value(json_array_get(q, k)), &n))
        n = json_integer_value(json_array_get(q, k)) < 0 ? INT64_MIN : INT64_MAX;
      if (json_array_set_new(d, k, json_integer(n)) != 0) return -1;
    }
  }
  return 0;
}

/* A new empty file in tmp/ for the handle to write its totals into
 * (mutex held): made twice in a handle's life, the two files then take
 * turns. */
static int make_spare(omniq__fs_t *fs, struct omniq__ftotals *t, char *err, size_t errlen) {
  omniq__fio_t io = fs->io;
  io.fsync = 0;
  io.spares = NULL;
  int rc = omniq__fio_stage(&io, "", 0, t->spare, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  t->spare_fd = openat(fs->io.tmp_fd, t->spare, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (t->spare_fd >= 0) return OMNIQ_OK;
  rc = omniq__fio_errno(errno, err, errlen, "file store: opening tmp/%s", t->spare);
  unlinkat(fs->io.tmp_fd, t->spare, 0);
  return rc;
}

/* rewrite: a reader holds the file (see below). */
#define BUSY 1

/* Rewrites fd whole with text, under an OFD write lock on it: a reader
 * that opened it when it was the handle's file (omniq__fio_read_shared)
 * reads it before or after, never during. The lock is tried, not waited
 * for: BUSY while a reader holds it. A writer holds task locks, and must
 * not wait on a reader another process may have stopped mid-read. */
static int rewrite(int fd, const char *text, size_t len, int synced, char *err, size_t errlen) {
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  int rc = OMNIQ_OK;
  while (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    if (errno == EAGAIN || errno == EACCES) return BUSY;
    if (errno != EINTR) return omniq__fio_errno(errno, err, errlen, "file store: locking totals");
  }
  for (size_t done = 0; done < len && rc == OMNIQ_OK;) {
    ssize_t w = pwrite(fd, text + done, len - done, (off_t)done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) rc = omniq__fio_errno(errno, err, errlen, "file store: writing totals");
    done += w > 0 ? (size_t)w : 0;
  }
  if (rc == OMNIQ_OK && ftruncate(fd, (off_t)len) != 0)
    rc = omniq__fio_errno(errno, err, errlen, "file store: writing totals");
  if (rc == OMNIQ_OK && synced && fdatasync(fd) != 0)
    rc = omniq__fio_errno(errno, err, errlen, "file store: syncing totals");
  fl.l_type = F_UNLCK;
  fcntl(fd, F_OFD_SETLK, &fl);
  return rc;
}

/* Writes the handle's file from memory (mutex held). The handle has two
 * files: the one at stats/<name> and a spare in tmp/. The spare is
 * rewritten in place and exchanged with the other, which becomes the
 * spare: no file is made or removed per write (on ext4 each inode freed
 * slows every file made after it for a minute), and the name always
 * holds a whole file, the old one or the new one, whenever the process
 * stops. Other processes read the file without any lock of the handle's
 * but an OFD read lock on the file itself; a spare a reader still holds
 * is left to it and a new one made (rare: a read of a small file). */
static int write_locked(omniq__fs_t *fs, struct omniq__ftotals *t, int synced, char *err,
                        size_t errlen) {
  json_t *j = json_pack("{sOsOsO}", "runs", t->runs, "pending", t->pending, "absorbed",
                        t->absorbed);
  char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (text == NULL) {
    snprintf(err, errlen, "file store: out of memory writing the running totals");
    return OMNIQ_ENOMEM;
  }
  synced = synced && fs->io.fsync;
  int rc = t->spare_fd < 0 ? make_spare(fs, t, err, errlen) : OMNIQ_OK;
  if (rc == OMNIQ_OK) rc = rewrite(t->spare_fd, text, strlen(text), synced, err, errlen);
  if (rc == BUSY) { /* left to its reader (removed, it is freed at its close); a new spare */
    unlinkat(fs->io.tmp_fd, t->spare, 0);
    close(t->spare_fd);
    t->spare_fd = -1;
    rc = make_spare(fs, t, err, errlen);
    if (rc == OMNIQ_OK) rc = rewrite(t->spare_fd, text, strlen(text), synced, err, errlen);
    if (rc == BUSY) rc = omniq__fio_errno(EAGAIN, err, errlen, "file store: locking totals");
  }
  free(text);
  omniq__fbatch_step(); /* a kill point: the spare rewritten, the name still the old file */
  if (rc == OMNIQ_OK) {
    int tmp_fd = fs->io.tmp_fd;
    if (renameat2(tmp_fd, t->spare, fs->stats_fd, t->name, RENAME_EXCHANGE) == 0) {
      int old = t->cur_fd;
      t->cur_fd = t->spare_fd;
      /* The file exchanged out is the next spare; one this handle did not
       * write (left by an earlier handle with its number) is opened. */
      t->spare_fd = old >= 0 ? old : openat(tmp_fd, t->spare, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
      if (t->spare_fd < 0) unlinkat(tmp_fd, t->spare, 0);
    } else if (renameat(tmp_fd, t->spare, fs->stats_fd, t->name) == 0) {
      /* No file there yet (or no RENAME_EXCHANGE here): the next write
       * makes a new spare. */
      if (t->cur_fd >= 0) close(t->cur_fd);
      t->cur_fd = t->spare_fd;
      t->spare_fd = -1;
    } else {
      rc = omniq__fio_errno(errno, err, errlen, "file store: replacing stats/%s", t->name);
    }
  }
  if (rc == OMNIQ_OK && synced) rc = omniq__fio_sync_dir(&fs->io, fs->stats_fd, err, errlen);
  if (rc == OMNIQ_OK) t->dirty = 0;
  t->writes++;
  return rc;
}

/* ---- counting ---------------------------------------------------------------- */

int omniq__ftotals_count(omniq__fs_t *fs, const char *id, int64_t token, const char *qdir,
                         int kind) {
  struct omniq__ftotals *t = fs->totals;
  char key[KEY_SIZE];
  if (kind < 0 || kind >= OMNIQ_RUNS_KINDS) return OMNIQ_OK;
  run_key(id, token, key);
  pthread_mutex_lock(&t->mu);
  json_t *one = json_pack("{s[IIII]}", qdir, (json_int_t)(kind == 0), (json_int_t)(kind == 1),
                          (json_int_t)(kind == 2), (json_int_t)(kind == 3));
  int rc = one != NULL && add_runs(t->runs, one) == 0 &&
                   json_array_append_new(t->pending, json_string(key)) == 0
               ? OMNIQ_OK
               : OMNIQ_ENOMEM;
  json_decref(one);
  t->dirty = 1;
  pthread_mutex_unlock(&t->mu);
  return rc;
}

int omniq__ftotals_flush(omniq__fs_t *fs, char *err, size_t errlen) {
  struct omniq__ftotals *t = fs->totals;
  int rc = OMNIQ_OK;
  pthread_mutex_lock(&t->mu);
  if (t->dirty) rc = write_locked(fs, t, 0, err, errlen);
  pthread_mutex_unlock(&t->mu);
  return rc;
}

void omniq__ftotals_moved(omniq__fs_t *fs, const char *id, int64_t token) {
  struct omniq__ftotals *t = fs->totals;
  char key[KEY_SIZE];
  size_t i;
  json_t *v;
  run_key(id, token, key);
  pthread_mutex_lock(&t->mu);
  json_array_foreach(t->pending, i, v) {
    if (strcmp(json_string_value(v), key) != 0) continue;
    json_array_remove(t->pending, i);
    t->dirty = 1; /* dropped from the file with the next write */
    break;
  }
  pthread_mutex_unlock(&t->mu);
}

typedef struct {
  const char *key;
  const char *own;
  int found;
} counted_t;

static int counted_in(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  counted_t *c = ud;
  (void)dirfd;
  if (owner_of(name) == 0 || strcmp(name, c->own) == 0) return 0;
  json_t *j = load(fs, name);
  c->found = has_string(json_object_get(j, "pending"), c->key);
  json_decref(j);
  return c->found;
}

int omniq__ftotals_counted(omniq__fs_t *fs, const char *id, int64_t token) {
  struct omniq__ftotals *t = fs->totals;
  char key[KEY_SIZE], legacy[16];
  run_key(id, token, key);
  pthread_mutex_lock(&t->mu);
  int found = has_string(t->pending, key);
  pthread_mutex_unlock(&t->mu);
  if (found) return 1;
  counted_t c = {key, t->name, 0};
  omniq__fs_each(fs, fs->stats_fd, counted_in, &c);
  if (c.found) return 1;
  /* Counted by a version that wrote one file per lock stripe. */
  snprintf(legacy, sizeof legacy, "%04u.json", omniq__flock_stripe(id));
  json_t *j = load(fs, legacy);
  const char *last = json_string_value(json_object_get(j, "last"));
  found = last != NULL && strcmp(last, key) == 0;
  json_decref(j);
  return found;
}

/* ---- opening: absorbing the files of handles that are gone --------------------- */

/* 1 when no run of pending can still be rolled forward: its task's slot is
 * gone or RUNNING (a transition in flight shows another status). */
static int settled(omniq__fs_t *fs, const json_t *pending) {
  size_t i;
  json_t *v;
  json_array_foreach(pending, i, v) {
    const char *key = json_string_value(v);
    char id[OMNIQ_ID_SIZE], idname[OMNIQ__IDNAME_SIZE], e[OMNIQ__ERRMSG_MAX];
    omniq_task_t *task = NULL;
    if (key == NULL || strlen(key) <= OMNIQ_ID_LEN) continue;
    memcpy(id, key, OMNIQ_ID_LEN);
    id[OMNIQ_ID_LEN] = '\0';
    if (omniq__fname_id(id, idname) != OMNIQ_OK) continue;
    int rc = omniq__frec_read(fs->running_fd, idname, id, &task, NULL, e, sizeof e);
    int open = rc == OMNIQ_OK && task->status != OMNIQ_RUNNING;
    omniq_task_free(task);
    if (open || (rc != OMNIQ_OK && rc != OMNIQ_ENOTFOUND)) return 0;
  }
  return 1;
}

typedef struct {
  json_t *files; /* {name: contents} of every handle file but our own */
  json_t *absorbed_by_any;
} scan_t;

static int scan_file(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  scan_t *s = ud;
  (void)dirfd;
  if (owner_of(name) == 0 || strcmp(name, fs->totals->name) == 0) return 0;
  json_t *j = load(fs, name);
  if (j == NULL) return 0;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(j, "absorbed"), i, v)
      json_array_append(s->absorbed_by_any, v);
  json_object_set_new(s->files, name, j);
  return 0;
}

/* Takes the files of gone handles into this one's totals (see the design
 * note). Best effort: what cannot be absorbed now is at a later open. */
static void absorb(omniq__fs_t *fs) {
  struct omniq__ftotals *t = fs->totals;
  char e[OMNIQ__ERRMSG_MAX], owner[24];
  scan_t s = {json_object(), json_array()};
  json_t *gone = json_array();
  const char *name;
  json_t *j;
  if (s.files == NULL || s.absorbed_by_any == NULL || gone == NULL ||
      omniq__flock_take(&fs->meta, LOCK, e, sizeof e) != OMNIQ_OK)
    goto out;
  omniq__fs_each(fs, fs->stats_fd, scan_file, &s);
  pthread_mutex_lock(&t->mu);
  json_object_foreach(s.files, name, j) {
    snprintf(owner, sizeof owner, "%llu", owner_of(name));
    if (has_string(s.absorbed_by_any, owner)) { /* counted in its absorber's file */
      json_array_append_new(gone, json_string(name));
      continue;
    }
    if (omniq__fowner_alive(fs->locks.fd, owner_of(name)) ||
        !settled(fs, json_object_get(j, "pending")))
      continue;
    size_t i;
    json_t *v;
    if (add_runs(t->runs, json_object_get(j, "runs")) != 0) break;
    json_array_append_new(t->absorbed, json_string(owner));
    json_array_foreach(json_object_get(j, "absorbed"), i, v) json_array_append(t->absorbed, v);
    json_array_append_new(gone, json_string(name));
    t->dirty = 1;
  }
  /* The counts are on the disk in this file before their old files go. */
  int rc = t->dirty ? write_locked(fs, t, 1, e, sizeof e) : OMNIQ_OK;
  pthread_mutex_unlock(&t->mu);
  size_t i;
  json_t *v;
  int removed = rc == OMNIQ_OK;
  if (rc == OMNIQ_OK)
    json_array_foreach(gone, i, v) {
      if (unlinkat(fs->stats_fd, json_string_value(v), 0) != 0 && errno != ENOENT) removed = 0;
    }
  /* Every file this handle's names stood for is gone, so a reader has
   * nothing left to skip: the names go with the next write. Kept, they
   * would pass from absorber to absorber, one more with every handle the
   * store ever had (a command run once a minute: half a million a year),
   * in every write and every read of the totals. */
  if (removed) {
    pthread_mutex_lock(&t->mu);
    if (json_array_size(t->absorbed) > 0) {
      json_array_clear(t->absorbed);
      t->dirty = 1;
    }
    pthread_mutex_unlock(&t->mu);
  }
  omniq__flock_release(&fs->meta, LOCK);
out:
  json_decref(s.files);
  json_decref(s.absorbed_by_any);
  json_decref(gone);
}

int omniq__ftotals_open(omniq__fs_t *fs, char *err, size_t errlen) {
  struct omniq__ftotals *t = omniq__calloc(1, sizeof *t);
  if (t == NULL) goto oom;
  pthread_mutex_init(&t->mu, NULL);
  t->runs = json_object();
  t->pending = json_array();
  t->absorbed = json_array();
  snprintf(t->name, sizeof t->name, "h-%llu.json", fs->io.owner);
  t->cur_fd = t->spare_fd = -1;
  fs->totals = t;
  if (t->runs == NULL || t->pending == NULL || t->absorbed == NULL) goto oom;
  return OMNIQ_OK;
oom:
  snprintf(err, errlen, "file store: out of memory for the running totals");
  return OMNIQ_ENOMEM;
}

void omniq__ftotals_absorb(omniq__fs_t *fs) { absorb(fs); }

unsigned long omniq__ftotals_writes(omniq__fs_t *fs) {
  pthread_mutex_lock(&fs->totals->mu);
  unsigned long n = fs->totals->writes;
  pthread_mutex_unlock(&fs->totals->mu);
  return n;
}

void omniq__ftotals_close(omniq__fs_t *fs) {
  struct omniq__ftotals *t = fs->totals;
  char e[OMNIQ__ERRMSG_MAX];
  if (t == NULL) return;
  pthread_mutex_lock(&t->mu);
  if (t->dirty) write_locked(fs, t, 0, e, sizeof e); /* drops the pending runs */
  if (t->spare_fd >= 0) {
    unlinkat(fs->io.tmp_fd, t->spare, 0);
    close(t->spare_fd);
  }
  if (t->cur_fd >= 0) close(t->cur_fd);
  pthread_mutex_unlock(&t->mu);
  pthread_mutex_destroy(&t->mu);
  json_decref(t->runs);
  json_decref(t->pending);
  json_decref(t->absorbed);
  omniq__free(t);
  fs->totals = NULL;
}

/* ---- reading ------------------------------------------------------------------- */

typedef struct {
  scan_t scan; /* the handle files, as an absorb scans them */
  json_t *sum;
} read_t;

/* A file of a version before handle files: stats/<stripe>.json, read
 * under its stripe's lock (its writer kept replaced files as spares). */
static int read_legacy(omniq__fs_t *fs, const char *name, read_t *r) {
  char lock_err[8];
  unsigned stripe = (unsigned)atoi(name);
  if (stripe >= OMNIQ__FLOCK_STRIPES) return 0;
  int rc = omniq__flock_take_stripe(&fs->locks, stripe, lock_err, sizeof lock_err);
  if (rc != OMNIQ_OK) return rc; /* the totals fail rather than come out smaller */
  json_t *j = load(fs, name);
  omniq__flock_release_stripe(&fs->locks, stripe);
  if (j != NULL && add_runs(r->sum, json_object_get(j, "runs")) != 0) rc = OMNIQ_ENOMEM;
  json_decref(j);
  return rc;
}

static int read_file(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  read_t *r = ud;
  (void)dirfd;
  if (strlen(name) == 9 && strcmp(name + 4, ".json") == 0 && strspn(name, "0123456789") == 4)
    return read_legacy(fs, name, r);
  return scan_file(fs, dirfd, name, &r->scan);
}

int omniq__ftotals_each(omniq__fs_t *fs, omniq__ftotals_fn fn, void *ud) {
  struct omniq__ftotals *t = fs->totals;
  char e[OMNIQ__ERRMSG_MAX], owner[24];
  read_t r = {{json_object(), json_array()}, json_object()};
  const char *name, *qdir;
  json_t *j, *q;
  int rc = r.sum != NULL && r.scan.files != NULL && r.scan.absorbed_by_any != NULL ? OMNIQ_OK
                                                                                   : OMNIQ_ENOMEM;
  if (rc == OMNIQ_OK) rc = omniq__flock_take(&fs->meta, LOCK, e, sizeof e);
  if (rc == OMNIQ_OK) {
    rc = omniq__fs_each(fs, fs->stats_fd, read_file, &r);
    omniq__flock_release(&fs->meta, LOCK);
  }
  json_object_foreach(rc == OMNIQ_OK ? r.scan.files : NULL, name, j) {
    snprintf(owner, sizeof owner, "%llu", owner_of(name));
    if (!has_string(r.scan.absorbed_by_any, owner) && add_runs(r.sum, json_object_get(j, "runs")) != 0)
      rc = OMNIQ_ENOMEM;
  }
  if (rc == OMNIQ_OK) { /* this handle's own counts, from memory: never behind its file */
    pthread_mutex_lock(&t->mu);
    if (add_runs(r.sum, t->runs) != 0) rc = OMNIQ_ENOMEM;
    pthread_mutex_unlock(&t->mu);
  }
  json_object_foreach(rc == OMNIQ_OK ? r.sum : NULL, qdir, q) {
    int64_t n[OMNIQ_RUNS_KINDS];
    for (int k = 0; k < OMNIQ_RUNS_KINDS; k++) n[k] = json_integer_value(json_array_get(q, k));
    fn(qdir, n, ud);
  }
  json_decref(r.sum);
  json_decref(r.scan.files);
  json_decref(r.scan.absorbed_by_any);
  return rc;
}
