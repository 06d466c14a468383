/* SPDX-License-Identifier: MIT */
/* How the pending index (index.c) learns what is in queue/pending/ without
 * the journal: listing the folders, loading queue/snapshot instead at
 * open, saving it at close, and deciding when an idle claim lists again.
 *
 * Rescans happen when the journal was replaced (rotation), and, when a
 * claim finds nothing due, if the folders' mtimes changed since the last
 * scan (a file dropped in by hand): always when the last scan saw fewer
 * than SMALL_SCAN files, else at most once per max(1 s, 20 x the last
 * scan's cost), so an idle worker on a huge queue spends under 5% of its
 * time listing.
 *
 * A listing opens each queue folder for itself and closes it after (see
 * Descriptors in index.c). Lock: every function here but omniq__fidx_save
 * runs with the index's lock held, or before the index is shared (open). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "storage/file/index_state.h"
#include "storage/file/snapshot.h"

#define SMALL_SCAN 1024
#define RESCAN_MIN_US 1000000

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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

/* Calls fn for each pending file of queue qi (until it returns non-zero);
 * quarantines other names when quarantine is set. *n gets the number of
 * files. An error if the folder cannot be listed (one that is gone holds
 * nothing). */
int omniq__fidx_list_queue(omniq__fidx_t *ix, int qi, int quarantine, omniq__fidx_list_fn fn,
                           void *ud, size_t *n, char *err, size_t errlen) {
  char from[OMNIQ__QDIR_SIZE + 16], id[OMNIQ_ID_SIZE];
  struct dirent *de;
  int fd;
  *n = 0;
  int rc = omniq__fidx_open_queue_dir(ix, ix->q[qi]->qdir, &fd, err, errlen);
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
int omniq__fidx_list_queues(omniq__fidx_t *ix, int quarantine, char *err, size_t errlen) {
  DIR *d = open_listing(ix->pending_fd);
  struct dirent *de;
  int qi, rc = OMNIQ_OK;
  if (d == NULL) return omniq__fio_errno(errno, err, errlen, "file store: listing queue/pending");
  while (rc == OMNIQ_OK && (de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (omniq__fname_qdir_valid(de->d_name, strlen(de->d_name)) && is_dir(ix->pending_fd, de)) {
      rc = omniq__fidx_queue_get(ix, de->d_name, 0, &qi, err, errlen);
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
int omniq__fidx_list_all(omniq__fidx_t *ix, int quarantine, omniq__fidx_list_fn fn, void *ud,
                         size_t *n, char *err, size_t errlen) {
  int rc = omniq__fidx_list_queues(ix, quarantine, err, errlen);
  *n = 0;
  for (size_t i = 0; rc == OMNIQ_OK && i < ix->nq; i++) {
    size_t k;
    rc = omniq__fidx_list_queue(ix, (int)i, quarantine, fn, ud, &k, err, errlen);
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
  omniq__fidx_insert(ix, qi, iprio, eta, id);
  return 0;
}

/* Forgets everything and lists the folders again. A listing that fails
 * leaves the index short of some files (none is lost: they are on disk)
 * and the folder signature unset, so the next idle claim lists again. */
int omniq__fidx_rescan(omniq__fidx_t *ix, char *err, size_t errlen) {
  int64_t start = mono_us();
  size_t n = 0;
  for (size_t i = 0; i < ix->nq; i++) omniq__flevels_free(&ix->q[i]->levels);
  omniq__forder_free(&ix->order);
  ix->sig = folder_sig(ix); /* before listing: a change during it shows next time */
  ix->bulk = 1;
  int rc = omniq__fidx_list_all(ix, 1, scan_insert, NULL, &n, err, errlen);
  ix->bulk = 0;
  omniq__fidx_order_all(ix);
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
  return omniq__fidx_queue_get(l->ix, qdir, 0, &l->qi[q], e, sizeof e) == OMNIQ_OK ? 0 : -1;
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
int omniq__fidx_load_snapshot(omniq__fidx_t *ix) {
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
  omniq__fidx_order_all(ix);
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
void omniq__fidx_rescan_or_log(omniq__fidx_t *ix) {
  char err[256];
  if (omniq__fidx_rescan(ix, err, sizeof err) != OMNIQ_OK)
    omniq__log(ix->io->log, OMNIQ_LOG_WARNING, "storage.listing", NULL,
               "pending folders not fully listed (tried again later): %s", err);
}

int omniq__fidx_idle_rescan_due(omniq__fidx_t *ix) {
  if (folder_sig(ix) == ix->sig) return 0;
  if (ix->scanned < SMALL_SCAN) return 1;
  int64_t wait = ix->scan_cost * 20 > RESCAN_MIN_US ? ix->scan_cost * 20 : RESCAN_MIN_US;
  return mono_us() - ix->scan_at >= wait;
}
