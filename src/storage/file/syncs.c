/* SPDX-License-Identifier: MIT */
/* Group sync for the file backend.
 *
 * Every durable step of the file store ends in a sync: a tmp file's data
 * before it is renamed into place, a folder after a rename into or out of
 * it. Each sync is a journal commit and a disk cache flush, the slowest
 * thing an operation does (milliseconds on a virtual disk), and the same
 * for one file as for many. So threads of one backend do not sync alone:
 * a thread adds its descriptors to the round being gathered and waits; the
 * first thread to find no round running takes every descriptor gathered
 * so far and syncs them all, while newcomers gather the next round. A
 * caller is released only by a round that began after it joined, so what
 * it wrote before joining is durable when it returns — exactly what one
 * sync of its own would have promised.
 *
 * A round first starts writeback of every file's data (sync_file_range
 * SYNC_FILE_RANGE_WRITE), so their blocks are allocated in the file
 * system's current transaction, then fdatasyncs each file (the first
 * commits that transaction with all of them; the rest find their data
 * written and their metadata committed) and fsyncs each folder. One round
 * costs about one commit whatever the number of callers in it.
 *
 * Descriptors are matched by number: every descriptor in a round is open
 * (its caller waits), so two equal numbers are the same open file, synced
 * once. A caller that cannot be added (out of memory) syncs alone. */
#include "storage/file/syncs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "base/alloc.h"

/* One round's work: the descriptors, and where each caller of the round
 * gets its outcome (its own variable: it waits until the round is done). */
typedef struct list {
  omniq__fsync_item_t *v;
  size_t n, cap;
  int **rc;
  size_t nrc, caprc;
} list_t;

struct omniq__fsyncq {
  pthread_mutex_t mu;
  pthread_cond_t done_cv;
  uint64_t gathering; /* the round that new items join */
  uint64_t done;      /* the last round finished (rounds finish in order) */
  int busy;           /* a round is being synced */
  list_t want, run;   /* gathered for `gathering`; being synced (leader's own) */
  omniq__fsync_fn fn; /* NULL: sync_all; tests put theirs */
  void *fn_ud;
};

omniq__fsyncq_t *omniq__fsyncq_new(void) {
  omniq__fsyncq_t *q = omniq__calloc(1, sizeof *q);
  if (q == NULL) return NULL;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->done_cv, NULL);
  q->gathering = 1;
  return q;
}

void omniq__fsyncq_free(omniq__fsyncq_t *q) {
  if (q == NULL) return;
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->done_cv);
  omniq__free(q->want.v);
  omniq__free(q->want.rc);
  omniq__free(q->run.v);
  omniq__free(q->run.rc);
  omniq__free(q);
}

static int sync_one(const omniq__fsync_item_t *it) {
  int rc = it->dir ? fsync(it->fd) : fdatasync(it->fd);
  return rc == 0 ? 0 : errno;
}

/* Data writeback started for every file first, then the syncs: see the
 * design note. Returns the first errno, after trying every item. */
static int sync_all(const omniq__fsync_item_t *items, size_t n) {
  int first = 0;
  if (n > 1)
    for (size_t i = 0; i < n; i++)
      if (!items[i].dir) sync_file_range(items[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  for (size_t i = 0; i < n; i++) {
    int e = sync_one(&items[i]);
    if (e != 0 && first == 0) first = e;
  }
  return first;
}

/* Adds items to the round being gathered, each descriptor once, and rc
 * to the outcomes it sets; 0, or ENOMEM with nothing added. */
static int gather(list_t *l, const omniq__fsync_item_t *items, size_t n, int *rc) {
  if (l->nrc == l->caprc) {
    size_t cap = l->caprc ? l->caprc * 2 : 8;
    int **v = omniq__realloc(l->rc, cap * sizeof *v);
    if (v == NULL) return ENOMEM;
    l->rc = v;
    l->caprc = cap;
  }
  if (l->n + n > l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    while (cap < l->n + n) cap *= 2;
    omniq__fsync_item_t *v = omniq__realloc(l->v, cap * sizeof *v);
    if (v == NULL) return ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < l->n && (l->v[j].fd != items[i].fd || l->v[j].dir != items[i].dir)) j++;
    if (j == l->n) l->v[l->n++] = items[i];
  }
  l->rc[l->nrc++] = rc;
  return 0;
}

int omniq__fsyncq_sync(omniq__fsyncq_t *q, const omniq__fsync_item_t *items, size_t n) {
  int rc = 0;
  if (n == 0) return 0;
  if (q == NULL) return sync_all(items, n);
  pthread_mutex_lock(&q->mu);
  if (gather(&q->want, items, n, &rc) != 0) {
    pthread_mutex_unlock(&q->mu);
    return sync_all(items, n);
  }
  uint64_t mine = q->gathering;
  while (q->done < mine) {
    if (q->busy) {
      pthread_cond_wait(&q->done_cv, &q->mu);
      continue;
    }
    /* Lead the round being gathered: take its list, let the next gather. */
    uint64_t round = q->gathering++;
    list_t l = q->want;
    q->want = q->run;
    q->want.n = q->want.nrc = 0;
    q->busy = 1;
    omniq__fsync_fn fn = q->fn;
    void *fn_ud = q->fn_ud;
    pthread_mutex_unlock(&q->mu);
    int e = fn != NULL ? fn(l.v, l.n, fn_ud) : sync_all(l.v, l.n);
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < l.nrc; i++) *l.rc[i] = e;
    q->run = l;
    q->done = round;
    q->busy = 0;
    pthread_cond_broadcast(&q->done_cv);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

void omniq__fsyncq_set_fn(omniq__fsyncq_t *q, omniq__fsync_fn fn, void *ud) {
  pthread_mutex_lock(&q->mu);
  q->fn = fn;
  q->fn_ud = ud;
  pthread_mutex_unlock(&q->mu);
}

size_t omniq__fsyncq_gathered(omniq__fsyncq_t *q) {
  pthread_mutex_lock(&q->mu);
  size_t n = q->want.n;
  pthread_mutex_unlock(&q->mu);
  return n;
}
