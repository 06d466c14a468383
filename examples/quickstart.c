/* SPDX-License-Identifier: MIT */
/* The README's example: enqueue one task, run a pool, wait for its result.
 * Built with the project so the README's code keeps compiling. */
#include <stdio.h>

#include <omniq.h>

static int add(omniq_job_t *job, void *userdata) {
  (void)userdata;
  /* parse omniq_job_args(job) (a JSON array) with your JSON library */
  return omniq_job_return(job, "5");
}

int main(void) {
  omniq_t *oq;
  omniq_worker_t *w;
  omniq_result_t *r;
  char id[OMNIQ_ID_SIZE];

  if (omniq_open(&oq, NULL) != OMNIQ_OK) { /* defaults + OMNIQ_* env */
    fprintf(stderr, "open: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  omniq_register(oq, "add", add, NULL);
  omniq_enqueue(oq, "add", "[2, 3]", NULL, NULL, id);
  omniq_worker_start(oq, NULL, &w); /* 4 threads */
  if (omniq_get_result(oq, id, 10.0, &r) == OMNIQ_OK) {
    printf("%s -> %s\n", id, omniq_result_value(r));
    omniq_result_free(r);
  }
  omniq_worker_stop(w);
  omniq_close(oq);
  return 0;
}
