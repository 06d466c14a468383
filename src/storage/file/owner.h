/* SPDX-License-Identifier: MIT */
/* Who owns a file in tmp/: every handle of the file backend names what it
 * puts there after a random owner number it holds a lock on (owner.c has
 * the design). */
#ifndef OMNIQ_STORAGE_FILE_OWNER_H
#define OMNIQ_STORAGE_FILE_OWNER_H

#include "storage/file/io.h"

/* Owner numbers are at least this: above any pid (Linux caps pid_max at
 * 2^22), so a name starting with a pid (left by an older version) is never
 * taken for one, and above the lock file's stripe bytes. */
#define OMNIQ__OWNER_MIN (1ull << 32)

/* Picks io->owner, a random number no live handle of the store holds, and
 * locks its byte in lock_fd (base_dir/lock, open for writing) until lock_fd
 * closes. OMNIQ_OK, or OMNIQ_ESTORAGE with err set when the file system
 * refuses the lock. */
int omniq__fowner_claim(omniq__fio_t *io, int lock_fd, char *err, size_t errlen);

/* Removes what writers that died left in tmp/: a file or folder whose
 * owner's byte in lock_fd is not locked (or, for a name starting with a
 * pid, whose process is gone), once older than OMNIQ__TMP_STALE_SECONDS.
 * What a live handle owns stays, however old: its spares, a batch it is
 * staging. Best effort: a failure leaves the entry for the next open. */
void omniq__fowner_clean_tmp(const omniq__fio_t *io, int lock_fd);

/* 1 while a handle holds owner number n (its byte in lock_fd is locked,
 * or the lock cannot be asked about); 0 once it is gone. */
int omniq__fowner_alive(int lock_fd, unsigned long long n);

#endif
