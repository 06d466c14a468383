/* SPDX-License-Identifier: MIT */
/* Allocation wrappers with a failure switch for out-of-memory tests. */
#include "base/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Allocations left before failing; negative = never fail. */
static _Atomic long fail_countdown = -1;

static int should_fail(void) {
  long left = atomic_load(&fail_countdown);
  while (left >= 0) {
    if (left == 0) return 1;
    if (atomic_compare_exchange_weak(&fail_countdown, &left, left - 1)) return 0;
  }
  return 0;
}

void omniq__alloc_fail_after(long n) { atomic_store(&fail_countdown, n < 0 ? -1 : n); }

void *omniq__malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }

void *omniq__calloc(size_t count, size_t size) {
  return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *omniq__realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }

void omniq__free(void *p) { free(p); }

char *omniq__strdup(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *d = omniq__malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}
