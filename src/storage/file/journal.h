/* SPDX-License-Identifier: MIT */
/* The additions journal: queue/journal, one line "<qdir>/<pending name>"
 * per file put into queue/pending/ by any process. It lets every open
 * backend learn about new pending files by reading a few new bytes instead
 * of listing the folders (see index.c). It is a hint, never the truth:
 * the folders are. Not thread-safe: the index calls it under its lock. */
#ifndef OMNIQ_STORAGE_FILE_JOURNAL_H
#define OMNIQ_STORAGE_FILE_JOURNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "storage/file/io.h"

#define OMNIQ__JOURNAL_NAME "journal"

typedef struct omniq__fjournal {
  const omniq__fio_t *io;
  int queue_fd; /* queue/, borrowed */
  int fd;       /* the journal file we read and append to, or -1 */
  dev_t dev;
  ino_t ino;
  off_t off;    /* read up to here (always the end of a whole line) */
  int replaced; /* a new journal file was put in place: the reader must rescan */
} omniq__fjournal_t;

/* Rotation threshold in bytes. A variable so tests can make it small. */
extern long omniq__fjournal_rotate_bytes;

/* Opens (creating if missing) queue/journal and starts reading at its
 * current end: the caller scans the folders right after. */
int omniq__fjournal_open(omniq__fjournal_t *j, const omniq__fio_t *io, int queue_fd, char *err,
                         size_t errlen);
void omniq__fjournal_close(omniq__fjournal_t *j);

/* Appends text (whole lines) in one write; rotates the journal when it
 * grew past the threshold. Errors are returned but harmless to the store:
 * readers fall back to scanning. */
int omniq__fjournal_append(omniq__fjournal_t *j, const char *text, size_t len, char *err,
                           size_t errlen);

/* Calls fn for each whole line added since the last call (without the
 * newline). Returns 1 when the journal file was replaced since the last
 * call (rotated, deleted, or never opened): lines may have been missed and
 * the caller must rescan the folders; else 0. */
int omniq__fjournal_poll(omniq__fjournal_t *j, void (*fn)(void *ud, const char *line, size_t len),
                         void *ud);

#endif
