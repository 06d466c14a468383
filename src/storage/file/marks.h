/* SPDX-License-Identifier: MIT */
/* The listing index of the file backend: one empty marker file per task,
 * in a tree per status, sharded by the time in the task's id, so a page of
 * a listing reads a few small folders in id order instead of every task
 * (see marks.c). */
#ifndef OMNIQ_STORAGE_FILE_MARKS_H
#define OMNIQ_STORAGE_FILE_MARKS_H

#include "storage/file/backend.h"

/* The tree a status's markers are in: PENDING and RUNNING share tree 0. */
int omniq__fmark_tree(int status);

/* Puts task id's marker (queue folder qdir) in the tree of status, moving
 * it from whichever tree holds it (hint first: the status it is expected
 * in, or -1) or creating it; nothing to do when hint's tree is status's.
 * Idempotent; call under the task's lock. A failure is logged and
 * returned; the listing repairs a marker it finds in the wrong tree, so a
 * caller may go on. */
int omniq__fmark_set(omniq__fs_t *fs, const char *id, const char *qdir, int status, int hint);
/* With on, the folders that markers leave are removed (when empty) only
 * at the call with 0, once each, from this thread: a batch moves many
 * markers out of a few folders. */
void omniq__fmark_defer(int on);
/* Makes the PENDING marker of a task about to be enqueued (before its file
 * is placed, so no task is ever without one). */
int omniq__fmark_new(omniq__fs_t *fs, const char *id, const char *qdir);
/* Removes task id's marker from every tree (under the task's lock). */
void omniq__fmark_drop(omniq__fs_t *fs, const char *id, const char *qdir);

/* Visits the markers of the tree of `status` in id order (descending with
 * desc; PENDING and RUNNING are one tree),
 * strictly after after_id when it is not NULL. fn gets each marker's id
 * and queue folder; it returns 0 to go on, 1 to stop (the walk then
 * returns 0), or an OMNIQ_E* code to fail the walk with. Folders are read
 * one at a time and only as far as the walk goes. */
typedef int (*omniq__fmark_fn)(omniq__fs_t *fs, const char *id, const char *qdir, void *ud);
int omniq__fmark_walk(omniq__fs_t *fs, int status, const char *after_id, int desc,
                      omniq__fmark_fn fn, void *ud);

/* The finish-time tree, index/done/: one more marker per finished task,
 * "<time>.<id>.<qdir>" sharded by its finish time, so retention visits
 * tasks in the order they finished and stops at the cutoff. Made after a
 * task's end, removed with the task or when it is retried. */
int omniq__fmark_timed(omniq__fs_t *fs, const char *id, const char *qdir, int64_t finished_ms);
void omniq__fmark_untimed(omniq__fs_t *fs, const char *id, const char *qdir, int64_t finished_ms);
/* Visits the finish-time markers, earliest first; fn as for a walk. */
typedef int (*omniq__fmark_timed_fn)(omniq__fs_t *fs, const char *id, const char *qdir,
                                     int64_t finished_ms, void *ud);
int omniq__fmark_walk_finished(omniq__fs_t *fs, omniq__fmark_timed_fn fn, void *ud);

/* Builds the index from the task folders when index/READY is missing (a
 * store of FORMAT 1, or a build a crash cut short), then writes READY. */
int omniq__fmark_build(omniq__fs_t *fs, char *err, size_t errlen);

#endif
