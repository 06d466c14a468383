/* SPDX-License-Identifier: MIT */
/* Transitions of one task in the file backend: finish, extend_lease,
 * cancel, and rolling forward what a dead process left half done.
 *
 * Every change to an existing task runs under its task lock (locks.h) and
 * goes through one slot, queue/running/<id>.json:
 *
 *   1. (cancel of a PENDING task only) rename pending/<q>/<name> to the slot.
 *   2. Write the slot with the new task state and, when the transition
 *      stores a result, that result embedded as "commit_result". This write
 *      is the commit point: before it the old state holds, after it the new.
 *   3. Write results/<id>.json from it.
 *   4. Rename the slot to where the new state lives: pending/<q>/<name>
 *      (first rewriting it without the embedded result) or a terminal
 *      folder. A RUNNING state stays in the slot.
 *
 * So a file in running/ whose status is not RUNNING is a transition that
 * stopped between steps 2 and 4, or a claim that stopped between its rename
 * and its rewrite (status still PENDING): whoever next holds the task lock
 * and finds it rolls it forward, doing steps 3-4 (omniq__fs_roll_forward).
 * Holding the lock proves its writer is gone, since writers hold it from
 * step 1 to step 4, and an OFD lock dies with its process. Steps 3 and 4 are
 * idempotent and need no file but the slot, so no step fails because an
 * intermediate file is missing, in whatever order crashes and recoveries
 * happen.
 *
 * The data path of one transition is straight: the task is read and parsed
 * once (omniq__fs_locate), the new state is encoded once (a task JSON and,
 * when there is one, a result JSON) and every file the transition writes is
 * assembled from those bytes (record.h); the task's file name is formatted
 * once by the operation and passed down. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "storage/file/backend.h"
#include "storage/file/claimed.h"
#include "storage/file/marks.h"
#include "storage/file/names.h"
#include "storage/file/record.h"
#include "storage/file/totals.h"

int omniq__fs_exists_outside_pending(omniq__fs_t *fs, const char *idname) {
  struct stat st;
  if (fstatat(fs->running_fd, idname, &st, AT_SYMLINK_NOFOLLOW) == 0) return 1;
  for (int k = 0; k < OMNIQ__FS_NDONE; k++)
    if (fstatat(fs->done_fd[k], idname, &st, AT_SYMLINK_NOFOLLOW) == 0) return 1;
  return 0;
}

/* A PENDING task lives in pending/ only. A retry by hand writes its slot
 * while the terminal file is still in place; the copy goes before the task
 * moves, here or in a roll-forward. Only a task whose attempts start again
 * can have one (a retry by hand, or an interval or cron re-arm). */
static void drop_done_copies(omniq__fs_t *fs, const omniq_task_t *t, const char *idname) {
  if (t->status != OMNIQ_PENDING || t->attempts != 0) return;
  for (int k = 0; k < OMNIQ__FS_NDONE; k++) unlinkat(fs->done_fd[k], idname, 0);
}

/* Step 4: moves the slot to where t's state lives. A pending file must not
 * carry an embedded result or run (a later roll-forward would publish or
 * count it again), so when rec holds one the slot is first rewritten as a
 * plain task file. */
