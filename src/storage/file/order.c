/* SPDX-License-Identifier: MIT */
/* Heaps per priority level and the id map of the pending index.
 *
 * Why heaps per level and not one sorted structure: the claim order is
 * (priority desc, eta, id) but only due tasks (eta <= now) may be taken,
 * so in one ordering a not-yet-due task of high priority would sit in
 * front of every due task of lower priority and be stepped over on every
 * claim. Per level, the top is the earliest eta: a claim looks at one top
 * per level, from the highest priority down, and takes the first due one.
 *
 * The id map says which heap item is current: a task that comes back with
 * a new eta gets a new item, the old one no longer matches the map and is
 * dropped when it surfaces (lazy deletion, so nothing searches a heap). */
#include "storage/file/order.h"

#include <string.h>

#include "base/alloc.h"

enum { SLOT_EMPTY = 0, SLOT_LIVE = 1, SLOT_DEAD = 2 };

/* ---- heaps ---------------------------------------------------------------- */

int omniq__fitem_less(const omniq__fitem_t *a, const omniq__fitem_t *b) {
  if (a->eta != b->eta) return a->eta < b->eta;
  return memcmp(a->id, b->id, OMNIQ_ID_LEN) < 0;
}

int omniq__flevel_push(omniq__flevel_t *l, int64_t eta, const char *id) {
  if (l->len == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    omniq__fitem_t *h = omniq__realloc(l->heap, cap * sizeof *h);
    if (h == NULL) return OMNIQ_ENOMEM;
    l->heap = h;
    l->cap = cap;
  }
  size_t i = l->len++;
  omniq__fitem_t it;
  it.eta = eta;
  memcpy(it.id, id, OMNIQ_ID_SIZE);
  while (i > 0 && omniq__fitem_less(&it, &l->heap[(i - 1) / 2])) {
    l->heap[i] = l->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  l->heap[i] = it;
  return OMNIQ_OK;
}

void omniq__flevel_pop(omniq__flevel_t *l) {
  omniq__fitem_t last = l->heap[--l->len];
  size_t i = 0, n = l->len;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && omniq__fitem_less(&l->heap[c + 1], &l->heap[c])) c++;
    if (!omniq__fitem_less(&l->heap[c], &last)) break;
    l->heap[i] = l->heap[c];
    i = c;
  }
  if (n > 0) l->heap[i] = last;
}

omniq__flevel_t *omniq__flevels_get(omniq__flevels_t *ls, uint32_t iprio) {
  size_t lo = 0, hi = ls->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ls->lv[mid].iprio < iprio)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < ls->n && ls->lv[lo].iprio == iprio) return &ls->lv[lo];
  if (ls->n == ls->cap) {
    size_t cap = ls->cap ? ls->cap * 2 : 4;
    omniq__flevel_t *lv = omniq__realloc(ls->lv, cap * sizeof *lv);
    if (lv == NULL) return NULL;
    ls->lv = lv;
    ls->cap = cap;
  }
  memmove(&ls->lv[lo + 1], &ls->lv[lo], (ls->n - lo) * sizeof *ls->lv);
  ls->n++;
  memset(&ls->lv[lo], 0, sizeof ls->lv[lo]);
  ls->lv[lo].iprio = iprio;
  return &ls->lv[lo];
}

void omniq__flevels_drop(omniq__flevels_t *ls, size_t j) {
  omniq__free(ls->lv[j].heap);
  memmove(&ls->lv[j], &ls->lv[j + 1], (ls->n - j - 1) * sizeof *ls->lv);
  ls->n--;
}

void omniq__flevels_clear(omniq__flevels_t *ls) {
  for (size_t j = 0; j < ls->n; j++) ls->lv[j].len = 0;
}

void omniq__flevels_free(omniq__flevels_t *ls) {
  for (size_t j = 0; j < ls->n; j++) omniq__free(ls->lv[j].heap);
  omniq__free(ls->lv);
  memset(ls, 0, sizeof *ls);
}

/* ---- id map --------------------------------------------------------------- */

/* FNV-1a: ids are short and their random tail spreads them well enough. */
static size_t hash_id(const char *id) {
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < OMNIQ_ID_LEN; i++) h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
  return (size_t)(h ^ (h >> 29));
}

omniq__fslot_t *omniq__fidmap_find(const omniq__fidmap_t *m, const char *id) {
  if (m->cap == 0) return NULL;
  for (size_t i = hash_id(id) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    omniq__fslot_t *s = &m->slots[i];
    if (s->state == SLOT_EMPTY) return NULL;
    if (s->state == SLOT_LIVE && memcmp(s->id, id, OMNIQ_ID_LEN) == 0) return s;
  }
}

/* Rehashes into a table at least twice the live count (tombstones go). */
static int grow(omniq__fidmap_t *m) {
  size_t cap = m->cap ? m->cap : 64;
  while ((m->live + 1) * 2 > cap) cap *= 2;
  omniq__fslot_t *old = m->slots, *s = omniq__calloc(cap, sizeof *s);
  size_t oldcap = m->cap;
  if (s == NULL) return OMNIQ_ENOMEM;
  m->slots = s;
  m->cap = cap;
  m->used = m->live;
  for (size_t i = 0; i < oldcap; i++) {
    if (old[i].state != SLOT_LIVE) continue;
    size_t j = hash_id(old[i].id) & (cap - 1);
    while (s[j].state != SLOT_EMPTY) j = (j + 1) & (cap - 1);
    s[j] = old[i];
  }
  omniq__free(old);
  return OMNIQ_OK;
}

int omniq__fidmap_put(omniq__fidmap_t *m, const char *id, uint32_t q, uint32_t iprio,
                      int64_t eta) {
  omniq__fslot_t *s = omniq__fidmap_find(m, id);
  if (s != NULL) {
    if (s->q == q && s->iprio == iprio && s->eta == eta) return 0;
    s->q = q;
    s->iprio = iprio;
    s->eta = eta;
    return 1;
  }
  /* Keep at least 30% of the slots empty so probes stay short. */
  if ((m->used + 1) * 10 > m->cap * 7 && grow(m) != OMNIQ_OK) return -1;
  size_t i = hash_id(id) & (m->cap - 1);
  while (m->slots[i].state == SLOT_LIVE) i = (i + 1) & (m->cap - 1);
  if (m->slots[i].state == SLOT_EMPTY) m->used++;
  s = &m->slots[i];
  memcpy(s->id, id, OMNIQ_ID_SIZE);
  s->state = SLOT_LIVE;
  s->q = q;
  s->iprio = iprio;
  s->eta = eta;
  m->live++;
  return 1;
}

void omniq__fidmap_del(omniq__fidmap_t *m, const char *id) {
  omniq__fslot_t *s = omniq__fidmap_find(m, id);
  if (s == NULL) return;
  s->state = SLOT_DEAD;
  m->live--;
}

void omniq__fidmap_clear(omniq__fidmap_t *m) {
  if (m->slots != NULL) memset(m->slots, 0, m->cap * sizeof *m->slots);
  m->live = m->used = 0;
}

void omniq__fidmap_free(omniq__fidmap_t *m) {
  omniq__free(m->slots);
  memset(m, 0, sizeof *m);
}
