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

/* A failure with a traceback, as a handler in another language would report
 * one: the dashboard's tests look for each of its lines on the page. */
int omniq_test_fail_traceback(omniq_job_t *job, void *userdata) {
  (void)userdata;
  omniq_job_fail_traceback(job, "ValueError", "invoice 42 has no customer",
                           "Traceback (most recent call last):\n"
                           "  File \"billing.py\", line 12, in charge\n"
                           "    customer = invoice.customer\n"
                           "ValueError: invoice 42 has no customer\n",
                           0);
  return OMNIQ_EFAILED;
}
