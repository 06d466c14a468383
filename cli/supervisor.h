/* SPDX-License-Identifier: MIT */
/* The process that runs one shell-command task and owns its process tree. */
#ifndef OMNIQ_CLI_SUPERVISOR_H
#define OMNIQ_CLI_SUPERVISOR_H

#include <stdint.h>
#include <sys/types.h>

typedef struct cli_spawn {
  const char *path;   /* executable to run; NULL = not found (reported as ENOENT) */
  char *const *argv;  /* NULL-terminated */
  char *const *envp;  /* NULL-terminated: the whole environment */
  int64_t kill_after_ms; /* SIGTERM -> SIGKILL grace when asked to stop */
} cli_spawn_t;

/* How the command ended, as the supervisor reports it. */
enum { CLI_RUN_EXITED = 1, CLI_RUN_SIGNALED = 2, CLI_RUN_SPAWN_FAILED = 3 };
typedef struct cli_run_record {
  int32_t kind;    /* CLI_RUN_* */
  int32_t value;   /* exit code, signal number, or errno */
  int32_t stopped; /* 1 if it was stopped on request (SIGTERM to the supervisor) */
} cli_run_record_t;

/* Forks the supervisor for sp (everything in sp is read before this returns
 * in the child's copy, so it may be freed afterwards). On 0, *pid is the
 * supervisor (a child of the calling thread: reap it with waitpid), and
 * fds[0], fds[1], fds[2] are the read ends of the command's stdout, its
 * stderr, and the supervisor's one cli_run_record_t (EOF without a record:
 * the supervisor died). Send the supervisor SIGTERM to stop the command.
 * On -1 errno says why and nothing was started. */
int cli_supervisor_start(const cli_spawn_t *sp, int fds[3], pid_t *pid);

#endif
