/* SPDX-License-Identifier: MIT */
/* Entries, id set and heaps of the pending index.
 *
 * Size: a worker may open a store with millions of pending files, and the
 * index must stay small and fast to build. Each file costs one 32-byte
 * entry (the id as 16 bytes, eta, priority, queue number), 4 to 8 bytes of
 * heap and 8 to 16 of id set (each doubles when full): 44 to 56 bytes a
 * task, with no allocation of its own. Entries live in fixed chunks of 16,384 and are named by number,
 * so growing never copies or moves them and the heaps and the set hold
 * 4-byte numbers instead of copies of the key.
 *
 * Why heaps per level and not one sorted structure: the claim order is
 * (priority desc, eta, id) but only due tasks (eta <= now) may be taken,
 * so in one ordering a not-yet-due task of high priority would sit in
 * front of every due task of lower priority and be stepped over on every
 * claim. Per level, the top is the earliest eta: a claim looks at one top
 * per level, from the highest priority down, and takes the first due one.
 *
 * Each entry is in exactly one heap from its push to its pop. A task that
 * leaves pending/ (taken, forgotten) or comes back with another name gets
 * its entry killed: out of the id set, left in its heap, released when it
 * surfaces (lazy deletion, so nothing searches a heap). The id set says
 * which entries are live; it is linear probing with deletion by shifting
 * back, so there are no tombstones to clean. */
#include "storage/file/order.h"

#include <string.h>

#include "base/alloc.h"

#define CHUNK_SHIFT OMNIQ__FENT_CHUNK_SHIFT
#define CHUNK (1u << CHUNK_SHIFT)

_Static_assert(sizeof(omniq__fent_t) == 32, "an index entry is 32 bytes");

/* ---- ids ------------------------------------------------------------------ */

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

void omniq__fid_pack(const char *text, uint8_t out[OMNIQ__FID_BYTES]) {
  int k = 0;
  for (int i = 0; i < OMNIQ_ID_LEN && k < OMNIQ__FID_BYTES; i++) {
    if (text[i] == '-') continue;
    out[k++] = (uint8_t)(hexval(text[i]) << 4 | hexval(text[i + 1]));
    i++;
  }
}

void omniq__fid_unpack(const uint8_t id[OMNIQ__FID_BYTES], char out[OMNIQ_ID_SIZE]) {
  static const char hex[] = "0123456789abcdef";
  int j = 0;
  for (int k = 0; k < OMNIQ__FID_BYTES; k++) {
    if (k == 4 || k == 6 || k == 8 || k == 10) out[j++] = '-';
    out[j++] = hex[id[k] >> 4];
    out[j++] = hex[id[k] & 15];
  }
  out[j] = '\0';
}

/* A full 64-bit mix (murmur3's finaliser): every input bit reaches the
 * low bits the set uses. */
static uint64_t mix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  return k ^ (k >> 33);
}

/* Ids of one process differ in few bits (UUIDv7s share their time bytes,
 * and ids made in one millisecond may differ only in a counter), so both
 * halves are mixed whole. */
static size_t hash_id(const uint8_t id[OMNIQ__FID_BYTES]) {
  uint64_t a, b;
  memcpy(&a, id, 8);
  memcpy(&b, id + 8, 8);
  return (size_t)mix64(a ^ mix64(b));
}

/* ---- entries and the id set ----------------------------------------------- */

static size_t home(const omniq__forder_t *o, uint32_t e) {
  return hash_id(omniq__forder_at(o, e)->id) & (o->setcap - 1);
}

uint32_t omniq__forder_find(const omniq__forder_t *o, const uint8_t id[OMNIQ__FID_BYTES]) {
  if (o->setcap == 0) return OMNIQ__FENT_NONE;
  for (size_t i = hash_id(id) & (o->setcap - 1); o->set[i] != 0; i = (i + 1) & (o->setcap - 1))
    if (memcmp(omniq__forder_at(o, o->set[i] - 1)->id, id, OMNIQ__FID_BYTES) == 0)
      return o->set[i] - 1;
  return OMNIQ__FENT_NONE;
}

static void set_insert(omniq__forder_t *o, uint32_t e) {
  size_t i = home(o, e);
  while (o->set[i] != 0) i = (i + 1) & (o->setcap - 1);
  o->set[i] = e + 1;
}

/* Keeps the set at most half full with `more` entries added, so probes
 * stay short. */
static int set_reserve(omniq__forder_t *o, size_t more) {
  if ((o->live + more) * 2 <= o->setcap) return OMNIQ_OK;
  size_t cap = o->setcap ? o->setcap * 2 : 1024, oldcap = o->setcap;
  while ((o->live + more) * 2 > cap) cap *= 2;
  uint32_t *old = o->set, *s = omniq__calloc(cap, sizeof *s);
  if (s == NULL) return OMNIQ_ENOMEM;
  o->set = s;
  o->setcap = cap;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i] != 0) set_insert(o, old[i] - 1);
  omniq__free(old);
  return OMNIQ_OK;
}

static void set_remove(omniq__forder_t *o, uint32_t e) {
  size_t mask = o->setcap - 1, i = home(o, e);
  while (o->set[i] != e + 1) i = (i + 1) & mask;
  /* Shift back every later member of the run that may sit in the hole. */
  for (size_t j = (i + 1) & mask; o->set[j] != 0; j = (j + 1) & mask) {
    size_t h = home(o, o->set[j] - 1);
    int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
    if (stays) continue;
    o->set[i] = o->set[j];
    i = j;
  }
  o->set[i] = 0;
}

