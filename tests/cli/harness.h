/* SPDX-License-Identifier: MIT */
/* Driving the built `omniq` binary from cmocka tests, as a user would: run
 * it with arguments in a fresh directory and store, collect its output and
 * exit status, start a worker in the background, and wait for a condition
 * with a generous deadline (never a fixed sleep). */
#ifndef OMNIQ_TEST_CLI_HARNESS_H
#define OMNIQ_TEST_CLI_HARNESS_H

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

/* Every wait in these tests gives up after this long: far more than any
 * condition needs, so a slow machine never fails a test; a real hang does. */
#define CLI_DEADLINE_MS 30000

#define CLI_MAX_STARTED 8

typedef struct cli_env {
  char *dir;           /* fresh directory: the commands' working directory */
  const char *backend; /* "sqlite" or "file" */
  /* Background processes not yet waited for: a failed test leaves them
   * running, so the teardown kills them. */
  pid_t started[CLI_MAX_STARTED];
} cli_env_t;

typedef struct cli_out {
  int status; /* exit code, or 128 + signal */
  char *out;  /* stdout, NUL-terminated */
  char *err;  /* stderr */
} cli_out_t;

/* The backend named by the test program's first argument (default sqlite). */
const char *cli_backend_arg(int argc, char **argv);

/* cmocka setup/teardown: a fresh directory and store settings in the
 * environment (OMNIQ_BACKEND, OMNIQ_BASE_DIR, short retry delays); *state is
 * the backend name on entry and the cli_env_t after. The teardown kills
 * what a failed test left running: background workers, and the processes
 * listed in the file "pids" (where the tests' commands write theirs). */
int cli_setup(void **state);
int cli_teardown(void **state);

/* Runs omniq with the NULL-terminated arguments in env->dir and waits for
 * it (failing the test after CLI_DEADLINE_MS). Free with cli_out_free. */
cli_out_t cli_run(const cli_env_t *env, const char *arg, ...);
cli_out_t cli_runv(const cli_env_t *env, char *const *argv);
void cli_out_free(cli_out_t *o);

/* Starts omniq in the background in env->dir, its stdout and stderr going
 * to the file log (relative to env->dir). Returns its pid. */
pid_t cli_start(cli_env_t *env, const char *log, const char *arg, ...);
/* Sends sig (0 = none) and waits for the process; returns its exit code, or
 * 128 + signal. */
int cli_stop(cli_env_t *env, pid_t pid, int sig);

/* A worker in the background polling every 20 ms, on queues (a --queues
 * list; NULL = the default queue), its stdout and stderr in worker.log.
 * Returns its pid once it has logged worker.started: from then on SIGTERM
 * is a graceful stop. */
pid_t cli_start_worker(cli_env_t *env, const char *queues);
/* Stops a worker from cli_start_worker with SIGTERM; fails the test, with
 * its log, unless it exits 0. */
void cli_stop_worker(cli_env_t *env, pid_t pid);

/* Enqueues with the given arguments and returns the id (yours: free). */
char *cli_enqueue(const cli_env_t *env, const char *arg, ...);

/* Parses o->out as one JSON document; fails the test if it is not. */
json_t *cli_json(const cli_out_t *o);

/* Parses each line of o->out as JSON (JSON lines): a new array of them;
 * fails the test at a line that is not JSON. */
json_t *cli_json_lines(const cli_out_t *o);
/* Members that must be there: fail the test if not. Strings are borrowed. */
const char *cli_jstr(json_t *obj, const char *key);
json_int_t cli_jint(json_t *obj, const char *key);
/* `omniq show --json ID`, which must succeed (yours: json_decref). */
json_t *cli_show_json(const cli_env_t *env, const char *id);

/* Polls cond(arg) every few ms until it is true; fails the test with what
 * after CLI_DEADLINE_MS. */
void cli_wait_for(int (*cond)(const cli_env_t *env, const void *arg), const cli_env_t *env,
                  const void *arg, const char *what);

/* Waits (CLI_DEADLINE_MS at most) until the file log under env->dir
 * contains text. A background worker's "worker.started" line says its
 * signals are set up (they are blocked before the store is opened), so a
 * SIGTERM after it is a graceful stop, never the default action. */
void cli_wait_for_log(const cli_env_t *env, const char *log, const char *text);

/* A store the backend cannot open: puts in value what to pass with the
 * returned option. SQLite and file: a file under env->dir that is neither a
 * database nor a directory (--db, --base-dir); PostgreSQL: a URL on a port
 * nothing listens on (--db). */
const char *cli_not_a_store(const cli_env_t *env, char *value, size_t len);

/* A file under env->dir: its contents (NULL if missing; yours: free), or
 * the number of complete lines in it. */
char *cli_read_file(const cli_env_t *env, const char *name);
int cli_count_lines(const cli_env_t *env, const char *name);
/* Reads whole-line integers (pids) from a file; returns how many (up to max). */
int cli_read_pids(const cli_env_t *env, const char *name, pid_t *pids, int max);
/* 1 while a process with that pid exists (a zombie counts as gone). */
int cli_pid_alive(pid_t pid);

/* Milliseconds since the epoch, wall clock; an RFC 3339 time parsed. */
int64_t cli_now(void);
int64_t cli_time(const char *rfc3339);

#endif
