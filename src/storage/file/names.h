/* SPDX-License-Identifier: MIT */
/* File backend names: what a file's name says, and the checks that keep
 * anything read from disk or given by a caller from becoming a path it
 * should not be.
 *
 *   queue/pending/<qdir>/<iprio>_<eta>_<id>.json
 *       iprio: 2147483647 - priority, 10 digits, so a higher priority sorts
 *              first; eta: ms since the epoch, 15 digits (clamped to
 *              0..999999999999999); id: the task id (UUIDv7: time-ordered,
 *              so it breaks ties in insertion order). `ls` lists a queue in
 *              claim order.
 *   queue/running/<id>.json, queue/{success,failed,cancelled}/<id>.json,
 *   results/<id>.json
 *
 * <qdir> is the queue name with every byte outside [A-Za-z0-9_-] written
 * as %XX (upper-case hex), so no queue name can contain "/" or be "..".
 * Only the canonical encoding is accepted back, so one queue has one
 * folder.
 *
 * To change a name format: add a new pattern beside the old, keep parsing
 * the old one, and add a test with a file in the old form. */
#ifndef OMNIQ_STORAGE_FILE_NAMES_H
#define OMNIQ_STORAGE_FILE_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "omniq.h"

/* The terminal folders under queue/, indexed by status - OMNIQ_SUCCESS. */
#define OMNIQ__FS_NDONE 3
extern const char *const omniq__fname_done[OMNIQ__FS_NDONE];
/* 1 if name is an entry queue/ is meant to hold (its folders, the journal). */
int omniq__fname_queue_entry(const char *name);

#define OMNIQ__PNAME_LEN 68 /* 10 + 1 + 15 + 1 + 36 + 5 */
#define OMNIQ__PNAME_SIZE (OMNIQ__PNAME_LEN + 1)
#define OMNIQ__QDIR_MAX 200
#define OMNIQ__QDIR_SIZE (OMNIQ__QDIR_MAX + 1)
#define OMNIQ__IDNAME_SIZE (OMNIQ_ID_LEN + 6) /* "<id>.json" */
#define OMNIQ__ETA_NAME_MAX INT64_C(999999999999999)

/* The inverted priority used in names: 2147483647 - priority. */
uint32_t omniq__fname_iprio(int priority);
int omniq__fname_priority(uint32_t iprio);
/* eta as the name shows it (clamped). */
int64_t omniq__fname_eta(int64_t eta_ms);

/* Formats a pending file name from its fields (iprio, name eta, id). */
void omniq__fname_pending(uint32_t iprio, int64_t name_eta, const char *id,
                          char out[OMNIQ__PNAME_SIZE]);
/* Parses a pending file name; OMNIQ_OK or OMNIQ_EINVAL. */
int omniq__fname_pending_parse(const char *name, uint32_t *iprio, int64_t *name_eta,
                               char id[OMNIQ_ID_SIZE]);

/* "<id>.json" for a valid id; OMNIQ_EINVAL otherwise (nothing written). */
int omniq__fname_id(const char *id, char out[OMNIQ__IDNAME_SIZE]);
/* Parses "<id>.json"; OMNIQ_OK or OMNIQ_EINVAL. */
int omniq__fname_id_parse(const char *name, char id[OMNIQ_ID_SIZE]);

/* Encodes a queue name as its folder name; OMNIQ_EINVAL if NULL, empty or
 * longer than OMNIQ__QDIR_MAX once encoded. */
int omniq__fname_qdir(const char *queue, char out[OMNIQ__QDIR_SIZE]);
/* 1 if name is the canonical encoding of some queue name. */
int omniq__fname_qdir_valid(const char *name, size_t len);
/* The queue name a folder name encodes, into out (outlen bytes with the
 * NUL); OMNIQ_EINVAL if it is not a canonical encoding or does not fit. */
int omniq__fname_qdir_decode(const char *qdir, char *out, size_t outlen);

#endif
