/* SPDX-License-Identifier: MIT */
/* The wire between a pool and its handler processes (process isolation):
 * the frames on the socket each child shares with its pool.
 *
 *   pool -> child   a task frame: one task to run, with its limits
 *   child -> pool   a report frame: how the run ended (the run report's
 *                   kind and detail), or a note sent from a crash signal
 *                   handler just before the child dies
 *
 * Both ends are the same binary (the child is a fork without exec), so
 * integers travel in host byte order and the headers are plain structs.
 * A frame is its header then its strings; lengths are in the header. */
#ifndef OMNIQ_WORKER_WIRE_H
#define OMNIQ_WORKER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/report.h"
#include "omniq/storage.h"

/* The largest result a child may send back. */
#define OMNIQ__WIRE_RESULT_MAX (64u * 1024 * 1024)

/* What one task may use in its child; 0 = no limit. */
typedef struct omniq__limits {
  int64_t memory_bytes; /* address space the task may add to its child */
  int64_t cpu_ms;       /* CPU time of the task */
  int64_t files;        /* descriptors the task may open beyond the child's own */
} omniq__limits_t;

/* A growable byte buffer. Zero-initialise; free with omniq__buf_free. */
typedef struct omniq__buf {
  char *data;
  size_t len, cap;
} omniq__buf_t;

/* Appends n bytes; -1 (nothing appended) if len would pass max or memory
 * runs out. */
int omniq__buf_append(omniq__buf_t *b, const void *p, size_t n, size_t max);
/* Drops the first n bytes. */
void omniq__buf_consume(omniq__buf_t *b, size_t n);
void omniq__buf_free(omniq__buf_t *b);

/* ---- task frames --------------------------------------------------------- */

/* Replaces out's contents with the task frame for t (its id, func, args,
 * kwargs and attempt), deadline_ms and limits. OMNIQ_ENOMEM, OMNIQ_EINVAL
 * for strings over 1 GiB. */
int omniq__wire_task_encode(omniq__buf_t *out, const omniq_task_t *t, int64_t deadline_ms,
                            const omniq__limits_t *limits);

/* A task frame as the child reads it. task's strings point into body. */
typedef struct omniq__wire_task {
  omniq_task_t task;
  int64_t deadline_ms;
  omniq__limits_t limits;
  char *body; /* yours: omniq__wire_task_free */
} omniq__wire_task_t;

/* Reads one task frame from fd, blocking. 1 = *out filled; 0 = the pool
 * closed the socket; -1 = a read error, a malformed frame or no memory. */
int omniq__wire_task_read(int fd, omniq__wire_task_t *out);
void omniq__wire_task_free(omniq__wire_task_t *t);

/* ---- report frames ------------------------------------------------------- */

/* Writes the report frame for r to fd, blocking (the value only for
 * OMNIQ__RUN_OK; error type and message otherwise). A string over
 * OMNIQ__WIRE_RESULT_MAX is not sent: the header alone says so. 0, or -1
 * if the pool is gone or a string was too large. */
int omniq__wire_report_write(int fd, const omniq__run_report_t *r);

/* A note: a report frame with only a kind, written from a signal handler
 * (no allocation, one write) to say why the child is about to die. */
#define OMNIQ__WIRE_NOTE_SIZE 20
void omniq__wire_note(omniq__run_kind_t kind, char out[OMNIQ__WIRE_NOTE_SIZE]);

/* A report frame as the pool parses it. The strings point into the buffer
 * and are not NUL-terminated. */
typedef struct omniq__wire_report {
  int note;
  omniq__run_kind_t kind;
  int retryable, has_value;
  const char *str[3]; /* value, error_type, message */
  size_t len[3];
} omniq__wire_report_t;

/* Parses the frame at the front of b. 1 = *r filled and *used = its size;
 * 0 = not complete yet; -1 = malformed (or a kind no child reports); -2 =
 * a string over OMNIQ__WIRE_RESULT_MAX. */
int omniq__wire_report_parse(const omniq__buf_t *b, omniq__wire_report_t *r, size_t *used);

#endif
