/* SPDX-License-Identifier: MIT */
/* Spare files: a task's life on the file backend creates and frees almost
 * no inodes.
 *
 * Why. Every write here is a new file in tmp/ renamed over its target, and
 * every rename over a file frees the file it replaces. Freeing is what
 * costs: ext4 without a journal makes a new inode skip every inode freed
 * in the last 60 s (reading each one's inode table block to see when it
 * died), so a store that frees one inode per write makes each create scan
 * past thousands; and the freed file's blocks are discarded on a
 * `-o discard` mount, which the rename waits for. Creating inodes while
 * the store grows is cheap; freeing and creating them again is not.
 *
 * How. A spare is a file in tmp/ under an ordinary tmp name that nothing
 * else refers to. A write takes one (io.c: opened without O_CREAT or
 * O_TRUNC, the new bytes written at offset 0, then cut to their length, so
 * blocks it already has are written over, not freed), and a rewrite of a
 * task's slot puts it in place with renameat2(RENAME_EXCHANGE): the old
 * file lands at the tmp name and becomes the next spare. The exchange is
 * one atomic step like rename, so the target names the whole old or the
 * whole new file at any crash; what is left at the tmp name is a stale
 * tmp file, removed by a later open like any other.
 *
 * Only files every reader opens under a lock the writer holds are
 * exchanged out: the slot in running/ (the task's lock) and a stripe's
 * running totals (the stripe's lock), so nobody can be reading the old
 * file when it becomes a spare and is written over later. Files read
 * without a lock (results, queue settings, keys, the journal) are
 * replaced by plain rename, as before; they may still be written from a
 * spare, which no reader can see until it is renamed.
 *
 * Power loss (fsync on). An exchange, like a rename, is durable only once
 * its folder is synced, and a claim does not sync its folder. Were a spare
 * written over before that, the disk could end up with the old name still
 * naming the old file and that file holding another task's bytes. So with
 * fsync on, a spare put in the pool waits: it is ready only after a sync
 * of tmp/ (which holds the exchange's other half) begun after its put has
 * ended. A writer that finds none ready but OMNIQ__SPARES_BATCH waiting
 * makes that sync, through the group sync, for all of them; with fewer
 * waiting it creates a file, as without spares. That is one folder sync
 * per OMNIQ__SPARES_BATCH spares at most, not one per write. With fsync
 * off nothing is synced and a spare is ready at once: a power loss may
 * then leave a task's file holding another task's record, which is
 * quarantined, as a torn file would be (docs/storage-file.md, Durability).
 *
 * The pool is bounded per backend: a put into a full pool fails and the
 * caller removes the file. Spares left at close are removed. */
#include "storage/file/spares.h"

#include <string.h>
#include <unistd.h>

#include "base/alloc.h"

omniq__spares_t *omniq__spares_new(int tmp_fd, int durable) {
  omniq__spares_t *s = omniq__calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  if (pthread_mutex_init(&s->mu, NULL) != 0) {
    omniq__free(s);
    return NULL;
  }
  s->tmp_fd = tmp_fd;
  s->durable = durable;
  s->epoch = 1;
  return s;
}

void omniq__spares_free(omniq__spares_t *s) {
  if (s == NULL) return;
  for (int i = 0; i < s->n; i++) unlinkat(s->tmp_fd, s->v[i].name, 0);
  pthread_mutex_destroy(&s->mu);
  omniq__free(s);
}

int omniq__spares_take(omniq__spares_t *s, char name[OMNIQ__TMP_NAME_SIZE]) {
  int got = 0;
  pthread_mutex_lock(&s->mu);
  for (int i = s->n - 1; i >= 0 && !got; i--) {
    if (s->v[i].epoch != 0) continue;
    memcpy(name, s->v[i].name, OMNIQ__TMP_NAME_SIZE);
    s->v[i] = s->v[--s->n];
    got = 1;
  }
  pthread_mutex_unlock(&s->mu);
  return got;
}

int omniq__spares_put(omniq__spares_t *s, const char name[OMNIQ__TMP_NAME_SIZE]) {
  int kept = 0;
  pthread_mutex_lock(&s->mu);
  if (s->n < OMNIQ__SPARES_MAX) {
    memcpy(s->v[s->n].name, name, OMNIQ__TMP_NAME_SIZE);
    s->v[s->n++].epoch = s->durable ? s->epoch : 0;
    kept = 1;
  }
  pthread_mutex_unlock(&s->mu);
  return kept;
}

int omniq__spares_unsynced(omniq__spares_t *s, unsigned long *epoch) {
  int ready = 0, waiting = 0;
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < s->n; i++) {
    ready += s->v[i].epoch == 0;
    waiting += s->v[i].epoch != 0;
  }
  int sync = ready == 0 && waiting >= OMNIQ__SPARES_BATCH;
  if (sync) *epoch = s->epoch++;
  pthread_mutex_unlock(&s->mu);
  return sync;
}

void omniq__spares_synced(omniq__spares_t *s, unsigned long epoch) {
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < s->n; i++)
    if (s->v[i].epoch != 0 && s->v[i].epoch <= epoch) s->v[i].epoch = 0;
  pthread_mutex_unlock(&s->mu);
}
