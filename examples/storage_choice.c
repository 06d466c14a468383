/* SPDX-License-Identifier: MIT */
/* Choosing a store from C: the code of docs/howto/storage.md and
 * docs/settings.md, as one program that runs. Opens the same program on
 * SQLite and on a directory of files (both under ./omniq-data unless
 * OMNIQ_BASE_DIR says otherwise), one task each. */
#include <stdio.h>
#include <string.h>

#include <omniq.h>

static int hello(omniq_job_t *job, void *userdata) {
  (void)userdata;
  return omniq_job_return(job, "\"hello\"");
}

/* One task through the store oq: enqueued, run here, its result read. */
static int one_task(omniq_t *oq) {
  char id[OMNIQ_ID_SIZE];
  omniq_result_t *r = NULL;
  omniq_register(oq, "hello", hello, NULL);
  if (omniq_enqueue(oq, "hello", NULL, NULL, NULL, id) != OMNIQ_OK) return 0;
  omniq_worker_process(oq, NULL, 0, NULL);
  int ok = omniq_get_result(oq, id, 0, &r) == OMNIQ_OK && omniq_result_status(r) == OMNIQ_SUCCESS;
  omniq_result_free(r);
  return ok;
}

int main(void) {
  omniq_t *oq;
  int rc, ok = 1;

  /* doc:begin settings */
  omniq_settings_t s;
  omniq_settings_init(&s);
  s.lease_ms = 10000;                       /* code first ...            */
  if ((rc = omniq_settings_from_env(&s)))   /* ... the environment wins  */
    fprintf(stderr, "%s\n", omniq_errmsg(NULL));
  /* doc:end settings */
  if (rc != OMNIQ_OK) return 1;

  /* doc:begin sqlite */
  strcpy(s.backend, "sqlite");
  s.db_url[0] = '\0';                   /* omniq.db in s.base_dir */
  if (omniq_open(&oq, &s) != OMNIQ_OK) { /* one file, WAL, safe across processes */
    fprintf(stderr, "sqlite: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  /* doc:end sqlite */
  ok &= one_task(oq);
  omniq_close(oq);

  /* doc:begin file */
  strcpy(s.backend, "file");
  s.fsync = 1;                          /* each change reaches the disk before it returns */
  if (omniq_open(&oq, &s) != OMNIQ_OK) { /* a directory tree under s.base_dir */
    fprintf(stderr, "file: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  /* doc:end file */
  ok &= one_task(oq);
  omniq_close(oq);
  printf("one task on sqlite and one on file: %s\n", ok ? "ok" : "NOT AS EXPECTED");
  return ok ? 0 : 1;
}
