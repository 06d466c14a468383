/* SPDX-License-Identifier: MIT */
/* Unique keys of the file backend: keys/<qdir>/<hash>.<n>, one file per key
 * naming the task that took it, written under the key's lock in the meta
 * lock space. See keys.c. */
#ifndef OMNIQ_STORAGE_FILE_KEYS_H
#define OMNIQ_STORAGE_FILE_KEYS_H

#include "storage/file/backend.h"

/* The key locks of a batch (one per queue and key of the tasks that carry
 * one), taken together before any task lock. *set is yours: release it
 * with omniq__fkeys_release. */
int omniq__fkeys_lock(omniq__fs_t *fs, omniq_task_t *const *tasks, size_t n, uint16_t **set,
                      size_t *nset, char *err, size_t errlen);
void omniq__fkeys_release(omniq__fs_t *fs, uint16_t *set, size_t nset);

/* With the keys' locks held and no task lock: for each task i with a key,
 * the id of the task that holds it at the task's created_at goes to
 * holders[i] ("" if free; holders may be NULL). Returns OMNIQ_EEXISTS if
 * any is held (nothing written), else takes every key for its task and
 * returns OMNIQ_OK. */
int omniq__fkeys_take(omniq__fs_t *fs, omniq_task_t *const *tasks, size_t n,
                      char (*holders)[OMNIQ_ID_SIZE], char *err, size_t errlen);

/* The same for one task that already exists (a retry by hand), at now:
 * OMNIQ_EEXISTS with holder filled if another task holds its key. */
int omniq__fkeys_take_for(omniq__fs_t *fs, const omniq_task_t *t, int64_t now,
                          char holder[OMNIQ_ID_SIZE], char *err, size_t errlen);

/* Forgets the key of a task that is gone (deleted, purged): takes the key's
 * lock, and removes its file if it still names that task. No task lock may
 * be held. */
void omniq__fkeys_forget(omniq__fs_t *fs, const char *id, const char *queue, const char *key);

#endif