static int move_out(omniq__fs_t *fs, const omniq__fio_t *io, const omniq_task_t *t,
                    const char *idname, const omniq__frec_t *rec, char *err, size_t errlen) {
  char qdir[OMNIQ__QDIR_SIZE];
  int rc = OMNIQ_OK;
  if (t->status == OMNIQ_PENDING) {
    omniq__pending_t p;
    int qfd;
    drop_done_copies(fs, t, idname);
    if (rec->result != NULL || rec->runs >= 0)
      rc = omniq__frec_write_slot(io, fs->running_fd, idname, rec, err, errlen);
    if (rc == OMNIQ_OK) rc = omniq__fidx_queue(fs->idx, t->queue, 1, qdir, err, errlen);
    if (rc == OMNIQ_OK) rc = omniq__fidx_open_dir(fs->idx, qdir, &qfd, err, errlen);
    if (rc != OMNIQ_OK) return rc;
    omniq__fidx_describe(fs->idx, qdir, t->priority, t->eta_ms, t->id, &p);
    if (renameat(fs->running_fd, idname, qfd, p.name) != 0)
      rc = omniq__fio_errno(errno, err, errlen, "file store: moving %s to queue/pending/%s",
                            idname, qdir);
    if (rc == OMNIQ_OK) rc = omniq__fio_sync_dir(io, qfd, err, errlen);
    close(qfd);
    if (rc == OMNIQ_OK) rc = omniq__fio_sync_dir(io, fs->running_fd, err, errlen);
    if (rc != OMNIQ_OK) return rc;
    omniq__fidx_announce(fs->idx, &p, 1);
    return OMNIQ_OK;
  }
  int k = t->status - OMNIQ_SUCCESS;
  if (k < 0 || k >= OMNIQ__FS_NDONE) return OMNIQ_OK; /* RUNNING stays in the slot */
  if (renameat(fs->running_fd, idname, fs->done_fd[k], idname) != 0)
    return omniq__fio_errno(errno, err, errlen, "file store: moving %s to queue/%s", idname,
                            omniq__fname_done[k]);
  if ((rc = omniq__fio_sync_dir(io, fs->done_fd[k], err, errlen)) != OMNIQ_OK) return rc;
  return omniq__fio_sync_dir(io, fs->running_fd, err, errlen);
}

/* Step 3 from an encoded record: the result. staged: the result file
 * already staged and synced in tmp/ (published here, or dropped on
 * failure), or NULL to write it from rec. Idempotent, as step 4 is. */
static int publish_result(omniq__fs_t *fs, const omniq__fio_t *io, const char *idname,
                          const omniq__frec_t *rec, const char *staged, char *err,
                          size_t errlen) {
  if (staged != NULL) return omniq__fio_publish(io, staged, fs->results_fd, idname, err, errlen);
  if (rec->result != NULL)
    return omniq__frec_write(io, fs->results_fd, idname, rec, OMNIQ__FREC_RESULT, err, errlen);
  return OMNIQ_OK;
}

/* Counts the run a record carries in the handle's running totals
 * (totals.c), in memory: the caller writes them (omniq__ftotals_flush)
 * before the task leaves its slot, so a roll-forward after a crash finds
 * the run counted or counts it, never both. */
static int count_run(omniq__fs_t *fs, const omniq_task_t *t, const omniq__frec_t *rec,
                     char *err, size_t errlen) {
  char qdir[OMNIQ__QDIR_SIZE];
  if (rec->runs < 0 || omniq__fname_qdir(t->queue, qdir) != OMNIQ_OK) return OMNIQ_OK;
  int rc = omniq__ftotals_count(fs, t->id, t->token, qdir, rec->runs);
  if (rc != OMNIQ_OK) snprintf(err, errlen, "file store: out of memory counting a run");
  return rc;
}

/* Step 4 from an encoded record, its run already counted: the move, and
 * the task's marker in the listing index (marks.c). Each is idempotent,
 * so a roll-forward repeats them all. The move takes the slot, and with
 * it the only other copy of the result, out of running/: the caller has
 * made results/ durable first. */
static int move_and_mark(omniq__fs_t *fs, const omniq__fio_t *io, const omniq_task_t *t,
                         const char *idname, const omniq__frec_t *rec, int hint, char *err,
                         size_t errlen) {
  char qdir[OMNIQ__QDIR_SIZE];
  int rc = omniq__fname_qdir(t->queue, qdir);
  if (rc != OMNIQ_OK) {
    snprintf(err, errlen, "file store: task %s: its queue cannot be a folder", t->id);
    return rc;
  }
  rc = move_out(fs, io, t, idname, rec, err, errlen);
  if (rc == OMNIQ_OK && rec->runs >= 0) omniq__ftotals_moved(fs, t->id, t->token);
  if (rc == OMNIQ_OK) omniq__fmark_set(fs, t->id, qdir, t->status, hint);
  if (rc == OMNIQ_OK && omniq_status_is_terminal(t->status))
    omniq__fmark_timed(fs, t->id, qdir, t->finished_at_ms);
  return rc;
}

