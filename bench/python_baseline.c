/* SPDX-License-Identifier: MIT */
/* The baseline handler for bench/bench_python.py: the same no-op task as the
 * Python one, in C, so the benchmark runs the same workload through the C
 * API in the same process. Its result is the CLOCK_MONOTONIC time in
 * nanoseconds at which it ran (the clock Python's time.monotonic_ns reads),
 * from which the waiter computes the result's wake-up latency. */
#include <stdio.h>
#include <time.h>

#include "omniq.h"

int omniq_bench_stamp(omniq_job_t *job, void *userdata) {
  struct timespec ts;
  char json[32];
  (void)userdata;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  snprintf(json, sizeof json, "%lld", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
  return omniq_job_return(job, json);
}

/* Does nothing, successfully: the throughput baseline. */
int omniq_bench_nothing(omniq_job_t *job, void *userdata) {
  (void)job;
  (void)userdata;
  return OMNIQ_OK;
}
