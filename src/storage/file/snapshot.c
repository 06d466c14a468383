/* SPDX-License-Identifier: MIT */
/* The pending snapshot.
 *
 * Opening a store lists queue/pending/<q>/ to build the pending index; at
 * 10^6 files the listing alone takes about a second. A backend that
 * closes with many pending files saves what it would find, one 32-byte
 * record per file, to queue/snapshot; the next open reads that instead.
 *
 * Why a snapshot can be trusted: it is used only if queue/pending/ and
 * every queue folder in it have the same inode, modification time and
 * change time as when it was taken. Every rename into or out of a folder,
 * every file made or removed there, sets both times of the folder to the
 * current time, so a folder whose times did not move holds the names it
 * held. Two things make "did not move" sound:
 *
 * - Timestamps have a granularity (the kernel's coarse clock tick, or a
 *   whole second on file systems without nanoseconds). A change in the
 *   same tick as the one the snapshot saw would leave the times equal.
 *   So a snapshot is only taken of folders whose times are older than the
 *   clock's current tick (CLOCK_REALTIME_COARSE, read before the stat):
 *   any later change gets a later time. Folders changed in the current
 *   tick are stat'ed again after a short wait (a few ms; a second on a
 *   file system whose times show no nanoseconds).
 * - The listing must be exact for the times it is saved with: the folders
 *   are stat'ed before and after being listed, and nothing is written if
 *   any of them changed in between.
 *
 * Crashes: a process that dies after changing a folder changed its times,
 * so the snapshot no longer matches and the next open lists the folders;
 * a snapshot cut short or damaged (power loss with fsync off, a stray
 * write) fails its size or checksum and is ignored the same way. Changes
 * made while an opening process reads the snapshot are caught as they are
 * after a listing: the journal is opened first (additions), and a claim
 * of a file that is gone drops it (removals).
 *
 * Layout (native byte order and sizes: a snapshot from another kind of
 * machine fails its checks and is ignored): head_t, nq qent_t (the
 * folders, pending/ itself in the head), n omniq__fsnap_rec_t sorted by
 * id, no id twice (checked when saving, so loading adds each without a
 * lookup); a checksum of all of it (with the checksum field zero) in the
 * head. */
#include "storage/file/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"

size_t omniq__fsnap_min_tasks = 10000;
int omniq__fsnap_use = 1;

#define MAGIC "OQSNAP02"
#define QMAX 65536  /* more queue folders than this: no snapshot */
#define TRIES 4     /* stats in the current tick: stat again this often */
#define RECS_CHUNK 2048

typedef struct {
  uint64_t dev, ino;
  int64_t mt_s, mt_ns, ct_s, ct_ns;
} dstat_t;

typedef struct {
  char magic[8];
  uint64_t nq, n;
  int64_t list_us;
  uint64_t sum;
  dstat_t pending;
} head_t;

typedef struct {
  char qdir[208]; /* NUL-terminated, OMNIQ__QDIR_SIZE fits */
  dstat_t st;
} qent_t;

_Static_assert(sizeof(omniq__fsnap_rec_t) == 32, "snapshot record is 32 bytes");
_Static_assert(sizeof(head_t) % 8 == 0 && sizeof(qent_t) % 8 == 0, "words");
_Static_assert(OMNIQ__QDIR_SIZE <= 208, "qdir fits");

/* ---- checksum: not against malice, against torn and stray bytes ----------- */

static uint64_t sum_words(uint64_t h, const void *p, size_t len) {
  const unsigned char *b = p;
  for (size_t i = 0; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    h = (h ^ w) * UINT64_C(0x9E3779B97F4A7C15);
    h ^= h >> 29;
  }
  return h;
}

static uint64_t sum_head(const head_t *h) {
  head_t z = *h;
  z.sum = 0;
  return sum_words(UINT64_C(0x6f6d6e6971), &z, sizeof z);
}

/* ---- folder times ----------------------------------------------------------- */

static void dstat_of(const struct stat *st, dstat_t *d) {
  memset(d, 0, sizeof *d);
  d->dev = (uint64_t)st->st_dev;
  d->ino = (uint64_t)st->st_ino;
  d->mt_s = st->st_mtim.tv_sec;
  d->mt_ns = st->st_mtim.tv_nsec;
  d->ct_s = st->st_ctim.tv_sec;
  d->ct_ns = st->st_ctim.tv_nsec;
}

