/* SPDX-License-Identifier: MIT */
/* The containers of the file backend's pending index (order.c): ids kept
 * as 16 bytes read back as the same text and sort the same way; the heaps
 * hand out exactly the live entries in claim order, whatever mix of bulk
 * pushes, replacements and kills came before (checked against a plain
 * sorted array); the id set finds every live entry after many removals;
 * and a task costs what the docs say. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/file/order.h"
#include "support/helpers.h"

/* A valid id whose text order is the order of (hi, lo). */
static void make_id(uint64_t hi, uint64_t lo, char out[OMNIQ_ID_SIZE]) {
  snprintf(out, OMNIQ_ID_SIZE, "%08llx-%04llx-%04llx-%04llx-%012llx",
           (unsigned long long)(hi >> 32), (unsigned long long)(hi >> 16 & 0xffff),
           (unsigned long long)(hi & 0xffff), (unsigned long long)(lo >> 48),
           (unsigned long long)(lo & 0xffffffffffffULL));
}

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void test_packed_ids_read_back_as_the_same_text_and_sort_alike(void **state) {
  (void)state;
  uint64_t s = 88172645463325252ULL;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE], back[OMNIQ_ID_SIZE];
  uint8_t pa[OMNIQ__FID_BYTES], pb[OMNIQ__FID_BYTES];
  for (int i = 0; i < 4000; i++) {
    make_id(rnd(&s), rnd(&s), a);
    /* Pairs that share a prefix too, so late bytes decide the order. */
    if (i % 2)
      memcpy(b, a, OMNIQ_ID_SIZE), b[30 + i % 6] = "0123456789abcdef"[rnd(&s) % 16];
    else
      make_id(rnd(&s), rnd(&s), b);
    assert_true(omniq_id_valid(a) && omniq_id_valid(b));
    omniq__fid_pack(a, pa);
    omniq__fid_pack(b, pb);
    omniq__fid_unpack(pa, back);
    assert_string_equal(back, a);
    int t = strcmp(a, b), p = memcmp(pa, pb, OMNIQ__FID_BYTES);
    assert_int_equal(t < 0, p < 0);
    assert_int_equal(t == 0, p == 0);
  }
}

typedef struct {
  int64_t eta;
  char id[OMNIQ_ID_SIZE];
  int live;
} ref_t;

static int ref_cmp(const void *x, const void *y) {
  const ref_t *a = x, *b = y;
  if (a->eta != b->eta) return a->eta < b->eta ? -1 : 1;
  return strcmp(a->id, b->id);
}

/* Adds id with eta to the order and level l; returns 1 if new. */
static int add(omniq__forder_t *o, omniq__flevel_t *l, const char *id, int64_t eta, int bulk) {
  uint8_t bin[OMNIQ__FID_BYTES];
  uint32_t e;
  omniq__fid_pack(id, bin);
  int r = omniq__forder_add(o, bin, 0, 7, eta, &e);
  assert_true(r >= 0);
  if (r == 1) assert_int_equal(omniq__flevel_push(l, o, e, bulk), OMNIQ_OK);
  return r;
}

static uint32_t find(const omniq__forder_t *o, const char *id) {
  uint8_t bin[OMNIQ__FID_BYTES];
  omniq__fid_pack(id, bin);
  return omniq__forder_find(o, bin);
}

/* Drains level l, releasing dead entries as the index does; each live
 * top must be the next of the reference's live entries in order. */
static void assert_drains_in_order(omniq__forder_t *o, omniq__flevel_t *l, ref_t *ref, size_t n) {
  char id[OMNIQ_ID_SIZE];
  size_t k = 0;
  qsort(ref, n, sizeof *ref, ref_cmp);
  while (l->len > 0) {
    uint32_t e = omniq__flevel_pop(l, o);
    const omniq__fent_t *x = omniq__forder_at(o, e);
    if (x->live) {
      while (k < n && !ref[k].live) k++;
      assert_true(k < n);
      omniq__fid_unpack(x->id, id);
      assert_string_equal(id, ref[k].id);
      assert_int_equal(x->eta, ref[k].eta);
      k++;
    }
    omniq__forder_release(o, e);
  }
  while (k < n && !ref[k].live) k++;
  assert_int_equal(k, n);
  assert_int_equal(o->live, 0);
  assert_int_equal(o->dead, 0);
}

