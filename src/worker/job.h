/* SPDX-License-Identifier: MIT */
/* Jobs: one run of one claimed task, as the handler sees it (the public
 * omniq_job_* API) and as the pool tracks it.
 *
 * A job is shared by up to three parties: the runner thread that called the
 * handler, the keeper thread that extends its lease and enforces its
 * deadline, and, for a deferred handler, whoever calls omniq_job_complete()
 * later. It is reference-counted so each lets go on its own schedule; the
 * last one frees it (and the task it owns).
 *
 * A run ends once: exactly one party reports it to the engine, the first
 * to call omniq__job_end(). The runner ends it when the handler is done;
 * the keeper at the deadline (a timeout report) or when the claim is lost;
 * a stop that gives up on a run ends it without a report. Whoever loses the
 * race drops what it has, so a late return changes nothing.
 *
 * What the job holds for its report is what happened, not what it means:
 * the handler's value, or a failure of some kind (core/report.h) with its
 * detail. The engine names the failure and decides whether it retries.
 *
 * Locks: job->lock guards refs, ended, completed and the report fields;
 * `cancelled` is atomic so handlers can poll it cheaply. Lock order: a
 * pool's lock before a job's lock, never the reverse.
 */
#ifndef OMNIQ_WORKER_JOB_H
#define OMNIQ_WORKER_JOB_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/handle.h"
#include "core/report.h"

struct omniq_job {
  /* Fixed once the job is built (but see deadline_ms). */
  omniq_t *oq;
  omniq_task_t *task;       /* owned: the claim (id, token, func, args) */
  int serializer;           /* for omniq_job_return's check */
  /* Set when the handler starts (by the pool, under its lock): a task
   * claimed ahead may wait before it runs, and its timeout counts from
   * the start. */
  /* mono_*: the pool's monotonic clock (omniq__pool_ms), which a test
   * may hold still or move. */
  int64_t deadline_ms;      /* store clock: start + timeout; 0 = none */
  int64_t mono_deadline_ms; /* the same deadline by the pool's clock; 0 = none */
  int64_t mono_started_ms;  /* when the run started, by the pool's clock */
  /* When, by the pool's clock, the lease is known to last until: the
   * claim's lease from a moment read before the claim, moved on by each
   * extension the store accepted. Written by the keeper, read by the
   * runner retrying its report. */
  _Atomic int64_t mono_lease_until_ms;
  int in_child;             /* a process-isolation child's copy: never freed */

  pthread_mutex_t lock;
  pthread_cond_t cond; /* completed or ended changed */
  int refs;
  int ended;     /* someone took the run (to report it or drop it) */
  int completed; /* the handler's side is done: returned, or omniq_job_complete */
  atomic_int cancelled;
  int cancel_fd; /* under lock: written to when cancelled (a runner polls it); -1 = none */

  /* What happened, for the report. */
  char *value;                /* omniq_job_return: JSON text; NULL = null */
  omniq__run_kind_t kind;     /* OMNIQ__RUN_OK until a failure is recorded */
  char *error_type;           /* HANDLER_FAILED: the handler's (may be NULL) */
  int retryable;              /* HANDLER_FAILED: the handler's */
  char *message;
  char *traceback;

  /* Pool bookkeeping, guarded by the owning pool's lock. */
  int64_t next_extend_ms; /* pool clock: when the lease is next extended */
  int keeper_action;
  int held; /* ended, its outcome waiting in the pool's batch: the keeper still
             * extends its lease until the batch commits */
  int holder; /* on `ready`: slot + 1 of the runner that holds it, 0 = any runner */
  struct omniq_job *next, *prev; /* the pool's in-flight list */
  struct omniq_job *knext;       /* the keeper's to-do list */
};

/* Builds a job for a claimed task, taking ownership of task (freed with the
 * job; on error the caller keeps it). Starts with two references: the runner's, and
 * the one the handler side gives up by returning or by omniq_job_complete. */
