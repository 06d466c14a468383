/* SPDX-License-Identifier: MIT */
/* File backend I/O.
 *
 * Atomic replacement: data goes to a new file in tmp/ (O_EXCL, so two
 * writers never share one), is fdatasync'ed, then renamed over the target,
 * and the target's directory is fsync'ed so the rename itself survives a
 * power cut. rename(2) replaces the directory entry in one step, so a reader
 * (or a restart after a crash) sees the old file or the new one. tmp/ lives
 * under base_dir, on the same file system as every target, which rename
 * needs.
 *
 * Every sync goes through the backend's group sync (syncs.c), so threads
 * that sync at once share one round. An operation of several renames may
 * put its folder syncs off (io->defer) and make them together, once per
 * folder. It must still sync a folder before any step that relies on that
 * folder's entries being on the disk: renames are not assumed to reach the
 * disk in the order they were made (ext4 without a journal writes folder
 * blocks back in any order; docs/storage-file.md, Durability).
 *
 * With io->fsync off the order of operations is the same and a process
 * crash still leaves whole files (the page cache survives the process); only
 * a machine crash may lose the latest writes, or leave a renamed file empty.
 *
 * Quarantine: a file the backend cannot use is renamed into quarantine/
 * under a name that says where it came from, never deleted: an operator may
 * want it back. */
#include "storage/file/io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "omniq.h"

/* Process-wide, so threads of one process never pick the same tmp name;
 * the handle's owner number (owner.c) separates handles. */
static _Atomic unsigned long tmp_counter;

