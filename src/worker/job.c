/* SPDX-License-Identifier: MIT */
/* Jobs: the handler-facing API and the reference counting that lets a
 * deferred job outlive its runner. See job.h for the design note. */
#include "worker/job.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/error.h"

int omniq__job_new(omniq_t *oq, omniq_task_t *task, omniq_job_t **out) {
  omniq_job_t *job = omniq__calloc(1, sizeof *job);
  *out = NULL;
  if (job == NULL) return OMNIQ_ENOMEM;
  if (pthread_mutex_init(&job->lock, NULL) != 0) {
    omniq__free(job);
    return OMNIQ_ENOMEM;
  }
  if (pthread_cond_init(&job->cond, NULL) != 0) {
    pthread_mutex_destroy(&job->lock);
    omniq__free(job);
    return OMNIQ_ENOMEM;
  }
  job->oq = oq;
  job->task = task;
  job->serializer = oq->settings.serializer;
  /* Saturating: the task is as read from the store, not as the engine
   * checked it at enqueue. */
  if (task->timeout_ms > 0)
    job->deadline_ms = omniq__add_ms(task->started_at_ms, task->timeout_ms);
  job->refs = 2;
  job->kind = OMNIQ__RUN_OK;
  atomic_init(&job->cancelled, 0);
  job->cancel_fd = -1;
  *out = job;
  return OMNIQ_OK;
}

void omniq__job_init_child(omniq_job_t *child, omniq_t *oq, omniq_task_t *task,
                           int64_t deadline_ms) {
  memset(child, 0, sizeof *child);
  child->oq = oq;
  child->task = task;
  child->serializer = oq->settings.serializer;
  child->deadline_ms = deadline_ms;
  child->in_child = 1;
  child->refs = 2;
  child->kind = OMNIQ__RUN_OK;
  pthread_mutex_init(&child->lock, NULL);
  pthread_cond_init(&child->cond, NULL);
  atomic_init(&child->cancelled, 0);
  child->cancel_fd = -1;
}

static void clear_report(omniq_job_t *job) {
  omniq__free(job->value);
  omniq__free(job->error_type);
  omniq__free(job->message);
  omniq__free(job->traceback);
  job->value = job->error_type = job->message = job->traceback = NULL;
}

void omniq__job_fini_child(omniq_job_t *child) {
  clear_report(child);
  pthread_cond_destroy(&child->cond);
  pthread_mutex_destroy(&child->lock);
}

void omniq__job_ref(omniq_job_t *job) {
  pthread_mutex_lock(&job->lock);
  job->refs++;
  pthread_mutex_unlock(&job->lock);
}

void omniq__job_unref(omniq_job_t *job) {
  pthread_mutex_lock(&job->lock);
  int last = --job->refs == 0;
  pthread_mutex_unlock(&job->lock);
  if (!last || job->in_child) return;
  clear_report(job);
  omniq_task_free(job->task);
  pthread_cond_destroy(&job->cond);
  pthread_mutex_destroy(&job->lock);
  omniq__free(job);
}

int omniq__job_end(omniq_job_t *job) {
  pthread_mutex_lock(&job->lock);
  int won = !job->ended;
  job->ended = 1;
  pthread_cond_broadcast(&job->cond);
  pthread_mutex_unlock(&job->lock);
  return won;
}

int omniq__job_ended(omniq_job_t *job) {
  pthread_mutex_lock(&job->lock);
  int s = job->ended;
  pthread_mutex_unlock(&job->lock);
  return s;
}

void omniq__job_cancel(omniq_job_t *job) {
  atomic_store(&job->cancelled, 1);
  pthread_mutex_lock(&job->lock);
  pthread_cond_broadcast(&job->cond);
  if (job->cancel_fd >= 0) {
    uint64_t one = 1;
    ssize_t w = write(job->cancel_fd, &one, sizeof one); /* full only if already woken */
    (void)w;
  }
  pthread_mutex_unlock(&job->lock);
}

