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
 * Listing the folders, loading queue/snapshot instead at open, and when
 * to list again are in scan.c; the state both files share is in
 * index_state.h.
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

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "storage/file/index_state.h"

#define SWEEP_MIN 4096 /* dead entries below this are left to surface */

/* ---- queues --------------------------------------------------------------- */

static int queue_find(omniq__fidx_t *ix, const char *qdir) {
  for (size_t i = 0; i < ix->nq; i++)
    if (strcmp(ix->q[i]->qdir, qdir) == 0) return (int)i;
  return -1;
}

int omniq__fidx_open_queue_dir(const omniq__fidx_t *ix, const char *qdir, int *fd, char *err,
                               size_t errlen) {
  *fd = openat(ix->pending_fd, qdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (*fd >= 0) return OMNIQ_OK;
  if (errno == ENOENT) return OMNIQ_ENOTFOUND;
  return omniq__fio_errno(errno, err, errlen, "file store: opening queue/pending/%s", qdir);
}

/* Puts the table index of folder qdir in *qi, checking (and with create,
 * making) the folder. OMNIQ_ENOTFOUND if it does not exist and !create. */
int omniq__fidx_queue_get(omniq__fidx_t *ix, const char *qdir, int create, int *qi, char *err,
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
  omniq__fidx_q_t *q = NULL;
  if (ix->nq == ix->capq) {
    size_t cap = ix->capq ? ix->capq * 2 : 4;
    omniq__fidx_q_t **bigger = omniq__realloc(ix->q, cap * sizeof *bigger);
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
void omniq__fidx_order_all(omniq__fidx_t *ix) {
  for (size_t i = 0; i < ix->nq; i++)
    for (size_t j = 0; j < ix->q[i]->levels.n; j++)
      omniq__flevel_heapify(&ix->q[i]->levels.lv[j], &ix->order);
}

static void sweep_if_needed(omniq__fidx_t *ix) {
  if (!ix->bulk && ix->order.dead >= SWEEP_MIN && ix->order.dead > ix->order.live)
    omniq__fidx_order_all(ix);
}

void omniq__fidx_insert(omniq__fidx_t *ix, int qi, uint32_t iprio, int64_t eta, const char *id) {
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

/* ---- the journal ---------------------------------------------------------- */

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
  if (omniq__fidx_queue_get(ix, qdir, 0, &qi, e, sizeof e) == OMNIQ_OK)
    omniq__fidx_insert(ix, qi, iprio, eta, id);
}

static void refresh(omniq__fidx_t *ix) {
  if (omniq__fjournal_poll(&ix->journal, journal_line, ix)) omniq__fidx_rescan_or_log(ix);
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
  if (!omniq__fidx_load_snapshot(ix) && (rc = omniq__fidx_rescan(ix, err, errlen)) != OMNIQ_OK) {
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
  int rc = omniq__fidx_queue_get(ix, qdir, create, &qi, err, errlen);
  pthread_mutex_unlock(&ix->lock);
  if (rc == OMNIQ_ENOTFOUND) snprintf(err, errlen, "file store: no queue folder %s", qdir);
  return rc;
}

int omniq__fidx_open_dir(omniq__fidx_t *ix, const char *qdir, int *fd, char *err, size_t errlen) {
  int rc = omniq__fidx_open_queue_dir(ix, qdir, fd, err, errlen);
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
    if (qi >= 0) omniq__fidx_insert(ix, qi, p[i].iprio, p[i].eta, p[i].id);
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
    if (n > 0 || pass == 1 || !may_rescan || !omniq__fidx_idle_rescan_due(ix)) break;
    omniq__fidx_rescan_or_log(ix);
  }
  pthread_mutex_unlock(&ix->lock);
  return n;
}

size_t omniq__fidx_peek_due(omniq__fidx_t *ix, const char *const *queues, size_t nqueues,
                            int64_t now_ms, omniq__pending_t *out, size_t max) {
  int qis[OMNIQ_MAX_QUEUES * 4];
  size_t nqi = 0;
  char qdir[OMNIQ__QDIR_SIZE];
  pthread_mutex_lock(&ix->lock);
  for (size_t i = 0; i < nqueues && nqi < sizeof qis / sizeof qis[0]; i++) {
    int qi = omniq__fname_qdir(queues[i], qdir) == OMNIQ_OK ? queue_find(ix, qdir) : -1;
    if (qi >= 0) qis[nqi++] = qi;
  }
  /* Taken and put back under one hold of the lock, so no claimer ever
   * finds them missing. */
  size_t n = pick(ix, qis, nqi, now_ms, out, max);
  for (size_t i = 0; i < n; i++)
    omniq__fidx_insert(ix, queue_find(ix, out[i].qdir), out[i].iprio, out[i].eta, out[i].id);
  pthread_mutex_unlock(&ix->lock);
  return n;
}

void omniq__fidx_put_back(omniq__fidx_t *ix, const omniq__pending_t *p) {
  pthread_mutex_lock(&ix->lock);
  int qi = queue_find(ix, p->qdir);
  if (qi >= 0) omniq__fidx_insert(ix, qi, p->iprio, p->eta, p->id);
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
  omniq__fidx_insert(ix, qi, iprio, eta, id);
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
    int rc = omniq__fidx_list_queues(ix, 0, err, sizeof err);
    for (size_t i = 0; rc == OMNIQ_OK && i < ix->nq && !m.found; i++)
      rc = omniq__fidx_list_queue(ix, (int)i, 0, match_id, &m, &n, err, sizeof err);
    found = m.found ? 1 : rc != OMNIQ_OK ? rc : 0;
  }
  pthread_mutex_unlock(&ix->lock);
  return found;
}

const char *omniq__fidx_first_known(omniq__fidx_t *ix, const char *const *ids, size_t n) {
  const char *known = NULL;
  uint8_t bin[OMNIQ__FID_BYTES];
  pthread_mutex_lock(&ix->lock);
  refresh(ix);
  for (size_t i = 0; i < n && known == NULL; i++) {
    omniq__fid_pack(ids[i], bin);
    if (omniq__forder_find(&ix->order, bin) != OMNIQ__FENT_NONE) known = ids[i];
  }
  pthread_mutex_unlock(&ix->lock);
  return known;
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
  int rc = omniq__fidx_list_all(ix, 0, NULL, NULL, &n, err, errlen);
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