/* SPDX-License-Identifier: MIT */
/* Scratch directories for tests. Plain POSIX: also built into the storage
 * contract library (tests/contract/). */
#ifndef OMNIQ_TEST_FILES_H
#define OMNIQ_TEST_FILES_H

/* Makes a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path,
 * or NULL. */
char *th_tmpdir(void);
/* Removes a directory tree; NULL is a no-op. Frees path. */
void th_rmtree(char *path);
/* Bytes of disk a directory tree takes (files and folders), leaving out
 * SQLite's WAL and shared-memory files. Not thread-safe. */
long long th_du(const char *path);

#endif