void omniq__job_set_cancel_fd(omniq_job_t *job, int fd) {
  pthread_mutex_lock(&job->lock);
  job->cancel_fd = fd;
  pthread_mutex_unlock(&job->lock);
}

int omniq__job_wait_cancelled(omniq_job_t *job, int64_t timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until); /* job->cond is on the default clock */
  until.tv_sec += (time_t)(timeout_ms / 1000);
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&job->lock);
  int rc = 0;
  while (!atomic_load(&job->cancelled) && rc == 0)
    rc = pthread_cond_timedwait(&job->cond, &job->lock, &until);
  pthread_mutex_unlock(&job->lock);
  return atomic_load(&job->cancelled);
}

void omniq__job_returned(omniq_job_t *job) {
  pthread_mutex_lock(&job->lock);
  /* A handler that called omniq_job_complete() and then returned something
   * other than OMNIQ_DEFERRED has already given its reference back. */
  int drop = !job->completed;
  job->completed = 1;
  pthread_mutex_unlock(&job->lock);
  if (drop) omniq__job_unref(job);
}

int omniq__job_wait_deferred(omniq_job_t *job) {
  pthread_mutex_lock(&job->lock);
  while (!job->completed && !job->ended) pthread_cond_wait(&job->cond, &job->lock);
  int completed = job->completed;
  pthread_mutex_unlock(&job->lock);
  return completed;
}

int omniq__job_fail(omniq_job_t *job, omniq__run_kind_t kind, const char *error_type,
                    const char *message, const char *traceback, int retryable) {
  char *t = omniq__strdup(error_type);
  char *m = omniq__strdup(message != NULL ? message : "");
  char *tb = omniq__strdup(traceback);
  if (m == NULL || (error_type != NULL && t == NULL) || (traceback != NULL && tb == NULL)) {
    omniq__free(t);
    omniq__free(m);
    omniq__free(tb);
    return OMNIQ_ENOMEM;
  }
  pthread_mutex_lock(&job->lock);
  omniq__free(job->error_type);
  omniq__free(job->message);
  omniq__free(job->traceback);
  job->kind = kind;
  job->error_type = t;
  job->message = m;
  job->traceback = tb;
  job->retryable = retryable != 0;
  pthread_mutex_unlock(&job->lock);
  return OMNIQ_OK;
}

void omniq__job_report(omniq_job_t *job, int handler_rc, omniq__run_report_t *r, char *buf,
                       size_t buflen) {
  memset(r, 0, sizeof *r);
  pthread_mutex_lock(&job->lock);
  if (job->kind != OMNIQ__RUN_OK) {
    r->kind = job->kind;
    r->error_type = job->error_type;
    r->message = job->message;
    r->traceback = job->traceback;
    r->retryable = job->retryable;
  } else if (handler_rc == OMNIQ_OK || handler_rc == OMNIQ_DEFERRED) {
    r->kind = OMNIQ__RUN_OK;
    r->value = job->value;
  } else {
    snprintf(buf, buflen, "handler returned %s (%s)", omniq_err_name(handler_rc),
             omniq_strerror(handler_rc));
    r->kind = OMNIQ__RUN_HANDLER_ERROR;
    r->message = buf;
  }
  pthread_mutex_unlock(&job->lock);
}

void omniq__unstored_add(omniq__unstored_t *u, int rc, const char *msg) {
  if (rc == OMNIQ_OK || rc == OMNIQ_ESTATE) return;
  if (u->n++ == 0) {
    u->rc = rc;
    snprintf(u->msg, sizeof u->msg, "%s", msg);
  }
}

