/* SPDX-License-Identifier: MIT */
/* A SIGKILL straight after reports (see crash.h). */
#include "support/crash.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_IDS 65536 /* reports read before and after the kill */

typedef struct {
  int fd; /* where the child reports */
} sink_t;

/* The child's log: every succeeded run is reported by id as it is logged,
 * which is after its finish returned. */
static void report_line(void *ud, int level, const char *line) {
  sink_t *s = ud;
  const char *id = strstr(line, "task.succeeded id=");
  char out[OMNIQ_ID_SIZE];
  (void)level;
  if (id == NULL) return;
  out[0] = 'R';
  memcpy(out + 1, id + strlen("task.succeeded id="), OMNIQ_ID_SIZE - 1);
  ssize_t w = write(s->fd, out, sizeof out);
  (void)w;
}

static int quick(omniq_job_t *job, void *ud) {
  (void)ud;
  return omniq_job_return(job, "7");
}

/* Enqueues, reporting each id ("E" + id) once omniq_enqueue returned,
 * while a pool of 4 runs them, reporting each result ("R" + id); until
 * killed. */
static void __attribute__((noreturn)) crash_child(const omniq_settings_t *base, int fd) {
  sink_t sink = {fd};
  omniq_settings_t s = *base;
  omniq_t *oq = NULL;
  omniq_worker_t *w = NULL;
  s.log_level = OMNIQ_LOG_INFO;
  s.log_fn = report_line;
  s.log_userdata = &sink;
  s.clock_fn = NULL;
  if (omniq_open(&oq, &s) != OMNIQ_OK) _exit(10);
  omniq_register(oq, "quick", quick, NULL);
  if (omniq_worker_start(oq, NULL, &w) != OMNIQ_OK) _exit(11);
  for (;;) {
    char id[OMNIQ_ID_SIZE], out[OMNIQ_ID_SIZE];
    if (omniq_enqueue(oq, "quick", NULL, NULL, NULL, id) != OMNIQ_OK) _exit(12);
    out[0] = 'E';
    memcpy(out + 1, id, OMNIQ_ID_SIZE - 1);
    if (write(fd, out, OMNIQ_ID_SIZE) != OMNIQ_ID_SIZE) _exit(13);
  }
}

static void take_report(const char *msg, char (*enq)[OMNIQ_ID_SIZE], size_t *ne,
                        char (*res)[OMNIQ_ID_SIZE], size_t *nr) {
  char(*to)[OMNIQ_ID_SIZE] = msg[0] == 'E' ? &enq[(*ne)++] : &res[(*nr)++];
  memcpy(*to, msg + 1, OMNIQ_ID_SIZE - 1);
  (*to)[OMNIQ_ID_SIZE - 1] = '\0';
}

void th_assert_reports_survive_sigkill(th_store_t *st, size_t results) {
  int fds[2];
  char(*enq)[OMNIQ_ID_SIZE] = calloc(MAX_IDS, OMNIQ_ID_SIZE);
  char(*res)[OMNIQ_ID_SIZE] = calloc(MAX_IDS, OMNIQ_ID_SIZE);
  size_t ne = 0, nr = 0;
  assert_non_null(enq);
  assert_non_null(res);
  omniq_close(st->oq);
  st->oq = NULL;
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(&st->settings, fds[1]);
  }
  close(fds[1]);
  /* Kill it at once after the last result wanted; whatever the pipe
   * already holds was reported before the kill. */
  while (nr < results) {
    char msg[OMNIQ_ID_SIZE];
    if (th_read_full(fds[0], msg, sizeof msg) != 0) fail_msg("the child ended early");
    take_report(msg, enq, &ne, res, &nr);
    if (ne == MAX_IDS) fail_msg("too many enqueues before %zu results", results);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  for (char msg[OMNIQ_ID_SIZE];
       ne < MAX_IDS && nr < MAX_IDS && th_read_full(fds[0], msg, sizeof msg) == 0;)
    take_report(msg, enq, &ne, res, &nr);
  close(fds[0]);

  th_ok(NULL, omniq_open(&st->oq, &st->settings));
  for (size_t i = 0; i < ne; i++) {
    omniq_task_t *t = NULL;
    th_ok(st->oq, omniq_get_task(st->oq, enq[i], &t));
    omniq_task_free(t);
  }
  for (size_t i = 0; i < nr; i++) {
    omniq_result_t *r = NULL;
    th_ok(st->oq, omniq_get_result(st->oq, res[i], 0, &r));
    assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
    assert_string_equal(omniq_result_value(r), "7");
    omniq_result_free(r);
  }
  free(enq);
  free(res);
}
