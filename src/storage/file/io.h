/* SPDX-License-Identifier: MIT */
/* File backend I/O: atomic replacement of a file, whole-file reads,
 * directory syncs, tmp-file hygiene and quarantine. Every write of the file
 * backend goes through omniq__fio_write or omniq__fio_stage, so "a crash
 * leaves the old or the new file, never a torn one" is argued once, here. */
#ifndef OMNIQ_STORAGE_FILE_IO_H
#define OMNIQ_STORAGE_FILE_IO_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/uio.h>
#include <time.h>

#include "base/log.h"
#include "storage/file/spares.h"
#include "storage/file/syncs.h"

/* Most folders one omniq__fio_dirs_t holds; one more is synced at once. */
#define OMNIQ__FIO_DIRS_MAX 8

/* The folders whose sync an operation puts off, to make them in one group
 * round (omniq__fio_dirs_sync) or not at all (_drop): every folder its
 * renames since the last round changed, each once. A kept folder is held
 * as it is; any other as its own duplicate descriptor, known by its inode.
 * Renames are not assumed to reach the disk in order (docs/storage-file.md,
 * Durability): an operation syncs every folder a later step relies on
 * before that step. */
typedef struct omniq__fio_dirs {
  int n;
  int fd[OMNIQ__FIO_DIRS_MAX];
  unsigned char owned[OMNIQ__FIO_DIRS_MAX]; /* fd is a duplicate to close */
  unsigned long long dev[OMNIQ__FIO_DIRS_MAX], ino[OMNIQ__FIO_DIRS_MAX];
} omniq__fio_dirs_t;

#define OMNIQ__FIO_DIRS_INIT {.n = 0}

/* Most folders an omniq__fio_t keeps open for its backend's life. */
#define OMNIQ__FIO_KEPT_MAX 8

/* Staged files whose data sync an operation of many tasks puts off, to
 * make every file's in one group round (omniq__fio_held_sync) before any
 * of them is renamed into place: their descriptors, kept open until then. */
typedef struct omniq__fio_held {
  int *fd;
  size_t n, cap;
} omniq__fio_held_t;

#define OMNIQ__FIO_HELD_INIT {NULL, 0, 0}

/* A modification time a write sets on the files it stages, after their
 * bytes (claimed.c: the mark that lets a finish trust its claim's slot). */
typedef struct omniq__fio_stamp {
  struct timespec at;
  int set; /* out: 1 once futimens set it on the last file staged */
} omniq__fio_stamp_t;

typedef struct omniq__fio {
  int tmp_fd;        /* base_dir/tmp: every write starts here */
  int quarantine_fd; /* base_dir/quarantine */
  int fsync;         /* settings->fsync: 0 skips every fdatasync/fsync */
  const omniq__log_t *log;
  omniq__fsyncq_t *syncq;   /* the backend's group sync (syncs.c); NULL: sync alone */
  omniq__fio_dirs_t *defer; /* non-NULL: folder syncs are collected here, not made */
  omniq__fio_held_t *held;  /* non-NULL: staging leaves the data sync to omniq__fio_held_sync
                               (never set for a call that renames what it staged) */
  omniq__spares_t *spares;  /* files in tmp/ a write reuses (spares.c); NULL: none */
  omniq__fio_stamp_t *stamp; /* non-NULL: each staged file's mtime is set to stamp->at */
  unsigned long long owner;  /* the handle's owner number, first in every tmp name (owner.c) */
  /* Folders the backend keeps open until it closes (running/, results/,
   * the terminal folders): a put-off sync of one of them holds it as it
   * is, where any other folder is duplicated first (one fcntl and one
   * close fewer per rename into them). */
  int kept[OMNIQ__FIO_KEPT_MAX];
  int nkept;
} omniq__fio_t;

/* Tmp files older than this whose owner is gone belong to a writer that
 * died (owner.c). */
#define OMNIQ__TMP_STALE_SECONDS 60

/* Most pieces one write may be given in (omniq__fio_stagev, _writev). */
#define OMNIQ__FIO_IOV_MAX 8

/* Writes len bytes to a file in tmp/ (a spare if there is one, else a new
 * file) and syncs it; its name goes to
 * tmp_name. The caller renames it into place (omniq__fio_publish) or drops
 * it (omniq__fio_unstage). */
int omniq__fio_stage(const omniq__fio_t *io, const char *data, size_t len,
                     char tmp_name[OMNIQ__TMP_NAME_SIZE], char *err, size_t errlen);
/* The same with the bytes given as n pieces (at most OMNIQ__FIO_IOV_MAX),
 * written in order: a file made of parts already encoded elsewhere needs
 * no copy into one buffer. */
int omniq__fio_stagev(const omniq__fio_t *io, const struct iovec *iov, int n,
                      char tmp_name[OMNIQ__TMP_NAME_SIZE], char *err, size_t errlen);
