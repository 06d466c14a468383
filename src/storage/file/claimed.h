/* SPDX-License-Identifier: MIT */
/* What this handle's claims left in their slots, so the finish of a run it
 * claimed need not read and parse the slot again (claimed.c). */
#ifndef OMNIQ_STORAGE_FILE_CLAIMED_H
#define OMNIQ_STORAGE_FILE_CLAIMED_H

#include <stdint.h>
#include <sys/types.h>

#include "omniq/storage.h"
#include "storage/file/io.h"

typedef struct omniq__fclaimed omniq__fclaimed_t;

/* NULL when out of memory: then nothing is remembered and every finish
 * reads its slot, as without. */
omniq__fclaimed_t *omniq__fclaimed_new(unsigned long long owner);
void omniq__fclaimed_free(omniq__fclaimed_t *c);

/* A mark no other write of any handle leaves (claimed.c), for the claim
 * about to write a slot: set io->stamp to it before the write. */
void omniq__fclaimed_mark(omniq__fclaimed_t *c, omniq__fio_stamp_t *stamp);

/* Remembers t (copied) as what the slot written with stamp holds, size
 * bytes long. Nothing when the stamp was not set, t is large, or memory
 * is short. */
void omniq__fclaimed_put(omniq__fclaimed_t *c, const omniq_task_t *t,
                         const omniq__fio_stamp_t *stamp, off_t size);

/* Under id's task lock: 1 and *t (yours) when running_fd/idname is still
 * the file a claim of this handle wrote for id under token (one fstatat:
 * its size and its mark), else 0 and the caller reads the slot. Either
 * way the memory of id is dropped. */
int omniq__fclaimed_take(omniq__fclaimed_t *c, int running_fd, const char *idname, const char *id,
                         int64_t token, omniq_task_t **t);

/* Forgets id (its slot is about to change under the caller's lock). */
void omniq__fclaimed_drop(omniq__fclaimed_t *c, const char *id);

#endif
