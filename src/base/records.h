/* SPDX-License-Identifier: MIT */
/* Records (task, result, TaskError): allocation and JSON forms. The public
 * parts are declared in omniq/storage.h; this adds what only the core uses. */
#ifndef OMNIQ_BASE_RECORDS_H
#define OMNIQ_BASE_RECORDS_H

#include "omniq/storage.h"

/* Frees an array of n tasks and the array itself. */
void omniq__tasks_free(omniq_task_t **tasks, size_t n);

#endif
