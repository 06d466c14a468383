/* SPDX-License-Identifier: MIT */
/* What this handle's claims left in their slots.
 *
 * A finish must refuse a run whose slot is no longer the one its claim
 * wrote: the lease expired and another worker took the task, it was
 * cancelled, retried by hand, or finished already. Reading the slot
 * proves it (open, fstat, read, close, then a JSON parse, about a fifth
 * of a task's instructions), and in a pool the slot is nearly always the
 * claim's own. So a claim remembers the task it wrote, and marks the file:
 * its modification time is set (futimens) to a value no other write
 * leaves, a counter of this handle in the seconds (below 10^9, a time in
 * 1970-2001 no clock of today gives) and the handle's owner number modulo
 * 10^9 in the nanoseconds. The finish then asks one fstatat of the slot:
 *
 *   - any write to that file since (a spare reused by any handle, another
 *     claim, a commit) sets its time to the clock's, which is no mark;
 *   - any other file at the slot's name carries the clock's time or
 *     another claim's mark: another count, or another owner (two open
 *     handles whose owners agree modulo 10^9 and whose counters meet on
 *     the same task: about one in 10^9 for each pair, per claim of one
 *     task by both);
 *   - a rename keeps a file's time, but moves its bytes with it: a file
 *     with the mark holds exactly what the claim wrote, wherever it went.
 *
 * So a regular file of the claim's size whose time is the mark holds the
 * task remembered here, RUNNING under the claim's token; anything else
 * (a file system that keeps no nanoseconds, a mark not set, a time
 * touched by hand) only costs the full read. The memory is a table of
 * 1,024 entries by the id's last digits, an id kept in the first free one
 * of the 8 from its own: a pool claims ahead up to 64 tasks a runner, and
 * 256 entries with no probing pushed 11% of a drain's entries out before
 * their finish (c=1). An entry pushed out costs a full read, never a
 * wrong answer. A task whose text is large is not copied (its read costs
 * less than the copy). */
#include "storage/file/claimed.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"

#define ENTRIES 1024 /* a power of two */
#define PROBES 8
#define TEXT_MAX 4096 /* args + kwargs copied at most */
#define MARK_SPAN 1000000000ULL

typedef struct entry {
  char id[OMNIQ_ID_SIZE];
  int64_t token;
  off_t size;
  struct timespec mark;
  omniq_task_t *t; /* NULL: empty */
} entry_t;

struct omniq__fclaimed {
  pthread_mutex_t mu;
  _Atomic unsigned long long count;
  long nsec; /* owner modulo 10^9 */
  entry_t e[ENTRIES];
};

omniq__fclaimed_t *omniq__fclaimed_new(unsigned long long owner) {
  omniq__fclaimed_t *c = omniq__calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  if (pthread_mutex_init(&c->mu, NULL) != 0) {
    omniq__free(c);
    return NULL;
  }
  c->nsec = (long)(owner % MARK_SPAN);
  return c;
}

void omniq__fclaimed_free(omniq__fclaimed_t *c) {
  if (c == NULL) return;
  for (int i = 0; i < ENTRIES; i++) omniq_task_free(c->e[i].t);
  pthread_mutex_destroy(&c->mu);
  omniq__free(c);
}

void omniq__fclaimed_mark(omniq__fclaimed_t *c, omniq__fio_stamp_t *stamp) {
  stamp->set = 0;
  if (c == NULL) {
    stamp->at = (struct timespec){0, 0};
    return;
  }
  /* 1 .. 10^9 - 1 seconds: never 0, the time a file system without times
   * may report. */
  unsigned long long n = atomic_fetch_add(&c->count, 1) % (MARK_SPAN - 1) + 1;
  stamp->at = (struct timespec){(time_t)n, c->nsec};
}

/* The id's home entry, by its last three hex digits (random bits of a
 * UUIDv7). */
static unsigned home_of(const char *id) {
  unsigned i = 0;
  for (int k = OMNIQ_ID_SIZE - 4; k < OMNIQ_ID_SIZE - 1; k++) {
    char ch = id[k];
    unsigned d = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0')
                 : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                          : 0;
    i = i * 16 + d;
  }
  return i;
}

/* id's entry among the PROBES from its home, or NULL. With for_put, else
 * the first empty one, else the home (whose task the caller replaces). */
static entry_t *find(omniq__fclaimed_t *c, const char *id, int for_put) {
  unsigned h = home_of(id);
  entry_t *empty = NULL;
  for (unsigned k = 0; k < PROBES; k++) {
    entry_t *e = &c->e[(h + k) & (ENTRIES - 1)];
    if (e->t != NULL && memcmp(e->id, id, OMNIQ_ID_SIZE) == 0) return e;
    if (e->t == NULL && empty == NULL) empty = e;
  }
  if (!for_put) return NULL;
  return empty != NULL ? empty : &c->e[h & (ENTRIES - 1)];
}

void omniq__fclaimed_put(omniq__fclaimed_t *c, const omniq_task_t *t,
                         const omniq__fio_stamp_t *stamp, off_t size) {
  if (c == NULL || !stamp->set) return;
  size_t text =
      (t->args != NULL ? strlen(t->args) : 0) + (t->kwargs != NULL ? strlen(t->kwargs) : 0);
  omniq_task_t *copy = text <= TEXT_MAX ? omniq_task_dup(t) : NULL;
  pthread_mutex_lock(&c->mu);
  entry_t *e = find(c, t->id, 1);
  omniq_task_t *old = e->t;
  e->t = copy;
  if (copy != NULL) {
    memcpy(e->id, t->id, OMNIQ_ID_SIZE);
    e->token = t->token;
    e->size = size;
    e->mark = stamp->at;
  }
  pthread_mutex_unlock(&c->mu);
  omniq_task_free(old);
}

/* Takes id's entry out of the table: the task, or NULL. */
static omniq_task_t *take_entry(omniq__fclaimed_t *c, const char *id, entry_t *out) {
  omniq_task_t *t = NULL;
  pthread_mutex_lock(&c->mu);
  entry_t *e = find(c, id, 0);
  if (e != NULL) {
    *out = *e;
    t = e->t;
    e->t = NULL;
  }
  pthread_mutex_unlock(&c->mu);
  return t;
}

int omniq__fclaimed_take(omniq__fclaimed_t *c, int running_fd, const char *idname, const char *id,
                         int64_t token, omniq_task_t **t) {
  entry_t e;
  struct stat st;
  *t = NULL;
  if (c == NULL) return 0;
  omniq_task_t *mine = take_entry(c, id, &e);
  if (mine == NULL) return 0;
  int same = e.token == token && fstatat(running_fd, idname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
             S_ISREG(st.st_mode) && st.st_size == e.size && st.st_mtim.tv_sec == e.mark.tv_sec &&
             st.st_mtim.tv_nsec == e.mark.tv_nsec;
  if (!same) {
    omniq_task_free(mine);
    return 0;
  }
  *t = mine;
  return 1;
}

void omniq__fclaimed_drop(omniq__fclaimed_t *c, const char *id) {
  entry_t e;
  if (c != NULL) omniq_task_free(take_entry(c, id, &e));
}