static int dstat_fd(int fd, const char *name, dstat_t *d) {
  struct stat st;
  int r = name == NULL ? fstat(fd, &st) : fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW);
  if (r != 0 || !S_ISDIR(st.st_mode)) return -1;
  dstat_of(&st, d);
  return 0;
}

static int dstat_eq(const dstat_t *a, const dstat_t *b) { return memcmp(a, b, sizeof *a) == 0; }

/* 1 if d's times are older than the tick of now: any later change would
 * give it other times. With no nanoseconds in either time (a file system
 * that keeps whole seconds), older than now's second. */
static int settled(const dstat_t *d, const struct timespec *now) {
  int coarse = d->mt_ns == 0 && d->ct_ns == 0;
  int64_t ns = coarse ? 0 : now->tv_nsec;
  int64_t s = now->tv_sec;
  return (d->mt_s < s || (d->mt_s == s && d->mt_ns < ns)) &&
         (d->ct_s < s || (d->ct_s == s && d->ct_ns < ns));
}

/* ---- saving ------------------------------------------------------------------ */

typedef struct {
  head_t head;
  qent_t *q;
  size_t capq;
  omniq__fsnap_rec_t *r;
  size_t capr;
} snap_t;

static void snap_free(snap_t *s) {
  omniq__free(s->q);
  omniq__free(s->r);
}

static DIR *listing(int dirfd, const char *name) {
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL && fd >= 0) close(fd);
  return d;
}

/* The queue folders of pending/ and their times (pending/'s first); -1
 * if anything else is there (the listing open quarantines it). */
