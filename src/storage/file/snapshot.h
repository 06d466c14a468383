/* SPDX-License-Identifier: MIT */
/* The pending snapshot, queue/snapshot: every pending file's name, in the
 * pending index's binary form, saved when a backend closes, so the next
 * open can fill its index without listing folders of 10^6 names. Used
 * only when every pending folder is provably unchanged since it was
 * taken; otherwise the caller lists the folders as before. See
 * snapshot.c for the argument. */
#ifndef OMNIQ_STORAGE_FILE_SNAPSHOT_H
#define OMNIQ_STORAGE_FILE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "storage/file/io.h"
#include "storage/file/names.h"
#include "storage/file/order.h"

#define OMNIQ__SNAPSHOT_NAME "snapshot"

/* A store whose handle closes with fewer pending files than this saves no
 * snapshot: listing them at the next open is quick. A variable so tests
 * can set it to 0. */
extern size_t omniq__fsnap_min_tasks;
/* 0: opens ignore any snapshot and list the folders (tests, benchmarks). */
extern int omniq__fsnap_use;

/* One pending file as the snapshot stores it (32 bytes): what its name
 * says, and the number of its queue folder in the snapshot. */
typedef struct omniq__fsnap_rec {
  uint8_t id[OMNIQ__FID_BYTES];
  int64_t eta;
  uint32_t iprio;
  uint32_t q;
} omniq__fsnap_rec_t;

/* What loading hands the index. queue: the folder qdir is queue number q
 * of the snapshot (called for q = 0, 1, ... before any record); a negative
 * return stops the load. folders_checked: every folder was just found as
 * the snapshot saw it (called once, after the queues, before the n
 * records). rec: one pending file; no id comes twice. */
typedef struct omniq__fsnap_sink {
  int (*queue)(void *ud, uint32_t q, const char *qdir);
  void (*folders_checked)(void *ud, size_t n);
  void (*rec)(void *ud, const omniq__fsnap_rec_t *r);
  void *ud;
} omniq__fsnap_sink_t;

/* Loads queue/snapshot into sink if it is whole and every folder of
 * queue/pending/ is as it was when it was taken. Returns 1 when loaded
 * (*n records, *list_us what listing the folders cost when it was
 * taken); 0 when there is none, it is stale, or it is damaged in a way
 * seen before any record was handed over; -1 when it was found damaged
 * part way (records already handed over must be thrown away). Logs why a
 * damaged one was refused. */
int omniq__fsnap_load(const omniq__fio_t *io, int queue_fd, int pending_fd,
                      const omniq__fsnap_sink_t *sink, size_t *n, int64_t *list_us);

/* Lists queue/pending/ and writes queue/snapshot from it (atomically, and
 * synced when io->fsync), unless the one there is already current (only
 * trusted when was_loaded: this handle loaded it whole at open), or a
 * folder changed while it was being listed (then none is written: the old
 * one, if any, is stale and will not be used). Best effort: failures are
 * logged, never returned. */
void omniq__fsnap_save(const omniq__fio_t *io, int queue_fd, int pending_fd, int was_loaded);

#endif
