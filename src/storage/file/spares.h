/* SPDX-License-Identifier: MIT */
/* Spare files of the file backend: inodes kept in tmp/ for the next write
 * to reuse instead of creating a file and freeing another (spares.c has
 * the design). */
#ifndef OMNIQ_STORAGE_FILE_SPARES_H
#define OMNIQ_STORAGE_FILE_SPARES_H

#include <pthread.h>
#include <stdatomic.h>

/* Size of a tmp file name: "<owner>-<counter>.tmp" (owner.c). */
#define OMNIQ__TMP_NAME_SIZE 48

/* Most spare files one backend keeps: enough that with fsync on the
 * spares waiting for a sync of tmp/ (OMNIQ__SPARES_BATCH at a time) never
 * fill the pool while a pool of runners rewrites slots and totals (at 64,
 * 0.6 files a task were freed again), few enough that the files left
 * behind by a crash are nothing to speak of: at most 512 files of under
 * one block each (2 MiB) and 28 KiB of names per open handle. */
#define OMNIQ__SPARES_MAX 512

/* With fsync on, how many spares must wait for a sync of tmp/ before a
 * writer makes it (spares.c): fewer, and the writer creates a new file. */
#define OMNIQ__SPARES_BATCH 32

typedef struct omniq__spare {
  char name[OMNIQ__TMP_NAME_SIZE];
  unsigned long epoch; /* 0: ready; else usable once a sync of tmp/ begun after it ended */
} omniq__spare_t;

typedef struct omniq__spares {
  pthread_mutex_t mu;
  int tmp_fd;          /* base_dir/tmp, borrowed */
  int durable;         /* fsync on: a spare waits for a sync of tmp/ before its reuse */
  unsigned long epoch; /* of the next sync of tmp/; starts at 1 */
  int n;
  omniq__spare_t v[OMNIQ__SPARES_MAX];
  atomic_int no_exchange; /* the file system refused RENAME_EXCHANGE once */
} omniq__spares_t;

/* A new, empty pool of spares in tmp_fd; durable: the backend syncs (see
 * omniq__spares_unsynced). NULL when out of memory. Yours:
 * omniq__spares_free. */
omniq__spares_t *omniq__spares_new(int tmp_fd, int durable);
/* Removes every spare file still in the pool and frees it (NULL is fine).
 * No thread may use the pool any more. */
void omniq__spares_free(omniq__spares_t *s);

/* Takes a ready spare's name into name: 1, or 0 when there is none. The
 * file is the caller's until it renames it or removes it. */
int omniq__spares_take(omniq__spares_t *s, char name[OMNIQ__TMP_NAME_SIZE]);
/* Gives tmp/name, just exchanged out of its place, to the pool: 1, or 0
 * when the pool is full (the caller removes the file). */
int omniq__spares_put(omniq__spares_t *s, const char name[OMNIQ__TMP_NAME_SIZE]);

/* 1 when no spare is ready but OMNIQ__SPARES_BATCH wait for a sync of
 * tmp/; then *epoch
 * is that sync's, to pass to omniq__spares_synced once it succeeded. */
int omniq__spares_unsynced(omniq__spares_t *s, unsigned long *epoch);
/* tmp/ was synced by a sync begun after omniq__spares_unsynced gave
 * epoch: the spares put before it are ready. */
void omniq__spares_synced(omniq__spares_t *s, unsigned long epoch);

#endif
