/* SPDX-License-Identifier: MIT */
/* A process-isolation child: a long-lived process forked by the zygote
 * that runs one task at a time for its pool. */
#ifndef OMNIQ_WORKER_CHILD_H
#define OMNIQ_WORKER_CHILD_H

#include <sys/types.h>

#include "core/handle.h"

/* The child's life, called right after the zygote forked it: dies with the
 * zygote (PR_SET_PDEATHSIG), leads its own process group, sends its stderr
 * to err_fd, then reads task frames from sock and answers each with a
 * report frame until the socket closes. Funcs resolve as in the pool,
 * handler_path (may be NULL) included. Never returns. */
_Noreturn void omniq__child_main(omniq_t *oq, const char *handler_path, int sock, int err_fd,
                                 pid_t zygote);

#endif