int omniq__fs_roll_forward(omniq__fs_t *fs, const char *id, const char *idname, char *err,
                           size_t errlen) {
  omniq_task_t *t;
  omniq_result_t *r;
  omniq__frec_t rec;
  int runs = -1;
  int rc = omniq__frec_read_slot(fs->running_fd, idname, id, &t, &r, &runs, err, errlen);
  if (rc == OMNIQ_ENOTFOUND) return OMNIQ_OK;
  if (rc == OMNIQ_ECORRUPT) {
    omniq__fio_quarantine(&fs->io, fs->running_fd, "queue/running", idname, err);
    return OMNIQ_OK;
  }
  if (rc == OMNIQ_OK && t->status != OMNIQ_RUNNING &&
      (rc = omniq__frec_encode(&rec, t, r, err, errlen)) == OMNIQ_OK) {
    rec.runs = runs;
    /* Without io->defer each step syncs its folder before the next: the
     * result is durable before the slot leaves running/. A PENDING slot
     * may be a claim cut short: its marker never left. */
    rc = publish_result(fs, &fs->io, idname, &rec, NULL, err, errlen);
    /* The run is counted unless a handle counted it before the crash
     * (its file lists it as pending). */
    if (rc == OMNIQ_OK && runs >= 0 && !omniq__ftotals_counted(fs, t->id, t->token) &&
        (rc = count_run(fs, t, &rec, err, errlen)) == OMNIQ_OK)
      rc = omniq__ftotals_flush(fs, err, errlen);
    if (rc == OMNIQ_OK)
      rc = move_and_mark(fs, &fs->io, t, idname, &rec, OMNIQ_RUNNING, err, errlen);
    omniq__frec_free(&rec);
    if (rc == OMNIQ_OK)
      omniq__log(&fs->log, OMNIQ_LOG_INFO, "storage.recovered", id,
                 "finished an interrupted step: task is %s", omniq_status_name(t->status));
  }
  omniq_task_free(t);
  omniq_result_free(r);
  return rc;
}

static void quarantine_done(omniq__fs_t *fs, int k, const char *name, const char *reason) {
  char from[32];
  snprintf(from, sizeof from, "queue/%s", omniq__fname_done[k]);
  omniq__fio_quarantine(&fs->io, fs->done_fd[k], from, name, reason);
}

int omniq__fs_locate(omniq__fs_t *fs, const char *id, const char *idname, omniq__fs_at_t *at,
                     omniq__pending_t *p, omniq_task_t **t, char *err, size_t errlen) {
  omniq_task_t *task = NULL;
  int rc;
  *at = OMNIQ__AT_NONE;
  if (t != NULL) *t = NULL;
  for (int attempt = 0; attempt < 2; attempt++) {
    rc = omniq__frec_read(fs->running_fd, idname, id, &task, NULL, err, errlen);
    if (rc == OMNIQ_OK && task->status != OMNIQ_RUNNING && attempt == 0) {
      omniq_task_free(task);
      task = NULL;
      if ((rc = omniq__fs_roll_forward(fs, id, idname, err, errlen)) != OMNIQ_OK) return rc;
      continue;
    }
    if (rc == OMNIQ_OK) *at = OMNIQ__AT_RUNNING;
    if (rc == OMNIQ_ECORRUPT)
      omniq__fio_quarantine(&fs->io, fs->running_fd, "queue/running", idname, err);
    else if (rc != OMNIQ_ENOTFOUND && rc != OMNIQ_OK)
      return rc;
    for (int k = 0; k < OMNIQ__FS_NDONE && *at == OMNIQ__AT_NONE; k++) {
      rc = omniq__frec_read(fs->done_fd[k], idname, id, &task, NULL, err, errlen);
      if (rc == OMNIQ_OK) *at = OMNIQ__AT_DONE;
      if (rc == OMNIQ_ECORRUPT) quarantine_done(fs, k, idname, err);
      else if (rc != OMNIQ_ENOTFOUND && rc != OMNIQ_OK)
        return rc;
    }
    int found = *at == OMNIQ__AT_NONE ? omniq__fidx_find(fs->idx, id, 1, p) : 0;
    if (found < 0) {
      snprintf(err, errlen, "file store: looking for %s: the pending folders cannot be listed",
               id);
      return found;
    }
    if (found) {
      int qfd;
      rc = omniq__fidx_open_dir(fs->idx, p->qdir, &qfd, err, errlen);
      if (rc == OMNIQ_OK) {
        rc = omniq__frec_read(qfd, p->name, id, &task, NULL, err, errlen);
        if (rc == OMNIQ_ECORRUPT) omniq__fio_quarantine(&fs->io, qfd, "queue/pending", p->name, err);
        close(qfd);
      }
      if (rc == OMNIQ_OK) {
        *at = OMNIQ__AT_PENDING;
      } else if (rc == OMNIQ_ECORRUPT || rc == OMNIQ_ENOTFOUND) {
        omniq__fidx_forget(fs->idx, id);
        if (attempt == 0) continue; /* the index was stale: look once more */
      } else {
        return rc;
      }
    }
    break;
  }
  err[0] = '\0';
  if (t != NULL)
    *t = task;
  else
    omniq_task_free(task);
  return OMNIQ_OK;
}

