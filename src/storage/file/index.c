/* SPDX-License-Identifier: MIT */
/* The pending index.
 *
 * What it owns: one 32-byte entry per pending file (its id in binary, eta,
 * priority, queue), an id set over the live entries, and for each queue
 * folder one min-heap of entry numbers per priority level, ordered by
 * (eta, id). A claim looks at the top of each level, from the highest
 * priority down, and takes the first one that is due: O(levels + log n)
 * per task instead of a directory listing. The containers, and why they
 * cost 44 to 56 bytes a task, are in order.c. A scan appends to the heaps
 * and orders each once at its end, so opening a store costs little more
 * than listing its folders.
 *
 * How it learns about files: one full scan at open; after that only the
 * journal (journal.c), which every backend appends to when it puts a
 * file into pending/. Files that leave pending/ (claimed by another
 * process, cancelled) are not announced: the claimer finds out when its
 * rename fails with ENOENT and drops the entry. An entry that is no
 * longer live (taken, forgotten, or replaced when the task came back with
 * a new eta) is skipped when it surfaces; when such entries outnumber the
 * live ones, the heaps are swept.
 *
 * Rescans happen when the journal was replaced (rotation), and, when a
 * claim finds nothing due, if the folders' mtimes changed since the last
 * scan (a file dropped in by hand): always when the last scan saw fewer
 * than SMALL_SCAN files, else at most once per max(1 s, 20 x the last
 * scan's cost), so an idle worker on a huge queue spends under 5% of its
 * time listing.
 *
 * Descriptors: none per queue. A queue folder is opened for the one
 * operation that needs it (omniq__fidx_open_dir, a listing) and closed
 * after, always from pending_fd and with O_NOFOLLOW, so a store with any
 * number of queues holds the same few descriptors, and a listing that
 * cannot open a folder (the process out of descriptors) is an error to
 * whoever asked, never a folder quietly counted as empty.
 *
 * Lock: `lock` guards everything; it is never held while waiting for a
 * task lock (transitions take task locks first, then this one). */
#include "storage/file/index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "storage/file/journal.h"
#include "storage/file/order.h"
#include "storage/file/snapshot.h"

#define SMALL_SCAN 1024
#define RESCAN_MIN_US 1000000
#define SWEEP_MIN 4096 /* dead entries below this are left to surface */

typedef struct {
  char qdir[OMNIQ__QDIR_SIZE];
  omniq__flevels_t levels;
} queue_t;

struct omniq__fidx {
  pthread_mutex_t lock;
  const omniq__fio_t *io;
  int queue_fd, pending_fd;
  omniq__fjournal_t journal;
  queue_t **q; /* pointers, so a queue's address is stable */
  size_t nq, capq;
  omniq__forder_t order;
  int bulk;         /* a scan is running: push without ordering */
  size_t scanned;   /* files seen by the last scan */
  int64_t scan_at;  /* monotonic us */
  int64_t scan_cost;
  uint64_t sig;     /* folder mtimes at the last scan */
  unsigned long scans;
  int from_snapshot; /* opened from queue/snapshot (whole and current then) */
};

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- queues --------------------------------------------------------------- */

static int queue_find(omniq__fidx_t *ix, const char *qdir) {
  for (size_t i = 0; i < ix->nq; i++)
    if (strcmp(ix->q[i]->qdir, qdir) == 0) return (int)i;
  return -1;
}

