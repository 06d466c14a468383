/* SPDX-License-Identifier: MIT */
/* omniq serve at 10^6 tasks: every API call the dashboard page makes, over
 * HTTP, beside the library call behind it made directly in this process.
 *
 * The store: TASKS tasks (default 10^6) in three queues, enqueued in
 * batches with fsync off; then RUN of them run by a pool, half failing with
 * a traceback, so that the failing-tasks list and the task detail have
 * something to show. The built `omniq serve` is started on it (its own
 * process, a free port) and each call is made REPS times on a fresh
 * connection, as a browser's first request would be.
 *
 * Baselines, run in the same process and run, on a handle of our own:
 *   overview, throughput  omniq_stats: what the page would cost if each
 *                         refresh counted the store (the server answers
 *                         from its sampler instead: sampler.c)
 *   task lists            omniq_list_tasks with the same filters
 *   one task              omniq_get_task + omniq_get_result
 *   retry                 omniq_retry of another failed task
 *   /metrics              omniq_stats (a scrape counts the store; not a
 *                         call of the page, shown for its cost)
 *   /app.js               none: the HTTP floor, an embedded file
 * Each row gives the median and the worst of REPS, the ratio of the medians
 * (HTTP / direct), and whether the worst stays under the page's budget of
 * 100 ms. Usage: bench_dashboard [TASKS] [DIR]; TASKS at least MIN_TASKS, so
 * that the store keeps a second page of pending tasks in each queue after
 * RUN have run (the suite's smoke test runs that least size). */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "omniq.h"

#define BATCH 10000
#define RUN 2000
#define MIN_TASKS (RUN + 300) /* RUN, then over 2 pages of 50 in each of the 3 queues */
#define REPS 20
#define STATS_REPS 3 /* omniq_stats takes seconds at 10^6 */
#define BUDGET_MS 100.0

static const char *const queues[] = {"default", "emails", "reports"};

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_dashboard: %s: %s\n", what, msg);
  exit(1);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the store -------------------------------------------------------------- */

static int job(omniq_job_t *j, void *userdata) {
  if (atoi(omniq_job_args(j) + 1) % 2 == 0) return omniq_job_return(j, "{\"ok\": true}");
  omniq_job_fail_traceback(j, "ValueError", "invoice has no customer",
                           "Traceback (most recent call last):\n  File \"billing.py\", line 12\n",
                           0);
  return OMNIQ_EFAILED;
}

static omniq_t *open_store(const char *dir) {
  omniq_settings_t s;
  omniq_t *oq;
  omniq_settings_init(&s);
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  s.fsync = 0;
  s.log_level = OMNIQ_LOG_ERROR;
  if (omniq_open(&oq, &s) != OMNIQ_OK) die("open", omniq_errmsg(NULL));
  return oq;
}

static void fill(omniq_t *oq, long tasks) {
  static omniq_enqueue_item_t items[BATCH];
  static char args[BATCH][24];
  omniq_enqueue_opts_t opts[3];
  for (int q = 0; q < 3; q++) {
    omniq_enqueue_opts_init(&opts[q]);
    opts[q].queue = queues[q];
    opts[q].max_retries = 1;
  }
  for (long done = 0; done < tasks; done += BATCH) {
    int n = tasks - done < BATCH ? (int)(tasks - done) : BATCH;
    for (int i = 0; i < n; i++) {
      snprintf(args[i], sizeof args[i], "[%ld]", done + i);
      items[i] = (omniq_enqueue_item_t){"job", args[i], NULL, &opts[(done + i) % 3]};
    }
    if (omniq_enqueue_many(oq, items, (size_t)n, NULL) != OMNIQ_OK)
      die("enqueue_many", omniq_errmsg(oq));
  }
  omniq_worker_opts_t wo;
  long ran = 0;
  omniq_worker_opts_init(&wo);
  for (int q = 0; q < 3; q++) wo.queues[q] = queues[q];
  wo.queues[3] = NULL;
  omniq_register(oq, "job", job, NULL);
  if (omniq_worker_process(oq, &wo, RUN, &ran) != OMNIQ_OK) die("process", omniq_errmsg(oq));
}

/* ---- the server --------------------------------------------------------------- */

static pid_t server;
static unsigned port;
static char token[200];

