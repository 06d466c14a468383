/* SPDX-License-Identifier: MIT */
/* finish_many on the file backend (storage ABI 6): the outcomes of many
 * runs, then the claim of the worker's next tasks, with the durability of
 * the whole batch paid once.
 *
 * One finish costs three sync waits of its own: its files' data before
 * the commit rename, the commit's and the result's folders before the
 * move, and the move's folders (transitions.c). A pool that reports 64
 * runs at once should not pay 192. So a batch runs
 * each step for every task before the next step:
 *
 *   1. the task locks of every decision's id (omniq__flock_take_set: in
 *      stripe order, so two batches never deadlock);
 *   2. per decision: read the task, check it is RUNNING under the
 *      decision's own token (a miss is that decision's code, and the rest
 *      go on), encode its new state and stage its slot and result in tmp/
 *      unsynced (io->held);
 *   3. one group round syncs the data of every staged file;
 *   4. per decision: the commit rename and step 3 (the result file,
 *      transitions.c), every folder sync put off;
 *   5. one group round syncs the folders of step 4 (running/, results/):
 *      the slot is the only other copy of a result, so results/ must be
 *      on the disk before the slot leaves running/. No order of renames
 *      on the disk is assumed (docs/storage-file.md, Durability);
 *   6. every decision's run counted in the handle's running totals, and
 *      the handle's totals file written once for the batch (totals.c);
 *   7. per decision: step 4 of the transition (the move out of the slot),
 *      folder syncs put off again;
 *   8. one group round syncs every folder step 7 changed; then the locks
 *      go and the outcomes are reported;
 *   9. the claim (claim.c), whose tasks' data is synced in one round too.
 *
 * Each decision is still its own atomic step, committed by its own rename:
 * a crash anywhere leaves every task of the batch either RUNNING under the
 * claim (a slot not yet renamed over; its staged files are tmp garbage) or
 * in its new state (a roll-forward finishes steps 3-4), never both, never
 * neither; test_store_file_batch kills a worker at every step. No decision
 * is reported before step 8 returned, so nothing reported is lost.
 *
 * The locks are held from step 1 to step 8: three sync waits, during which
 * this process's other threads wait for any task lock (the set holds the
 * lock gate) and other processes for these stripes only.
 *
 * finish_claim (storage ABI 5) is the finish of one run with the claim
 * after it, as a batch of one would have it. A pool lets a report (alone
 * or a batch's) carry the runner's next claim only where the backend has
 * this operation; without it every claim on this store was a claim of its
 * own, made by whichever runner led, so with several runners the claim of
 * one ran beside the commit of another's batch: the same folders renamed
 * from two threads at once, and each claim, and the hold that runs it, on
 * a new thread (docs/storage-file.md, Claims that ride on reports). */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "storage/file/backend.h"
#include "storage/file/batch.h"
#include "storage/file/marks.h"
#include "storage/file/totals.h"

typedef struct one {
  char idname[OMNIQ__IDNAME_SIZE];
  omniq_task_t *t;
  omniq__fs_staged_t s;
  int staged; /* s holds a transition staged and not yet applied */
} one_t;

/* The message of the first decision (by position) that failed. */
typedef struct first_err {
  size_t at;
  char *err;
  size_t errlen;
} first_err_t;

static void note(first_err_t *f, size_t i, const char *msg) {
  if (i >= f->at) return;
  f->at = i;
  snprintf(f->err, f->errlen, "%s", msg);
}

/* Steps 1-5 for the decisions whose rcs[i] is still OMNIQ_OK. Returns a
 * code for the whole step (nothing applied) or OMNIQ_OK. */
