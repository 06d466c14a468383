/* SPDX-License-Identifier: MIT */
/* End-to-end throughput of OmniQ on SQLite, beside the same work by hand.
 *
 * OmniQ: TASKS (argv[1], default 20,000) no-op tasks are enqueued with
 * omniq_enqueue_many (batches of BATCH) into a fresh store, then omniq_worker_process drains them with a
 * pool of 1, 2, 4 or 8 runner threads (thread isolation). Every task ends SUCCESS
 * with a result row, which is checked before a figure is printed.
 *
 * Hand: the same rows and the same statements on a fresh database of the
 * same schema, with nothing of OmniQ's own: BEGIN IMMEDIATE, BATCH INSERTs,
 * COMMIT to enqueue; then as many threads as the pool has runners, each
 * with its own connection, loop BEGIN IMMEDIATE; claim 1 task (its row
 * read, then the UPDATE taking it); COMMIT; then BEGIN IMMEDIATE; mark it SUCCESS by id under its
 * claim token and queue, add to the totals; INSERT OR
 * REPLACE its result; COMMIT, until a claim finds nothing. The connections
 * use the backend's pragmas (WAL, synchronous=NORMAL, its checkpoint
 * threshold and cache) and SQLite is configured as the backend configures
 * it (hand_sql_configure), so the ratio omniq / hand is what the library adds
 * (validation, records, the engine, the pool, logging calls, the
 * keeper), not a difference in configuration.
 *
 * Hand, together: the same, but each thread reports its task and claims
 * its next in one transaction (the finish, total and result statements,
 * then the claim), as a pool's runner does since its report carries its
 * next claim: the baseline for what the library does now. The first hand
 * loop (two transactions per task) stays for comparison with earlier runs.
 *
 * Hand, batched: each thread claims HAND_BATCH tasks at once and commits
 * their finishes with the next claim in one transaction (their runs added
 * to the totals once, as the backend's group commit does): the floor for a
 * pool that claims ahead of its slots and commits its reports in batches
 * (docs/workers.md), since the pages a transaction writes amortise over
 * the tasks it carries.
 *
 * The pool runs its threads on one shared connection behind a mutex; the
 * hand loop gives each thread its own connection, as separate processes
 * would. SQLite takes one writer at a time either way; with several
 * connections the losers wait in SQLite's busy handler.
 *
 * Each figure is the best of REPS (argv[2], default 2) runs; each run uses
 * fresh databases, and OmniQ and hand runs alternate, so drift hits both
 * alike. The last columns are CPU per task (user + system of the process,
 * getrusage: enqueue and processing, and the enqueue's share) of OmniQ and
 * of the hand64 loop, and their ratio: on a shared machine the wall-clock
 * rates follow the other load, the CPU a task costs much less. */
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "omniq.h"
#include "base/ids.h"
#include "hand_sql.h"
#include "pool_drain.h"

#define BATCH POOL_DRAIN_BATCH
static int tasks = 20000; /* argv[1]: no-op tasks per run */
static int reps = 2;      /* argv[2]: runs, the best kept */
#define MAX_THREADS 8
#define LEASE_MS 30000
#define ARGS POOL_DRAIN_ARGS
#define HAND_BATCH 64 /* tasks per transaction in the hand64 loop */

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double rate(long n, int64_t ns) { return ns > 0 ? (double)n * 1e9 / (double)ns : 0; }

typedef struct run {
  int64_t enqueue_ns, process_ns;
  int64_t cpu_ns;     /* user + system CPU of the whole process over the run */
  int64_t enq_cpu_ns; /* the part of it spent enqueueing */
} run_t;

/* User + system CPU time of the process so far: the figure that holds on a
 * shared machine, where wall-clock rates follow the other load. */
static int64_t cpu_ns(void) { return pool_drain_cpu_ns(NULL); }

/* ---- through OmniQ ---------------------------------------------------------- */

static void run_omniq(int threads, run_t *out) {
  pool_drain_t r;
  pool_drain_run(threads, tasks, LEASE_MS, &r);
  *out = (run_t){.enqueue_ns = r.enqueue_ns, .process_ns = r.process_ns, .cpu_ns = r.cpu_ns,
                 .enq_cpu_ns = r.enq_cpu_ns};
}

/* ---- the same work by hand --------------------------------------------------- */

static const char insert_sql[] =
    "INSERT INTO tasks (id, func, queue, args, kwargs, status, priority, attempts,"
    " max_retries, eta, interval_ms, timeout_ms, created_at, started_at, lease_until, token,"
    " last_error) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, 0, ?6, ?7, 0, ?8, ?7, 0, 0, 0, NULL)";

typedef struct hand {
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *insert, *queue, *claim, *take, *finish, *total, *put;
} hand_t;