static void start_server(const char *dir) {
  int fds[2];
  char line[512];
  if (pipe(fds) != 0) die("pipe", strerror(errno));
  setenv("OMNIQ_BACKEND", "sqlite", 1);
  setenv("OMNIQ_BASE_DIR", dir, 1);
  unsetenv("OMNIQ_DB_URL");
  unsetenv("OMNIQ_DASHBOARD_TOKEN");
  if ((server = fork()) == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    execl(OMNIQ_CLI_BIN, "omniq", "serve", "--listen", "127.0.0.1:0", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  FILE *out = fdopen(fds[0], "r");
  while (fgets(line, sizeof line, out) != NULL) {
    const char *p;
    if ((p = strstr(line, "listening on http://127.0.0.1:")) != NULL)
      port = (unsigned)atoi(p + strlen("listening on http://127.0.0.1:"));
    if ((p = strstr(line, "action token: ")) != NULL) {
      sscanf(p + strlen("action token: "), "%199[0-9a-f]", token);
      break;
    }
  }
  fclose(out);
  if (port == 0 || token[0] == '\0') die("omniq serve", "did not start");
}

static void stop_server(void) {
  int st;
  kill(server, SIGTERM);
  waitpid(server, &st, 0);
}

/* One request on a fresh connection; returns the HTTP status. The reply is
 * read to its end (the server closes after it: HTTP/1.0). */
static int request(const char *method, const char *path) {
  static char buf[1 << 16];
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0;
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die("connect", strerror(errno));
  int n = snprintf(buf, sizeof buf,
                   "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%u\r\nX-OmniQ-Token: %s\r\n"
                   "Content-Length: 0\r\n\r\n",
                   method, path, port, token);
  if (write(fd, buf, (size_t)n) != n) die("write", strerror(errno));
  ssize_t got, at = 0;
  while ((got = read(fd, buf + at, sizeof buf - 1 - (size_t)at)) > 0)
    if ((at += got) > 64) at = 64; /* keep the status line; drop the rest */
  buf[at] = '\0';
  sscanf(buf, "HTTP/1.%*d %d", &status);
  close(fd);
  return status;
}

/* ---- timing --------------------------------------------------------------------- */

typedef struct {
  double t[REPS];
  int n;
} times_t;

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median(times_t *t) {
  qsort(t->t, (size_t)t->n, sizeof t->t[0], by_value);
  return t->t[t->n / 2];
}
static double worst(const times_t *t) {
  double w = 0;
  for (int i = 0; i < t->n; i++) w = t->t[i] > w ? t->t[i] : w;
  return w;
}

typedef struct {
  const char *name;
  char path[600];
  const char *method;
  const char *direct_name;
  void (*direct)(omniq_t *oq, int rep);
  int direct_reps; /* of the direct call; the HTTP call runs REPS times */
  int page;        /* a call of the page: the 100 ms budget applies */
} call_t;

/* ---- the direct calls --------------------------------------------------------------- */

static char failed_ids[2 * REPS + 1][OMNIQ_ID_SIZE];
static char cursor2[128];

static void d_stats(omniq_t *oq, int rep) {
  omniq_stats_t *st;
  if (omniq_stats(oq, &st) != OMNIQ_OK) die("stats", omniq_errmsg(oq));
  omniq_stats_free(st);
}

static void list(omniq_t *oq, unsigned statuses, const char *queue, const char *cursor) {
  omniq_list_opts_t o;
  omniq_task_list_t *l;
  omniq_list_opts_init(&o);
  o.statuses = statuses;
  o.queue = queue;
  o.cursor = cursor;
  o.newest_first = 1;
  o.limit = 50;
  if (omniq_list_tasks(oq, &o, &l) != OMNIQ_OK) die("list", omniq_errmsg(oq));
  omniq_task_list_free(l);
}
static void d_failed(omniq_t *oq, int rep) { list(oq, OMNIQ_STATUS_BIT(OMNIQ_FAILED), NULL, NULL); }
static void d_all(omniq_t *oq, int rep) { list(oq, 0, NULL, NULL); }
static void d_page2(omniq_t *oq, int rep) {
  list(oq, OMNIQ_STATUS_BIT(OMNIQ_PENDING), "emails", cursor2);
}
static void d_task(omniq_t *oq, int rep) {
  omniq_task_t *t;
  omniq_result_t *r = NULL;
  if (omniq_get_task(oq, failed_ids[0], &t) != OMNIQ_OK) die("get_task", omniq_errmsg(oq));
  omniq_get_result(oq, failed_ids[0], 0, &r);
  omniq_task_free(t);
  omniq_result_free(r);
}
static void d_retry(omniq_t *oq, int rep) {
  if (omniq_retry(oq, failed_ids[REPS + 1 + rep], 0) != OMNIQ_OK) die("retry", omniq_errmsg(oq));
}

/* Failed tasks for the detail and the retries, and page 2's cursor. */
static void pick(omniq_t *oq) {
  omniq_list_opts_t o;
  omniq_task_list_t *l;
  omniq_list_opts_init(&o);
  o.statuses = OMNIQ_STATUS_BIT(OMNIQ_FAILED);
  o.limit = 2 * REPS + 1;
  if (omniq_list_tasks(oq, &o, &l) != OMNIQ_OK || omniq_task_list_count(l) < 2 * REPS + 1)
    die("pick", "not enough failed tasks");
  for (size_t i = 0; i < 2 * REPS + 1; i++)
    memcpy(failed_ids[i], omniq_task_id(omniq_task_list_at(l, i)), OMNIQ_ID_SIZE);
  omniq_task_list_free(l);
  omniq_list_opts_init(&o);
  o.statuses = OMNIQ_STATUS_BIT(OMNIQ_PENDING);
  o.queue = "emails";
  o.newest_first = 1;
  o.limit = 50;
  if (omniq_list_tasks(oq, &o, &l) != OMNIQ_OK) die("pick", omniq_errmsg(oq));
  if (omniq_task_list_next_cursor(l) == NULL) die("pick", "no second page of pending tasks");
  snprintf(cursor2, sizeof cursor2, "%s", omniq_task_list_next_cursor(l));
  omniq_task_list_free(l);
}

static void run_call(omniq_t *oq, call_t *c) {
  times_t http = {.n = 0}, direct = {.n = 0};
  char path[700];
  if (strcmp(c->method, "GET") == 0) request("GET", c->path); /* warm-up, not timed */
  for (int rep = 0; rep < REPS; rep++) {
    snprintf(path, sizeof path, "%s", c->path);
    if (strcmp(c->method, "POST") == 0) /* a different failed task each time */
      snprintf(path, sizeof path, "/api/tasks/%s/retry", failed_ids[1 + rep]);
    double t0 = now_ms();
    int status = request(c->method, path);
    http.t[http.n++] = now_ms() - t0;
    if (status != 200) {
      fprintf(stderr, "bench_dashboard: %s %s: HTTP %d\n", c->method, path, status);
      exit(1);
    }
    if (c->direct != NULL && rep < c->direct_reps) {
      t0 = now_ms();
      c->direct(oq, rep);
      direct.t[direct.n++] = now_ms() - t0;
    }
  }
  double hm = median(&http), hw = worst(&http);
  printf("%-46s %8.2f %8.2f", c->name, hm, hw);
  if (c->direct != NULL) {
    double dm = median(&direct);
    printf(" %10.2f %10.2f %9.3f", dm, worst(&direct), hm / dm);
  } else {
    printf(" %10s %10s %9s", "-", "-", "-");
  }
  printf("  %-4s %s\n", !c->page ? "-" : hw < BUDGET_MS ? "yes" : "NO", c->direct_name);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(p);
}

int main(int argc, char **argv) {
  long tasks = argc > 1 ? atol(argv[1]) : 1000000;
  const char *base = argc > 2 ? argv[2] : getenv("TMPDIR");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/omniq-bench-dashboard-XXXXXX", base ? base : "/tmp");
  if (tasks < MIN_TASKS || mkdtemp(dir) == NULL)
    die("usage", "bench_dashboard [TASKS >= 2300] [DIR]");

  omniq_t *oq = open_store(dir);
  double t0 = now_ms();
  fill(oq, tasks);
  double filled = now_ms() - t0;
  pick(oq);
  t0 = now_ms();
  start_server(dir);
  printf("omniq serve on %ld tasks (%d run, half failed; store filled in %.0f s, server up in "
         "%.1f s); each call %d times on a fresh connection; ms\n",
         tasks, RUN, filled / 1000, (now_ms() - t0) / 1000, REPS);
  printf("%-46s %8s %8s %10s %10s %9s  %-4s %s\n", "call (HTTP)", "median", "worst",
         "direct med", "direct max", "http/dir", "<100", "direct call");
  call_t calls[] = {
      {"GET /api/overview", "/api/overview", "GET", "omniq_stats", d_stats, STATS_REPS, 1},
      {"GET /api/throughput", "/api/throughput", "GET", "omniq_stats", d_stats, STATS_REPS, 1},
      {"GET /api/tasks?status=FAILED (page 1)", "/api/tasks?status=FAILED&order=newest&limit=50",
       "GET", "omniq_list_tasks", d_failed, REPS, 1},
      {"GET /api/tasks (any status, page 1)", "/api/tasks?order=newest&limit=50", "GET",
       "omniq_list_tasks", d_all, REPS, 1},
      {"GET /api/tasks?status=PENDING&queue= (page 2)", "", "GET", "omniq_list_tasks", d_page2,
       REPS, 1},
      {"GET /api/tasks/ID", "", "GET", "omniq_get_task+get_result", d_task, REPS, 1},
      {"POST /api/tasks/ID/retry", "", "POST", "omniq_retry", d_retry, REPS, 1},
      {"GET /app.js", "/app.js", "GET", "(HTTP floor)", NULL, 0, 1},
      {"GET /metrics (a scrape, not the page)", "/metrics", "GET", "omniq_stats", d_stats,
       STATS_REPS, 0},
  };
  snprintf(calls[4].path, sizeof calls[4].path,
           "/api/tasks?status=PENDING&queue=emails&order=newest&limit=50&cursor=%s", cursor2);
  snprintf(calls[5].path, sizeof calls[5].path, "/api/tasks/%s", failed_ids[0]);
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) run_call(oq, &calls[i]);

  stop_server();
  omniq_close(oq);
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
