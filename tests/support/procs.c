/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/procs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/files.h"

static void ids_path(const th_procs_t *p, int index, char *out, size_t len) {
  snprintf(out, len, "%s/ids.%d", p->dir, index);
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

void th_procs_start(th_procs_t *p, int n, th_proc_fn fn, void *ud) {
  char c[TH_PROCS_MAX];
  size_t got = 0;
  memset(p, 0, sizeof *p);
  assert_true(n > 0 && n <= TH_PROCS_MAX);
  p->n = n;
  p->dir = th_tmpdir();
  assert_non_null(p->dir);
  assert_int_equal(pipe(p->ready), 0);
  assert_int_equal(pipe(p->go), 0);
  fflush(NULL); /* so no child repeats buffered output */
  for (int i = 0; i < n; i++) {
    p->pids[i] = fork();
    assert_true(p->pids[i] >= 0);
    if (p->pids[i] == 0) {
      close(p->ready[0]);
      close(p->go[1]);
      _exit(fn(p, i, ud));
    }
  }
  close_fd(&p->ready[1]);
  close_fd(&p->go[0]);
  while (got < (size_t)n) {
    ssize_t r = read(p->ready[0], c + got, (size_t)n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close_fd(&p->ready[0]);
  if (got < (size_t)n) {
    th_procs_go(p); /* let the ready ones finish, then report */
    th_procs_wait(p);
    fail_msg("only %zu of %d processes got ready", got, n);
  }
}

void th_procs_go(th_procs_t *p) { close_fd(&p->go[1]); }

void th_procs_wait(th_procs_t *p) {
  int bad = -1, bad_status = 0;
  for (int i = 0; i < p->n; i++) {
    int status = 0;
    if (p->pids[i] <= 0) continue;
    while (waitpid(p->pids[i], &status, 0) < 0 && errno == EINTR) {
    }
    p->pids[i] = 0;
    if ((!WIFEXITED(status) || WEXITSTATUS(status) != 0) && bad < 0) {
      bad = i;
      bad_status = status;
    }
  }
  if (bad >= 0) fail_msg("process %d ended with status %#x", bad, bad_status);
}

int th_procs_ids(th_procs_t *p, char (**ids)[OMNIQ_ID_SIZE], size_t *n) {
  int busy = 0;
  for (int i = 0; i < p->n; i++) {
    char path[4096], line[OMNIQ_ID_SIZE + 2];
    size_t before = *n;
    ids_path(p, i, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue; /* handled nothing */
    while (fgets(line, sizeof line, f) != NULL) {
      line[strcspn(line, "\n")] = '\0';
      if (*n % 1024 == 0) {
        char(*more)[OMNIQ_ID_SIZE] = realloc(*ids, (*n + 1024) * sizeof **ids);
        assert_non_null(more);
        *ids = more;
      }
      if (strlen(line) != OMNIQ_ID_LEN) fail_msg("process %d wrote '%s', not an id", i, line);
      memcpy((*ids)[(*n)++], line, OMNIQ_ID_SIZE);
    }
    fclose(f);
    busy += *n > before;
  }
  return busy;
}

void th_procs_free(th_procs_t *p) {
  close_fd(&p->go[1]);
  th_rmtree(p->dir);
  p->dir = NULL;
}

int th_procs_ready(th_procs_t *p) {
  char c = 'r';
  ssize_t r;
  if (write(p->ready[1], &c, 1) != 1) return -1;
  close(p->ready[1]);
  while ((r = read(p->go[0], &c, 1)) < 0 && errno == EINTR) {
  }
  close(p->go[0]);
  return r == 0 ? 0 : -1; /* EOF is go */
}

int th_procs_put_ids(th_procs_t *p, int index, const char (*ids)[OMNIQ_ID_SIZE], size_t n) {
  char path[4096];
  ids_path(p, index, path, sizeof path);
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  for (size_t i = 0; i < n; i++) fprintf(f, "%s\n", ids[i]);
  return fclose(f) == 0 ? 0 : -1;
}

static int cmp_id(const void *a, const void *b) { return memcmp(a, b, OMNIQ_ID_SIZE); }

void th_assert_exactly_once(char (*want)[OMNIQ_ID_SIZE], size_t nwant,
                            char (*got)[OMNIQ_ID_SIZE], size_t ngot) {
  qsort(want, nwant, OMNIQ_ID_SIZE, cmp_id);
  qsort(got, ngot, OMNIQ_ID_SIZE, cmp_id);
  for (size_t i = 1; i < ngot; i++)
    if (cmp_id(got[i - 1], got[i]) == 0) fail_msg("task %s was handled twice", got[i]);
  size_t i = 0, j = 0;
  while (i < nwant || j < ngot) {
    int c = i == nwant ? 1 : j == ngot ? -1 : cmp_id(want[i], got[j]);
    if (c < 0) fail_msg("task %s was never handled", want[i]);
    if (c > 0) fail_msg("%s was handled but never enqueued", got[j]);
    i++, j++;
  }
}

/* ---- a child running a pool -------------------------------------------------- */

void th_child_pipes(th_child_t *c) {
  assert_int_equal(pipe(c->stop), 0);
  assert_int_equal(pipe(c->news), 0);
}

void th_child_ends(th_child_t *c) {
  close(c->stop[1]);
  close(c->news[0]);
}

static int report_start(omniq_job_t *job, void *ud) {
  th_child_t *c = ud;
  ssize_t n = write(c->news[1], "s", 1);
  (void)n;
  return omniq_job_return(job, "null");
}

int th_child_pool(th_procs_t *p, int index, void *ud) {
  th_child_t *c = ud;
  omniq_worker_opts_t o;
  omniq_worker_t *w = NULL;
  omniq_t *oq = NULL;
  char b;
  (void)index;
  th_child_ends(c);
  if (omniq_open(&oq, &c->settings) != OMNIQ_OK) return 10;
  if (omniq_register(oq, "work", report_start, c) != OMNIQ_OK) return 11;
  omniq_worker_opts_init(&o);
  o.concurrency = 2;
  o.poll_interval_ms = c->poll_ms;
  /* The stop waits for the runners however slow the machine: a runner
   * whose report waits for a busy store (retried while its lease holds)
   * would otherwise outlast the default 30 s under a sanitizer on a loaded
   * machine, and the stop would say OMNIQ_ETIMEDOUT. A stop that truly
   * hangs is ctest's timeout to catch. */
  o.shutdown_timeout_ms = TH_CHILD_STOP_MS;
  for (int i = 0; i < 3 && c->queues[i] != NULL; i++) o.queues[i] = c->queues[i];
  if (th_procs_ready(p) != 0) return 12;
  if (omniq_worker_start(oq, &o, &w) != OMNIQ_OK) return 13;
  while (read(c->stop[0], &b, 1) < 0 && errno == EINTR) {
  }
  int rc = omniq_worker_stop(w);
  omniq_close(oq);
  return rc == OMNIQ_OK ? 0 : 14;
}
