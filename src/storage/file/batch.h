/* SPDX-License-Identifier: MIT */
/* Batches of the file backend: how enqueue of many tasks is all or none,
 * even for a producer killed in the middle (see batch.c). */
#ifndef OMNIQ_STORAGE_FILE_BATCH_H
#define OMNIQ_STORAGE_FILE_BATCH_H

#include "storage/file/backend.h"

#define OMNIQ__BATCH_NAME_SIZE 48

/* One batch on its way in: a folder, first tmp/<name>, then batches/<name>. */
typedef struct omniq__fbatch {
  char name[OMNIQ__BATCH_NAME_SIZE];
  int fd;        /* the folder; -1 once ended */
  int committed; /* renamed into batches/: the tasks exist from then on */
} omniq__fbatch_t;

/* Makes tmp/<name>/ for a new batch. *io becomes fs->io writing into that
 * folder, so every record staged through it (omniq__frec_stage) lands in
 * the batch. On error nothing is left behind. */
int omniq__fbatch_begin(omniq__fs_t *fs, omniq__fbatch_t *b, omniq__fio_t *io, char *err,
                        size_t errlen);
/* The commit point: syncs the folder and renames it into batches/ (then
 * syncs that). Call holding the task locks of every task in it. On error
 * nothing is committed. */
int omniq__fbatch_commit(omniq__fs_t *fs, omniq__fbatch_t *b, char *err, size_t errlen);
/* Ends a batch: an uncommitted one is removed with what it holds; a
 * committed one is removed once empty, else left for recovery. */
void omniq__fbatch_end(omniq__fs_t *fs, omniq__fbatch_t *b);
/* Publishes into pending/ what producers that died after their commit left
 * in batches/, quarantining what cannot be read. Takes task locks: call
 * holding none. Run at open and with each pass over expired leases. */
void omniq__fbatch_recover(omniq__fs_t *fs);

/* Fault injection for tests: the nth omniq__fbatch_step from now SIGKILLs
 * the process (0: never). Enqueue of many, finish_many and a claim of many
 * call omniq__fbatch_step between each of their file-system steps, so a
 * test can stop a producer or a worker at every one. */
void omniq__fbatch_crash_after(long n);
void omniq__fbatch_step(void);

#endif