static int apply_all(omniq__fs_t *fs, const omniq_decision_t *ds, size_t n, int *rcs,
                     one_t *v, const char **ids, first_err_t *fe) {
  char e[OMNIQ__ERRMSG_MAX];
  size_t k = 0, nset = 0;
  uint16_t *set = NULL;
  for (size_t i = 0; i < n; i++)
    if (rcs[i] == OMNIQ_OK) ids[k++] = ds[i].id;
  if (k == 0) return OMNIQ_OK;
  int rc = omniq__flock_take_set(&fs->locks, ids, k, &set, &nset, fe->err, fe->errlen);
  if (rc != OMNIQ_OK) return rc;

  omniq__fio_held_t held = OMNIQ__FIO_HELD_INIT;
  omniq__fio_t stage_io = fs->io;
  stage_io.held = &held;
  for (size_t i = 0; i < n; i++) {
    if (rcs[i] != OMNIQ_OK) continue;
    rcs[i] = omniq__fs_decide(fs, &ds[i], v[i].idname, &v[i].t, e, sizeof e);
    /* A second decision for a run this batch already ends: as if applied
     * in turn, the first takes the task out of RUNNING. */
    for (size_t j = 0; j < i && rcs[i] == OMNIQ_OK; j++) {
      if (!v[j].staged || strcmp(ds[j].id, ds[i].id) != 0) continue;
      snprintf(e, sizeof e, "task %s: its run is ended by an earlier decision of the batch",
               ds[i].id);
      rcs[i] = OMNIQ_ESTATE;
      omniq_task_free(v[i].t);
      v[i].t = NULL;
    }
    if (rcs[i] == OMNIQ_OK)
      rcs[i] = omniq__fs_stage(&stage_io, v[i].t, ds[i].result, ds[i].runs, &v[i].s, e, sizeof e);
    if (rcs[i] != OMNIQ_OK) note(fe, i, e);
    v[i].staged = rcs[i] == OMNIQ_OK;
    omniq__fbatch_step();
  }
  rc = omniq__fio_held_sync(&fs->io, &held, e, sizeof e);
  omniq__fio_held_free(&held);
  omniq__fbatch_step();

  omniq__fio_dirs_t later = OMNIQ__FIO_DIRS_INIT;
  omniq__fio_t io = fs->io;
  io.defer = &later;
  for (size_t i = 0; i < n; i++) {
    if (!v[i].staged) continue;
    v[i].staged = 0;
    if (rc != OMNIQ_OK) { /* the data is not durable: nothing is committed */
      omniq__fs_unstage(fs, &v[i].s);
      rcs[i] = rc;
      note(fe, i, e);
      continue;
    }
    rcs[i] = omniq__fs_apply(fs, &io, v[i].t, v[i].idname, &v[i].s, e, sizeof e);
    if (rcs[i] != OMNIQ_OK) note(fe, i, e);
    omniq__fbatch_step();
  }
  /* Step 5: the commits and results are durable before any slot leaves
   * running/ (the slot holds the only other copy of its result). A
   * failure here is every applied decision's, and their slots are left
   * for a roll-forward. */
  int synced = rc == OMNIQ_OK ? omniq__fio_dirs_sync(&io, &later, e, sizeof e) : OMNIQ_OK;
  omniq__fbatch_step();
  /* Step 6: the runs, counted in the handle's totals and written once for
   * the batch before any task leaves its slot (totals.c). */
  int counted = OMNIQ_OK;
  for (size_t i = 0; i < n && synced == OMNIQ_OK; i++) omniq__fs_count(fs, v[i].t, &v[i].s);
  if (synced == OMNIQ_OK) counted = omniq__ftotals_flush(fs, e, sizeof e);
  for (size_t i = 0; i < n && counted != OMNIQ_OK; i++) omniq__fs_leave(fs, v[i].t, &v[i].s, e);
  omniq__fbatch_step();
  omniq__fmark_defer(1); /* a folder emptied by the moves is pruned once, after them */
  for (size_t i = 0; i < n; i++) {
    if (!v[i].s.committed) continue;
    if (synced == OMNIQ_OK)
      omniq__fs_move(fs, &io, v[i].t, v[i].idname, &v[i].s, OMNIQ_RUNNING);
    else
      omniq__fs_leave(fs, v[i].t, &v[i].s, e); /* committed, not moved: a roll-forward's */
    omniq__fbatch_step();
  }
  omniq__fmark_defer(0);
  /* Step 8: the folders the moves changed. The outcomes are reported only
   * after it: a failure here is every applied decision's. */
  if (synced == OMNIQ_OK) synced = omniq__fio_dirs_sync(&io, &later, e, sizeof e);
  for (size_t i = 0; i < n && synced != OMNIQ_OK; i++) {
    if (v[i].t == NULL || rcs[i] != OMNIQ_OK) continue;
    rcs[i] = synced;
    note(fe, i, e);
  }
  omniq__fio_dirs_drop(&later);
  omniq__flock_release_set(&fs->locks, set, nset);
  return OMNIQ_OK;
}

int omniq__fs_finish_many(void *backend, const omniq_decision_t *ds, size_t n, int *rcs,
                          const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                          int *claimed, char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  first_err_t fe = {(size_t)-1, err, errlen};
  char e[OMNIQ__ERRMSG_MAX];
  int rc = OMNIQ_OK;
  *out = NULL;
  *nout = 0;
  *claimed = 0;
  err[0] = '\0';
  one_t *v = omniq__calloc(n > 0 ? n : 1, sizeof *v);
  const char **ids = omniq__calloc(n > 0 ? n : 1, sizeof *ids);
  if (v == NULL || ids == NULL) {
    snprintf(err, errlen, "file store: finish_many: out of memory");
    rc = OMNIQ_ENOMEM;
  }
  for (size_t i = 0; i < n && rc == OMNIQ_OK; i++)
    if ((rcs[i] = omniq__fs_check_decision(&ds[i], v[i].idname, e, sizeof e)) != OMNIQ_OK)
      note(&fe, i, e);
  if (rc == OMNIQ_OK) rc = apply_all(fs, ds, n, rcs, v, ids, &fe);
  for (size_t i = 0; i < n && v != NULL; i++) omniq_task_free(v[i].t);
  omniq__free(v);
  omniq__free(ids);
  if (rc != OMNIQ_OK) {
    for (size_t i = 0; i < n; i++) rcs[i] = rc;
    return rc;
  }
  /* The claim after the decisions, so a retry due at once is claimed
   * again. The outcomes are committed whatever the claim does: if it
   * fails, the worker claims on its own, as with no claim added. */
  if (req != NULL && omniq__fs_claim(fs, req, out, nout, e, sizeof e) == OMNIQ_OK) *claimed = 1;
  return OMNIQ_OK;
}

int omniq__fs_finish_claim(void *backend, const omniq_decision_t *d, const omniq_claim_req_t *req,
                           omniq_task_t ***out, size_t *n, int *claimed, char *err,
                           size_t errlen) {
  char e[OMNIQ__ERRMSG_MAX];
  *out = NULL;
  *n = 0;
  *claimed = 0;
  int rc = omniq__fs_finish(backend, d, err, errlen);
  /* The finish is committed whatever the claim does: a claim that fails
   * leaves the caller to claim on its own, as the contract says. */
  if (rc == OMNIQ_OK && req != NULL &&
      omniq__fs_claim(backend, req, out, n, e, sizeof e) == OMNIQ_OK)
    *claimed = 1;
  return rc;
}
