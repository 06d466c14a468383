/* SPDX-License-Identifier: MIT */
/* The containers behind the pending index (index.c): a pool of fixed-size
 * entries, one per pending file, an id set over them, and one min-heap of
 * entry numbers per priority level, the levels of a queue sorted by
 * priority. Not thread-safe: the index's lock guards them. See order.c. */
#ifndef OMNIQ_STORAGE_FILE_ORDER_H
#define OMNIQ_STORAGE_FILE_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "omniq.h"

#define OMNIQ__FID_BYTES 16
#define OMNIQ__FENT_NONE UINT32_MAX
#define OMNIQ__FENT_CHUNK_SHIFT 14 /* 16,384 entries (512 KiB) a chunk */

/* One pending file, 32 bytes: what its name says, the id in binary. */
typedef struct omniq__fent {
  uint8_t id[OMNIQ__FID_BYTES]; /* big-endian bytes of the UUID: memcmp orders as the text */
  int64_t eta;                  /* as in the name; on the free list, the next free + 1 */
  uint32_t iprio;               /* inverted priority, as in the name */
  uint32_t q : 31;              /* the queue's number in the index's table */
  uint32_t live : 1;            /* in the id set; 0: left pending/, waiting to leave its heap */
} omniq__fent_t;

/* The entries, the id set (live entries only) and counts. */
typedef struct omniq__forder {
  omniq__fent_t **chunks; /* entries in fixed chunks: growing never copies them */
  size_t nchunks;
  uint32_t used;      /* entries handed out from the chunks so far */
  uint32_t free_head; /* a released entry to reuse, plus 1; 0 = none */
  uint32_t *set;      /* open addressing: entry number + 1, 0 = empty */
  size_t setcap;
  size_t live, dead;  /* dead: no longer live, still in a heap */
} omniq__forder_t;

/* The id text (omniq_id_valid) as 16 bytes, and back. */
void omniq__fid_pack(const char *text, uint8_t out[OMNIQ__FID_BYTES]);
void omniq__fid_unpack(const uint8_t id[OMNIQ__FID_BYTES], char out[OMNIQ_ID_SIZE]);

static inline omniq__fent_t *omniq__forder_at(const omniq__forder_t *o, uint32_t e) {
  return &o->chunks[e >> OMNIQ__FENT_CHUNK_SHIFT][e & ((1u << OMNIQ__FENT_CHUNK_SHIFT) - 1)];
}

/* The live entry for id, or OMNIQ__FENT_NONE. */
uint32_t omniq__forder_find(const omniq__forder_t *o, const uint8_t id[OMNIQ__FID_BYTES]);
/* Makes (q, iprio, eta) id's live entry. 1: a new entry *e, which the
 * caller puts in its heap (a live entry with another key is made dead
 * first); 0: already there with this key; < 0: out of memory. */
int omniq__forder_add(omniq__forder_t *o, const uint8_t id[OMNIQ__FID_BYTES], uint32_t q,
                      uint32_t iprio, int64_t eta, uint32_t *e);
/* omniq__forder_add for an id known to have no live entry (no lookup):
 * the snapshot's records, whose ids were checked unique when it was
 * saved. 1, or < 0: out of memory. */
int omniq__forder_add_new(omniq__forder_t *o, const uint8_t id[OMNIQ__FID_BYTES], uint32_t q,
                          uint32_t iprio, int64_t eta, uint32_t *e);
/* Sizes the id set for n more live entries at once (no growing while
 * they are added). OMNIQ_OK or OMNIQ_ENOMEM. */
int omniq__forder_reserve(omniq__forder_t *o, size_t n);
/* Takes live entry e out of the id set; it stays in its heap, dead. */
void omniq__forder_kill(omniq__forder_t *o, uint32_t e);
/* Frees entry e, which no heap holds any more (killing it first if live). */
void omniq__forder_release(omniq__forder_t *o, uint32_t e);
/* Frees every entry (and the memory). */
void omniq__forder_free(omniq__forder_t *o);

typedef struct omniq__flevel {
  uint32_t iprio;  /* inverted priority: lower = claimed first */
  uint32_t *heap;  /* entry numbers, min-heap by (eta, id) */
  size_t len, cap;
} omniq__flevel_t;

typedef struct omniq__flevels {
  omniq__flevel_t *lv; /* sorted by iprio */
  size_t n, cap;
} omniq__flevels_t;

/* 1 if entry a comes before entry b: earlier eta, then smaller (older) id. */
int omniq__fent_less(const omniq__forder_t *o, uint32_t a, uint32_t b);
/* Adds entry e; with bulk, only appends (call omniq__flevel_heapify after
 * the last one). */
int omniq__flevel_push(omniq__flevel_t *l, const omniq__forder_t *o, uint32_t e, int bulk);
/* Removes the top and returns it. */
uint32_t omniq__flevel_pop(omniq__flevel_t *l, const omniq__forder_t *o);
/* Restores the heap order after bulk pushes, dropping (and releasing) dead
 * entries on the way. */
void omniq__flevel_heapify(omniq__flevel_t *l, omniq__forder_t *o);

/* The level for iprio, made (in order) if missing; NULL on out of memory. */
omniq__flevel_t *omniq__flevels_get(omniq__flevels_t *ls, uint32_t iprio);
/* Removes (and frees) level j, which must be empty. */
void omniq__flevels_drop(omniq__flevels_t *ls, size_t j);
void omniq__flevels_free(omniq__flevels_t *ls);

#endif
