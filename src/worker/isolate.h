/* SPDX-License-Identifier: MIT */
/* Process isolation, the pool's side: each runner thread has a slot, and
 * the slot a long-lived child process (forked by the pool's zygote) that
 * runs its tasks one at a time. A child that crashes, is killed, hits a
 * limit or has run max_tasks tasks is replaced. */
#ifndef OMNIQ_WORKER_ISOLATE_H
#define OMNIQ_WORKER_ISOLATE_H

#include "worker/job.h"
#include "worker/wire.h"

/* How often (ms) a waiting runner looks at the child's CPU time under a
 * CPU limit, and at the job's cancelled flag should its wake-up (the
 * slot's cancel_fd) be missing. */
#define OMNIQ__ISOLATE_TICK_MS 50
/* For tests: sets that period (0: back to OMNIQ__ISOLATE_TICK_MS), so a
 * test can show that a cancel or a deadline needs no tick to be seen. */
void omniq__isolate_set_tick_ms(int ms);

typedef struct omniq__slot {
  int ctl;               /* the channel to the zygote; owned, -1 = closed */
  int zygote_gone;       /* the channel closed: no child can be had any more */
  pid_t pid;             /* the current child, 0 = none */
  int sock, err;         /* its socket (non-blocking) and stderr pipe; -1 = none */
  int spawning;          /* a spawn was asked for and not answered yet */
  int spawn_errno;       /* the last spawn's failure, 0 = none */
  int ended;             /* the current child has ended (the zygote said so) */
  int exit_status;       /* how it ended (waitpid status; -1 = with the zygote) */
  long tasks;            /* tasks the current child has run */
  long max_tasks;        /* 0 = no limit */
  omniq__limits_t limits;
  omniq__buf_t out, in; /* frames to and from the child, reused */
  int gen;               /* the pool's: which of its zygotes ctl belongs to */
  int cancel_fd;         /* eventfd the running job's cancel writes to; -1 = none */
} omniq__slot_t;

/* Sets up a slot on its channel (ctl is the slot's from then on) and asks
 * for its first child at once, so it is ready before the first task. */
void omniq__slot_init(omniq__slot_t *s, int ctl, long max_tasks, const omniq__limits_t *limits);
/* Closes the slot's descriptors (the zygote then kills its child) and
 * frees its buffers. Idempotent. */
void omniq__slot_close(omniq__slot_t *s);

/* Takes the zygote's news without waiting; 0 if the zygote has exited (the
 * slot needs a channel to a new one), 1 otherwise. */
int omniq__slot_usable(omniq__slot_t *s);

/* Runs the job's task in the slot's child and records on job what happened
 * as if the handler had run here: its value, its omniq_job_fail() or error
 * code, a limit it ran into, or a crash (message naming the signal or exit
 * status; traceback the tail of its stderr), or that no child could be
 * had. Returns OMNIQ_OK when the run ended on its own, OMNIQ_ECLOSED when
 * it was cancelled (whoever cancelled it owns the run; the child was killed
 * and reaped). Blocks until then. */
int omniq__isolate_run(omniq__slot_t *s, omniq_job_t *job);

#endif
