/* SPDX-License-Identifier: MIT */
/* Task records of the file backend: the bytes of each file form, built
 * from one encoding of each record, and the way back.
 *
 *   task file    <task JSON>\n                 pending/, running/, terminal folders
 *   commit slot  <task JSON without its last "}">[,"commit_result":<result JSON>]
 *                [,"commit_runs":<omniq_runs_t>]}\n
 *                                              running/<id>.json at a transition's commit
 *   result file  <result JSON>\n               results/<id>.json
 *
 * The JSON of a task and of a result are made once per transition
 * (omniq__frec_encode) and every form that transition writes is assembled
 * from them as pieces, with no second encoding and no copy.
 *
 * To change a form: keep reading the old one, and add a test with a store
 * written in it (docs/storage-file.md). */
#ifndef OMNIQ_STORAGE_FILE_RECORD_H
#define OMNIQ_STORAGE_FILE_RECORD_H

#include <stddef.h>

#include "omniq/storage.h"
#include "storage/file/io.h"

typedef struct omniq__frec {
  char *task; /* the task's compact JSON */
  size_t task_len;
  char *result; /* the result's compact JSON, or NULL */
  size_t result_len;
  /* The running total a finish adds to (omniq_runs_t), -1 for none: the
   * commit slot carries it as "commit_runs", so a roll-forward counts the
   * run too (totals.c). Set after omniq__frec_encode, which makes it -1. */
  int runs;
  char runs_text[32];
} omniq__frec_t;

typedef enum {
  OMNIQ__FREC_TASK,   /* the task file */
  OMNIQ__FREC_SLOT,   /* the commit slot: the task, with the result if there is one */
  OMNIQ__FREC_RESULT  /* the result file (the record must hold a result) */
} omniq__frec_form_t;

/* Encodes t and r (r may be NULL). On error nothing is held and err says
 * why: OMNIQ_EINVAL for a time outside [0, OMNIQ_TIME_MAX_MS] (it would not
 * read back), OMNIQ_ESERIALIZE for text that is not UTF-8 (raw-mode bytes
 * JSON cannot carry), else OMNIQ_ENOMEM. Free with omniq__frec_free. */
int omniq__frec_encode(omniq__frec_t *rec, const omniq_task_t *t, const omniq_result_t *r,
                       char *err, size_t errlen);
void omniq__frec_free(omniq__frec_t *rec);

/* Writes dirfd/name atomically in the given form (omniq__fio_writev). */
int omniq__frec_write(const omniq__fio_t *io, int dirfd, const char *name,
                      const omniq__frec_t *rec, omniq__frec_form_t form, char *err,
                      size_t errlen);
/* Rewrites a task's slot (running/<id>.json, which must exist) with rec's
 * task form, under the task's lock: atomically, keeping the old file as a
 * spare (omniq__fio_replace). */
int omniq__frec_write_slot(const omniq__fio_t *io, int running_fd, const char *name,
                           const omniq__frec_t *rec, char *err, size_t errlen);
/* Stages the given form in tmp/ (omniq__fio_stagev). */
int omniq__frec_stage(const omniq__fio_t *io, const omniq__frec_t *rec, omniq__frec_form_t form,
                      char tmp_name[OMNIQ__TMP_NAME_SIZE], char *err, size_t errlen);
/* Stages the slot form of rec and, when rec holds a result, the result
 * form, syncing both in one group round (the data of a finish before its
 * commit). result_tmp is set only when there is a result. */
int omniq__frec_stage_slot(const omniq__fio_t *io, const omniq__frec_t *rec,
                           char slot_tmp[OMNIQ__TMP_NAME_SIZE],
                           char result_tmp[OMNIQ__TMP_NAME_SIZE], char *err, size_t errlen);

/* Reads and parses dirfd/name, checking the id inside matches id and that
 * every time is one the store keeps. OMNIQ_ENOTFOUND if absent;
 * OMNIQ_ECORRUPT if unusable (not moved). With result != NULL also returns
 * the result a commit slot embeds (or NULL). */
int omniq__frec_read(int dirfd, const char *name, const char *id, omniq_task_t **t,
                     omniq_result_t **result, char *err, size_t errlen);
/* The same for a commit slot, also giving its "commit_runs" (-1 if none). */
int omniq__frec_read_slot(int dirfd, const char *name, const char *id, omniq_task_t **t,
                          omniq_result_t **result, int *runs, char *err, size_t errlen);

#endif