int omniq__fio_errno(int e, char *err, size_t errlen, const char *fmt, ...) {
  char what[OMNIQ__ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (err != NULL && errlen > 0) snprintf(err, errlen, "%s: %s", what, strerror(e));
  /* A file that vanished under an operation that needed it is a storage
   * fault here, not "no such task": callers test ENOENT themselves. */
  return e == ENOENT ? OMNIQ_ESTORAGE : omniq__errno_code(e);
}

/* Writes every piece, in one writev when the kernel takes it all. */
static int write_all(int fd, const struct iovec *pieces, int n) {
  struct iovec iov[OMNIQ__FIO_IOV_MAX];
  if (n > OMNIQ__FIO_IOV_MAX) {
    errno = EINVAL;
    return -1;
  }
  memcpy(iov, pieces, (size_t)n * sizeof *iov);
  struct iovec *v = iov;
  while (n > 0) {
    ssize_t w = writev(fd, v, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (; n > 0 && (size_t)w >= v->iov_len; v++, n--) w -= (ssize_t)v->iov_len;
    if (n > 0) {
      v->iov_base = (char *)v->iov_base + w;
      v->iov_len -= (size_t)w;
    }
  }
  return 0;
}

int omniq__fio_stage(const omniq__fio_t *io, const char *data, size_t len,
                     char tmp_name[OMNIQ__TMP_NAME_SIZE], char *err, size_t errlen) {
  struct iovec one = {(void *)data, len};
  return omniq__fio_stagev(io, &one, 1, tmp_name, err, errlen);
}

/* Opens one of io's spares for writing over (without O_TRUNC: cutting a
 * file frees its blocks); 0 and *fd >= 0, or -1 when there is none left
 * (a spare removed meanwhile by another process's stale-tmp cleanup is
 * skipped). With fsync on, spares wait for a sync of tmp/ that makes the
 * exchanges that freed them durable (spares.c); a writer that finds only
 * waiting ones makes it. */
static int spare_open(const omniq__fio_t *io, char tmp_name[OMNIQ__TMP_NAME_SIZE], int *fd) {
  unsigned long epoch;
  if (io->spares == NULL) return -1;
  if (io->fsync && omniq__spares_unsynced(io->spares, &epoch)) {
    const omniq__fsync_item_t tmp = {io->tmp_fd, 1};
    if (omniq__fsyncq_sync(io->syncq, &tmp, 1) != 0) return -1;
    omniq__spares_synced(io->spares, epoch);
  }
  while (omniq__spares_take(io->spares, tmp_name)) {
    *fd = openat(io->tmp_fd, tmp_name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (*fd >= 0) return 0;
    unlinkat(io->tmp_fd, tmp_name, 0); /* whatever it is now, it is no spare */
  }
  return -1;
}

/* v in decimal at p; the end. */
static char *put_decimal(char *p, unsigned long long v) {
  char d[20];
  int n = 0;
  do d[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  while (n > 0) *p++ = d[--n];
  return p;
}

/* "<owner>-<n>.tmp" (what "%llu-%lu.tmp" wrote), by hand: a name is made
 * for every file a write cannot take from the spares, two a task. */
static void tmp_name_of(char tmp_name[OMNIQ__TMP_NAME_SIZE], unsigned long long owner,
                        unsigned long n) {
  char *p = put_decimal(tmp_name, owner);
  *p++ = '-';
  p = put_decimal(p, n);
  memcpy(p, ".tmp", 5);
}

/* Opens a tmp file (a spare, else a new one) and writes the pieces to it,
 * unsynced; *fd is left open for the caller to sync and close. */
static int stage_open(const omniq__fio_t *io, const struct iovec *iov, int n,
                      char tmp_name[OMNIQ__TMP_NAME_SIZE], int *fd, char *err, size_t errlen) {
  *fd = -1;
  int spare = spare_open(io, tmp_name, fd) == 0;
  for (int tries = 0; *fd < 0 && tries < 100; tries++) {
    tmp_name_of(tmp_name, io->owner, atomic_fetch_add(&tmp_counter, 1));
    *fd = openat(io->tmp_fd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    /* EEXIST: a dead handle that drew our number left this name. */
    if (*fd < 0 && errno != EEXIST && errno != EINTR)
      return omniq__fio_errno(errno, err, errlen, "file store: creating tmp/%s", tmp_name);
  }
  if (*fd < 0) return omniq__fio_errno(EEXIST, err, errlen, "file store: creating a tmp file");
  off_t len = 0;
  for (int i = 0; i < n; i++) len += (off_t)iov[i].iov_len;
  /* A spare is written over from offset 0 and cut to the new length: only
   * blocks past that end (none, for files under a block) are freed. */
  if (write_all(*fd, iov, n) != 0 || (spare && ftruncate(*fd, len) != 0)) {
    int e = errno;
    close(*fd);
    *fd = -1;
    unlinkat(io->tmp_fd, tmp_name, 0);
    return omniq__fio_errno(e, err, errlen, "file store: writing tmp/%s", tmp_name);
  }
  if (io->stamp != NULL) { /* after the last write: any later one moves the time again */
    const struct timespec times[2] = {{0, UTIME_OMIT}, io->stamp->at};
    io->stamp->set = futimens(*fd, times) == 0;
  }
  return OMNIQ_OK;
}

int omniq__fio_stagev(const omniq__fio_t *io, const struct iovec *iov, int n,
                      char tmp_name[OMNIQ__TMP_NAME_SIZE], char *err, size_t errlen) {
  omniq__fio_file_t one = {iov, n, {0}};
  int rc = omniq__fio_stage_set(io, &one, 1, err, errlen);
  if (rc == OMNIQ_OK) memcpy(tmp_name, one.tmp, OMNIQ__TMP_NAME_SIZE);
  return rc;
}

/* Adds n descriptors to h; 0, or ENOMEM with nothing added (the caller
 * then syncs them at once, as without h). */
static int hold(omniq__fio_held_t *h, const omniq__fsync_item_t *data, int n) {
  if (h->n + (size_t)n > h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    while (cap < h->n + (size_t)n) cap *= 2;
    int *v = omniq__realloc(h->fd, cap * sizeof *v);
    if (v == NULL) return ENOMEM;
    h->fd = v;
    h->cap = cap;
  }
  for (int i = 0; i < n; i++) h->fd[h->n++] = data[i].fd;
  return 0;
}

int omniq__fio_held_sync(const omniq__fio_t *io, omniq__fio_held_t *h, char *err, size_t errlen) {
  int e = 0;
  if (h->n > 0 && io->fsync) {
    omniq__fsync_item_t *items = omniq__malloc(h->n * sizeof *items);
    if (items == NULL) {
      /* No memory for one round: each file alone, as a lone write would. */
      for (size_t i = 0; i < h->n && e == 0; i++) e = fdatasync(h->fd[i]) == 0 ? 0 : errno;
    } else {
      for (size_t i = 0; i < h->n; i++) items[i] = (omniq__fsync_item_t){h->fd[i], 0};
      e = omniq__fsyncq_sync(io->syncq, items, h->n);
      omniq__free(items);
    }
  }
  for (size_t i = 0; i < h->n; i++)
    if (close(h->fd[i]) != 0 && e == 0) e = errno;
  h->n = 0;
  return e == 0 ? OMNIQ_OK : omniq__fio_errno(e, err, errlen, "file store: syncing staged files");
}

void omniq__fio_held_free(omniq__fio_held_t *h) {
  for (size_t i = 0; i < h->n; i++) close(h->fd[i]);
  omniq__free(h->fd);
  *h = (omniq__fio_held_t)OMNIQ__FIO_HELD_INIT;
}

int omniq__fio_stage_set(const omniq__fio_t *io, omniq__fio_file_t *files, int n, char *err,
                         size_t errlen) {
  omniq__fsync_item_t data[OMNIQ__FIO_SET_MAX] = {{0, 0}};
  int made = 0, rc = OMNIQ_OK, e = 0;
  if (n > OMNIQ__FIO_SET_MAX) return omniq__fio_errno(EINVAL, err, errlen, "file store: staging");
  for (; made < n; made++) {
    rc = stage_open(io, files[made].iov, files[made].n, files[made].tmp, &data[made].fd, err,
                    errlen);
    if (rc != OMNIQ_OK) break;
  }
  /* Held: the descriptors wait, open, for the round of the whole batch. */
  if (rc == OMNIQ_OK && io->fsync && io->held != NULL && hold(io->held, data, made) == 0)
    return OMNIQ_OK;
  if (rc == OMNIQ_OK && io->fsync) e = omniq__fsyncq_sync(io->syncq, data, (size_t)made);
  if (rc == OMNIQ_OK && e != 0)
    rc = omniq__fio_errno(e, err, errlen, "file store: syncing tmp/%s", files[0].tmp);
  for (int i = 0; i < made; i++) {
    if (close(data[i].fd) != 0 && rc == OMNIQ_OK)
      rc = omniq__fio_errno(errno, err, errlen, "file store: closing tmp/%s", files[i].tmp);
  }
  if (rc != OMNIQ_OK)
    for (int i = 0; i < made; i++) unlinkat(io->tmp_fd, files[i].tmp, 0);
  return rc;
}

int omniq__fio_publish(const omniq__fio_t *io, const char *tmp_name, int dirfd, const char *name,
                       char *err, size_t errlen) {
  if (renameat(io->tmp_fd, tmp_name, dirfd, name) != 0) {
    int e = errno;
    unlinkat(io->tmp_fd, tmp_name, 0);
    return omniq__fio_errno(e, err, errlen, "file store: renaming tmp/%s to %s", tmp_name, name);
  }
  return omniq__fio_sync_dir(io, dirfd, err, errlen);
}

int omniq__fio_replace(const omniq__fio_t *io, const char *tmp_name, int dirfd, const char *name,
                       char *err, size_t errlen) {
  if (io->spares == NULL || atomic_load(&io->spares->no_exchange))
    return omniq__fio_publish(io, tmp_name, dirfd, name, err, errlen);
  if (renameat2(io->tmp_fd, tmp_name, dirfd, name, RENAME_EXCHANGE) == 0) {
    /* The old file now sits at tmp_name, out of every reader's reach. */
    if (!omniq__spares_put(io->spares, tmp_name)) unlinkat(io->tmp_fd, tmp_name, 0);
    return omniq__fio_sync_dir(io, dirfd, err, errlen);
  }
  /* EINVAL: a file system without the flag (ENOSYS: a kernel without
   * renameat2); ENOENT: no target. A plain rename does either. */
  if (errno == EINVAL || errno == ENOSYS) atomic_store(&io->spares->no_exchange, 1);
  return omniq__fio_publish(io, tmp_name, dirfd, name, err, errlen);
}

int omniq__fio_swap(const omniq__fio_t *io, const char *tmp_name, int dirfd, const char *name,
                    char *err, size_t errlen) {
  if (renameat2(io->tmp_fd, tmp_name, dirfd, name, RENAME_EXCHANGE) == 0) {
    unlinkat(io->tmp_fd, tmp_name, 0); /* the old file, out of every new reader's reach */
    return omniq__fio_sync_dir(io, dirfd, err, errlen);
  }
  return omniq__fio_publish(io, tmp_name, dirfd, name, err, errlen);
}

void omniq__fio_unstage(const omniq__fio_t *io, const char *tmp_name) {
  unlinkat(io->tmp_fd, tmp_name, 0);
}

int omniq__fio_write(const omniq__fio_t *io, int dirfd, const char *name, const char *data,
                     size_t len, char *err, size_t errlen) {
  struct iovec one = {(void *)data, len};
  return omniq__fio_writev(io, dirfd, name, &one, 1, err, errlen);
}

int omniq__fio_writev(const omniq__fio_t *io, int dirfd, const char *name,
                      const struct iovec *iov, int n, char *err, size_t errlen) {
  char tmp[OMNIQ__TMP_NAME_SIZE];
  int rc = omniq__fio_stagev(io, iov, n, tmp, err, errlen);
  return rc == OMNIQ_OK ? omniq__fio_publish(io, tmp, dirfd, name, err, errlen) : rc;
}

/* omniq__fio_read, and with `shared` the read made under an OFD read lock
 * on the whole file (taken after the fstat; released by the close). */
static int read_file(int dirfd, const char *name, int shared, char **out, size_t *len,
                     char *err, size_t errlen) {
  struct stat st;
  size_t cap, got = 0;
  char *buf;
  *out = NULL;
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return OMNIQ_ENOTFOUND;
    /* A symlink, or a file we may not read: never a file we wrote, and no
     * retry will make it usable. The caller quarantines it. */
    if (errno == ELOOP || errno == EACCES || errno == EPERM) {
      snprintf(err, errlen, "file store: %s cannot be read: %s", name, strerror(errno));
      return OMNIQ_ECORRUPT;
    }
    return omniq__fio_errno(errno, err, errlen, "file store: opening %s", name);
  }
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return omniq__fio_errno(e, err, errlen, "file store: reading %s", name);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    snprintf(err, errlen, "file store: %s is not a regular file", name);
    return OMNIQ_ECORRUPT;
  }
  struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  while (shared && fcntl(fd, F_OFD_SETLKW, &fl) != 0) {
    int e = errno;
    if (e == EINTR) continue;
    close(fd);
    return omniq__fio_errno(e, err, errlen, "file store: locking %s", name);
  }
  if (shared && fstat(fd, &st) != 0) { /* the size the writer left */
    int e = errno;
    close(fd);
    return omniq__fio_errno(e, err, errlen, "file store: reading %s", name);
  }
  /* The size is a hint: read to EOF whatever it says. A read of a regular
   * file that comes up short of what it asked is at the end of the file,
   * so one that got at least the size is the last (no second read to see
   * the 0 of EOF: a claim and a finish each read one file). */
  cap = (size_t)st.st_size + 64;
  buf = omniq__malloc(cap);
  while (buf != NULL) {
    if (got + 1 == cap) {
      char *bigger = omniq__realloc(buf, cap * 2);
      if (bigger == NULL) omniq__free(buf);
      buf = bigger;
      cap *= 2;
      continue;
    }
    ssize_t r = read(fd, buf + got, cap - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      omniq__free(buf);
      close(fd);
      return omniq__fio_errno(e, err, errlen, "file store: reading %s", name);
    }
    if (r == 0) break;
    got += (size_t)r;
    if ((size_t)r < cap - 1 - (got - (size_t)r) && got >= (size_t)st.st_size) break;
  }
  if (buf == NULL) {
    close(fd);
    snprintf(err, errlen, "file store: out of memory reading %s", name);
    return OMNIQ_ENOMEM;
  }
  close(fd);
  buf[got] = '\0';
  *out = buf;
  if (len != NULL) *len = got;
  return OMNIQ_OK;
}

int omniq__fio_read(int dirfd, const char *name, char **out, size_t *len, char *err,
                    size_t errlen) {
  return read_file(dirfd, name, 0, out, len, err, errlen);
}

int omniq__fio_read_shared(int dirfd, const char *name, char **out, size_t *len, char *err,
                           size_t errlen) {
  return read_file(dirfd, name, 1, out, len, err, errlen);
}

/* Adds dirfd to d, once: 1 if held (now or already), 0 if it cannot be
 * (no descriptor to duplicate, or d full) and must be synced at once. */
static int defer_dir(const omniq__fio_t *io, omniq__fio_dirs_t *d, int dirfd) {
  /* A kept folder outlives the operation: safe to hold as it is. */
  for (int i = 0; i < io->nkept; i++) {
    if (io->kept[i] != dirfd) continue;
    for (int j = 0; j < d->n; j++)
      if (!d->owned[j] && d->fd[j] == dirfd) return 1;
    if (d->n == OMNIQ__FIO_DIRS_MAX) return 0;
    d->fd[d->n] = dirfd;
    d->owned[d->n++] = 0;
    return 1;
  }
  /* Any other folder (a queue's) is opened per operation: held as a
   * duplicate, and taken once however many renames went into it. */
  struct stat st;
  if (fstat(dirfd, &st) != 0) return 0;
  for (int j = 0; j < d->n; j++)
    if (d->owned[j] && d->dev[j] == (unsigned long long)st.st_dev &&
        d->ino[j] == (unsigned long long)st.st_ino)
      return 1;
  if (d->n == OMNIQ__FIO_DIRS_MAX) return 0;
  int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return 0;
  d->fd[d->n] = fd;
  d->owned[d->n] = 1;
  d->dev[d->n] = (unsigned long long)st.st_dev;
  d->ino[d->n++] = (unsigned long long)st.st_ino;
  return 1;
}

int omniq__fio_sync_dir(const omniq__fio_t *io, int dirfd, char *err, size_t errlen) {
  if (!io->fsync) return OMNIQ_OK;
  if (io->defer != NULL && defer_dir(io, io->defer, dirfd)) return OMNIQ_OK;
  const omniq__fsync_item_t dir = {dirfd, 1};
  int e = omniq__fsyncq_sync(io->syncq, &dir, 1);
  return e == 0 ? OMNIQ_OK : omniq__fio_errno(e, err, errlen, "file store: syncing a directory");
}

int omniq__fio_dirs_sync(const omniq__fio_t *io, omniq__fio_dirs_t *d, char *err,
                         size_t errlen) {
  omniq__fsync_item_t dirs[OMNIQ__FIO_DIRS_MAX];
  for (int i = 0; i < d->n; i++) dirs[i] = (omniq__fsync_item_t){d->fd[i], 1};
  int e = io->fsync && d->n > 0 ? omniq__fsyncq_sync(io->syncq, dirs, (size_t)d->n) : 0;
  omniq__fio_dirs_drop(d);
  return e == 0 ? OMNIQ_OK : omniq__fio_errno(e, err, errlen, "file store: syncing a directory");
}

void omniq__fio_dirs_drop(omniq__fio_dirs_t *d) {
  for (int i = 0; i < d->n; i++)
    if (d->owned[i]) close(d->fd[i]);
  d->n = 0;
}

int omniq__fio_mkdir_open(int dirfd, const char *name, int *fd, char *err, size_t errlen) {
  *fd = -1;
  if (mkdirat(dirfd, name, 0777) != 0 && errno != EEXIST)
    return omniq__fio_errno(errno, err, errlen, "cannot create folder %s", name);
  *fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*fd < 0) return omniq__fio_errno(errno, err, errlen, "cannot open folder %s", name);
  return OMNIQ_OK;
}

/* Names from disk are untrusted: keep what is safe to print and to use as a
 * file name, replace the rest. */
static void sanitize(const char *in, char *out, size_t outlen) {
  size_t i = 0;
  for (; in[i] != '\0' && i + 1 < outlen; i++) {
    unsigned char c = (unsigned char)in[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_' || (c == '.' && i > 0);
    out[i] = ok ? (char)c : '_';
  }
  out[i] = '\0';
}

void omniq__fio_quarantine(const omniq__fio_t *io, int dirfd, const char *from, const char *name,
                           const char *reason) {
  char safe[160], qname[256];
  int rc = -1;
  sanitize(name, safe, sizeof safe);
  for (int n = 0; n < 1000 && rc != 0; n++) {
    if (n == 0)
      snprintf(qname, sizeof qname, "%s.%s", from, safe);
    else
      snprintf(qname, sizeof qname, "%s.%s.%d", from, safe, n);
    for (char *p = qname; *p; p++)
      if (*p == '/') *p = '.';
    rc = renameat2(dirfd, name, io->quarantine_fd, qname, RENAME_NOREPLACE);
    if (rc != 0 && errno == EINVAL) {
      /* A file system without RENAME_NOREPLACE: check, then rename. */
      struct stat st;
      if (fstatat(io->quarantine_fd, qname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        errno = EEXIST;
      } else {
        rc = renameat(dirfd, name, io->quarantine_fd, qname);
      }
    }
    if (rc != 0 && errno != EEXIST) break;
  }
  if (rc == 0) {
    char e[8];
    omniq__fio_sync_dir(io, io->quarantine_fd, e, sizeof e);
    omniq__log(io->log, OMNIQ_LOG_WARNING, "storage.quarantined", NULL,
               "%s/%s moved to quarantine/%s: %s", from, safe, qname, reason);
  } else if (errno != ENOENT) {
    omniq__log(io->log, OMNIQ_LOG_ERROR, "storage.quarantine_failed", NULL,
               "%s/%s could not be moved to quarantine (%s): %s", from, safe, strerror(errno),
               reason);
  }
}

void omniq__fio_empty_folder(int fd) {
  int lfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
  struct dirent *de;
  if (d == NULL) {
    if (lfd >= 0) close(lfd);
    return;
  }
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) unlinkat(fd, de->d_name, 0);
  closedir(d);
}
