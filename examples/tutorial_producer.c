/* SPDX-License-Identifier: MIT */
/* The tutorial's first program (docs/tutorial.md): puts two tasks into a
 * queue and prints their ids. Nothing runs them yet; that is the worker's
 * job (tutorial_worker.c). */
#include <stdio.h>

#include <omniq.h>

int main(void) {
  omniq_t *oq;
  char id[OMNIQ_ID_SIZE];

  /* The store: SQLite under ./omniq-data, unless OMNIQ_* variables say otherwise. */
  if (omniq_open(&oq, NULL) != OMNIQ_OK) {
    fprintf(stderr, "cannot open the store: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  /* A task is a handler name and its arguments, a JSON array. */
  const char *names[] = {"[\"Ada\"]", "[\"Grace\"]"};
  for (int i = 0; i < 2; i++) {
    int rc = omniq_enqueue(oq, "greet", names[i], NULL, NULL, id);
    if (rc != OMNIQ_OK) {
      fprintf(stderr, "cannot enqueue: %s\n", omniq_errmsg(oq));
      omniq_close(oq);
      return 1;
    }
    printf("enqueued %s\n", id);
  }
  omniq_close(oq);
  return 0;
}
