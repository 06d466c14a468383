/* Handlers loaded by tests through "path/to/lib.so:symbol". */
#include "omniq.h"

int omniq_test_echo(omniq_job_t *job, void *userdata) {
  (void)userdata;
  return omniq_job_return(job, omniq_job_args(job));
}
