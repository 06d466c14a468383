/* SPDX-License-Identifier: MIT */
/* Group sync: the fdatasync and fsync calls of concurrent operations of
 * one backend made together, by one thread, once per round (syncs.c has
 * the design). */
#ifndef OMNIQ_STORAGE_FILE_SYNCS_H
#define OMNIQ_STORAGE_FILE_SYNCS_H

#include <stddef.h>

typedef struct omniq__fsyncq omniq__fsyncq_t;

/* One descriptor to make durable: a file's data (dir 0, fdatasync) or a
 * folder's entries (dir 1, fsync). */
typedef struct omniq__fsync_item {
  int fd;
  int dir;
} omniq__fsync_item_t;

/* A new, empty group. NULL when out of memory. Yours: omniq__fsyncq_free. */
omniq__fsyncq_t *omniq__fsyncq_new(void);
/* Frees q (NULL is fine); no thread may be syncing through it. */
void omniq__fsyncq_free(omniq__fsyncq_t *q);

/* Returns once every item is durable: synced by a round that began after
 * this call did (this thread's, or another's that took it along). The
 * descriptors must stay open until then. Returns 0, or the errno of a
 * failed sync of that round (every caller in a round with a failure gets
 * it: a failed flush says nothing certain about any file). q NULL: the
 * items are synced here, one by one. */
int omniq__fsyncq_sync(omniq__fsyncq_t *q, const omniq__fsync_item_t *items, size_t n);

/* For tests: the call a round makes instead of syncing (returns 0 or an
 * errno), and how many items wait for the next round. */
typedef int (*omniq__fsync_fn)(const omniq__fsync_item_t *items, size_t n, void *ud);
void omniq__fsyncq_set_fn(omniq__fsyncq_t *q, omniq__fsync_fn fn, void *ud);
size_t omniq__fsyncq_gathered(omniq__fsyncq_t *q);

#endif
