/* SPDX-License-Identifier: MIT */
/* Running totals of the file backend: runs succeeded, failed, retried and
 * lost, per queue, kept in stats/<stripe>.json and counted under the task
 * locks transitions already hold. See totals.c. */
#ifndef OMNIQ_STORAGE_FILE_TOTALS_H
#define OMNIQ_STORAGE_FILE_TOTALS_H

#include "storage/file/backend.h"

/* Adds one run of kind (omniq_runs_t) of queue folder qdir, for the run of
 * task id under claim token `token`, exactly once however often a
 * roll-forward repeats it. The caller holds id's task lock. */
int omniq__ftotals_add(omniq__fs_t *fs, const char *id, int64_t token, const char *qdir, int kind,
                       char *err, size_t errlen);

/* Calls fn with every queue folder's totals summed over the stripes. */
typedef void (*omniq__ftotals_fn)(const char *qdir, const int64_t runs[OMNIQ_RUNS_KINDS],
                                  void *ud);
int omniq__ftotals_each(omniq__fs_t *fs, omniq__ftotals_fn fn, void *ud);

#endif