static int stat_folders(snap_t *s, int pending_fd) {
  struct dirent *de;
  if (dstat_fd(pending_fd, NULL, &s->head.pending) != 0) return -1;
  DIR *d = listing(pending_fd, ".");
  if (d == NULL) return -1;
  s->head.nq = 0;
  while ((de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (!omniq__fname_qdir_valid(de->d_name, len) || s->head.nq == QMAX) break;
    if (s->head.nq == s->capq) {
      size_t cap = s->capq ? s->capq * 2 : 8;
      qent_t *bigger = omniq__realloc(s->q, cap * sizeof *bigger);
      if (bigger == NULL) break;
      s->q = bigger;
      s->capq = cap;
    }
    qent_t *q = &s->q[s->head.nq];
    memset(q, 0, sizeof *q);
    memcpy(q->qdir, de->d_name, len + 1);
    if (dstat_fd(pending_fd, q->qdir, &q->st) != 0) break; /* not a folder, or gone */
    s->head.nq++;
  }
  int complete = de == NULL;
  closedir(d);
  return complete ? 0 : -1;
}

/* Stats the folders until they are all settled (see the top). */
static int stat_settled(snap_t *s, int pending_fd) {
  struct timespec now, res;
  clock_getres(CLOCK_REALTIME_COARSE, &res);
  for (int t = 0; t < TRIES; t++) {
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    if (stat_folders(s, pending_fd) != 0) return -1;
    int ok = settled(&s->head.pending, &now), coarse = 0;
    for (size_t i = 0; ok && i < s->head.nq; i++) ok = settled(&s->q[i].st, &now);
    if (ok) return 0;
    coarse = s->head.pending.mt_ns == 0 && s->head.pending.ct_ns == 0;
    struct timespec wait = {0, res.tv_nsec + 1000000L};
    if (coarse) wait = (struct timespec){0, 1000000000L - now.tv_nsec + 1000000L};
    if (wait.tv_nsec >= 1000000000L) wait = (struct timespec){1, wait.tv_nsec - 1000000000L};
    nanosleep(&wait, NULL);
  }
  return -1;
}

static int add_rec(snap_t *s, uint32_t q, uint32_t iprio, int64_t eta, const char *id) {
  if (s->head.n == s->capr) {
    size_t cap = s->capr ? s->capr * 2 : RECS_CHUNK;
    omniq__fsnap_rec_t *bigger = omniq__realloc(s->r, cap * sizeof *bigger);
    if (bigger == NULL) return -1;
    s->r = bigger;
    s->capr = cap;
  }
  omniq__fsnap_rec_t *r = &s->r[s->head.n++];
  omniq__fid_pack(id, r->id);
  r->eta = eta;
  r->iprio = iprio;
  r->q = q;
  return 0;
}

/* Every pending name of every folder into s; -1 on any name that is not
 * one (the open's listing quarantines it), or a folder that cannot be read. */
static int list_recs(snap_t *s, int pending_fd) {
  char id[OMNIQ_ID_SIZE];
  struct dirent *de;
  s->head.n = 0;
  for (size_t i = 0; i < s->head.nq; i++) {
    DIR *d = listing(pending_fd, s->q[i].qdir);
    int bad = d == NULL;
    while (!bad && (de = readdir(d)) != NULL) {
      uint32_t iprio;
      int64_t eta;
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      bad = omniq__fname_pending_parse(de->d_name, &iprio, &eta, id) != OMNIQ_OK ||
            add_rec(s, (uint32_t)i, iprio, eta, id) != 0;
    }
    if (d != NULL) closedir(d);
    if (bad) return -1;
  }
  return 0;
}

static int cmp_rec_id(const void *a, const void *b) {
  return memcmp(((const omniq__fsnap_rec_t *)a)->id, ((const omniq__fsnap_rec_t *)b)->id,
                OMNIQ__FID_BYTES);
}

/* Sorts the records by id; 0 if no id is there twice (a task file copied
 * into a second place by hand: the listing open decides which one counts). */
static int sort_unique(snap_t *s) {
  if (s->head.n > 1) qsort(s->r, s->head.n, sizeof *s->r, cmp_rec_id);
  for (size_t i = 1; i < s->head.n; i++)
    if (cmp_rec_id(&s->r[i - 1], &s->r[i]) == 0) return -1;
  return 0;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* 1 if queue/snapshot was taken of exactly these folder times. */
static int current(int queue_fd, const snap_t *s) {
  head_t h;
  int fd = openat(queue_fd, OMNIQ__SNAPSHOT_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  int same = pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
             memcmp(h.magic, MAGIC, 8) == 0 && h.nq == s->head.nq &&
             dstat_eq(&h.pending, &s->head.pending);
  for (size_t i = 0; same && i < s->head.nq; i++) {
    qent_t q;
    same = pread(fd, &q, sizeof q, (off_t)(sizeof h + i * sizeof q)) == (ssize_t)sizeof q &&
           memcmp(&q, &s->q[i], sizeof q) == 0;
  }
  close(fd);
  return same;
}

void omniq__fsnap_save(const omniq__fio_t *io, int queue_fd, int pending_fd, int was_loaded) {
  snap_t s, again;
  char err[256];
  memset(&s, 0, sizeof s);
  memset(&again, 0, sizeof again);
  if (stat_settled(&s, pending_fd) != 0 || (was_loaded && current(queue_fd, &s))) goto out;
  int64_t t0 = mono_us();
  if (list_recs(&s, pending_fd) != 0) goto out;
  s.head.list_us = mono_us() - t0;
  if (sort_unique(&s) != 0) goto out;
  /* Unchanged while listed: the listing is what those times stand for. */
  if (stat_folders(&again, pending_fd) != 0 || again.head.nq != s.head.nq ||
      !dstat_eq(&again.head.pending, &s.head.pending) ||
      (s.head.nq > 0 && memcmp(again.q, s.q, s.head.nq * sizeof *s.q) != 0))
    goto out;
  memcpy(s.head.magic, MAGIC, 8);
  uint64_t h = sum_head(&s.head);
  h = sum_words(h, s.q, s.head.nq * sizeof *s.q);
  s.head.sum = sum_words(h, s.r, s.head.n * sizeof *s.r);
  struct iovec iov[3] = {{&s.head, sizeof s.head},
                         {s.q, s.head.nq * sizeof *s.q},
                         {s.r, s.head.n * sizeof *s.r}};
  if (omniq__fio_writev(io, queue_fd, OMNIQ__SNAPSHOT_NAME, iov, 3, err, sizeof err) != OMNIQ_OK)
    omniq__log(io->log, OMNIQ_LOG_WARNING, "storage.snapshot", NULL,
               "pending snapshot not saved (the next open lists the folders): %s", err);
out:
  snap_free(&s);
  snap_free(&again);
}

/* ---- loading ----------------------------------------------------------------- */

static int read_at(int fd, void *buf, size_t len, off_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static void damaged(const omniq__fio_t *io, const char *why) {
  omniq__log(io->log, OMNIQ_LOG_WARNING, "storage.snapshot", NULL,
             "queue/%s not used (%s): the folders are listed instead", OMNIQ__SNAPSHOT_NAME, why);
}

/* Reads and checks the folders; 1 if they all still match, 0 if stale,
 * -1 if damaged. *h is the running checksum. */
static int load_folders(int fd, int pending_fd, const head_t *head, qent_t *q, uint64_t *h) {
  size_t bytes = head->nq * sizeof *q;
  if (read_at(fd, q, bytes, sizeof *head) != 0) return -1;
  *h = sum_words(*h, q, bytes);
  for (size_t i = 0; i < head->nq; i++) {
    dstat_t now;
    size_t len = strnlen(q[i].qdir, sizeof q[i].qdir);
    if (len == sizeof q[i].qdir || !omniq__fname_qdir_valid(q[i].qdir, len)) return -1;
    if (dstat_fd(pending_fd, q[i].qdir, &now) != 0 || !dstat_eq(&now, &q[i].st)) return 0;
  }
  return 1;
}

int omniq__fsnap_load(const omniq__fio_t *io, int queue_fd, int pending_fd,
                      const omniq__fsnap_sink_t *sink, size_t *n, int64_t *list_us) {
  head_t head;
  dstat_t now;
  struct stat st;
  qent_t *q = NULL;
  omniq__fsnap_rec_t *buf = NULL;
  int rc = 0;
  *n = 0;
  if (!omniq__fsnap_use) return 0;
  int fd = openat(queue_fd, OMNIQ__SNAPSHOT_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || read_at(fd, &head, sizeof head, 0) != 0 ||
      memcmp(head.magic, MAGIC, 8) != 0 || head.nq > QMAX ||
      head.n > ((uint64_t)st.st_size - sizeof head) / sizeof(omniq__fsnap_rec_t) ||
      (uint64_t)st.st_size != sizeof head + head.nq * sizeof(qent_t) +
                                  head.n * sizeof(omniq__fsnap_rec_t)) {
    damaged(io, "not a whole snapshot");
    goto out;
  }
  if (dstat_fd(pending_fd, NULL, &now) != 0 || !dstat_eq(&now, &head.pending)) goto out;
  uint64_t h = sum_head(&head);
  q = omniq__malloc(head.nq * sizeof *q + 1);
  buf = omniq__malloc(RECS_CHUNK * sizeof *buf);
  if (q == NULL || buf == NULL) goto out;
  int f = load_folders(fd, pending_fd, &head, q, &h);
  if (f <= 0) {
    if (f < 0) damaged(io, "a bad folder name");
    goto out;
  }
  for (uint32_t i = 0; i < head.nq; i++)
    if (sink->queue(sink->ud, i, q[i].qdir) < 0) goto out;
  sink->folders_checked(sink->ud, (size_t)head.n);
  off_t off = (off_t)(sizeof head + head.nq * sizeof *q);
  rc = -1; /* from here on, records have been handed over */
  for (uint64_t done = 0; done < head.n;) {
    size_t k = head.n - done < RECS_CHUNK ? (size_t)(head.n - done) : RECS_CHUNK;
    if (read_at(fd, buf, k * sizeof *buf, off) != 0) {
      damaged(io, "cut short");
      goto out;
    }
    h = sum_words(h, buf, k * sizeof *buf);
    for (size_t i = 0; i < k; i++) {
      if (buf[i].q >= head.nq || buf[i].eta < 0 || buf[i].eta > OMNIQ__ETA_NAME_MAX) {
        damaged(io, "a record out of range");
        goto out;
      }
      sink->rec(sink->ud, &buf[i]);
    }
    done += k;
    off += (off_t)(k * sizeof *buf);
  }
  if (h != head.sum) {
    damaged(io, "checksum mismatch");
    goto out;
  }
  *n = (size_t)head.n;
  *list_us = head.list_us;
  rc = 1;
out:
  omniq__free(q);
  omniq__free(buf);
  close(fd);
  return rc;
}
