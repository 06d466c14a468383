/* SPDX-License-Identifier: MIT */
/* What several benchmark programs need alike: failing loudly, a monotonic
 * clock in nanoseconds (one clock for every process on the machine, so
 * times taken in two processes compare), and removing a temporary store. */
#ifndef OMNIQ_BENCH_UTIL_H
#define OMNIQ_BENCH_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Prints "PROGRAM: what: msg" (msg may be NULL) and exits 1. */
static inline _Noreturn void die(const char *what, const char *msg) {
  fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, msg ? msg : "");
  exit(1);
}

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int bench_rm_entry(const char *path, const struct stat *sb, int flag,
                                 struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* Removes dir and everything in it. */
static inline void bench_rmtree(const char *dir) {
  nftw(dir, bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
