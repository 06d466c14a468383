/* SPDX-License-Identifier: MIT */
/* Running totals of the file backend.
 *
 * One file per task-lock stripe, stats/<stripe>.json:
 *   {"last":"<id>:<token>","runs":{"<qdir>":[succeeded,failed,retried,lost],...}}
 * A finish counts its run in the stripe of its task while it holds that
 * task's lock, which is that stripe's lock: so counting needs no lock of
 * its own and never serialises finishes of other stripes.
 *
 * Exactly once. The run's kind is in the commit slot ("commit_runs"), and
 * counting is one of the steps after the commit that a roll-forward
 * repeats (transitions.c), so a run committed by a process that died is
 * still counted. It must not be counted twice: "last" names the run this
 * stripe counted most recently, and a repeat of that run is skipped. That
 * alone would not do if another task of the stripe were counted between
 * a crash and the roll-forward of the first, so before counting, a writer
 * that finds "last" naming another task whose slot still holds an
 * unfinished transition rolls that task forward first (it holds the same
 * stripe's lock): then "last" is always either the run being repeated or
 * one that is completely done.
 *
 * The file is replaced by exchange (omniq__fio_replace): the old one is
 * kept in tmp/ as a spare for a later write rather than freed (spares.c).
 * That is safe only because every reader holds the stripe's lock, as the
 * writer does: a reader never has a file open that becomes a spare.
 *
 * Cost: a small read and an atomic write (not synced) per finish. Reading
 * the totals reads every stripe file (at most OMNIQ__FLOCK_STRIPES small
 * files), each under its stripe's lock. */
#include "storage/file/totals.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "storage/file/record.h"

#define LAST_SIZE (OMNIQ_ID_LEN + 1 + 24)

static void stripe_file(const char *id, char out[16]) {
  snprintf(out, 16, "%04u.json", omniq__flock_stripe(id));
}

/* The stripe's totals as JSON (an empty object when there is none yet);
 * *found (may be NULL): 1 if the file was there. */
static json_t *load(omniq__fs_t *fs, const char *name, int *found) {
  char *text = NULL, e[OMNIQ__ERRMSG_MAX];
  json_t *j = NULL;
  int rc = omniq__fio_read(fs->stats_fd, name, &text, NULL, e, sizeof e);
  if (found != NULL) *found = rc != OMNIQ_ENOTFOUND;
  if (rc == OMNIQ_OK) j = json_loads(text, 0, NULL);
  omniq__free(text);
  if (!json_is_object(j)) {
    json_decref(j);
    j = json_object();
  }
  return j;
}

/* If the last run counted here is another task's whose transition is not
 * finished (a slot in running/ that is not RUNNING), finish it now. */
static void settle_last(omniq__fs_t *fs, const char *last, const char *self) {
  char id[OMNIQ_ID_SIZE], idname[OMNIQ__IDNAME_SIZE], e[OMNIQ__ERRMSG_MAX];
  omniq_task_t *t = NULL;
  if (strlen(last) <= OMNIQ_ID_LEN || last[OMNIQ_ID_LEN] != ':') return;
  memcpy(id, last, OMNIQ_ID_LEN);
  id[OMNIQ_ID_LEN] = '\0';
  if (strcmp(id, self) == 0 || omniq__fname_id(id, idname) != OMNIQ_OK) return;
  if (omniq__frec_read(fs->running_fd, idname, id, &t, NULL, e, sizeof e) == OMNIQ_OK &&
      t->status != OMNIQ_RUNNING)
    omniq__fs_roll_forward(fs, id, idname, e, sizeof e);
  omniq_task_free(t);
}