/* Most files one omniq__fio_stage_set call stages. */
#define OMNIQ__FIO_SET_MAX 4

/* One file of omniq__fio_stage_set: its pieces, and the tmp name it got. */
typedef struct omniq__fio_file {
  const struct iovec *iov;
  int n;
  char tmp[OMNIQ__TMP_NAME_SIZE];
} omniq__fio_file_t;

/* Stages n files (at most OMNIQ__FIO_SET_MAX) like omniq__fio_stagev, and
 * syncs them all in one group round. On error none is left in tmp/. */
int omniq__fio_stage_set(const omniq__fio_t *io, omniq__fio_file_t *files, int n, char *err,
                         size_t errlen);
/* Renames a staged file to dirfd/name (replacing any) and syncs dirfd. */
int omniq__fio_publish(const omniq__fio_t *io, const char *tmp_name, int dirfd, const char *name,
                       char *err, size_t errlen);
/* Like omniq__fio_publish for a target that exists and that every reader
 * opens under a lock the caller holds (a task's slot): the old file is
 * exchanged out and kept as a spare rather than freed (spares.c). Falls
 * back to a plain rename where the file system has no RENAME_EXCHANGE or
 * the target is missing. */
int omniq__fio_replace(const omniq__fio_t *io, const char *tmp_name, int dirfd, const char *name,
                       char *err, size_t errlen);
/* Like omniq__fio_replace for a target that readers open without any lock
 * of the writer's: the old file is exchanged out and removed, never kept
 * as a spare (a reader may still have it open). Exchanging rather than
 * renaming over it starts no writeback of the new file (ext4's
 * auto_da_alloc), so a file replaced again soon never reaches the disk and
 * its removal frees no blocks. */
int omniq__fio_swap(const omniq__fio_t *io, const char *tmp_name, int dirfd, const char *name,
                    char *err, size_t errlen);
void omniq__fio_unstage(const omniq__fio_t *io, const char *tmp_name);
/* Stage + publish: dirfd/name holds the old bytes or the new ones, never a
 * mix, whenever the process or the machine stops. */
int omniq__fio_write(const omniq__fio_t *io, int dirfd, const char *name, const char *data,
                     size_t len, char *err, size_t errlen);
/* The same with the bytes as pieces (see omniq__fio_stagev). */
int omniq__fio_writev(const omniq__fio_t *io, int dirfd, const char *name,
                      const struct iovec *iov, int n, char *err, size_t errlen);

/* Reads dirfd/name whole. On OMNIQ_OK *out is yours (omniq__free), NUL
 * terminated, *len bytes long (len may be NULL). OMNIQ_ENOTFOUND when the
 * file does not exist (err left empty: absence is often an answer). */
int omniq__fio_read(int dirfd, const char *name, char **out, size_t *len, char *err,
                    size_t errlen);

/* Like omniq__fio_read, under an OFD read lock on the file: for a file its
 * writer rewrites in place under a write lock (totals.c). */
int omniq__fio_read_shared(int dirfd, const char *name, char **out, size_t *len, char *err,
                           size_t errlen);

/* fsync(dirfd) when io->fsync is on (through the group sync); else
 * nothing. With io->defer set, dirfd joins the folders held there instead
 * (synced at once if it cannot be held: no descriptor, or the set full). */
int omniq__fio_sync_dir(const omniq__fio_t *io, int dirfd, char *err, size_t errlen);
/* Syncs every folder held in d in one group round, and empties d. */
int omniq__fio_dirs_sync(const omniq__fio_t *io, omniq__fio_dirs_t *d, char *err, size_t errlen);
/* Empties d without syncing: for steps whose durability nothing promises. */
void omniq__fio_dirs_drop(omniq__fio_dirs_t *d);

/* Syncs the data of every file held in h in one group round, closes them
 * and empties h. OMNIQ_OK, or the error of the round: then no held file
 * may be renamed into place (the caller unstages them). */
int omniq__fio_held_sync(const omniq__fio_t *io, omniq__fio_held_t *h, char *err, size_t errlen);
/* Closes every file held in h without syncing, and frees h's array. */
void omniq__fio_held_free(omniq__fio_held_t *h);

/* Creates dirfd/name as a directory if missing and opens it; *fd yours. */
int omniq__fio_mkdir_open(int dirfd, const char *name, int *fd, char *err, size_t errlen);

/* Formats "<what>: strerror(e)" into err and returns e's OMNIQ_E* code. */
int omniq__fio_errno(int e, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Moves dirfd/name (found in the folder called `from`) into quarantine/ and
 * logs a warning with the reason. Never fails loudly: if the move fails the
 * file is left where it is and the failure is logged. */
void omniq__fio_quarantine(const omniq__fio_t *io, int dirfd, const char *from, const char *name,
                           const char *reason);

/* Unlinks every file in folder fd (best effort; subfolders stay). */
void omniq__fio_empty_folder(int fd);

#endif