static int entry_new(omniq__forder_t *o, uint32_t *e) {
  if (o->free_head != 0) {
    *e = o->free_head - 1;
    o->free_head = (uint32_t)omniq__forder_at(o, *e)->eta;
    return OMNIQ_OK;
  }
  if (o->used == OMNIQ__FENT_NONE - 1) return OMNIQ_ENOMEM;
  if ((o->used >> CHUNK_SHIFT) == o->nchunks) {
    omniq__fent_t **more = omniq__realloc(o->chunks, (o->nchunks + 1) * sizeof *more);
    if (more == NULL) return OMNIQ_ENOMEM;
    o->chunks = more;
    /* malloc, not calloc: a chunk's pages count only once entries use them */
    if ((more[o->nchunks] = omniq__malloc(CHUNK * sizeof **more)) == NULL) return OMNIQ_ENOMEM;
    o->nchunks++;
  }
  *e = o->used++;
  return OMNIQ_OK;
}

int omniq__forder_add(omniq__forder_t *o, const uint8_t id[OMNIQ__FID_BYTES], uint32_t q,
                      uint32_t iprio, int64_t eta, uint32_t *e) {
  uint32_t old = omniq__forder_find(o, id);
  if (old != OMNIQ__FENT_NONE) {
    const omniq__fent_t *x = omniq__forder_at(o, old);
    if (x->q == q && x->iprio == iprio && x->eta == eta) return 0;
    omniq__forder_kill(o, old);
  }
  return omniq__forder_add_new(o, id, q, iprio, eta, e);
}

int omniq__forder_reserve(omniq__forder_t *o, size_t n) { return set_reserve(o, n); }

int omniq__forder_add_new(omniq__forder_t *o, const uint8_t id[OMNIQ__FID_BYTES], uint32_t q,
                          uint32_t iprio, int64_t eta, uint32_t *e) {
  if (set_reserve(o, 1) != OMNIQ_OK || entry_new(o, e) != OMNIQ_OK) return -1;
  omniq__fent_t *x = omniq__forder_at(o, *e);
  memcpy(x->id, id, OMNIQ__FID_BYTES);
  x->eta = eta;
  x->iprio = iprio;
  x->q = q;
  x->live = 1;
  set_insert(o, *e);
  o->live++;
  return 1;
}

void omniq__forder_kill(omniq__forder_t *o, uint32_t e) {
  omniq__fent_t *x = omniq__forder_at(o, e);
  if (!x->live) return;
  set_remove(o, e);
  x->live = 0;
  o->live--;
  o->dead++;
}

void omniq__forder_release(omniq__forder_t *o, uint32_t e) {
  omniq__fent_t *x = omniq__forder_at(o, e);
  if (x->live)
    omniq__forder_kill(o, e);
  o->dead--;
  x->eta = o->free_head;
  o->free_head = e + 1;
}

void omniq__forder_free(omniq__forder_t *o) {
  for (size_t i = 0; i < o->nchunks; i++) omniq__free(o->chunks[i]);
  omniq__free(o->chunks);
  omniq__free(o->set);
  memset(o, 0, sizeof *o);
}

/* ---- heaps ---------------------------------------------------------------- */

int omniq__fent_less(const omniq__forder_t *o, uint32_t a, uint32_t b) {
  const omniq__fent_t *x = omniq__forder_at(o, a), *y = omniq__forder_at(o, b);
  if (x->eta != y->eta) return x->eta < y->eta;
  return memcmp(x->id, y->id, OMNIQ__FID_BYTES) < 0;
}

static void sift_down(omniq__flevel_t *l, const omniq__forder_t *o, size_t i) {
  uint32_t it = l->heap[i];
  size_t n = l->len;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && omniq__fent_less(o, l->heap[c + 1], l->heap[c])) c++;
    if (!omniq__fent_less(o, l->heap[c], it)) break;
    l->heap[i] = l->heap[c];
    i = c;
  }
  l->heap[i] = it;
}

int omniq__flevel_push(omniq__flevel_t *l, const omniq__forder_t *o, uint32_t e, int bulk) {
  if (l->len == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    uint32_t *h = omniq__realloc(l->heap, cap * sizeof *h);
    if (h == NULL) return OMNIQ_ENOMEM;
    l->heap = h;
    l->cap = cap;
  }
  size_t i = l->len++;
  while (!bulk && i > 0 && omniq__fent_less(o, e, l->heap[(i - 1) / 2])) {
    l->heap[i] = l->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  l->heap[i] = e;
  return OMNIQ_OK;
}

uint32_t omniq__flevel_pop(omniq__flevel_t *l, const omniq__forder_t *o) {
  uint32_t top = l->heap[0];
  l->heap[0] = l->heap[--l->len];
  if (l->len > 0) sift_down(l, o, 0);
  return top;
}

void omniq__flevel_heapify(omniq__flevel_t *l, omniq__forder_t *o) {
  size_t n = 0;
  for (size_t i = 0; i < l->len; i++) {
    if (omniq__forder_at(o, l->heap[i])->live)
      l->heap[n++] = l->heap[i];
    else
      omniq__forder_release(o, l->heap[i]);
  }
  l->len = n;
  for (size_t i = n / 2; i-- > 0;) sift_down(l, o, i);
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

void omniq__flevels_free(omniq__flevels_t *ls) {
  for (size_t j = 0; j < ls->n; j++) omniq__free(ls->lv[j].heap);
  omniq__free(ls->lv);
  memset(ls, 0, sizeof *ls);
}
