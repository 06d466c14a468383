/* SPDX-License-Identifier: MIT */
/* The additions journal.
 *
 * Writers append with O_APPEND and one write(2) per batch, so lines from
 * several processes never interleave on a local file system. Readers keep
 * an offset and consume only whole lines: a write in progress may be seen
 * half done, and the rest is read next time.
 *
 * Rotation: the journal would grow forever, so a writer that finds it past
 * omniq__fjournal_rotate_bytes renames a fresh empty file over it. Every
 * reader stat()s the path on each poll; a new inode means "lines may have
 * been missed" and the reader rescans the folders, then reads the new file
 * from offset 0. A writer re-checks the inode after appending and, if the
 * file was replaced meanwhile, appends again to the new one, so a line is
 * never only in a file that readers have already left. (Proof sketch: a
 * writer's line is in the file that was current when it re-checked; if a
 * rotation came after that check, it also came after the pending file was
 * created, and every reader rescans after seeing that rotation.)
 *
 * Nothing here is fsync'ed: after a machine crash every backend rescans at
 * open, and a torn tail is a line that does not parse and is skipped. */
#include "storage/file/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "omniq.h"

long omniq__fjournal_rotate_bytes = 8L << 20;

#define CHUNK 65536

static int reopen(omniq__fjournal_t *j, char *err, size_t errlen) {
  struct stat st;
  int fd = openat(j->queue_fd, OMNIQ__JOURNAL_NAME, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || fstat(fd, &st) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    return omniq__fio_errno(e, err, errlen, "file store: opening queue/%s", OMNIQ__JOURNAL_NAME);
  }
  if (j->fd >= 0) close(j->fd);
  j->fd = fd;
  j->dev = st.st_dev;
  j->ino = st.st_ino;
  j->off = 0;
  j->replaced = 1;
  return OMNIQ_OK;
}

int omniq__fjournal_open(omniq__fjournal_t *j, const omniq__fio_t *io, int queue_fd, char *err,
                         size_t errlen) {
  struct stat st;
  j->io = io;
  j->queue_fd = queue_fd;
  j->fd = -1;
  int rc = reopen(j, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (fstat(j->fd, &st) == 0) j->off = st.st_size;
  j->replaced = 0;
  return OMNIQ_OK;
}

void omniq__fjournal_close(omniq__fjournal_t *j) {
  if (j->fd >= 0) close(j->fd);
  j->fd = -1;
}

/* 1 if queue/journal is still the file j->fd has open. */
static int current(const omniq__fjournal_t *j, off_t *size) {
  struct stat st;
  if (fstatat(j->queue_fd, OMNIQ__JOURNAL_NAME, &st, 0) != 0) return 0;
  if (size != NULL) *size = st.st_size;
  return st.st_ino == j->ino && st.st_dev == j->dev;
}

static int append_once(omniq__fjournal_t *j, const char *text, size_t len) {
  ssize_t w;
  do
    w = write(j->fd, text, len);
  while (w < 0 && errno == EINTR);
  return w == (ssize_t)len ? 0 : -1;
}

static void rotate(omniq__fjournal_t *j) {
  char tmp[OMNIQ__TMP_NAME_SIZE], e[8];
  if (omniq__fio_stage(j->io, "", 0, tmp, e, sizeof e) != OMNIQ_OK) return;
  if (renameat(j->io->tmp_fd, tmp, j->queue_fd, OMNIQ__JOURNAL_NAME) != 0) {
    omniq__fio_unstage(j->io, tmp);
    return;
  }
  reopen(j, e, sizeof e); /* marks replaced: our own reader rescans too */
}

int omniq__fjournal_append(omniq__fjournal_t *j, const char *text, size_t len, char *err,
                           size_t errlen) {
  off_t size = 0;
  if (len == 0) return OMNIQ_OK;
  if (j->fd < 0 && reopen(j, err, errlen) != OMNIQ_OK) return OMNIQ_ESTORAGE;
  for (int tries = 0; tries < 4; tries++) {
    if (append_once(j, text, len) != 0)
      return omniq__fio_errno(errno ? errno : EIO, err, errlen, "file store: appending to queue/%s",
                              OMNIQ__JOURNAL_NAME);
    if (current(j, &size)) {
      if (size > omniq__fjournal_rotate_bytes) rotate(j);
      return OMNIQ_OK;
    }
    /* Replaced under us: write the lines to the new file as well. */
    if (reopen(j, err, errlen) != OMNIQ_OK) return OMNIQ_ESTORAGE;
  }
  return OMNIQ_OK;
}

int omniq__fjournal_poll(omniq__fjournal_t *j, void (*fn)(void *ud, const char *line, size_t len),
                         void *ud) {
  char buf[CHUNK];
  off_t size = 0;
  int replaced = 0;
  char e[8];
  if (j->fd < 0 || !current(j, &size)) {
    if (reopen(j, e, sizeof e) != OMNIQ_OK) return 1;
    current(j, &size);
  }
  if (j->replaced) {
    replaced = 1;
    j->replaced = 0;
  }
  while (j->off < size) {
    ssize_t r = pread(j->fd, buf, sizeof buf, j->off);
    if (r <= 0) break;
    size_t start = 0, used = 0;
    for (size_t i = 0; i < (size_t)r; i++) {
      if (buf[i] != '\n') continue;
      fn(ud, buf + start, i - start);
      start = i + 1;
      used = start;
    }
    if (used == 0) {
      /* No newline in a whole chunk: not a line we wrote. Skip it. */
      if ((size_t)r < sizeof buf) break;
      used = (size_t)r;
    }
    j->off += (off_t)used;
  }
  return replaced;
}
