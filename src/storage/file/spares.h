/* SPDX-License-Identifier: MIT */
/* Spare files of the file backend: inodes kept in tmp/ for the next write
 * to reuse instead of creating a file and freeing another (spares.c has
 * the design). */
#ifndef OMNIQ_STORAGE_FILE_SPARES_H
#define OMNIQ_STORAGE_FILE_SPARES_H

#include <pthread.h>
#include <stdatomic.h>

/* Size of a tmp file name: "<pid>-<counter>.tmp". */
#define OMNIQ__TMP_NAME_SIZE 48

/* Most spare files one backend keeps: enough for the slots a pool of
 * runners rewrites at once, few enough that the files left behind by a
 * crash are nothing to speak of. */
#define OMNIQ__SPARES_MAX 64

typedef struct omniq__spares {
  pthread_mutex_t mu;
  int tmp_fd; /* base_dir/tmp, borrowed */
  int n;
  char name[OMNIQ__SPARES_MAX][OMNIQ__TMP_NAME_SIZE]; /* a stack: the latest first */
  atomic_int no_exchange; /* the file system refused RENAME_EXCHANGE once */
} omniq__spares_t;

/* A new, empty pool of spares in tmp_fd. NULL when out of memory. Yours:
 * omniq__spares_free. */
omniq__spares_t *omniq__spares_new(int tmp_fd);
/* Removes every spare file still in the pool and frees it (NULL is fine).
 * No thread may use the pool any more. */
void omniq__spares_free(omniq__spares_t *s);

/* Takes a spare's name into name: 1, or 0 when the pool is empty. The
 * file is the caller's until it renames it or gives it back. */
int omniq__spares_take(omniq__spares_t *s, char name[OMNIQ__TMP_NAME_SIZE]);
/* Gives tmp/name to the pool: 1, or 0 when the pool is full (the caller
 * removes the file). */
int omniq__spares_put(omniq__spares_t *s, const char name[OMNIQ__TMP_NAME_SIZE]);

#endif
