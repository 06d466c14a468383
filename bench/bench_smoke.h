/* SPDX-License-Identifier: MIT */
/* OMNIQ_BENCH_SMOKE=1: a smoke run. The suite runs every benchmark once so
 * that one which stops working fails a test (the ctest label bench_smoke);
 * a program whose sizes cannot be made small by its arguments shrinks its
 * fixed counts (tasks, runs, samples, seconds) to the least that still
 * takes every step, checks every outcome and prints every line. Its figures
 * then mean nothing; without the variable nothing changes. */
#ifndef OMNIQ_BENCH_SMOKE_H
#define OMNIQ_BENCH_SMOKE_H

#include <stdlib.h>
#include <string.h>

/* 1 when OMNIQ_BENCH_SMOKE is set to anything but "" or "0". */
static inline int bench_smoke(void) {
  const char *v = getenv("OMNIQ_BENCH_SMOKE");
  return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

#endif
