/* SPDX-License-Identifier: MIT */
/* One "host" process of the multi-host test (tests/multihost/run.sh).
 *
 *   mh_worker enqueue N           enqueue N tasks (batches of 500)
 *   mh_worker work HOST FILE T    run a pool of T threads until SIGTERM;
 *                                 the handler appends one line per run to FILE
 *   mh_worker count               print "SUCCESS TOTAL" task counts
 *
 * Settings come from the environment (OMNIQ_BACKEND, OMNIQ_DB_URL,
 * OMNIQ_LEASE, ...). The handler's record is the test's evidence, kept apart
 * from the store: "<id> <attempt> <host> <pid> <start_ms> <end_ms>", one
 * write(2) per run to a file opened O_APPEND, so a line is whole even if
 * the process is killed right after. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "omniq.h"

static int record_fd = -1;
static const char *host_name = "?";

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int record(omniq_job_t *job, void *userdata) {
  (void)userdata;
  char line[160];
  int64_t start = wall_ms();
  int n = snprintf(line, sizeof line, "%s %d %s %d %lld %lld\n", omniq_job_id(job),
                   omniq_job_attempt(job), host_name, (int)getpid(), (long long)start,
                   (long long)wall_ms());
  if (write(record_fd, line, (size_t)n) != n) {
    omniq_job_fail(job, "IOError", "cannot write the record", 1);
    return OMNIQ_EIO;
  }
  return omniq_job_return(job, "null");
}

static int open_store(omniq_t **oq) {
  omniq_settings_t s;
  omniq_settings_init(&s);
  if (omniq_settings_from_env(&s) != OMNIQ_OK || omniq_open(oq, &s) != OMNIQ_OK) {
    fprintf(stderr, "mh_worker: open: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  return 0;
}

static int cmd_enqueue(long n) {
  omniq_t *oq;
  static omniq_enqueue_item_t items[500];
  if (open_store(&oq)) return 1;
  for (size_t i = 0; i < 500; i++) items[i] = (omniq_enqueue_item_t){.func = "mh.record"};
  for (long done = 0; done < n; done += 500) {
    size_t k = n - done < 500 ? (size_t)(n - done) : 500;
    if (omniq_enqueue_many(oq, items, k, NULL) != OMNIQ_OK) {
      fprintf(stderr, "mh_worker: enqueue: %s\n", omniq_errmsg(oq));
      return 1;
    }
  }
  omniq_close(oq);
  return 0;
}

static int cmd_work(const char *host, const char *file, int threads) {
  omniq_t *oq;
  omniq_worker_opts_t o;
  host_name = host;
  record_fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (record_fd < 0 || open_store(&oq)) return 1;
  omniq_register(oq, "mh.record", record, NULL);
  omniq_worker_opts_init(&o);
  o.concurrency = threads;
  o.poll_interval_ms = 500;
  o.shutdown_timeout_ms = 5000;
  int rc = omniq_worker_run(oq, &o);
  omniq_close(oq);
  return rc == OMNIQ_OK || rc == OMNIQ_ETIMEDOUT ? 0 : 1;
}

static int cmd_count(void) {
  omniq_t *oq;
  int64_t c[OMNIQ_STATUS_COUNT], total = 0;
  if (open_store(&oq)) return 1;
  if (omniq_count_by_status(oq, c) != OMNIQ_OK) {
    fprintf(stderr, "mh_worker: count: %s\n", omniq_errmsg(oq));
    return 1;
  }
  for (int i = 0; i < OMNIQ_STATUS_COUNT; i++) total += c[i];
  printf("%lld %lld\n", (long long)c[OMNIQ_SUCCESS], (long long)total);
  omniq_close(oq);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "enqueue") == 0) return cmd_enqueue(atol(argv[2]));
  if (argc == 5 && strcmp(argv[1], "work") == 0) return cmd_work(argv[2], argv[3], atoi(argv[4]));
  if (argc == 2 && strcmp(argv[1], "count") == 0) return cmd_count();
  fprintf(stderr, "usage: mh_worker enqueue N | work HOST FILE THREADS | count\n");
  return 2;
}