int omniq__job_new(omniq_t *oq, omniq_task_t *task, omniq_job_t **out);
/* A job in a process-isolation child, for a task the pool sent: task is
 * borrowed, the job is never freed by reference counting. Release what the
 * handler set with omniq__job_fini_child. */
void omniq__job_init_child(omniq_job_t *child, omniq_t *oq, omniq_task_t *task,
                           int64_t deadline_ms);
void omniq__job_fini_child(omniq_job_t *child);

void omniq__job_ref(omniq_job_t *job);
/* Drops a reference; the last one frees the job. */
void omniq__job_unref(omniq_job_t *job);

/* Ends the run: 1 for the first caller, who reports it (or drops it), 0
 * after. Wakes a runner waiting on a deferred job. */
int omniq__job_end(omniq_job_t *job);
int omniq__job_ended(omniq_job_t *job);
/* Marks the job cancelled (what omniq_job_cancelled reads) and wakes a
 * runner waiting on a deferred job. */
void omniq__job_cancel(omniq_job_t *job);
/* Has omniq__job_cancel also write to fd (an eventfd; -1: no more), so a
 * runner that waits in poll, not on the job's condition, wakes at the
 * cancel itself. */
void omniq__job_set_cancel_fd(omniq_job_t *job, int fd);
/* For tests: waits until the job is cancelled (omniq__job_cancel wakes it
 * at once), or at most timeout_ms of real time, a guard against a hang.
 * Returns omniq_job_cancelled(). A handler that waits for its cancel this
 * way needs no loop of short sleeps. */
int omniq__job_wait_cancelled(omniq_job_t *job, int64_t timeout_ms);

/* The handler returned rc, not OMNIQ_DEFERRED: its side is done. */
void omniq__job_returned(omniq_job_t *job);
/* The handler returned OMNIQ_DEFERRED: waits until omniq_job_complete() or
 * until someone else ends the run (deadline, lost claim, stop). Returns 1
 * if completed. */
int omniq__job_wait_deferred(omniq_job_t *job);

/* Records a failure of kind with its detail (strings copied; error_type
 * and retryable are the handler's own, for OMNIQ__RUN_HANDLER_FAILED only).
 * The latest failure recorded is the one reported. OMNIQ_ENOMEM if a copy
 * fails (nothing changed). */
int omniq__job_fail(omniq_job_t *job, omniq__run_kind_t kind, const char *error_type,
                    const char *message, const char *traceback, int retryable);
/* The run report for the engine: the failure recorded, else success when
 * the handler returned OMNIQ_OK or OMNIQ_DEFERRED, else a handler error
 * naming handler_rc. Strings point into the job or into buf; valid while
 * the caller holds a reference and buf lives. */
void omniq__job_report(omniq_job_t *job, int handler_rc, omniq__run_report_t *r, char *buf,
                       size_t buflen);

/* Runs whose outcome the store refused (so not done), and the first
 * refusal's code and message. Guarded by its owner's lock (the pool's). */
typedef struct omniq__unstored {
  long n;
  int rc;
  char msg[160];
} omniq__unstored_t;

/* Counts a report that failed with rc, msg its message; OMNIQ_OK and
 * OMNIQ_ESTATE (a claim no longer valid: nothing to store) count nothing.
 * The caller holds the lock that guards u. */
void omniq__unstored_add(omniq__unstored_t *u, int rc, const char *msg);

/* Logs how reporting a run went (rc from omniq__engine_finish). The engine
 * logs its decision at INFO (succeeded, retry with its eta, failed); this
 * adds the run itself at DEBUG (the report's kind, duration), what was
 * dropped, and at ERROR an outcome the store refused (the run is not done:
 * its task stays RUNNING until its lease expires). Never any argument or
 * result data. */
void omniq__job_log_report(omniq_job_t *job, const omniq__run_report_t *r, int rc);

#endif
