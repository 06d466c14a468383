/* SPDX-License-Identifier: MIT */
/* Task locks of the file backend (see locks.h for what they are).
 *
 * Locks: a task lock is taken before the index lock, never after; no thread
 * holds two task locks except omniq__flock_take_set, which takes the OFD
 * bytes in stripe order (so two processes' batches cannot deadlock) and,
 * for the threads of its process, either the mutexes of at most
 * OMNIQ__FLOCK_SMALL_SET stripes in stripe order under the gate held
 * shared (a pool's batch: the process's other tasks go on meanwhile), or
 * the gate exclusively (so no other thread of the process holds any task
 * lock). Holding hundreds of stripe mutexes instead would work too, but
 * lock checkers (and readers) cope badly with that. Ordered, small sets
 * cannot deadlock with each other nor with single locks, which hold one
 * mutex and wait for nothing else. The gate prefers writers, so a batch is
 * not starved by a stream of claims. */
#include "storage/file/locks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "omniq.h"
#include "storage/file/io.h"

void omniq__flock_init(omniq__flock_t *l, const char *base_dir) {
  pthread_rwlockattr_t ra;
  l->fd = -1;
  l->base_dir = base_dir;
  for (int i = 0; i < OMNIQ__FLOCK_STRIPES; i++) pthread_mutex_init(&l->stripes[i], NULL);
  pthread_rwlockattr_init(&ra);
  pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&l->gate, &ra);
  pthread_rwlockattr_destroy(&ra);
}

void omniq__flock_destroy(omniq__flock_t *l) {
  for (int i = 0; i < OMNIQ__FLOCK_STRIPES; i++) pthread_mutex_destroy(&l->stripes[i]);
  pthread_rwlock_destroy(&l->gate);
}

/* FNV-1a of the whole name: for a task id, its 36 characters. */
static unsigned stripe_of(const char *id) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++) h = (h ^ *p) * 16777619u;
  return h % OMNIQ__FLOCK_STRIPES;
}

unsigned omniq__flock_stripe(const char *name) { return stripe_of(name); }

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

int omniq__flock_take_stripe(omniq__flock_t *l, unsigned s, char *err, size_t errlen) {
  pthread_rwlock_rdlock(&l->gate);
  pthread_mutex_lock(&l->stripes[s]);
  if (ofd_lock(l->fd, s, F_WRLCK, 1) == 0) return OMNIQ_OK;
  int e = errno;
  pthread_mutex_unlock(&l->stripes[s]);
  pthread_rwlock_unlock(&l->gate);
  return omniq__fio_errno(e, err, errlen, "file store: taking a task lock in %s/lock",
                          l->base_dir);
}

int omniq__flock_take(omniq__flock_t *l, const char *id, char *err, size_t errlen) {
  return omniq__flock_take_stripe(l, stripe_of(id), err, errlen);
}

int omniq__flock_try(omniq__flock_t *l, const char *id) {
  unsigned s = stripe_of(id);
  if (pthread_rwlock_tryrdlock(&l->gate) != 0) return 0;
  if (pthread_mutex_trylock(&l->stripes[s]) == 0) {
    if (ofd_lock(l->fd, s, F_WRLCK, 0) == 0) return 1;
    pthread_mutex_unlock(&l->stripes[s]);
  }
  pthread_rwlock_unlock(&l->gate);
  return 0;
}

void omniq__flock_release_stripe(omniq__flock_t *l, unsigned s) {
  ofd_lock(l->fd, s, F_UNLCK, 0);
  pthread_mutex_unlock(&l->stripes[s]);
  pthread_rwlock_unlock(&l->gate);
}

void omniq__flock_release(omniq__flock_t *l, const char *id) {
  omniq__flock_release_stripe(l, stripe_of(id));
}

static int cmp_u16(const void *a, const void *b) {
  return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static void unlock_bytes(omniq__flock_t *l, const uint16_t *set, size_t n) {
  for (size_t i = n; i > 0; i--) ofd_lock(l->fd, set[i - 1], F_UNLCK, 0);
}

/* Keeps the other threads of the process off the k stripes of set
 * (sorted, distinct): a small set (a pool's batch of outcomes, a claim of
 * many) holds the gate shared and its stripes' mutexes, in stripe order,
 * so the other threads' tasks go on meanwhile; a large one (an enqueue of
 * many) the gate exclusively, rather than hundreds of mutexes. */
static void lock_threads(omniq__flock_t *l, const uint16_t *set, size_t k) {
  if (k > OMNIQ__FLOCK_SMALL_SET) {
    pthread_rwlock_wrlock(&l->gate);
    return;
  }
  pthread_rwlock_rdlock(&l->gate);
  for (size_t i = 0; i < k; i++) pthread_mutex_lock(&l->stripes[set[i]]);
}

static void unlock_threads(omniq__flock_t *l, const uint16_t *set, size_t k) {
  for (size_t i = k; k <= OMNIQ__FLOCK_SMALL_SET && i > 0; i--)
    pthread_mutex_unlock(&l->stripes[set[i - 1]]);
  pthread_rwlock_unlock(&l->gate);
}

int omniq__flock_take_set(omniq__flock_t *l, const char *const *ids, size_t n, uint16_t **set,
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
  lock_threads(l, s, k);
  for (size_t i = 0; i < k; i++) {
    if (ofd_lock(l->fd, s[i], F_WRLCK, 1) != 0) {
      int e = errno;
      unlock_bytes(l, s, i);
      unlock_threads(l, s, k);
      omniq__free(s);
      return omniq__fio_errno(e, err, errlen, "file store: taking task locks in %s/lock",
                              l->base_dir);
    }
  }
  *set = s;
  *nset = k;
  return OMNIQ_OK;
}

void omniq__flock_release_set(omniq__flock_t *l, uint16_t *set, size_t nset) {
  unlock_bytes(l, set, nset);
  unlock_threads(l, set, nset);
  omniq__free(set);
}
