/* SPDX-License-Identifier: MIT */
/* Running totals of the file backend: runs succeeded, failed, retried and
 * lost, per queue, kept by each handle in memory and in its own file,
 * stats/h-<owner>.json, written once per batch of finishes. See totals.c. */
#ifndef OMNIQ_STORAGE_FILE_TOTALS_H
#define OMNIQ_STORAGE_FILE_TOTALS_H

#include "storage/file/backend.h"

/* The handle's totals, empty (fs->totals; fs->io.owner already drawn).
 * OMNIQ_OK or OMNIQ_ENOMEM. */
int omniq__ftotals_open(omniq__fs_t *fs, char *err, size_t errlen);
/* Takes the files of handles that are gone into this handle's totals and
 * removes them (best effort; run at open, after recovery). */
void omniq__ftotals_absorb(omniq__fs_t *fs);
/* Writes what is not written yet and frees fs->totals (NULL is fine). */
void omniq__ftotals_close(omniq__fs_t *fs);

/* Counts one run of kind (omniq_runs_t) of queue folder qdir, for task id
 * under claim token `token`, in memory, listed as pending until
 * omniq__ftotals_moved. The caller holds id's task lock and, before the
 * task leaves its slot, calls omniq__ftotals_flush. OMNIQ_ENOMEM or OK. */
int omniq__ftotals_count(omniq__fs_t *fs, const char *id, int64_t token, const char *qdir,
                         int kind);
/* Writes the handle's file if anything changed (one write for every run
 * counted since the last). */
int omniq__ftotals_flush(omniq__fs_t *fs, char *err, size_t errlen);
/* The run's task has left its slot: the run is no longer pending. */
void omniq__ftotals_moved(omniq__fs_t *fs, const char *id, int64_t token);
/* 1 if the run of id under token was counted by any handle and its task
 * may not have left its slot since (for a roll-forward, lock held). */
int omniq__ftotals_counted(omniq__fs_t *fs, const char *id, int64_t token);

/* For tests: how many times the handle wrote its file. */
unsigned long omniq__ftotals_writes(omniq__fs_t *fs);

/* Calls fn with every queue folder's totals summed over every handle. */
typedef void (*omniq__ftotals_fn)(const char *qdir, const int64_t runs[OMNIQ_RUNS_KINDS],
                                  void *ud);
int omniq__ftotals_each(omniq__fs_t *fs, omniq__ftotals_fn fn, void *ud);

#endif
