/* SPDX-License-Identifier: MIT */
/* OmniQ on PostgreSQL beside OmniQ on SQLite, in one run.
 *
 * 1. Enqueue: ntasks tasks with omniq_enqueue_many (batches of BATCH), and
 *    SINGLES tasks one omniq_enqueue at a time, on each backend.
 * 2. End to end: ntasks no-op tasks drained by omniq_worker_process with 1, 2
 *    and 8 runner threads (thread isolation), on each backend; every task
 *    must end SUCCESS before a figure is printed.
 * 3. Enqueue-to-start latency across processes on PostgreSQL: a child
 *    process runs a pool whose poll interval (10 s) is far longer than the
 *    test, so it can learn of work only through LISTEN/NOTIFY; the parent
 *    enqueues one task at a time and the handler reports the CLOCK_MONOTONIC
 *    time it started (one clock for both processes). Baseline: the same
 *    round trip by hand with libpq — INSERT, pg_notify after commit, a
 *    LISTENing connection in another process that wakes and runs the
 *    backend's claim statement.
 *
 * OMNIQ_BENCH_PARTS (default "enqueue,drain,latency") picks parts and
 * OMNIQ_BENCH_THREADS (default "1,2,8") the drains' thread counts, for
 * looking at one figure at a time. OMNIQ_BENCH_SMOKE=1 (bench_smoke.h):
 * 100 single enqueues and 20 latency samples (with OMNIQ_BENCH_TASKS=500,
 * the least run).
 *
 * The PostgreSQL server is OMNIQ_DB_URL, or else a throwaway cluster this
 * program starts with scripts/pg-cluster.sh (fsync and synchronous_commit
 * on: every commit is durable) and removes at exit. Each store is a fresh
 * schema, dropped afterwards. SQLite runs with its own defaults (WAL,
 * synchronous=NORMAL: a commit is not fsynced), so the two are not equally
 * durable; the ratio says what durability on a server costs here. */
#include <errno.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "omniq.h"
#include "storage/postgres/postgres.h"
#include "bench_smoke.h"

/* Tasks per figure: OMNIQ_BENCH_TASKS (a multiple of BATCH), default 20,000.
 * A loaded machine flushes slowly, and fewer tasks keep a run short. */
#define TASKS_DEFAULT 20000
static long ntasks = TASKS_DEFAULT;
#define BATCH 500
#define SINGLES 2000
#define SAMPLES 400
static int singles = SINGLES, samples = SAMPLES; /* fewer in a smoke run */
#define ARGS "[1,2,3]"

static char pg_url[OMNIQ_PATH_MAX];
static char cluster_state[64];

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_postgres: %s: %s\n", what, msg);
  exit(1);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double rate(long n, int64_t ns) { return ns > 0 ? (double)n * 1e9 / (double)ns : 0; }

/* ---- the throwaway cluster ------------------------------------------------- */

static void cluster_stop(void) {
  char cmd[256];
  if (cluster_state[0] == '\0') return;
  snprintf(cmd, sizeof cmd, "bash %s/scripts/pg-cluster.sh stop %s", OMNIQ_SOURCE_DIR,
           cluster_state);
  if (system(cmd) != 0) fprintf(stderr, "bench_postgres: stopping the cluster failed\n");
  rmdir(cluster_state);
  cluster_state[0] = '\0';
}