int omniq__ftotals_add(omniq__fs_t *fs, const char *id, int64_t token, const char *qdir, int kind,
                       char *err, size_t errlen) {
  char name[16], key[LAST_SIZE];
  int rc = OMNIQ_ENOMEM;
  if (kind < 0 || kind >= OMNIQ_RUNS_KINDS) return OMNIQ_OK;
  stripe_file(id, name);
  snprintf(key, sizeof key, "%.36s:%lld", id, (long long)token);
  int found = 0;
  json_t *j = load(fs, name, &found);
  if (j == NULL) goto done;
  const char *last = json_string_value(json_object_get(j, "last"));
  if (last != NULL && strcmp(last, key) == 0) { /* this very run, counted already */
    rc = OMNIQ_OK;
    goto done;
  }
  if (last != NULL) {
    settle_last(fs, last, id);
    json_decref(j); /* the roll-forward may have counted it: read again */
    if ((j = load(fs, name, &found)) == NULL) goto done;
  }
  json_t *runs = json_object_get(j, "runs");
  if (!json_is_object(runs)) {
    runs = json_object();
    if (runs == NULL || json_object_set_new(j, "runs", runs) != 0) goto done;
  }
  json_t *q = json_object_get(runs, qdir);
  if (!json_is_array(q) || json_array_size(q) != OMNIQ_RUNS_KINDS) {
    q = json_pack("[IIII]", (json_int_t)0, (json_int_t)0, (json_int_t)0, (json_int_t)0);
    if (q == NULL || json_object_set_new(runs, qdir, q) != 0) goto done;
  }
  json_t *v = json_array_get(q, (size_t)kind);
  if (json_array_set_new(q, (size_t)kind, json_integer(json_integer_value(v) + 1)) != 0 ||
      json_object_set_new(j, "last", json_string(key)) != 0)
    goto done;
  char *text = json_dumps(j, JSON_COMPACT);
  if (text == NULL) goto done;
  /* Replaced whole (so a crash leaves the old or the new file), but never
   * synced, like the journal: statistics are not worth a disk flush per
   * finish. A process crash loses nothing; a power loss may lose the
   * counts of the last moments before it. */
  omniq__fio_t nosync = fs->io;
  nosync.fsync = 0;
  char tmp[OMNIQ__TMP_NAME_SIZE];
  rc = omniq__fio_stage(&nosync, text, strlen(text), tmp, err, errlen);
  if (rc == OMNIQ_OK)
    rc = found ? omniq__fio_replace(&nosync, tmp, fs->stats_fd, name, err, errlen)
               : omniq__fio_publish(&nosync, tmp, fs->stats_fd, name, err, errlen);
  free(text);
done:
  if (rc == OMNIQ_ENOMEM) snprintf(err, errlen, "file store: out of memory counting a run");
  json_decref(j);
  return rc;
}

typedef struct {
  omniq__ftotals_fn fn;
  void *ud;
} each_t;

static int each_stripe(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  each_t *e = ud;
  const char *qdir;
  json_t *q;
  char lock_err[8];
  (void)dirfd;
  if (strlen(name) != 9 || strcmp(name + 4, ".json") != 0 || strspn(name, "0123456789") != 4)
    return 0;
  unsigned stripe = (unsigned)atoi(name);
  if (stripe >= OMNIQ__FLOCK_STRIPES) return 0;
  /* Under the stripe's lock: the writer keeps the file it replaces as a
   * spare, written over later, so it must not be open here. */
  int rc = omniq__flock_take_stripe(&fs->locks, stripe, lock_err, sizeof lock_err);
  if (rc != OMNIQ_OK) return rc; /* the totals fail rather than come out smaller */
  json_t *j = load(fs, name, NULL);
  omniq__flock_release_stripe(&fs->locks, stripe);
  json_t *runs = json_object_get(j, "runs");
  json_object_foreach(runs, qdir, q) {
    int64_t n[OMNIQ_RUNS_KINDS];
    if (!json_is_array(q) || !omniq__fname_qdir_valid(qdir, strlen(qdir))) continue;
    for (int k = 0; k < OMNIQ_RUNS_KINDS; k++) n[k] = json_integer_value(json_array_get(q, k));
    e->fn(qdir, n, e->ud);
  }
  json_decref(j);
  return 0;
}

int omniq__ftotals_each(omniq__fs_t *fs, omniq__ftotals_fn fn, void *ud) {
  each_t e = {fn, ud};
  return omniq__fs_each(fs, fs->stats_fd, each_stripe, &e);
}
