/* SPDX-License-Identifier: MIT */
/* Records (task, result, TaskError): allocation and JSON forms. The public
 * parts are declared in omniq/storage.h; this adds what only the core uses. */
#ifndef OMNIQ_BASE_RECORDS_H
#define OMNIQ_BASE_RECORDS_H

#include "omniq/storage.h"

/* Frees an array of n tasks and the array itself. */
void omniq__tasks_free(omniq_task_t **tasks, size_t n);

/* For a backend's queue statistics: the record of queue `name` in the array
 * *q of *n records (*cap allocated; grown with realloc, so free(*q) when
 * done), appended zeroed if it is not there yet. NULL on out of memory, or
 * for a NULL name or one that does not fit a record. */
omniq_queue_info_t *omniq__queue_info_of(omniq_queue_info_t **q, size_t *n, size_t *cap,
                                         const char *name);

#endif
