/* SPDX-License-Identifier: MIT */
/* The tutorial's worker (docs/tutorial.md): runs every due "greet" task,
 * then exits. A service would call omniq_worker_run() instead, which runs
 * until SIGINT or SIGTERM. */
#include <stdio.h>
#include <string.h>

#include <omniq.h>

/* greet(["NAME"]) -> "Hello, NAME!" Reads the name the simple way; a real
 * handler would parse its JSON arguments with a JSON library. */
static int greet(omniq_job_t *job, void *userdata) {
  char name[64], value[96];
  (void)userdata;
  if (sscanf(omniq_job_args(job), " [ \"%63[^\"]\" ]", name) != 1)
    return omniq_job_fail(job, "TypeError", "greet takes one name", 0); /* not retried */
  snprintf(value, sizeof value, "\"Hello, %s!\"", name);
  return omniq_job_return(job, value); /* the result: a JSON value */
}

int main(void) {
  omniq_t *oq;
  long done = 0;

  if (omniq_open(&oq, NULL) != OMNIQ_OK) {
    fprintf(stderr, "cannot open the store: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  omniq_register(oq, "greet", greet, NULL);
  /* Runs tasks in this thread until nothing is due (limit 0: no limit). */
  int rc = omniq_worker_process(oq, NULL, 0, &done);
  printf("ran %ld task(s)\n", done);
  omniq_close(oq);
  return rc == OMNIQ_OK ? 0 : 1;
}
