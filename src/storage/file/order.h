/* SPDX-License-Identifier: MIT */
/* The containers behind the pending index (index.c): one min-heap of
 * (eta, id) per priority level, the levels of a queue sorted by priority,
 * and a hash map id -> where the task's current entry is. Not thread-safe:
 * the index's lock guards them. */
#ifndef OMNIQ_STORAGE_FILE_ORDER_H
#define OMNIQ_STORAGE_FILE_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "omniq.h"

typedef struct omniq__fitem {
  int64_t eta;
  char id[OMNIQ_ID_SIZE];
} omniq__fitem_t;

typedef struct omniq__flevel {
  uint32_t iprio; /* inverted priority: lower = claimed first */
  omniq__fitem_t *heap;
  size_t len, cap;
} omniq__flevel_t;

typedef struct omniq__flevels {
  omniq__flevel_t *lv; /* sorted by iprio */
  size_t n, cap;
} omniq__flevels_t;

/* 1 if a comes before b: earlier eta, then smaller (older) id. */
int omniq__fitem_less(const omniq__fitem_t *a, const omniq__fitem_t *b);
int omniq__flevel_push(omniq__flevel_t *l, int64_t eta, const char *id);
void omniq__flevel_pop(omniq__flevel_t *l);

/* The level for iprio, made (in order) if missing; NULL on out of memory. */
omniq__flevel_t *omniq__flevels_get(omniq__flevels_t *ls, uint32_t iprio);
/* Removes (and frees) level j. */
void omniq__flevels_drop(omniq__flevels_t *ls, size_t j);
/* Empties every heap, keeping the memory. */
void omniq__flevels_clear(omniq__flevels_t *ls);
void omniq__flevels_free(omniq__flevels_t *ls);

typedef struct omniq__fslot {
  char id[OMNIQ_ID_SIZE];
  uint8_t state; /* empty, live, dead (a tombstone) */
  uint32_t q;    /* queue index in the index's table */
  uint32_t iprio;
  int64_t eta;
} omniq__fslot_t;

typedef struct omniq__fidmap {
  omniq__fslot_t *slots;
  size_t cap, live, used; /* used = live + tombstones */
} omniq__fidmap_t;

/* The live entry for id, or NULL. */
omniq__fslot_t *omniq__fidmap_find(const omniq__fidmap_t *m, const char *id);
/* Sets id's entry: 1 = new or changed (the caller pushes a heap item),
 * 0 = already there with the same key, < 0 = out of memory. */
int omniq__fidmap_put(omniq__fidmap_t *m, const char *id, uint32_t q, uint32_t iprio,
                      int64_t eta);
void omniq__fidmap_del(omniq__fidmap_t *m, const char *id);
void omniq__fidmap_clear(omniq__fidmap_t *m);
void omniq__fidmap_free(omniq__fidmap_t *m);

#endif
