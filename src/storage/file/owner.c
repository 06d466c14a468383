/* SPDX-License-Identifier: MIT */
/* Owners of tmp/ entries, and the open's cleanup of what dead ones left.
 *
 * Every write of the file backend starts in tmp/, and a handle keeps files
 * there for long: its spares (spares.c), which may not have been written
 * for hours, and a batch's folder while it is staged. A process that dies
 * leaves such files behind, so an open removes stale ones; it must never
 * remove one a live handle still uses, or that handle's next rename fails
 * (a finish or enqueue failing with OMNIQ_ESTORAGE; a batch's folder
 * emptied under a staging producer).
 *
 * A pid cannot say whether the owner lives: processes in two pid
 * namespaces sharing a store (containers on one volume) see each other's
 * pids as dead or as someone else, and a pid is reused. So each handle
 * picks a random 64-bit owner number at open and holds an OFD write lock
 * on the byte at that offset of base_dir/lock for as long as it is open;
 * every tmp file and batch folder it makes is named "<owner>-..." or
 * "batch-<owner>-...". The kernel drops the lock when the handle closes or
 * its process dies, whatever namespace it ran in, and the cleanup asks for
 * that byte with F_OFD_GETLK: locked, the entry stays, however old. OFD
 * locks also conflict between two handles of one process, so a second
 * handle never takes the first one's number (the lock is taken without
 * waiting and a taken number is drawn again).
 *
 * Names from older versions start with a pid (at most 2^22, below every
 * owner number): for those the old rule stands (kept while that pid is
 * alive). Any entry is removed only once older than
 * OMNIQ__TMP_STALE_SECONDS, so a file system that cannot answer the lock
 * question still keeps a writer's fresh files. */
#include "storage/file/owner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "omniq.h"

/* Linux's largest pid_max: a number at most this in a name is a pid. */
#define PID_MAX_LIMIT (1ull << 22)

static void owner_byte(struct flock *fl, short type, unsigned long long owner) {
  memset(fl, 0, sizeof *fl);
  fl->l_type = type;
  fl->l_whence = SEEK_SET;
  fl->l_start = (off_t)owner;
  fl->l_len = 1;
}

/* A random number in [OMNIQ__OWNER_MIN, 2^62]: room for a lock's offset. */
static unsigned long long draw(void) {
  unsigned long long r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
    /* No entropy yet: the lock still makes a taken number draw again. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r = ((unsigned long long)ts.tv_nsec << 20) ^ (unsigned long long)ts.tv_sec ^
        ((unsigned long long)getpid() << 40);
  }
  return OMNIQ__OWNER_MIN + r % (1ull << 62);
}

int omniq__fowner_claim(omniq__fio_t *io, int lock_fd, char *err, size_t errlen) {
  struct flock fl;
  int e = EAGAIN;
  for (int tries = 0; tries < 16 && (e == EAGAIN || e == EACCES || e == EINTR); tries++) {
    unsigned long long owner = draw();
    owner_byte(&fl, F_WRLCK, owner);
    if (fcntl(lock_fd, F_OFD_SETLK, &fl) == 0) {
      io->owner = owner;
      return OMNIQ_OK;
    }
    e = errno;
  }
  snprintf(err, errlen, "file store: cannot lock an owner byte in lock: %s", strerror(e));
  return OMNIQ_ESTORAGE;
}

/* The number a tmp/ entry's name starts with ("<n>-..." or
 * "batch-<n>-..."); 0 when it has none. */
static unsigned long long owner_of(const char *name) {
  char *end;
  if (strncmp(name, "batch-", 6) == 0) name += 6;
  if (*name < '0' || *name > '9') return 0;
  errno = 0;
  unsigned long long n = strtoull(name, &end, 10);
  return errno == 0 && *end == '-' ? n : 0;
}

int omniq__fowner_alive(int lock_fd, unsigned long long n) {
  struct flock fl;
  if (n < OMNIQ__OWNER_MIN) return 0;
  owner_byte(&fl, F_WRLCK, n);
  if (fcntl(lock_fd, F_OFD_GETLK, &fl) != 0) return 1; /* no answer: keep it */
  return fl.l_type != F_UNLCK;
}

/* 1 while the owner of name may still use it (see the design above). */
static int owner_alive(int lock_fd, const char *name) {
  unsigned long long n = owner_of(name);
  if (n == 0) return 0;
  if (n <= PID_MAX_LIMIT) return kill((pid_t)n, 0) == 0 || errno == EPERM;
  return omniq__fowner_alive(lock_fd, n);
}

void omniq__fowner_clean_tmp(const omniq__fio_t *io, int lock_fd) {
  int fd = openat(io->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  struct dirent *de;
  time_t now = time(NULL);
  if (d == NULL) {
    if (fd >= 0) close(fd);
    return;
  }
  while ((de = readdir(d)) != NULL) {
    struct stat st;
    if (de->d_name[0] == '.') continue;
    if (fstatat(io->tmp_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (now - st.st_mtime <= OMNIQ__TMP_STALE_SECONDS) continue;
    if (owner_alive(lock_fd, de->d_name)) continue;
    if (S_ISDIR(st.st_mode)) { /* a batch staged by a producer that died before its commit */
      int sub = openat(io->tmp_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) continue;
      omniq__fio_empty_folder(sub);
      close(sub);
      unlinkat(io->tmp_fd, de->d_name, AT_REMOVEDIR);
    } else {
      unlinkat(io->tmp_fd, de->d_name, 0);
    }
  }
  closedir(d);
}