static void on_signal(int sig) {
  cluster_stop();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void cluster_start(void) {
  const char *url = getenv("OMNIQ_DB_URL");
  char cmd[256], path[128];
  if (url != NULL && url[0] != '\0') {
    snprintf(pg_url, sizeof pg_url, "%s", url);
    return;
  }
  snprintf(cluster_state, sizeof cluster_state, "/tmp/omniq-bench-pg-XXXXXX");
  if (mkdtemp(cluster_state) == NULL) die("mkdtemp", strerror(errno));
  atexit(cluster_stop);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  snprintf(cmd, sizeof cmd, "bash %s/scripts/pg-cluster.sh start %s >/dev/null",
           OMNIQ_SOURCE_DIR, cluster_state);
  if (system(cmd) != 0) die("pg-cluster.sh start", "the server did not start");
  snprintf(path, sizeof path, "%s/url", cluster_state);
  FILE *f = fopen(path, "r");
  if (f == NULL || fgets(pg_url, sizeof pg_url, f) == NULL) die("cluster url", path);
  fclose(f);
  pg_url[strcspn(pg_url, "\n")] = '\0';
}

static void quiet(void *arg, const char *message) { (void)arg, (void)message; }

/* Runs sql; returns the first column of its first row as a number (0 if
 * none). */
static long long pg_exec(const char *sql) {
  PGconn *c = PQconnectdb(pg_url);
  PQsetNoticeProcessor(c, quiet, NULL);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    die(sql, PQerrorMessage(c));
  long long v = PQntuples(r) > 0 ? atoll(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  PQfinish(c);
  return v;
}

/* CPU seconds this process has used, all threads. */
static double client_cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + (double)u.ru_stime.tv_sec +
         ((double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds the cluster this program started has used so far: the
 * postmaster, its children that exited (cutime, cstime) and those alive
 * (from /proc). -1 when the server is someone else's (OMNIQ_DB_URL). */
static double server_cpu(void) {
  char path[4200], buf[4096];
  long long ticks = 0, pm = 0;
  if (cluster_state[0] == '\0') return -1;
  snprintf(path, sizeof path, "%s/datadir", cluster_state);
  FILE *f = fopen(path, "r");
  if (f == NULL || fgets(buf, sizeof buf, f) == NULL) die("cluster datadir", path);
  fclose(f);
  buf[strcspn(buf, "\n")] = '\0';
  snprintf(path, sizeof path, "%s/db/postmaster.pid", buf);
  if ((f = fopen(path, "r")) == NULL || fscanf(f, "%lld", &pm) != 1) die("postmaster.pid", path);
  fclose(f);
  snprintf(path, sizeof path, "/proc/%lld/task/%lld/children", pm, pm);
  char kids[2048] = "";
  if ((f = fopen(path, "r")) != NULL) {
    if (fgets(kids, sizeof kids, f) == NULL) kids[0] = '\0';
    fclose(f);
  }
  char list[2100];
  snprintf(list, sizeof list, "%lld %s", pm, kids);
  char *save = NULL;
  for (char *tok = strtok_r(list, " \n", &save); tok != NULL; tok = strtok_r(NULL, " \n", &save)) {
    long long pid = atoll(tok);
    snprintf(path, sizeof path, "/proc/%lld/stat", pid);
    if ((f = fopen(path, "r")) == NULL) continue; /* exited meanwhile: in cutime soon */
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')'); /* fields after the command name */
    long long v[15] = {0};
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld %lld %lld",
                            &v[0], &v[1], &v[2], &v[3]) != 4)
      continue;
    ticks += v[0] + v[1] + (pid == pm ? v[2] + v[3] : 0);
  }
  return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/* WAL flushes the server has made so far (pg_stat_wal, PostgreSQL 14+),
 * and the WAL position in bytes: bytes per task count what the statements
 * write, whatever the machine's load. */
static long long wal_syncs(void) { return pg_exec("SELECT wal_sync FROM pg_stat_wal"); }
static long long wal_bytes(void) {
  return pg_exec("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8");
}

/* ---- stores ------------------------------------------------------------------ */

typedef struct store {
  const char *backend;
  char dir[64];
  char schema[32];
  omniq_t *oq;
} store_t;

static int noop(omniq_job_t *job, void *userdata) {
  (void)job, (void)userdata;
  return OMNIQ_OK;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void settings_for(store_t *st, omniq_settings_t *s) {
  static int counter;
  omniq_settings_init(s);
  snprintf(s->backend, sizeof s->backend, "%s", st->backend);
  snprintf(st->dir, sizeof st->dir, "/tmp/omniq-bench-XXXXXX");
  if (mkdtemp(st->dir) == NULL) die("mkdtemp", strerror(errno));
  snprintf(s->base_dir, sizeof s->base_dir, "%s", st->dir);
  if (strcmp(st->backend, "postgres") == 0) {
    snprintf(st->schema, sizeof st->schema, "bench_%d_%d", (int)getpid(), counter++);
    snprintf(s->db_url, sizeof s->db_url, "%s", pg_url);
    snprintf(s->db_schema, sizeof s->db_schema, "%s", st->schema);
  }
  /* 20,000 INFO lines would measure the terminal. */
  s->log_level = OMNIQ_LOG_ERROR;
}

static void store_open(store_t *st, const char *backend) {
  omniq_settings_t s;
  memset(st, 0, sizeof *st);
  st->backend = backend;
  settings_for(st, &s);
  if (omniq_open(&st->oq, &s) != OMNIQ_OK) die("omniq_open", omniq_errmsg(NULL));
  if (omniq_register(st->oq, "bench.noop", noop, NULL) != OMNIQ_OK)
    die("register", omniq_errmsg(st->oq));
}

static void store_close(store_t *st) {
  char sql[64];
  omniq_close(st->oq);
  nftw(st->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (st->schema[0]) {
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", st->schema);
    pg_exec(sql);
  }
}

static void fill(store_t *st) {
  static omniq_enqueue_item_t items[BATCH];
  for (size_t i = 0; i < BATCH; i++)
    items[i] = (omniq_enqueue_item_t){.func = "bench.noop", .args_json = ARGS};
  for (long n = 0; n < ntasks; n += BATCH)
    if (omniq_enqueue_many(st->oq, items, BATCH, NULL) != OMNIQ_OK)
      die("omniq_enqueue_many", omniq_errmsg(st->oq));
}

/* ---- 1. enqueue ------------------------------------------------------------------ */

static void bench_enqueue(const char *backend, double *batched, double *single_us) {
  store_t st;
  store_open(&st, backend);
  int64_t t = now_ns();
  fill(&st);
  *batched = rate(ntasks, now_ns() - t);
  t = now_ns();
  for (int i = 0; i < singles; i++)
    if (omniq_enqueue(st.oq, "bench.noop", ARGS, NULL, NULL, NULL) != OMNIQ_OK)
      die("omniq_enqueue", omniq_errmsg(st.oq));
  *single_us = (double)(now_ns() - t) / 1000.0 / singles;
  store_close(&st);
}

/* ---- 2. end to end -------------------------------------------------------------- */

typedef struct drain_cost {
  double flushes;   /* server WAL flushes per task */
  double bytes;     /* WAL bytes per task */
  double client_us; /* this process's CPU per task */
  double server_us; /* the server's CPU per task; < 0 if unknown */
} drain_cost_t;

static double bench_drain(const char *backend, int threads, drain_cost_t *cost) {
  store_t st;
  omniq_worker_opts_t wo;
  int64_t counts[OMNIQ_STATUS_COUNT];
  long done = 0;
  store_open(&st, backend);
  fill(&st);
  omniq_worker_opts_init(&wo);
  wo.concurrency = threads;
  long long syncs = cost != NULL ? wal_syncs() : 0;
  long long bytes = cost != NULL ? wal_bytes() : 0;
  double server = cost != NULL ? server_cpu() : 0, client = client_cpu();
  int64_t t = now_ns();
  if (omniq_worker_process(st.oq, &wo, 0, &done) != OMNIQ_OK)
    die("omniq_worker_process", omniq_errmsg(st.oq));
  int64_t ns = now_ns() - t;
  if (cost != NULL) {
    cost->client_us = (client_cpu() - client) * 1e6 / (double)ntasks;
    cost->server_us = server < 0 ? -1 : (server_cpu() - server) * 1e6 / (double)ntasks;
    cost->flushes = (double)(wal_syncs() - syncs) / (double)ntasks;
    cost->bytes = (double)(wal_bytes() - bytes) / (double)ntasks;
  }
  if (omniq_count_by_status(st.oq, counts) != OMNIQ_OK) die("count", omniq_errmsg(st.oq));
  if (done != ntasks || counts[OMNIQ_SUCCESS] != ntasks) die(backend, "not every task succeeded");
  store_close(&st);
  return rate(ntasks, ns);
}

/* The same drain by hand: threads, each with its own connection, loop on
 * the backend's own claim statement (one task) and outcome statement until
 * a claim finds nothing; no engine, no pool, no notifications. What
 * PostgreSQL itself allows here, for the same commits. */
typedef struct hand_drain {
  const char *schema;
  long done;
} hand_drain_t;

static void *hand_drain_thread(void *arg) {
  hand_drain_t *h = arg;
  PGconn *c = PQconnectdb(pg_url);
  char *claim = omniq__pg_sql(omniq__pg_claim1_sql, h->schema);
  char *finish = omniq__pg_sql(omniq__pg_finish_sql, h->schema);
  PGresult *r;
  if (PQstatus(c) != CONNECTION_OK || claim == NULL || finish == NULL) die("hand", "connect");
  PQclear(PQprepare(c, "claim", claim, 0, NULL));
  PQclear(PQprepare(c, "finish", finish, 0, NULL));
  for (;;) {
    /* Every task is due by then; the times are bound as the backend binds
     * them, as text. */
    static const char now[] = "4102444800000", lease[] = "4102444830000";
    char token[24], id[OMNIQ_ID_SIZE];
    const char *cv[6] = {"default", now, "1", now, lease, lease};
    r = PQexecPrepared(c, "claim", 6, cv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die("hand claim", PQerrorMessage(c));
    if (PQntuples(r) == 0) {
      PQclear(r);
      break;
    }
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    snprintf(token, sizeof token, "%s", PQgetvalue(r, 0, 15));
    PQclear(r);
    const char *fv[16] = {id,  token, "2", "0", "0", "f", NULL, "2", "null", NULL, "1",
                          now, now,   now, "0", "0"};
    r = PQexecPrepared(c, "finish", 16, fv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die("hand finish", PQerrorMessage(c));
    PQclear(r);
    h->done++;
  }
  omniq__free(claim);
  omniq__free(finish);
  PQfinish(c);
  return NULL;
}

static double bench_drain_hand(int threads) {
  store_t st;
  pthread_t th[8];
  hand_drain_t h[8];
  long done = 0;
  store_open(&st, "postgres"); /* the schema and the tasks, as OmniQ stores them */
  fill(&st);
  int64_t t = now_ns();
  for (int i = 0; i < threads; i++) {
    h[i] = (hand_drain_t){.schema = st.schema};
    if (pthread_create(&th[i], NULL, hand_drain_thread, &h[i]) != 0) die("hand", "thread");
  }
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    done += h[i].done;
  }
  int64_t ns = now_ns() - t;
  if (done != ntasks) die("hand", "not every task was finished");
  store_close(&st);
  return rate(ntasks, ns);
}

/* ---- 3. latency across processes --------------------------------------------------- */

static int report_fd;

static int64_t mono_ns(void) { return now_ns(); }

static int report_start(omniq_job_t *job, void *userdata) {
  (void)job, (void)userdata;
  int64_t t = mono_ns();
  if (write(report_fd, &t, sizeof t) != (ssize_t)sizeof t) return OMNIQ_EIO;
  return OMNIQ_OK;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void percentiles(int64_t *lat, int n, double *p50, double *p99) {
  qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
  *p50 = (double)lat[n / 2] / 1e6;
  *p99 = (double)lat[(n * 99) / 100] / 1e6;
}

static void read_exact(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("pipe", "the other process went away");
    got += (size_t)r;
  }
}

/* The child: a pool that learns of work only through NOTIFY. */
static void latency_child(const omniq_settings_t *s, int ready_fd, int stop_fd) {
  omniq_t *oq;
  omniq_worker_t *w;
  omniq_worker_opts_t wo;
  char c = 'r';
  if (omniq_open(&oq, s) != OMNIQ_OK) _exit(10);
  omniq_register(oq, "bench.report", report_start, NULL);
  omniq_worker_opts_init(&wo);
  wo.concurrency = 1;
  wo.poll_interval_ms = 10000;
  if (omniq_worker_start(oq, &wo, &w) != OMNIQ_OK) _exit(11);
  if (write(ready_fd, &c, 1) != 1) _exit(12);
  read_exact(stop_fd, &c, 1);
  omniq_worker_stop(w);
  omniq_close(oq);
  _exit(0);
}

/* idle: each enqueue waits for the previous task's result first, so it
 * finds the worker idle; otherwise they follow one another at once, and
 * the worker is still storing the previous outcome when the next arrives
 * (its commit is in the measured path). */
static void bench_latency_omniq(int idle, double *p50, double *p99) {
  store_t st = {.backend = "postgres"};
  omniq_settings_t s;
  int report[2], ready[2], stop[2];
  static int64_t lat[SAMPLES];
  char c;
  settings_for(&st, &s);
  if (pipe(report) || pipe(ready) || pipe(stop)) die("pipe", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    report_fd = report[1];
    latency_child(&s, ready[1], stop[0]);
  }
  if (omniq_open(&st.oq, &s) != OMNIQ_OK) die("omniq_open", omniq_errmsg(NULL));
  read_exact(ready[0], &c, 1);
  for (int i = 0; i < samples; i++) {
    int64_t t0 = mono_ns(), t1;
    char id[OMNIQ_ID_SIZE];
    omniq_result_t *res;
    if (omniq_enqueue(st.oq, "bench.report", ARGS, NULL, NULL, id) != OMNIQ_OK)
      die("omniq_enqueue", omniq_errmsg(st.oq));
    read_exact(report[0], &t1, sizeof t1);
    lat[i] = t1 - t0;
    if (idle) {
      if (omniq_get_result(st.oq, id, 60.0, &res) != OMNIQ_OK)
        die("omniq_get_result", omniq_errmsg(st.oq));
      omniq_result_free(res);
    }
  }
  if (write(stop[1], "s", 1) != 1) die("pipe", "stop");
  waitpid(pid, NULL, 0);
  store_close(&st);
  percentiles(lat, samples, p50, p99);
}

/* The same round trip by hand: the child LISTENs, wakes on the
 * notification, runs the backend's claim statement on its table, and
 * reports when the claim returned. */
static const char hand_claim[] =
    "WITH picked AS (SELECT id FROM %s.tasks WHERE status = 0 AND queue = 'default'"
    " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " UPDATE %s.tasks t SET status = 1 FROM picked WHERE t.id = picked.id RETURNING t.id";

static void hand_child(const char *schema, int ready_fd, int report_w, int stop_fd) {
  PGconn *c = PQconnectdb(pg_url);
  char listen_sql[96], claim[512];
  snprintf(listen_sql, sizeof listen_sql, "LISTEN %s_work", schema);
  snprintf(claim, sizeof claim, hand_claim, schema, schema);
  PQclear(PQexec(c, listen_sql));
  if (write(ready_fd, "r", 1) != 1) _exit(12);
  int done = 0;
  while (!done) {
    struct timeval tv = {0, 100000};
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(PQsocket(c), &fds);
    FD_SET(stop_fd, &fds);
    int maxfd = PQsocket(c) > stop_fd ? PQsocket(c) : stop_fd;
    if (select(maxfd + 1, &fds, NULL, NULL, &tv) < 0 && errno != EINTR) _exit(13);
    if (FD_ISSET(stop_fd, &fds)) break;
    PQconsumeInput(c);
    PGnotify *n;
    while ((n = PQnotifies(c)) != NULL) {
      PQfreemem(n);
      PGresult *r = PQexec(c, claim);
      int64_t t = mono_ns();
      if (PQntuples(r) == 1 && write(report_w, &t, sizeof t) != (ssize_t)sizeof t) done = 1;
      PQclear(r);
    }
  }
  PQfinish(c);
  _exit(0);
}

static void bench_latency_hand(double *p50, double *p99) {
  static int64_t lat[SAMPLES];
  char schema[32], sql[512], c;
  int report[2], ready[2], stop[2];
  snprintf(schema, sizeof schema, "hand_%d", (int)getpid());
  snprintf(sql, sizeof sql,
           "CREATE SCHEMA %s; CREATE TABLE %s.tasks (id bigserial PRIMARY KEY,"
           " status smallint NOT NULL, queue text NOT NULL, args bytea NOT NULL)",
           schema, schema);
  pg_exec(sql);
  if (pipe(report) || pipe(ready) || pipe(stop)) die("pipe", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) hand_child(schema, ready[1], report[1], stop[0]);
  PGconn *pc = PQconnectdb(pg_url);
  char insert[160], channel[64];
  snprintf(insert, sizeof insert,
           "INSERT INTO %s.tasks (status, queue, args) VALUES (0, 'default', $1::bytea)", schema);
  snprintf(channel, sizeof channel, "%s_work", schema);
  PQclear(PQprepare(pc, "ins", insert, 0, NULL));
  read_exact(ready[0], &c, 1);
  for (int i = 0; i < samples; i++) {
    const char *v[1] = {ARGS}, *ch[1] = {channel};
    int len[1] = {(int)strlen(ARGS)}, fmt[1] = {1};
    int64_t t0 = mono_ns(), t1;
    PQenterPipelineMode(pc);
    PQsendQueryPrepared(pc, "ins", 1, v, len, fmt, 1);
    PQpipelineSync(pc);
    PQsendQueryParams(pc, "SELECT pg_notify($1, '')", 1, NULL, ch, NULL, NULL, 0);
    PQpipelineSync(pc);
    for (int syncs = 0; syncs < 2;) {
      PGresult *r = PQgetResult(pc);
      if (r == NULL) continue;
      if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) syncs++;
      else if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die("hand insert", PQerrorMessage(pc));
      PQclear(r);
    }
    PQexitPipelineMode(pc);
    read_exact(report[0], &t1, sizeof t1);
    lat[i] = t1 - t0;
  }
  if (write(stop[1], "s", 1) != 1) die("pipe", "stop");
  waitpid(pid, NULL, 0);
  PQfinish(pc);
  snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
  pg_exec(sql);
  percentiles(lat, samples, p50, p99);
}

/* ---- main ------------------------------------------------------------------------- */

int main(void) {
  int threads[8] = {1, 2, 8}, nthreads = 3;
  double pg_b, pg_s, sq_b, sq_s, pg8 = 0, o50 = 0;
  char load[64] = "?";
  FILE *lf = fopen("/proc/loadavg", "r");
  if (lf != NULL) {
    if (fgets(load, sizeof load, lf) == NULL) snprintf(load, sizeof load, "?");
    fclose(lf);
  }
  load[strcspn(load, "\n")] = '\0';
  if (bench_smoke()) singles = 100, samples = 20;
  const char *env = getenv("OMNIQ_BENCH_TASKS");
  if (env != NULL && (ntasks = strtol(env, NULL, 10)) < BATCH) ntasks = BATCH;
  ntasks -= ntasks % BATCH;
  const char *parts = getenv("OMNIQ_BENCH_PARTS");
  if (parts == NULL || parts[0] == '\0') parts = "enqueue,drain,latency";
  if ((env = getenv("OMNIQ_BENCH_THREADS")) != NULL && env[0] != '\0') {
    char *end;
    for (nthreads = 0; nthreads < 8 && *env; env = *end ? end + 1 : end) {
      long t = strtol(env, &end, 10);
      if (t < 1 || t > 8) die("OMNIQ_BENCH_THREADS", "thread counts are 1 to 8");
      threads[nthreads++] = (int)t;
    }
  }
  cluster_start();
  printf("OmniQ on PostgreSQL (durable commits) beside OmniQ on SQLite (WAL, synchronous=NORMAL);"
         " %ld no-op tasks; load average at start: %s\n",
         ntasks, load);

  if (strstr(parts, "enqueue") != NULL) {
    bench_enqueue("postgres", &pg_b, &pg_s);
    bench_enqueue("sqlite", &sq_b, &sq_s);
    printf("\nenqueue                        postgres      sqlite   pg/sqlite\n");
    printf("  batches of %d (tasks/s)   %10.0f  %10.0f  %10.2f\n", BATCH, pg_b, sq_b,
           pg_b / sq_b);
    printf("  one at a time (us/task)     %10.1f  %10.1f  %10.2f\n", pg_s, sq_s, pg_s / sq_s);
  }

  if (strstr(parts, "drain") != NULL) printf("\nend to end, omniq_worker_process (tasks/s); hand = the backend's claim and"
         " outcome SQL looped on one connection per thread; flushes = server WAL flushes per"
         " task; CPU per task (us) of OmniQ's run, in this process and in the server; WAL"
         " bytes per task\n");
  if (strstr(parts, "drain") != NULL)
    printf("  threads      postgres     pg hand  pg/hand      sqlite  pg/sqlite   flushes"
           "  client  server  WAL B\n");
  for (int i = 0; strstr(parts, "drain") != NULL && i < nthreads; i++) {
    drain_cost_t c;
    double pg = bench_drain("postgres", threads[i], &c);
    double hand = bench_drain_hand(threads[i]);
    double sq = bench_drain("sqlite", threads[i], NULL);
    printf("  %7d    %10.0f  %10.0f  %7.2f  %10.0f  %9.2f   %7.2f  %6.0f  %6.0f  %6.0f\n",
           threads[i], pg, hand, pg / hand, sq, pg / sq, c.flushes, c.client_us, c.server_us,
           c.bytes);
    fflush(stdout);
    if (threads[i] == 8) pg8 = pg;
  }

  double o99, i50, i99, h50, h99;
  if (strstr(parts, "latency") != NULL) {
    bench_latency_omniq(0, &o50, &o99);
    bench_latency_omniq(1, &i50, &i99);
    bench_latency_hand(&h50, &h99);
    printf("\nenqueue-to-start across processes through LISTEN/NOTIFY, %d tasks one at a time"
           " (ms); back to back: the next enqueued as soon as the last started; idle: once the"
           " last one's result was stored\n", samples);
    printf("      back to back        idle        hand  b2b/hand idle/hand\n");
    printf("  p50   %10.3f  %10.3f  %10.3f  %8.2f  %8.2f\n", o50, i50, h50, o50 / h50, i50 / h50);
    printf("  p99   %10.3f  %10.3f  %10.3f  %8.2f  %8.2f\n", o99, i99, h99, o99 / h99, i99 / h99);
    printf("\ntarget p50 <= 2 ms: back to back %s, idle %s\n", o50 <= 2.0 ? "met" : "NOT met",
           i50 <= 2.0 ? "met" : "NOT met");
  }
  if (pg8 > 0) printf("target 8 threads >= 5000 tasks/s: %s\n", pg8 >= 5000 ? "met" : "NOT met");
  return 0;
}
