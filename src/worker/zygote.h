/* SPDX-License-Identifier: MIT */
/* The zygote: a single-threaded process forked once when a process-
 * isolation pool starts, which forks that pool's children on request,
 * reaps them, tells the pool how each ended, and kills them all when the
 * pool stops or dies. */
#ifndef OMNIQ_WORKER_ZYGOTE_H
#define OMNIQ_WORKER_ZYGOTE_H

#include <stdint.h>
#include <sys/types.h>

#include "core/handle.h"

typedef struct omniq__zygote {
  pid_t pid; /* 0 = not started */
  int nslots;
  int *ctl; /* each slot's end of its channel; the slots own and close them */
} omniq__zygote_t;

/* Forks the zygote with one channel per slot (ctl[0..nslots-1]). The zygote
 * dies when the calling thread ends (PR_SET_PDEATHSIG), so call it from a
 * thread that lives as long as the pool. oq->lock and the handler-library
 * lock are held across the fork, so the copy's registry is whole and
 * unlocked. handler_path (the pool's own allowed libraries, or NULL) is
 * borrowed: its children resolve funcs with it, as the pool does.
 * OMNIQ_OK, or OMNIQ_ENOMEM / OMNIQ_EIO with the reason in err; on error
 * nothing is left open. */
int omniq__zygote_start(omniq__zygote_t *z, omniq_t *oq, const char *handler_path, int nslots,
                        char *err, size_t errlen);
/* Asks the zygote to kill every child (with its process group) and exit,
 * and reaps it. Frees z->ctl but closes none of the channels. */
void omniq__zygote_stop(omniq__zygote_t *z);

/* What travels on a slot's channel (SOCK_SEQPACKET: one message at a time).
 * Requests go from the slot to the zygote; answers and news come back. */
enum {
  OMNIQ__Z_SPAWN = 1,   /* slot: kill my child if I have one, fork me a new one */
  OMNIQ__Z_KILL,        /* slot: kill my child (its group too) */
  OMNIQ__Z_SPAWNED,     /* zygote: pid is your child; its socket and stderr come along */
  OMNIQ__Z_SPAWN_FAILED,/* zygote: could not fork; err is the errno */
  OMNIQ__Z_EXITED       /* zygote: your child pid ended; status as from waitpid */
};

typedef struct omniq__zmsg {
  int32_t type, pid, status, err;
} omniq__zmsg_t;

/* Sends a request (OMNIQ__Z_SPAWN or OMNIQ__Z_KILL). 0, or -1 if the
 * zygote is gone. */
int omniq__zygote_ask(int ctl, int type);
/* Takes one message without waiting. 1 = *m filled (for OMNIQ__Z_SPAWNED,
 * fds[0] = the child's socket and fds[1] = its stderr pipe, yours and
 * close-on-exec; -1 each if they could not be received); 0 = nothing yet;
 * -1 = the zygote is gone. */
int omniq__zygote_take(int ctl, omniq__zmsg_t *m, int fds[2]);

#endif