void omniq__job_log_report(omniq_job_t *job, const omniq__run_report_t *r, int rc) {
  const omniq_task_t *t = job->task;
  omniq__log_t *lg = &job->oq->log;
  if (rc == OMNIQ_ESTATE)
    omniq__log(lg, OMNIQ_LOG_DEBUG, "task.outcome_dropped", t->id,
               "claim no longer valid (cancelled or taken over); report ignored");
  else if (rc != OMNIQ_OK)
    omniq__log(lg, OMNIQ_LOG_ERROR, "task.report_failed", t->id,
               "the run ended (%s) but the store refused its outcome, %s: %s; the task stays "
               "RUNNING until its lease expires and is then retried as WorkerLost",
               omniq__run_kind_name(r->kind), omniq_err_name(rc), omniq__errmsg(job->oq->id));
  else
    omniq__log(lg, OMNIQ_LOG_DEBUG, "task.ran", t->id,
               "func=%s attempt=%d report=%s duration_ms=%lld", t->func, t->attempts,
               omniq__run_kind_name(r->kind),
               (long long)(omniq__pool_ms() - job->mono_started_ms));
}

/* ---- public API ------------------------------------------------------------ */

const char *omniq_job_id(const omniq_job_t *job) { return job ? job->task->id : NULL; }
const char *omniq_job_func(const omniq_job_t *job) { return job ? job->task->func : NULL; }
const char *omniq_job_args(const omniq_job_t *job) { return job ? job->task->args : NULL; }
const char *omniq_job_kwargs(const omniq_job_t *job) { return job ? job->task->kwargs : NULL; }
int omniq_job_attempt(const omniq_job_t *job) { return job ? job->task->attempts : 0; }
int64_t omniq_job_deadline(const omniq_job_t *job) { return job ? job->deadline_ms : 0; }

int omniq_job_cancelled(const omniq_job_t *job) {
  return job != NULL && atomic_load(&((omniq_job_t *)job)->cancelled);
}

int omniq_job_return(omniq_job_t *job, const char *json) {
  char err[256] = "";
  char *copy = NULL;
  if (job == NULL) return OMNIQ_EINVAL;
  if (json != NULL) {
    int rc = omniq__codec_check(job->serializer, OMNIQ__JSON_VALUE, json, err, sizeof err);
    if (rc != OMNIQ_OK) return omniq__err(job->oq->id, rc, "omniq_job_return: %s", err);
    if ((copy = omniq__strdup(json)) == NULL) return OMNIQ_ENOMEM;
  }
  pthread_mutex_lock(&job->lock);
  omniq__free(job->value);
  job->value = copy;
  pthread_mutex_unlock(&job->lock);
  return OMNIQ_OK;
}

int omniq_job_fail(omniq_job_t *job, const char *error_type, const char *message, int retryable) {
  return omniq_job_fail_traceback(job, error_type, message, NULL, retryable);
}

int omniq_job_fail_traceback(omniq_job_t *job, const char *error_type, const char *message,
                             const char *traceback, int retryable) {
  if (job == NULL) return OMNIQ_EINVAL;
  return omniq__job_fail(job, OMNIQ__RUN_HANDLER_FAILED, error_type, message, traceback,
                         retryable);
}

int omniq_job_crash(omniq_job_t *job, int signo, const char *detail) {
  char msg[96];
  if (job == NULL) return OMNIQ_EINVAL;
  if (signo < 1 || signo > 64)
    return omniq__err(job->oq->id, OMNIQ_EINVAL, "omniq_job_crash: %d is not a signal", signo);
  const char *abbrev = sigabbrev_np(signo);
  snprintf(msg, sizeof msg, "killed by signal %d (SIG%s)", signo, abbrev != NULL ? abbrev : "?");
  /* The same kind as a process-isolation child that died of a signal, so
   * the engine treats both alike (a crash, counted against crash_budget). */
  return omniq__job_fail(job, OMNIQ__RUN_CRASH_SIGNAL, NULL, msg, detail, 1);
}

int omniq_job_complete(omniq_job_t *job) {
  if (job == NULL) return OMNIQ_EINVAL;
  pthread_mutex_lock(&job->lock);
  if (job->completed) {
    pthread_mutex_unlock(&job->lock);
    return OMNIQ_ESTATE;
  }
  job->completed = 1;
  pthread_cond_broadcast(&job->cond);
  pthread_mutex_unlock(&job->lock);
  omniq__job_unref(job);
  return OMNIQ_OK;
}
