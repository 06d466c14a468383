/* SPDX-License-Identifier: MIT */
/* Wake-ups across processes through a small shared file.
 *
 * The file (one page) holds, for each event (work, result), a 32-bit count
 * and a count of waiters, each pair on its own cache line. Every process
 * that opens the store maps the file MAP_SHARED, so the counts live in one
 * page of the page cache and a futex on a count is keyed by the file's
 * inode and offset: FUTEX_WAIT and FUTEX_WAKE without FUTEX_PRIVATE_FLAG
 * meet across processes, whatever address each one mapped it at.
 *
 *   bump:  count += 1; if waiters > 0: FUTEX_WAKE(count, all)
 *   wait:  waiters += 1; if count == seen: FUTEX_WAIT(count, seen, timeout);
 *          waiters -= 1
 *
 * All four steps are sequentially consistent atomics, so either the bumper
 * sees the waiter (and wakes it) or the waiter sees the new count (and does
 * not sleep); FUTEX_WAIT itself re-checks the count in the kernel. When no
 * one waits, a bump is one atomic add on a shared page: no system call.
 *
 * Stateless: nothing in the file must be initialised, locked or cleaned
 * (a new file is zero-filled by ftruncate, and a file only ever grows to
 * its one page). A process killed while waiting leaves the waiters count
 * one too high, which only makes later bumps pay a FUTEX_WAKE that wakes
 * no one (about a microsecond); a wrapped count at worst costs a waiter
 * one spurious look at storage. A lost wake-up is impossible by the
 * ordering above, and callers re-check storage after every wait and keep a
 * poll as the fallback, so the file is an accelerator, never the source of
 * truth. */
#include "base/wakefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "omniq.h"

#define PAGE 4096
#define SLOT 64 /* one cache line per event */

typedef struct {
  uint32_t count;
  uint32_t waiters;
} slot_t;

struct omniq__wakefile {
  unsigned char *map;
};

static slot_t *slot_of(omniq__wakefile_t *w, omniq__event_t ev) {
  return (slot_t *)(void *)(w->map + SLOT * (1 + (int)ev));
}

static int failed(const char *path, const char *what, char *err, size_t errlen) {
  snprintf(err, errlen, "wake file %s: %s: %s", path, what, strerror(errno));
  return OMNIQ_EIO;
}

int omniq__wakefile_open(const char *path, omniq__wakefile_t **out, char *err, size_t errlen) {
  struct stat st;
  *out = NULL;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0) return failed(path, "cannot open", err, errlen);
  if (fstat(fd, &st) != 0) {
    int rc = failed(path, "cannot stat", err, errlen);
    close(fd);
    return rc;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    snprintf(err, errlen, "wake file %s: not a regular file", path);
    return OMNIQ_EIO;
  }
  /* Growing only: a shorter file (new) becomes one zero page; a file at
   * its size is left alone, so processes already using it see no change. */
  if (st.st_size < PAGE && ftruncate(fd, PAGE) != 0) {
    int rc = failed(path, "cannot size", err, errlen);
    close(fd);
    return rc;
  }
  void *map = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int saved = errno;
  close(fd); /* the mapping keeps the file */
  if (map == MAP_FAILED) {
    errno = saved;
    return failed(path, "cannot map", err, errlen);
  }
  omniq__wakefile_t *w = omniq__calloc(1, sizeof *w);
  if (w == NULL) {
    munmap(map, PAGE);
    snprintf(err, errlen, "wake file %s: out of memory", path);
    return OMNIQ_ENOMEM;
  }
  w->map = map;
  *out = w;
  return OMNIQ_OK;
}

void omniq__wakefile_close(omniq__wakefile_t *w) {
  if (w == NULL) return;
  munmap(w->map, PAGE);
  omniq__free(w);
}

uint32_t omniq__wakefile_gen(omniq__wakefile_t *w, omniq__event_t ev) {
  return __atomic_load_n(&slot_of(w, ev)->count, __ATOMIC_SEQ_CST);
}

void omniq__wakefile_bump(omniq__wakefile_t *w, omniq__event_t ev) {
  slot_t *s = slot_of(w, ev);
  __atomic_add_fetch(&s->count, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST) != 0)
    syscall(SYS_futex, &s->count, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

uint32_t omniq__wakefile_wait(omniq__wakefile_t *w, omniq__event_t ev, uint32_t seen,
                              int64_t timeout_ms) {
  slot_t *s = slot_of(w, ev);
  struct timespec ts, *tp = NULL;
  if (timeout_ms >= 0) {
    /* A relative timeout; a very long one is cut to a day, after which the
     * caller looks at storage and waits again. */
    int64_t ms = timeout_ms < 86400000 ? timeout_ms : 86400000;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    tp = &ts;
  }
  __atomic_add_fetch(&s->waiters, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&s->count, __ATOMIC_SEQ_CST) == seen)
    syscall(SYS_futex, &s->count, FUTEX_WAIT, seen, tp, NULL, 0);
  __atomic_sub_fetch(&s->waiters, 1, __ATOMIC_SEQ_CST);
  return __atomic_load_n(&s->count, __ATOMIC_SEQ_CST);
}

uint32_t omniq__wakefile_waiters(omniq__wakefile_t *w, omniq__event_t ev) {
  return __atomic_load_n(&slot_of(w, ev)->waiters, __ATOMIC_SEQ_CST);
}
