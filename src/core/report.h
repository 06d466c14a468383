/* SPDX-License-Identifier: MIT */
/* Run reports: how a run ended, as a worker saw it.
 *
 * A worker says what happened (the kind, with its detail); it never says
 * what the failure is called or whether it may run again. The engine alone
 * decides that, with the one table in core/report.c. The only kind whose
 * name and retry flag come from elsewhere is OMNIQ__RUN_HANDLER_FAILED: the
 * handler classified its own failure through omniq_job_fail(), and the
 * engine records what it said. */
#ifndef OMNIQ_CORE_REPORT_H
#define OMNIQ_CORE_REPORT_H

typedef enum omniq__run_kind {
  OMNIQ__RUN_OK = 0,         /* the handler succeeded */
  OMNIQ__RUN_HANDLER_FAILED, /* the handler called omniq_job_fail() */
  OMNIQ__RUN_HANDLER_ERROR,  /* the handler returned an error code */
  OMNIQ__RUN_NO_HANDLER,     /* nothing resolves the task's func */
  OMNIQ__RUN_TIMEOUT,        /* the run passed its deadline */
  OMNIQ__RUN_CRASH_SIGNAL,   /* the handler process was killed by a signal */
  OMNIQ__RUN_CRASH_EXIT,     /* the handler process exited without a valid result */
  OMNIQ__RUN_TOO_LARGE,      /* the handler process's result was over the limit, or
                              * there was no memory to take it */
  OMNIQ__RUN_NO_MEMORY,      /* out of memory starting the run */
  OMNIQ__RUN_FORK_FAILED,    /* the handler process could not be started */
  OMNIQ__RUN_LOST,           /* the worker stopped renewing the lease (the engine's own) */
  OMNIQ__RUN_MEMORY_LIMIT,   /* the handler process ran out of memory at its limit */
  OMNIQ__RUN_CPU_LIMIT,      /* the handler process used up its CPU time limit */
  OMNIQ__RUN_FILE_LIMIT,     /* the handler process ran out of descriptors at its limit */
  OMNIQ__RUN_KINDS
} omniq__run_kind_t;

typedef struct omniq__run_report {
  omniq__run_kind_t kind;
  const char *value;      /* OK: the result's JSON text; NULL = null */
  const char *message;    /* a failure: what happened, in words */
  const char *traceback;  /* a failure: may be NULL */
  /* OMNIQ__RUN_HANDLER_FAILED only: the handler's own classification. */
  const char *error_type; /* NULL or "" = "Error" */
  int retryable;
} omniq__run_report_t;

/* What a failed run is called, whether it may run again, and whether it
 * ended by crashing the run (counted against the settings' crash_budget). */
typedef struct omniq__failure {
  const char *error_type; /* static, or the report's own */
  int retryable;
  int crash;
} omniq__failure_t;

/* Classifies a report whose kind is not OMNIQ__RUN_OK. A kind outside the
 * enum is a plain retryable "Error". */
omniq__failure_t omniq__report_classify(const omniq__run_report_t *r);
/* The kind's name for logs ("timeout", "crash_signal"); "unknown" outside
 * the enum. */
const char *omniq__run_kind_name(int kind);

#endif
