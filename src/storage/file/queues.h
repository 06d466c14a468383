/* SPDX-License-Identifier: MIT */
/* Queue settings of the file backend (pause, rate limit and its window),
 * and chores: queues/<qdir>.json and chores/<name>, each written whole
 * under its lock in the backend's meta lock space. See queues.c. */
#ifndef OMNIQ_STORAGE_FILE_QUEUES_H
#define OMNIQ_STORAGE_FILE_QUEUES_H

#include "storage/file/backend.h"

typedef struct omniq__fqset {
  int paused;
  int64_t rate_limit, rate_period_ms;
  int64_t window_start, window_count; /* the current rate window and its starts */
} omniq__fqset_t;

int omniq__fq_open(omniq__fs_t *fs);
void omniq__fq_close(omniq__fs_t *fs);

/* The settings of queue folder qdir, without a lock (a settings file is
 * replaced whole, so a read sees one version); cached while the file is
 * unchanged. No file: all zero. */
int omniq__fq_read(omniq__fs_t *fs, const char *qdir, omniq__fqset_t *out);

/* The settings of queue folder qdir as the file holds them now, never
 * from the cache: for a reader holding the queue's lock, which must see
 * the last write exactly. */
int omniq__fq_read_locked(omniq__fs_t *fs, const char *qdir, omniq__fqset_t *out);

/* The lock of a queue's settings (meta space): taken before any task lock. */
int omniq__fq_lock(omniq__fs_t *fs, const char *qdir, char *err, size_t errlen);
void omniq__fq_unlock(omniq__fs_t *fs, const char *qdir);
/* Writes a queue's settings (lock held). */
int omniq__fq_write(omniq__fs_t *fs, const char *qdir, const omniq__fqset_t *set, char *err,
                    size_t errlen);

/* What a claim at now may take from a queue whose settings are set: 0 when
 * paused or its window is used up, else the starts left (INT64_MAX with no
 * limit). *window gets the window now falls in. */
int64_t omniq__fq_allowance(const omniq__fqset_t *set, int64_t now, int64_t *window);

/* The operations (storage ABI 3). */
int omniq__fs_set_paused(void *backend, const char *queue, int paused, char *err, size_t errlen);
int omniq__fs_set_rate(void *backend, const char *queue, int64_t limit, int64_t period_ms,
                       char *err, size_t errlen);
int omniq__fs_claim_chore(void *backend, const char *chore, int64_t now_ms, int64_t next_ms,
                          int *won, char *err, size_t errlen);

/* Calls fn for each queue that has a settings file, with its settings. */
typedef int (*omniq__fq_fn)(omniq__fs_t *fs, const char *qdir, const omniq__fqset_t *set,
                            void *ud);
int omniq__fq_each(omniq__fs_t *fs, omniq__fq_fn fn, void *ud);

#endif