int omniq__fs_stage(const omniq__fio_t *io, const omniq_task_t *t, const omniq_result_t *r,
                    int runs, omniq__fs_staged_t *s, char *err, size_t errlen) {
  int rc = omniq__frec_encode(&s->rec, t, r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  s->rec.runs = runs;
  /* The slot's and the result's data in one sync (or held for the
   * batch's), before any rename. */
  rc = omniq__frec_stage_slot(io, &s->rec, s->slot_tmp, s->result_tmp, err, errlen);
  if (rc != OMNIQ_OK) omniq__frec_free(&s->rec);
  return rc;
}

void omniq__fs_unstage(omniq__fs_t *fs, omniq__fs_staged_t *s) {
  omniq__fio_unstage(&fs->io, s->slot_tmp);
  if (s->rec.result != NULL) omniq__fio_unstage(&fs->io, s->result_tmp);
  omniq__frec_free(&s->rec);
}

int omniq__fs_apply(omniq__fs_t *fs, const omniq__fio_t *io, const omniq_task_t *t,
                    const char *idname, omniq__fs_staged_t *s, char *err, size_t errlen) {
  s->committed = 0;
  int rc = omniq__fio_replace(io, s->slot_tmp, fs->running_fd, idname, err, errlen);
  if (rc != OMNIQ_OK) {
    if (s->rec.result != NULL) omniq__fio_unstage(&fs->io, s->result_tmp);
    omniq__frec_free(&s->rec);
    return rc;
  }
  /* Committed. A failure from here on leaves the slot for a roll-forward
   * to finish; the caller's transition did happen, so it is told so. */
  rc = publish_result(fs, io, idname, &s->rec, s->rec.result != NULL ? s->result_tmp : NULL, err,
                      errlen);
  if (rc != OMNIQ_OK) {
    omniq__log(&fs->log, OMNIQ_LOG_ERROR, "storage.incomplete", t->id,
               "transition committed, storing its result failed (retried on recovery): %s", err);
    omniq__frec_free(&s->rec);
  }
  s->committed = rc == OMNIQ_OK;
  err[0] = '\0';
  return OMNIQ_OK;
}

void omniq__fs_count(omniq__fs_t *fs, const omniq_task_t *t, omniq__fs_staged_t *s) {
  char err[OMNIQ__ERRMSG_MAX];
  if (s->committed && count_run(fs, t, &s->rec, err, sizeof err) != OMNIQ_OK)
    omniq__fs_leave(fs, t, s, err);
}

void omniq__fs_leave(omniq__fs_t *fs, const omniq_task_t *t, omniq__fs_staged_t *s,
                     const char *why) {
  if (!s->committed) return;
  s->committed = 0;
  omniq__log(&fs->log, OMNIQ_LOG_ERROR, "storage.incomplete", t->id,
             "transition committed, finishing it failed (retried on recovery): %s", why);
  omniq__frec_free(&s->rec);
}

void omniq__fs_move(omniq__fs_t *fs, const omniq__fio_t *io, const omniq_task_t *t,
                    const char *idname, omniq__fs_staged_t *s, int hint) {
  char err[OMNIQ__ERRMSG_MAX];
  if (!s->committed) return; /* left to a roll-forward, which starts at step 3 */
  if (move_and_mark(fs, io, t, idname, &s->rec, hint, err, sizeof err) != OMNIQ_OK) {
    omniq__fs_leave(fs, t, s, err);
    return;
  }
  s->committed = 0;
  omniq__frec_free(&s->rec);
}

/* Steps 2-4 for t's new state (lock held, t's file in the slot): runs is
 * the running total a finish adds to (-1 for none), hint the status the
 * task had (where its marker is). */
int omniq__fs_commit(omniq__fs_t *fs, const omniq_task_t *t, const char *idname,
                      const omniq_result_t *r, int runs, int hint, char *err, size_t errlen) {
  omniq__fs_staged_t staged;
  int rc = omniq__fs_stage(&fs->io, t, r, runs, &staged, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  /* Folder syncs are put off and made in two group rounds: the commit's
   * and the result's folders (running/, results/) before the slot leaves
   * running/ (it holds the only other copy of the result), then the
   * folders of the move. No order of renames on the disk is assumed (see
   * Durability in docs/storage-file.md). */
  omniq__fio_dirs_t later = OMNIQ__FIO_DIRS_INIT;
  omniq__fio_t io = fs->io;
  io.defer = &later;
  rc = omniq__fs_apply(fs, &io, t, idname, &staged, err, errlen);
  /* The commit is only a commit once running/ is synced: a failure here
   * is the caller's, and the slot is left for a roll-forward. */
  if (rc == OMNIQ_OK) rc = omniq__fio_dirs_sync(&io, &later, err, errlen);
  if (rc != OMNIQ_OK) {
    if (staged.committed) omniq__frec_free(&staged.rec);
    omniq__fio_dirs_drop(&later);
    return rc;
  }
  omniq__fs_count(fs, t, &staged);
  char e[OMNIQ__ERRMSG_MAX];
  if (staged.committed && omniq__ftotals_flush(fs, e, sizeof e) != OMNIQ_OK)
    omniq__fs_leave(fs, t, &staged, e);
  omniq__fs_move(fs, &io, t, idname, &staged, hint);
  return omniq__fio_dirs_sync(&io, &later, err, errlen);
}

/* Reads the RUNNING task id under token (lock held): ENOTFOUND / ESTATE
 * otherwise. */
static int load_running(omniq__fs_t *fs, const char *id, const char *idname, int64_t token,
                        omniq_task_t **t, char *err, size_t errlen) {
  omniq__fs_at_t at;
  omniq__pending_t p;
  /* The slot this handle's claim wrote, unchanged since (one fstatat),
   * holds the task the claim remembered. */
  if (omniq__fclaimed_take(fs->claimed, fs->running_fd, idname, id, token, t)) return OMNIQ_OK;
  int rc = omniq__fs_locate(fs, id, idname, &at, &p, t, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (at == OMNIQ__AT_RUNNING && (*t)->token == token) return OMNIQ_OK;
  if (at == OMNIQ__AT_RUNNING) {
    snprintf(err, errlen, "task %s: claim token %lld is no longer current (now %lld)", id,
             (long long)token, (long long)(*t)->token);
    rc = OMNIQ_ESTATE;
  } else if (at == OMNIQ__AT_NONE) {
    snprintf(err, errlen, "no task %s", id);
    rc = OMNIQ_ENOTFOUND;
  } else {
    snprintf(err, errlen, "task %s is %s, not RUNNING", id, omniq_status_name((*t)->status));
    rc = OMNIQ_ESTATE;
  }
  omniq_task_free(*t);
  *t = NULL;
  return rc;
}

int omniq__fs_check_decision(const omniq_decision_t *d, char idname[OMNIQ__IDNAME_SIZE],
                             char *err, size_t errlen) {
  if (d == NULL || omniq__fname_id(d->id, idname) != OMNIQ_OK) {
    snprintf(err, errlen, "file store: not a task id");
    return OMNIQ_EINVAL;
  }
  if (d->next_status != OMNIQ_PENDING && d->next_status != OMNIQ_SUCCESS &&
      d->next_status != OMNIQ_FAILED) {
    snprintf(err, errlen, "file store: a run cannot end in status %s",
             omniq_status_name(d->next_status));
    return OMNIQ_EINVAL;
  }
  return OMNIQ_OK;
}

int omniq__fs_decide(omniq__fs_t *fs, const omniq_decision_t *d, const char *idname,
                     omniq_task_t **t, char *err, size_t errlen) {
  int rc = load_running(fs, d->id, idname, d->token, t, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (d->error != NULL) {
    omniq_task_error_t *e = omniq_task_error_dup(d->error);
    if (e == NULL) {
      omniq_task_free(*t);
      *t = NULL;
      return omniq__fio_errno(ENOMEM, err, errlen, "file store: finishing %s", d->id);
    }
    omniq_task_error_free((*t)->last_error);
    (*t)->last_error = e;
  }
  (*t)->status = d->next_status;
  (*t)->crashes = d->crashes;
  if (d->next_status == OMNIQ_PENDING) {
    (*t)->eta_ms = d->eta_ms;
    if (d->reset_attempts) (*t)->attempts = 0;
  } else if (d->result != NULL) {
    (*t)->finished_at_ms = d->result->finished_at_ms;
  }
  return OMNIQ_OK;
}

int omniq__fs_finish(void *backend, const omniq_decision_t *d, char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq_task_t *t = NULL;
  char idname[OMNIQ__IDNAME_SIZE];
  int rc = omniq__fs_check_decision(d, idname, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if ((rc = omniq__flock_take(&fs->locks, d->id, err, errlen)) != OMNIQ_OK) return rc;
  rc = omniq__fs_decide(fs, d, idname, &t, err, errlen);
  if (rc == OMNIQ_OK)
    rc = omniq__fs_commit(fs, t, idname, d->result, d->runs, OMNIQ_RUNNING, err, errlen);
  omniq__flock_release(&fs->locks, d->id);
  omniq_task_free(t);
  return rc;
}

/* The claim undone: the attempt it counted goes, and its token moves on
 * so the claim is void; the lease is cleared, the eta stays. A rate
 * window keeps counting the start (a window limits starts, and the claim
 * was one). No run ends, so nothing is counted and no result stored. */
int omniq__fs_release(void *backend, const char *id, int64_t token, char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq_task_t *t = NULL;
  char idname[OMNIQ__IDNAME_SIZE];
  if (omniq__fname_id(id, idname) != OMNIQ_OK) {
    snprintf(err, errlen, "file store: release: not a task id");
    return OMNIQ_EINVAL;
  }
  int rc = omniq__flock_take(&fs->locks, id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = load_running(fs, id, idname, token, &t, err, errlen);
  if (rc == OMNIQ_OK) {
    t->status = OMNIQ_PENDING;
    t->attempts = t->attempts > 0 ? t->attempts - 1 : 0;
    t->token++;
    t->lease_until_ms = 0;
    rc = omniq__fs_commit(fs, t, idname, NULL, -1, OMNIQ_RUNNING, err, errlen);
  }
  omniq__flock_release(&fs->locks, id);
  omniq_task_free(t);
  return rc;
}

int omniq__fs_extend_lease(void *backend, const char *id, int64_t token, int64_t lease_until_ms,
                           char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq_task_t *t = NULL;
  omniq__frec_t rec;
  char idname[OMNIQ__IDNAME_SIZE];
  if (omniq__fname_id(id, idname) != OMNIQ_OK) {
    snprintf(err, errlen, "file store: not a task id");
    return OMNIQ_EINVAL;
  }
  int rc = omniq__flock_take(&fs->locks, id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = load_running(fs, id, idname, token, &t, err, errlen);
  if (rc == OMNIQ_OK) {
    t->lease_until_ms = lease_until_ms;
    rc = omniq__frec_encode(&rec, t, NULL, err, errlen);
  }
  if (rc == OMNIQ_OK) {
    /* Marked as a claim's rewrite is, so the finish still needs no read. */
    omniq__fio_stamp_t stamp;
    omniq__fio_t io = fs->io;
    omniq__fclaimed_mark(fs->claimed, &stamp);
    io.stamp = &stamp;
    rc = omniq__frec_write_slot(&io, fs->running_fd, idname, &rec, err, errlen);
    if (rc == OMNIQ_OK) omniq__fclaimed_put(fs->claimed, t, &stamp, (off_t)rec.task_len + 1);
    omniq__frec_free(&rec);
  }
  omniq__flock_release(&fs->locks, id);
  omniq_task_free(t);
  return rc;
}

int omniq__fs_cancel(void *backend, const char *id, int64_t finished_at_ms, int *prev_status,
                     char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq_task_t *t = NULL;
  omniq__fs_at_t at;
  omniq__pending_t p;
  int qfd = -1; /* a pending task's folder, open from step 1 to the end */
  char idname[OMNIQ__IDNAME_SIZE];
  if (prev_status != NULL) *prev_status = -1;
  if (omniq__fname_id(id, idname) != OMNIQ_OK) {
    snprintf(err, errlen, "file store: not a task id");
    return OMNIQ_EINVAL;
  }
  int rc = omniq__flock_take(&fs->locks, id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fs_locate(fs, id, idname, &at, &p, &t, err, errlen);
  if (rc == OMNIQ_OK && at != OMNIQ__AT_NONE && prev_status != NULL) *prev_status = t->status;
  if (rc == OMNIQ_OK && at == OMNIQ__AT_NONE) {
    snprintf(err, errlen, "no task %s", id);
    rc = OMNIQ_ENOTFOUND;
  } else if (rc == OMNIQ_OK && at == OMNIQ__AT_DONE) {
    snprintf(err, errlen, "task %s is already %s", id, omniq_status_name(t->status));
    rc = OMNIQ_ESTATE;
  } else if (rc == OMNIQ_OK && at == OMNIQ__AT_PENDING) {
    /* Step 1: into the slot, so the commit below is one rename away from
     * either state. A crash right after this rename leaves a PENDING file
     * in the slot, which a roll-forward puts back. */
    rc = omniq__fidx_open_dir(fs->idx, p.qdir, &qfd, err, errlen);
    if (rc == OMNIQ_OK && renameat(qfd, p.name, fs->running_fd, idname) != 0)
      rc = omniq__fio_errno(errno, err, errlen, "file store: moving %s to queue/running", p.name);
  }
  if (rc == OMNIQ_OK) {
    /* The result counts the attempts of the task read under the lock that
     * this commit is made under: no claim can come between. */
    omniq_result_t r = {.status = OMNIQ_CANCELLED,
                        .attempts = t->attempts,
                        .finished_at_ms = finished_at_ms,
                        .last_attempt_at_ms = t->started_at_ms};
    memcpy(r.task_id, t->id, OMNIQ_ID_SIZE);
    int was = t->status;
    t->status = OMNIQ_CANCELLED;
    t->finished_at_ms = finished_at_ms;
    rc = omniq__fs_commit(fs, t, idname, &r, -1, was, err, errlen);
    /* The commit did not happen (a full disk, no memory): the slot still
     * holds the PENDING file. Put it back now, as a claim does, rather than
     * leave it counted as RUNNING and out of claimers' reach until a
     * recovery runs. */
    if (rc != OMNIQ_OK && at == OMNIQ__AT_PENDING)
      renameat(fs->running_fd, idname, qfd, p.name);
    else if (rc == OMNIQ_OK && at == OMNIQ__AT_PENDING)
      omniq__fidx_forget(fs->idx, id);
  }
  if (qfd >= 0) close(qfd);
  omniq__flock_release(&fs->locks, id);
  omniq_task_free(t);
  return rc;
}