static int open_queue_dir(const omniq__fidx_t *ix, const char *qdir, int *fd, char *err,
                          size_t errlen) {
  *fd = openat(ix->pending_fd, qdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (*fd >= 0) return OMNIQ_OK;
  if (errno == ENOENT) return OMNIQ_ENOTFOUND;
  return omniq__fio_errno(errno, err, errlen, "file store: opening queue/pending/%s", qdir);
}

/* Puts the table index of folder qdir in *qi, checking (and with create,
 * making) the folder. OMNIQ_ENOTFOUND if it does not exist and !create. */
static int queue_get(omniq__fidx_t *ix, const char *qdir, int create, int *qi, char *err,
                     size_t errlen) {
  struct stat st;
  if ((*qi = queue_find(ix, qdir)) >= 0) return OMNIQ_OK;
  if (create && mkdirat(ix->pending_fd, qdir, 0777) != 0 && errno != EEXIST)
    return omniq__fio_errno(errno, err, errlen, "file store: creating queue/pending/%s", qdir);
  if (fstatat(ix->pending_fd, qdir, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? OMNIQ_ENOTFOUND
                           : omniq__fio_errno(errno, err, errlen,
                                              "file store: looking at queue/pending/%s", qdir);
  if (!S_ISDIR(st.st_mode))
    return omniq__fio_errno(ENOTDIR, err, errlen, "file store: queue/pending/%s", qdir);
  if (create) {
    char e[8];
    omniq__fio_sync_dir(ix->io, ix->pending_fd, e, sizeof e);
  }
  queue_t *q = NULL;
  if (ix->nq == ix->capq) {
    size_t cap = ix->capq ? ix->capq * 2 : 4;
    queue_t **bigger = omniq__realloc(ix->q, cap * sizeof *bigger);
    if (bigger != NULL) {
      ix->q = bigger;
      ix->capq = cap;
    }
  }
  if (ix->nq < ix->capq) q = omniq__calloc(1, sizeof *q);
  if (q == NULL) {
    snprintf(err, errlen, "file store: out of memory");
    return OMNIQ_ENOMEM;
  }
  snprintf(q->qdir, sizeof q->qdir, "%s", qdir);
  ix->q[ix->nq] = q;
  *qi = (int)ix->nq++;
  return OMNIQ_OK;
}

/* Orders every heap again, dropping dead entries: after a scan's bulk
 * pushes, and when dead entries pile up (cancels of tasks far from the
 * top of their heap). */
static void order_all(omniq__fidx_t *ix) {
  for (size_t i = 0; i < ix->nq; i++)
    for (size_t j = 0; j < ix->q[i]->levels.n; j++)
      omniq__flevel_heapify(&ix->q[i]->levels.lv[j], &ix->order);
}

static void sweep_if_needed(omniq__fidx_t *ix) {
  if (!ix->bulk && ix->order.dead >= SWEEP_MIN && ix->order.dead > ix->order.live) order_all(ix);
}

static void insert(omniq__fidx_t *ix, int qi, uint32_t iprio, int64_t eta, const char *id) {
  uint8_t bin[OMNIQ__FID_BYTES];
  uint32_t e;
  omniq__fid_pack(id, bin);
  int r = omniq__forder_add(&ix->order, bin, (uint32_t)qi, iprio, eta, &e);
  if (r <= 0) return;
  omniq__flevel_t *l = omniq__flevels_get(&ix->q[qi]->levels, iprio);
  /* Out of memory: forget it; the next rescan finds the file again. */
  if (l == NULL || omniq__flevel_push(l, &ix->order, e, ix->bulk) != OMNIQ_OK)
    omniq__forder_release(&ix->order, e);
  sweep_if_needed(ix);
}

static void fill(const omniq__fidx_t *ix, uint32_t e, omniq__pending_t *p) {
  const omniq__fent_t *x = omniq__forder_at(&ix->order, e);
  p->iprio = x->iprio;
  p->eta = x->eta;
  omniq__fid_unpack(x->id, p->id);
  snprintf(p->qdir, sizeof p->qdir, "%s", ix->q[x->q]->qdir);
  omniq__fname_pending(p->iprio, p->eta, p->id, p->name);
}

/* ---- scanning ------------------------------------------------------------- */

/* A listing of dirfd's folder (a descriptor of its own); NULL with errno. */
static DIR *open_listing(int dirfd) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL && fd >= 0) {
    int e = errno;
    close(fd);
    errno = e;
  }
  return d;
}

static int is_dir(int dirfd, const struct dirent *de) {
  struct stat st;
  if (de->d_type != DT_UNKNOWN) return de->d_type == DT_DIR;
  return fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

typedef int (*list_fn)(omniq__fidx_t *, int, uint32_t, int64_t, const char *, void *);

/* Calls fn for each pending file of queue qi (until it returns non-zero);
 * quarantines other names when quarantine is set. *n gets the number of
 * files. An error if the folder cannot be listed (one that is gone holds
 * nothing). */
static int list_queue(omniq__fidx_t *ix, int qi, int quarantine, list_fn fn, void *ud, size_t *n,
                      char *err, size_t errlen) {
  char from[OMNIQ__QDIR_SIZE + 16], id[OMNIQ_ID_SIZE];
  struct dirent *de;
  int fd;
  *n = 0;
  int rc = open_queue_dir(ix, ix->q[qi]->qdir, &fd, err, errlen);
  if (rc == OMNIQ_ENOTFOUND) return OMNIQ_OK;
  if (rc != OMNIQ_OK) return rc;
  DIR *d = open_listing(fd);
  if (d == NULL) {
    rc = omniq__fio_errno(errno, err, errlen, "file store: listing queue/pending/%s",
                          ix->q[qi]->qdir);
    close(fd);
    return rc;
  }
  snprintf(from, sizeof from, "queue/pending/%s", ix->q[qi]->qdir);
  while ((de = readdir(d)) != NULL) {
    uint32_t iprio;
    int64_t eta;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (omniq__fname_pending_parse(de->d_name, &iprio, &eta, id) != OMNIQ_OK) {
      if (quarantine)
        omniq__fio_quarantine(ix->io, fd, from, de->d_name, "not a pending task file name");
      continue;
    }
    (*n)++;
    if (fn != NULL && fn(ix, qi, iprio, eta, id, ud)) break;
  }
  closedir(d);
  close(fd);
  return OMNIQ_OK;
}

/* Makes sure every queue folder in pending/ is in the table. */
static int list_queues(omniq__fidx_t *ix, int quarantine, char *err, size_t errlen) {
  DIR *d = open_listing(ix->pending_fd);
  struct dirent *de;
  int qi, rc = OMNIQ_OK;
  if (d == NULL) return omniq__fio_errno(errno, err, errlen, "file store: listing queue/pending");
  while (rc == OMNIQ_OK && (de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (omniq__fname_qdir_valid(de->d_name, strlen(de->d_name)) && is_dir(ix->pending_fd, de)) {
      rc = queue_get(ix, de->d_name, 0, &qi, err, errlen);
      if (rc == OMNIQ_ENOTFOUND) rc = OMNIQ_OK; /* gone since the listing saw it */
    } else if (quarantine) {
      omniq__fio_quarantine(ix->io, ix->pending_fd, "queue/pending", de->d_name,
                            "not a queue folder");
    }
  }
  closedir(d);
  return rc;
}

/* Every queue folder's files, counted into *n (fn called on each). */
static int list_all(omniq__fidx_t *ix, int quarantine, list_fn fn, void *ud, size_t *n,
                    char *err, size_t errlen) {
  int rc = list_queues(ix, quarantine, err, errlen);
  *n = 0;
  for (size_t i = 0; rc == OMNIQ_OK && i < ix->nq; i++) {
    size_t k;
    rc = list_queue(ix, (int)i, quarantine, fn, ud, &k, err, errlen);
    *n += k;
  }
  return rc;
}

static uint64_t folder_sig(omniq__fidx_t *ix) {
  struct stat st;
  uint64_t h = 0;
  if (fstat(ix->pending_fd, &st) == 0)
    h = (uint64_t)st.st_mtim.tv_sec * 1000000007ULL + (uint64_t)st.st_mtim.tv_nsec;
  for (size_t i = 0; i < ix->nq; i++)
    if (fstatat(ix->pending_fd, ix->q[i]->qdir, &st, AT_SYMLINK_NOFOLLOW) == 0)
      h = h * 31 + (uint64_t)st.st_mtim.tv_sec * 1000000007ULL + (uint64_t)st.st_mtim.tv_nsec;
  return h;
}

static int scan_insert(omniq__fidx_t *ix, int qi, uint32_t iprio, int64_t eta, const char *id,
                       void *ud) {
  (void)ud;
  insert(ix, qi, iprio, eta, id);
  return 0;
}

/* Forgets everything and lists the folders again. A listing that fails
 * leaves the index short of some files (none is lost: they are on disk)
 * and the folder signature unset, so the next idle claim lists again. */
static int rescan(omniq__fidx_t *ix, char *err, size_t errlen) {
  int64_t start = mono_us();
  size_t n = 0;
  for (size_t i = 0; i < ix->nq; i++) omniq__flevels_free(&ix->q[i]->levels);
  omniq__forder_free(&ix->order);
  ix->sig = folder_sig(ix); /* before listing: a change during it shows next time */
  ix->bulk = 1;
  int rc = list_all(ix, 1, scan_insert, NULL, &n, err, errlen);
  ix->bulk = 0;
  order_all(ix);
  if (rc != OMNIQ_OK) ix->sig = 0;
  ix->scanned = n;
  ix->scans++;
  ix->scan_at = mono_us();
  ix->scan_cost = ix->scan_at - start;
  return rc;
}

/* ---- the snapshot ---------------------------------------------------------- */

typedef struct {
  omniq__fidx_t *ix;
  int *qi; /* the snapshot's queue numbers -> ours */
  size_t nq;
} load_t;

static int load_queue(void *ud, uint32_t q, const char *qdir) {
  load_t *l = ud;
  char e[8];
  int *bigger = omniq__realloc(l->qi, ((size_t)q + 1) * sizeof *bigger);
  if (bigger == NULL) return -1;
  l->qi = bigger;
  l->nq = (size_t)q + 1;
  return queue_get(l->ix, qdir, 0, &l->qi[q], e, sizeof e) == OMNIQ_OK ? 0 : -1;
}

/* The folders' times as the snapshot saw them: a later change shows. */
static void load_checked(void *ud, size_t n) {
  load_t *l = ud;
  l->ix->sig = folder_sig(l->ix);
  omniq__forder_reserve(&l->ix->order, n); /* else it grows as it goes */
}

static void load_rec(void *ud, const omniq__fsnap_rec_t *r) {
  load_t *l = ud;
  omniq__fidx_t *ix = l->ix;
  int qi = l->qi[r->q];
  uint32_t e;
  if (omniq__forder_add_new(&ix->order, r->id, (uint32_t)qi, r->iprio, r->eta, &e) <= 0) return;
  omniq__flevel_t *lv = omniq__flevels_get(&ix->q[qi]->levels, r->iprio);
  if (lv == NULL || omniq__flevel_push(lv, &ix->order, e, 1) != OMNIQ_OK)
    omniq__forder_release(&ix->order, e); /* out of memory: a rescan finds it */
}

/* Fills the empty index from queue/snapshot; 1 if it did, 0 if the
 * folders must be listed (the index is left empty). */
static int load_snapshot(omniq__fidx_t *ix) {
  load_t l = {ix, NULL, 0};
  omniq__fsnap_sink_t sink = {load_queue, load_checked, load_rec, &l};
  size_t n = 0;
  int64_t list_us = 0, start = mono_us();
  ix->bulk = 1;
  int rc = omniq__fsnap_load(ix->io, ix->queue_fd, ix->pending_fd, &sink, &n, &list_us);
  ix->bulk = 0;
  omniq__free(l.qi);
  if (rc <= 0) {
    for (size_t i = 0; i < ix->nq; i++) omniq__flevels_free(&ix->q[i]->levels);
    omniq__forder_free(&ix->order);
    return 0;
  }
  order_all(ix);
  ix->from_snapshot = 1;
  ix->scanned = n;
  ix->scan_at = mono_us();
  /* The idle rescans' pace is set by what a listing costs, not a load. */
  ix->scan_cost = list_us > ix->scan_at - start ? list_us : ix->scan_at - start;
  return 1;
}

void omniq__fidx_save(omniq__fidx_t *ix) {
  pthread_mutex_lock(&ix->lock);
  size_t live = ix->order.live;
  pthread_mutex_unlock(&ix->lock);
  if (live >= omniq__fsnap_min_tasks)
    omniq__fsnap_save(ix->io, ix->queue_fd, ix->pending_fd, ix->from_snapshot);
}

/* A rescan whose failure is only logged: the caller has no one to tell. */
static void rescan_or_log(omniq__fidx_t *ix) {
  char err[256];
  if (rescan(ix, err, sizeof err) != OMNIQ_OK)
    omniq__log(ix->io->log, OMNIQ_LOG_WARNING, "storage.listing", NULL,
               "pending folders not fully listed (tried again later): %s", err);
}

static void journal_line(void *ud, const char *line, size_t len) {
  omniq__fidx_t *ix = ud;
  const char *slash = memchr(line, '/', len);
  char qdir[OMNIQ__QDIR_SIZE], name[OMNIQ__PNAME_SIZE], id[OMNIQ_ID_SIZE], e[8];
  uint32_t iprio;
  int64_t eta;
  if (slash == NULL) return;
  size_t qlen = (size_t)(slash - line), nlen = len - qlen - 1;
  /* Lines are untrusted bytes: both halves must pass the strict parsers
   * before either is used as a name. */
  if (!omniq__fname_qdir_valid(line, qlen) || nlen != OMNIQ__PNAME_LEN) return;
  memcpy(qdir, line, qlen);
  qdir[qlen] = '\0';
  memcpy(name, slash + 1, nlen);
  name[nlen] = '\0';
  if (memchr(qdir, '\0', qlen) != NULL || memchr(name, '\0', nlen) != NULL) return;
  if (omniq__fname_pending_parse(name, &iprio, &eta, id) != OMNIQ_OK) return;
  int qi;
  if (queue_get(ix, qdir, 0, &qi, e, sizeof e) == OMNIQ_OK) insert(ix, qi, iprio, eta, id);
}

static void refresh(omniq__fidx_t *ix) {
  if (omniq__fjournal_poll(&ix->journal, journal_line, ix)) rescan_or_log(ix);
}

static int idle_rescan_due(omniq__fidx_t *ix) {
  if (folder_sig(ix) == ix->sig) return 0;
  if (ix->scanned < SMALL_SCAN) return 1;
  int64_t wait = ix->scan_cost * 20 > RESCAN_MIN_US ? ix->scan_cost * 20 : RESCAN_MIN_US;
  return mono_us() - ix->scan_at >= wait;
}

/* ---- public --------------------------------------------------------------- */

int omniq__fidx_open(omniq__fidx_t **out, const omniq__fio_t *io, int queue_fd, int pending_fd,
                     char *err, size_t errlen) {
  omniq__fidx_t *ix = omniq__calloc(1, sizeof *ix);
  *out = NULL;
  if (ix == NULL) {
    snprintf(err, errlen, "file store: out of memory");
    return OMNIQ_ENOMEM;
  }
  ix->io = io;
  ix->queue_fd = queue_fd;
  ix->pending_fd = pending_fd;
  int rc = omniq__fjournal_open(&ix->journal, io, queue_fd, err, errlen);
  if (rc != OMNIQ_OK) {
    omniq__free(ix);
    return rc;
  }
  pthread_mutex_init(&ix->lock, NULL);
  if (!load_snapshot(ix) && (rc = rescan(ix, err, errlen)) != OMNIQ_OK) {
    omniq__fidx_free(ix);
    return rc;
  }
  *out = ix;
  return OMNIQ_OK;
}

void omniq__fidx_free(omniq__fidx_t *ix) {
  if (ix == NULL) return;
  for (size_t i = 0; i < ix->nq; i++) {
    omniq__flevels_free(&ix->q[i]->levels);
    omniq__free(ix->q[i]);
  }
  omniq__free(ix->q);
  omniq__forder_free(&ix->order);
  omniq__fjournal_close(&ix->journal);
  pthread_mutex_destroy(&ix->lock);
  omniq__free(ix);
}

int omniq__fidx_queue(omniq__fidx_t *ix, const char *queue, int create,
                      char qdir[OMNIQ__QDIR_SIZE], char *err, size_t errlen) {
  if (omniq__fname_qdir(queue, qdir) != OMNIQ_OK) {
    snprintf(err, errlen, "file store: queue name must be 1 to %d bytes once encoded",
             OMNIQ__QDIR_MAX);
    return OMNIQ_EINVAL;
  }
  int qi;
  pthread_mutex_lock(&ix->lock);
  int rc = queue_get(ix, qdir, create, &qi, err, errlen);
  pthread_mutex_unlock(&ix->lock);
  if (rc == OMNIQ_ENOTFOUND) snprintf(err, errlen, "file store: no queue folder %s", qdir);
  return rc;
}

int omniq__fidx_open_dir(omniq__fidx_t *ix, const char *qdir, int *fd, char *err, size_t errlen) {
  int rc = open_queue_dir(ix, qdir, fd, err, errlen);
  if (rc == OMNIQ_ENOTFOUND)
    rc = omniq__fio_errno(ENOENT, err, errlen, "file store: opening queue/pending/%s", qdir);
  return rc;
}

void omniq__fidx_describe(omniq__fidx_t *ix, const char *qdir, int priority, int64_t eta_ms,
                          const char *id, omniq__pending_t *p) {
  (void)ix;
  p->iprio = omniq__fname_iprio(priority);
  p->eta = omniq__fname_eta(eta_ms);
  memcpy(p->id, id, OMNIQ_ID_SIZE);
  snprintf(p->qdir, sizeof p->qdir, "%s", qdir);
  omniq__fname_pending(p->iprio, p->eta, p->id, p->name);
}

void omniq__fidx_announce(omniq__fidx_t *ix, const omniq__pending_t *p, size_t n) {
  size_t len = 0, cap = n * (OMNIQ__QDIR_SIZE + OMNIQ__PNAME_SIZE + 2);
  char *text = omniq__malloc(cap), err[256];
  pthread_mutex_lock(&ix->lock);
  for (size_t i = 0; i < n; i++) {
    int qi = queue_find(ix, p[i].qdir);
    if (qi >= 0) insert(ix, qi, p[i].iprio, p[i].eta, p[i].id);
    if (text != NULL) len += (size_t)snprintf(text + len, cap - len, "%s/%s\n", p[i].qdir, p[i].name);
  }
  int rc = text != NULL ? omniq__fjournal_append(&ix->journal, text, len, err, sizeof err)
                        : OMNIQ_ENOMEM;
  pthread_mutex_unlock(&ix->lock);
  /* Not an error for the caller: the files are in place; other backends
   * find them at their next scan instead of right away. */
  if (rc != OMNIQ_OK)
    omniq__log(ix->io->log, OMNIQ_LOG_WARNING, "storage.journal", NULL,
               "new pending files not announced: %s", text != NULL ? err : "out of memory");
  omniq__free(text);
}

/* Index of the best due level of queue qi (stale tops dropped), or -1. */
static int best_level(omniq__fidx_t *ix, int qi, int64_t now) {
  omniq__flevels_t *ls = &ix->q[qi]->levels;
  for (size_t j = 0; j < ls->n;) {
    omniq__flevel_t *l = &ls->lv[j];
    while (l->len > 0 && !omniq__forder_at(&ix->order, l->heap[0])->live)
      omniq__forder_release(&ix->order, omniq__flevel_pop(l, &ix->order));
    if (l->len == 0) {
      /* Drop empty levels so a claim never walks priorities long gone. */
      omniq__flevels_drop(ls, j);
      continue;
    }
    if (omniq__forder_at(&ix->order, l->heap[0])->eta <= now) return (int)j;
    j++;
  }
  return -1;
}

static size_t pick(omniq__fidx_t *ix, const int *qis, size_t nqi, int64_t now,
                   omniq__pending_t *out, size_t max) {
  size_t n = 0;
  while (n < max) {
    int bq = -1, bl = -1;
    for (size_t k = 0; k < nqi; k++) {
      int l = best_level(ix, qis[k], now);
      if (l < 0) continue;
      omniq__flevel_t *a = &ix->q[qis[k]]->levels.lv[l];
      if (bq >= 0) {
        omniq__flevel_t *b = &ix->q[bq]->levels.lv[bl];
        if (b->iprio < a->iprio ||
            (b->iprio == a->iprio && !omniq__fent_less(&ix->order, a->heap[0], b->heap[0])))
          continue;
      }
      bq = qis[k];
      bl = l;
    }
    if (bq < 0) break;
    uint32_t top = omniq__flevel_pop(&ix->q[bq]->levels.lv[bl], &ix->order);
    fill(ix, top, &out[n++]);
    omniq__forder_release(&ix->order, top);
  }
  return n;
}

size_t omniq__fidx_take_due(omniq__fidx_t *ix, const char *const *queues, size_t nqueues,
                            int64_t now_ms, int may_rescan, omniq__pending_t *out, size_t max) {
  int qis[OMNIQ_MAX_QUEUES * 4];
  size_t nqi = 0, n;
  char qdir[OMNIQ__QDIR_SIZE];
  pthread_mutex_lock(&ix->lock);
  refresh(ix);
  for (int pass = 0; pass < 2; pass++) {
    nqi = 0;
    for (size_t i = 0; i < nqueues && nqi < sizeof qis / sizeof qis[0]; i++) {
      int qi = omniq__fname_qdir(queues[i], qdir) == OMNIQ_OK ? queue_find(ix, qdir) : -1;
      if (qi >= 0) qis[nqi++] = qi;
    }
    n = pick(ix, qis, nqi, now_ms, out, max);
    if (n > 0 || pass == 1 || !may_rescan || !idle_rescan_due(ix)) break;
    rescan_or_log(ix);
  }
  pthread_mutex_unlock(&ix->lock);
  return n;
}

void omniq__fidx_put_back(omniq__fidx_t *ix, const omniq__pending_t *p) {
  pthread_mutex_lock(&ix->lock);
  int qi = queue_find(ix, p->qdir);
  if (qi >= 0) insert(ix, qi, p->iprio, p->eta, p->id);
  pthread_mutex_unlock(&ix->lock);
}

typedef struct {
  omniq__pending_t *p;
  int found;
} match_t;

static int match_id(omniq__fidx_t *ix, int qi, uint32_t iprio, int64_t eta, const char *id,
                    void *ud) {
  match_t *m = ud;
  if (memcmp(id, m->p->id, OMNIQ_ID_LEN) != 0) return 0;
  insert(ix, qi, iprio, eta, id);
  m->p->iprio = iprio;
  m->p->eta = eta;
  snprintf(m->p->qdir, sizeof m->p->qdir, "%s", ix->q[qi]->qdir);
  omniq__fname_pending(iprio, eta, m->p->id, m->p->name);
  m->found = 1;
  return 1;
}

int omniq__fidx_find(omniq__fidx_t *ix, const char *id, int scan, omniq__pending_t *p) {
  int found = 0;
  pthread_mutex_lock(&ix->lock);
  refresh(ix);
  uint8_t bin[OMNIQ__FID_BYTES];
  omniq__fid_pack(id, bin);
  uint32_t e = omniq__forder_find(&ix->order, bin);
  if (e != OMNIQ__FENT_NONE) {
    fill(ix, e, p);
    found = 1;
  } else if (scan) {
    match_t m = {p, 0};
    char err[8];
    size_t n;
    memset(p, 0, sizeof *p);
    memcpy(p->id, id, OMNIQ_ID_SIZE);
    int rc = list_queues(ix, 0, err, sizeof err);
    for (size_t i = 0; rc == OMNIQ_OK && i < ix->nq && !m.found; i++)
      rc = list_queue(ix, (int)i, 0, match_id, &m, &n, err, sizeof err);
    found = m.found ? 1 : rc != OMNIQ_OK ? rc : 0;
  }
  pthread_mutex_unlock(&ix->lock);
  return found;
}

void omniq__fidx_forget(omniq__fidx_t *ix, const char *id) {
  uint8_t bin[OMNIQ__FID_BYTES];
  omniq__fid_pack(id, bin);
  pthread_mutex_lock(&ix->lock);
  uint32_t e = omniq__forder_find(&ix->order, bin);
  if (e != OMNIQ__FENT_NONE) {
    omniq__forder_kill(&ix->order, e);
    sweep_if_needed(ix);
  }
  pthread_mutex_unlock(&ix->lock);
}

int omniq__fidx_count(omniq__fidx_t *ix, int64_t *count, char *err, size_t errlen) {
  size_t n = 0;
  pthread_mutex_lock(&ix->lock);
  int rc = list_all(ix, 0, NULL, NULL, &n, err, errlen);
  pthread_mutex_unlock(&ix->lock);
  *count = rc == OMNIQ_OK ? (int64_t)n : 0;
  return rc;
}

unsigned long omniq__fidx_scans(omniq__fidx_t *ix) {
  pthread_mutex_lock(&ix->lock);
  unsigned long n = ix->scans;
  pthread_mutex_unlock(&ix->lock);
  return n;
}
