/* SPDX-License-Identifier: MIT */
/* Handlers loaded by tests through "path/to/lib.so:symbol". */
#include "omniq.h"

int omniq_test_echo(omniq_job_t *job, void *userdata) {
  (void)userdata;
  return omniq_job_return(job, omniq_job_args(job));
}

int omniq_test_fail(omniq_job_t *job, void *userdata) {
  (void)userdata;
  omniq_job_fail(job, "LibError", "failed inside the library", 0);
  return OMNIQ_EFAILED;
}