static void hand_step(hand_t *h, sqlite3_stmt *s) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) die("hand step", sqlite3_errmsg(h->db));
  sqlite3_reset(s);
}

static sqlite3_stmt *hand_prepare(hand_t *h, const char *sql) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v3(h->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
    die("hand prepare", sqlite3_errmsg(h->db));
  return s;
}

static void hand_open(hand_t *h, const char *path) {
  if (sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
    die("hand open", sqlite3_errmsg(h->db));
  sqlite3_busy_timeout(h->db, 60000); /* 8 connections on a loaded machine */
  if (sqlite3_exec(h->db,
                   "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                   " PRAGMA wal_autocheckpoint = 8192; PRAGMA cache_size = -16384;"
                   " PRAGMA temp_store = MEMORY",
                   NULL, NULL, NULL) != SQLITE_OK)
    die("hand pragmas", sqlite3_errmsg(h->db));
  h->begin = hand_prepare(h, "BEGIN IMMEDIATE");
  h->commit = hand_prepare(h, "COMMIT");
  h->insert = hand_prepare(h, insert_sql);
  h->queue = hand_prepare(h, queue_sql);
  h->claim = hand_prepare(h, claim_read_sql);
  h->take = hand_prepare(h, claim_sql);
  h->finish = hand_prepare(h, finish_sql);
  h->total = hand_prepare(h, total_n_sql);
  h->put = hand_prepare(h, put_sql);
}

static void hand_close(hand_t *h) {
  sqlite3_stmt *all[] = {h->begin, h->commit, h->insert, h->queue, h->claim,
                         h->take,  h->finish, h->total,  h->put};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  sqlite3_close(h->db);
}

static void hand_enqueue(hand_t *h) {
  char id[OMNIQ_ID_SIZE];
  for (long n = 0; n < tasks; n += BATCH) {
    int64_t now = wall_ms();
    hand_step(h, h->begin);
    for (int i = 0; i < BATCH; i++) {
      omniq__id_new(now, id);
      sqlite3_bind_text(h->insert, 1, id, -1, SQLITE_STATIC);
      sqlite3_bind_text(h->insert, 2, "bench.noop", -1, SQLITE_STATIC);
      sqlite3_bind_text(h->insert, 3, OMNIQ_DEFAULT_QUEUE, -1, SQLITE_STATIC);
      sqlite3_bind_text(h->insert, 4, ARGS, -1, SQLITE_STATIC);
      sqlite3_bind_text(h->insert, 5, "{}", -1, SQLITE_STATIC);
      sqlite3_bind_int(h->insert, 6, OMNIQ_DEFAULT_MAX_RETRIES);
      sqlite3_bind_int64(h->insert, 7, now);
      sqlite3_bind_int64(h->insert, 8, OMNIQ_DEFAULT_TIMEOUT_MS);
      hand_step(h, h->insert);
    }
    hand_step(h, h->commit);
  }
}

/* Adds runs successful runs to the totals of queue. */
static void hand_total(hand_t *h, const char *queue, int runs) {
  sqlite3_bind_text(h->total, 1, queue, -1, SQLITE_STATIC);
  sqlite3_bind_int(h->total, 2, OMNIQ_RUNS_SUCCEEDED);
  sqlite3_bind_int(h->total, 3, runs);
  hand_step(h, h->total);
}

/* Finishes one task of queue; its run is left to the caller to add to the
 * totals, once per transaction. */
static void hand_finish(hand_t *h, const char *id, int64_t token, int attempts,
                        const char *queue) {
  int64_t now = wall_ms();
  if (hand_sql_finish(h->db, h->finish, id, token, queue, now) != 0)
    die("hand finish", "claim token no longer valid");
  sqlite3_bind_text(h->put, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int(h->put, 2, OMNIQ_SUCCESS);
  sqlite3_bind_text(h->put, 3, "null", -1, SQLITE_STATIC);
  sqlite3_bind_null(h->put, 4);
  sqlite3_bind_int(h->put, 5, attempts);
  sqlite3_bind_int64(h->put, 6, now);
  sqlite3_bind_int64(h->put, 7, now);
  hand_step(h, h->put);
}

/* A task a hand loop holds claimed. */
typedef struct held {
  char id[OMNIQ_ID_SIZE];
  int64_t token;
  int attempts;
} held_t;

/* Claims up to max tasks into out; returns how many it got. */
static int hand_claim(hand_t *h, held_t *out, int max) {
  volatile size_t sink = 0; /* keeps the column reads from being optimised away */
  int64_t now = wall_ms();
  int got = 0, rc;
  sqlite3_bind_int64(h->claim, 1, now);
  sqlite3_bind_int64(h->claim, 2, now + LEASE_MS);
  sqlite3_bind_text(h->queue, 1, OMNIQ_DEFAULT_QUEUE, -1, SQLITE_STATIC);
  hand_step(h, h->queue);
  sqlite3_bind_int64(h->claim, 3, max);
  sqlite3_bind_text(h->claim, 4, OMNIQ_DEFAULT_QUEUE, -1, SQLITE_STATIC);
  sqlite3_bind_int64(h->claim, 5, max);
  while ((rc = sqlite3_step(h->claim)) == SQLITE_ROW && got < max) {
    /* Read every column, as the backend does to build a record. */
    for (int c = 1; c <= 4; c++) sink += (size_t)sqlite3_column_bytes(h->claim, c);
    for (int c = 5; c <= 15; c++) sink += (size_t)sqlite3_column_int64(h->claim, c);
    sink += (size_t)sqlite3_column_bytes(h->claim, 16);
    memcpy(out[got].id, sqlite3_column_text(h->claim, 0), OMNIQ_ID_SIZE);
    out[got].attempts = sqlite3_column_int(h->claim, 7) + 1; /* as the take leaves them */
    out[got].token = sqlite3_column_int64(h->claim, 15) + 1;
    got++;
  }
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) die("hand claim", sqlite3_errmsg(h->db));
  sqlite3_reset(h->claim);
  if (got > 0 &&
      hand_sql_take(h->db, h->take, now, now + LEASE_MS, OMNIQ_DEFAULT_QUEUE, max, got) != 0)
    die("hand claim", sqlite3_errmsg(h->db));
  (void)sink;
  return got;
}

/* Claims and finishes tasks until a claim finds nothing; returns how many
 * it finished. per = 0: one task at a time, its claim and its finish each
 * a transaction; per >= 1: up to per tasks at a time, their finishes and
 * the next claim in one transaction. */
static long hand_work(hand_t *h, int per) {
  held_t held[HAND_BATCH];
  int n = 0, max = per > 0 ? per : 1;
  long finished = 0;
  const char *queue = OMNIQ_DEFAULT_QUEUE; /* every task is in one queue */
  for (;;) {
    hand_step(h, h->begin);
    for (int i = 0; i < n; i++) {
      hand_finish(h, held[i].id, held[i].token, held[i].attempts, queue);
      finished++;
    }
    if (n > 0) hand_total(h, queue, n);
    if (n > 0 && per == 0) {
      hand_step(h, h->commit);
      hand_step(h, h->begin);
    }
    n = hand_claim(h, held, max);
    hand_step(h, h->commit);
    if (n == 0) break;
  }
  return finished;
}

typedef struct worker {
  pthread_t tid;
  hand_t h;
  pthread_barrier_t *start;
  int per;
  long finished;
} worker_t;

static void *hand_thread(void *arg) {
  worker_t *w = arg;
  pthread_barrier_wait(w->start); /* connections are open before the clock starts */
  w->finished = hand_work(&w->h, w->per);
  return NULL;
}

static void run_hand(int threads, int per, run_t *out) {
  char dir[] = "/tmp/omniq-bench-XXXXXX", path[sizeof dir + 16];
  worker_t w[MAX_THREADS];
  pthread_barrier_t start;
  omniq_t *oq;
  long finished = 0;
  if (mkdtemp(dir) == NULL) die("mkdtemp", "failed");
  /* The schema comes from OmniQ itself, so both sides have the same tables
   * and indexes; nothing else of it is used. */
  pool_drain_open(dir, LEASE_MS, &oq);
  omniq_close(oq);
  snprintf(path, sizeof path, "%s/omniq.db", dir);

  hand_t h;
  hand_open(&h, path);
  int64_t c0 = cpu_ns(), t = now_ns();
  hand_enqueue(&h);
  out->enqueue_ns = now_ns() - t;
  int64_t enqueue_cpu = out->enq_cpu_ns = cpu_ns() - c0;
  hand_close(&h);

  if (pthread_barrier_init(&start, NULL, (unsigned)threads + 1) != 0) die("barrier", "init");
  for (int i = 0; i < threads; i++) {
    hand_open(&w[i].h, path);
    w[i].start = &start;
    w[i].per = per;
    if (pthread_create(&w[i].tid, NULL, hand_thread, &w[i]) != 0) die("pthread_create", "failed");
  }
  pthread_barrier_wait(&start);
  c0 = cpu_ns();
  t = now_ns();
  for (int i = 0; i < threads; i++) pthread_join(w[i].tid, NULL);
  out->process_ns = now_ns() - t;
  out->cpu_ns = enqueue_cpu + cpu_ns() - c0;
  for (int i = 0; i < threads; i++) {
    finished += w[i].finished;
    hand_close(&w[i].h);
  }
  pthread_barrier_destroy(&start);
  if (finished != tasks) die("hand", "not every task finished");
  bench_rmtree(dir);
}

/* ---- report ------------------------------------------------------------------ */

static void keep_best(run_t *best, const run_t *r) {
  if (best->enqueue_ns == 0 || r->enqueue_ns < best->enqueue_ns) best->enqueue_ns = r->enqueue_ns;
  if (best->process_ns == 0 || r->process_ns < best->process_ns) best->process_ns = r->process_ns;
  if (best->cpu_ns == 0 || r->cpu_ns < best->cpu_ns) {
    best->cpu_ns = r->cpu_ns;
    best->enq_cpu_ns = r->enq_cpu_ns;
  }
}

/* bench_pool_throughput [tasks [reps [threads,...]]] */
int main(int argc, char **argv) {
  int threads[8] = {1, 2, 4, MAX_THREADS};
  size_t nthreads = 4;
  hand_sql_configure();
  if (argc > 1) tasks = atoi(argv[1]);
  if (argc > 2) reps = atoi(argv[2]);
  if (argc > 3) { /* a comma-separated list of thread counts */
    nthreads = 0;
    for (char *p = argv[3], *end; nthreads < 8; p = end + 1) {
      long t = strtol(p, &end, 10);
      if (end == p || t < 1 || t > MAX_THREADS || (*end != ',' && *end != '\0')) {
        nthreads = 0;
        break;
      }
      threads[nthreads++] = (int)t;
      if (*end == '\0') break;
    }
  }
  if (tasks < BATCH || tasks % BATCH != 0 || reps < 1 || nthreads == 0)
    die("usage", "bench_pool_throughput [TASKS (a multiple of 500) [REPS [THREADS,...]]]");
  printf(
      "Pool throughput on SQLite: omniq (enqueue_many + worker pool) vs the same SQL by hand;"
      " %d no-op tasks, enqueued in batches of %d; best of %d runs; tasks per second\n"
      "hand: a transaction per claim and per finish; hand1: a task's finish and the next claim"
      " in one transaction; hand64: %d tasks' finishes and the next claim of %d in one"
      " transaction, what a pool claiming ahead with batched reports aims at\n",
      tasks, BATCH, reps, HAND_BATCH, HAND_BATCH);
  fflush(stdout);
  printf("%7s %10s %10s %7s %10s %10s %7s %10s %10s %7s %10s %7s %10s %7s %8s %8s %8s %8s %7s\n",
         "threads", "enqueue", "hand", "ratio", "process", "hand", "ratio", "end2end", "hand",
         "ratio", "hand1", "ratio", "hand64", "ratio", "cpu_us", "enq_us", "hand64", "enq_us", "ratio");
  for (size_t i = 0; i < nthreads; i++) {
    run_t best_oq = {0}, best_hand = {0}, best_one = {0}, best_64 = {0}, r;
    for (int rep = 0; rep < reps; rep++) {
      run_omniq(threads[i], &r);
      keep_best(&best_oq, &r);
      run_hand(threads[i], 0, &r);
      keep_best(&best_hand, &r);
      run_hand(threads[i], 1, &r);
      keep_best(&best_one, &r);
      run_hand(threads[i], HAND_BATCH, &r);
      keep_best(&best_64, &r);
    }
    double eo = rate(tasks, best_oq.enqueue_ns), eh = rate(tasks, best_hand.enqueue_ns);
    double po = rate(tasks, best_oq.process_ns), ph = rate(tasks, best_hand.process_ns);
    double xo = rate(tasks, best_oq.enqueue_ns + best_oq.process_ns);
    double xh = rate(tasks, best_hand.enqueue_ns + best_hand.process_ns);
    double x1 = rate(tasks, best_one.enqueue_ns + best_one.process_ns);
    double x64 = rate(tasks, best_64.enqueue_ns + best_64.process_ns);
    double co = (double)best_oq.cpu_ns / 1e3 / tasks, c64 = (double)best_64.cpu_ns / 1e3 / tasks;
    double qo = (double)best_oq.enq_cpu_ns / 1e3 / tasks;
    double q64 = (double)best_64.enq_cpu_ns / 1e3 / tasks;
    printf("%7d %10.0f %10.0f %7.2f %10.0f %10.0f %7.2f %10.0f %10.0f %7.2f %10.0f %7.2f %10.0f "
           "%7.2f %8.1f %8.1f %8.1f %8.1f %7.2f\n",
           threads[i], eo, eh, eo / eh, po, ph, po / ph, xo, xh, xo / xh, x1, xo / x1, x64,
           xo / x64, co, qo, c64, q64, co / c64);
    fflush(stdout);
  }
  return 0;
}