static void run_mix(int bulk) {
  enum { N = 8000 };
  omniq__forder_t o = {0};
  omniq__flevel_t l = {0};
  ref_t *ref = calloc(2 * N, sizeof *ref);
  size_t n = 0;
  uint64_t s = 2463534242ULL + (uint64_t)bulk;
  assert_non_null(ref);
  for (int i = 0; i < N; i++) {
    make_id(rnd(&s), rnd(&s), ref[n].id);
    ref[n].eta = (int64_t)(rnd(&s) % 50); /* many equal etas: the id decides */
    ref[n].live = 1;
    assert_int_equal(add(&o, &l, ref[n].id, ref[n].eta, bulk), 1);
    n++;
  }
  /* The same file seen twice (a scan, then its journal line) is one entry. */
  for (int i = 0; i < N; i += 10) assert_int_equal(add(&o, &l, ref[i].id, ref[i].eta, bulk), 0);
  /* A task back with a new eta: the old entry dies, the new one counts. */
  for (int i = 0; i < N; i += 3) {
    ref[i].live = 0;
    ref[n] = ref[i];
    ref[n].eta += 1000;
    ref[n].live = 1;
    assert_int_equal(add(&o, &l, ref[n].id, ref[n].eta, bulk), 1);
    n++;
  }
  /* Tasks that left pending/ are killed; the set still finds the rest. */
  for (size_t i = 0; i < n; i += 5) {
    if (!ref[i].live) continue;
    uint32_t e = find(&o, ref[i].id);
    assert_int_not_equal(e, OMNIQ__FENT_NONE);
    omniq__forder_kill(&o, e);
    ref[i].live = 0;
  }
  if (bulk) omniq__flevel_heapify(&l, &o);
  size_t live = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t e = find(&o, ref[i].id);
    if (!ref[i].live) continue;
    live++;
    assert_int_not_equal(e, OMNIQ__FENT_NONE);
    assert_int_equal(omniq__forder_at(&o, e)->eta, ref[i].eta);
  }
  for (size_t i = 0; i < n; i += 5)
    if (!ref[i].live && i % 3 != 0) assert_int_equal(find(&o, ref[i].id), OMNIQ__FENT_NONE);
  assert_int_equal(o.live, live);
  assert_drains_in_order(&o, &l, ref, n);
  omniq__forder_free(&o);
  free(l.heap);
  free(ref);
}

static void test_heaps_hand_out_live_entries_in_claim_order(void **state) {
  (void)state;
  run_mix(0);
}

static void test_bulk_pushes_ordered_once_hand_out_the_same_order(void **state) {
  (void)state;
  run_mix(1);
}

static void test_released_entries_are_reused_before_new_memory(void **state) {
  (void)state;
  omniq__forder_t o = {0};
  omniq__flevel_t l = {0};
  char id[OMNIQ_ID_SIZE];
  for (int round = 0; round < 50; round++) {
    for (uint64_t i = 0; i < 1000; i++) {
      make_id((uint64_t)round, i, id);
      add(&o, &l, id, (int64_t)i, 0);
    }
    while (l.len > 0) omniq__forder_release(&o, omniq__flevel_pop(&l, &o));
  }
  assert_int_equal(o.used, 1000); /* 50,000 tasks went through 1,000 entries */
  assert_int_equal(o.nchunks, 1);
  omniq__forder_free(&o);
  free(l.heap);
}

/* docs/storage-file.md: 32 bytes of entry, 4 to 8 of heap, 8 to 16 of id
 * set; with 250,000 tasks (like 10^6, just under a power of two) under 48,
 * counted here from what is allocated. */
static void test_250000_pending_tasks_cost_under_48_bytes_each(void **state) {
  (void)state;
  enum { N = 250000 };
  omniq__forder_t o = {0};
  omniq__flevel_t l = {0};
  char id[OMNIQ_ID_SIZE];
  for (uint64_t i = 0; i < N; i++) {
    make_id(0x01a3185c50007000ULL + i, i * 2654435761ULL, id);
    add(&o, &l, id, (int64_t)(i % 977), 1);
  }
  omniq__flevel_heapify(&l, &o);
  assert_int_equal(o.live, N);
  size_t bytes = o.nchunks * (1u << OMNIQ__FENT_CHUNK_SHIFT) * sizeof(omniq__fent_t) + o.setcap * sizeof(uint32_t) +
                 l.cap * sizeof(uint32_t);
  assert_true(bytes < (size_t)N * 48);
  omniq__forder_free(&o);
  free(l.heap);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_packed_ids_read_back_as_the_same_text_and_sort_alike),
      cmocka_unit_test(test_heaps_hand_out_live_entries_in_claim_order),
      cmocka_unit_test(test_bulk_pushes_ordered_once_hand_out_the_same_order),
      cmocka_unit_test(test_released_entries_are_reused_before_new_memory),
      cmocka_unit_test(test_250000_pending_tasks_cost_under_48_bytes_each),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
