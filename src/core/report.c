/* SPDX-License-Identifier: MIT */
/* The failure table: what each kind of run report is called and whether
 * it may be retried. Workers report kinds (core/report.h); nothing outside
 * this table names a failure or decides its retry flag, so changing how a
 * failure is treated is changing one row here (and its test in
 * tests/test_report.c).
 *
 * Why these flags: a timeout, a crash or a lost worker may well go another
 * way next time, so they retry within max_retries; so may a run that could
 * not get memory or a process. A missing handler will be missing on the
 * next try too, and a result over the size limit will be as large again:
 * those end the task at once. So does a run stopped by one of the limits
 * process isolation sets (memory, CPU time, descriptors): the same task
 * would need as much the next time, and running it again would only spend
 * the resources the limit is there to protect.
 *
 * Which runs are crashes: those that ended by a signal or without the
 * handler reporting at all — a process-isolation child that died or exited
 * without a result, and a worker that vanished (its lease ran out). A task
 * whose runs keep doing that takes workers down with it, so the engine
 * stops it after crash_budget of them (PoisonTask). A failure the handler
 * reported itself, a timeout or a limit (the run was stopped on purpose)
 * and a result over the limit are not crashes. */
#include "core/report.h"

#include <stddef.h>

typedef struct row {
  const char *name;       /* for logs */
  const char *error_type; /* NULL: the handler's own (HANDLER_FAILED) */
  int retryable;          /* ignored when error_type is NULL */
  int crash;              /* counts toward crash_budget */
} row_t;

static const row_t table[OMNIQ__RUN_KINDS] = {
    [OMNIQ__RUN_OK] = {"success", NULL, 0, 0},
    [OMNIQ__RUN_HANDLER_FAILED] = {"handler_failed", NULL, 0, 0},
    [OMNIQ__RUN_HANDLER_ERROR] = {"handler_error", "Error", 1, 0},
    [OMNIQ__RUN_NO_HANDLER] = {"no_handler", "HandlerNotFound", 0, 0},
    [OMNIQ__RUN_TIMEOUT] = {"timeout", "TimeoutError", 1, 0},
    [OMNIQ__RUN_CRASH_SIGNAL] = {"crash_signal", "Crash", 1, 1},
    [OMNIQ__RUN_CRASH_EXIT] = {"crash_exit", "Crash", 1, 1},
    [OMNIQ__RUN_TOO_LARGE] = {"too_large", "Crash", 0, 0},
    [OMNIQ__RUN_NO_MEMORY] = {"no_memory", "Error", 1, 0},
    [OMNIQ__RUN_FORK_FAILED] = {"fork_failed", "Error", 1, 0},
    [OMNIQ__RUN_LOST] = {"lost", "WorkerLost", 1, 1},
    [OMNIQ__RUN_MEMORY_LIMIT] = {"memory_limit", "MemoryLimit", 0, 0},
    [OMNIQ__RUN_CPU_LIMIT] = {"cpu_limit", "CpuLimit", 0, 0},
    [OMNIQ__RUN_FILE_LIMIT] = {"file_limit", "FileLimit", 0, 0},
};

#define HANDLER_DEFAULT_TYPE "Error"

static int known(int kind) { return kind >= 0 && kind < OMNIQ__RUN_KINDS; }

omniq__failure_t omniq__report_classify(const omniq__run_report_t *r) {
  omniq__failure_t f = {HANDLER_DEFAULT_TYPE, 1, 0};
  if (!known((int)r->kind) || r->kind == OMNIQ__RUN_OK) return f;
  const row_t *row = &table[r->kind];
  f.crash = row->crash;
  if (row->error_type != NULL) {
    f.error_type = row->error_type;
    f.retryable = row->retryable;
  } else {
    /* The handler's own classification, recorded as it said it. */
    if (r->error_type != NULL && r->error_type[0] != '\0') f.error_type = r->error_type;
    f.retryable = r->retryable != 0;
  }
  return f;
}

const char *omniq__run_kind_name(int kind) { return known(kind) ? table[kind].name : "unknown"; }
