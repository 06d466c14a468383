/* SPDX-License-Identifier: MIT */
/* One omniq_enqueue per task while a pool runs, beside the same
 * transactions by hand.
 *
 * OmniQ: a pool of one runner thread (thread isolation, default options
 * otherwise) is started on a fresh SQLite store; this thread then calls
 * omniq_enqueue TASKS times, one task per call, and the figure is the time
 * from the first call until the pool has reported every run (the handler
 * counts its runs; omniq_worker_stop then waits for the last report).
 * Every task must end SUCCESS.
 *
 * Hand: the transactions the library makes, written against sqlite3 on a
 * fresh database of the same schema: a producer thread commits one INSERT
 * per task (BEGIN IMMEDIATE; INSERT; COMMIT) and signals a condition
 * variable, as an enqueue wakes the pool; a worker thread reports its last
 * task and claims its next in one transaction (the finish's lookup and
 * UPDATE, the
 * running total and the result, then the queue's settings and the claim's
 * read and UPDATE), and when the claim finds nothing waits for the
 * producer's signal and claims alone. Both threads share one connection
 * behind a mutex, as a handle's enqueues and its pool do, so neither waits
 * in SQLite's busy handler. The ratio omniq / hand is what the library
 * adds to those transactions (records, validation, the engine's policy,
 * the wake-ups, the pool's hand-offs, logging calls); target >= 0.9.
 *
 * Each figure is the best of REPS runs, OmniQ and hand runs alternating.
 * OMNIQ_BENCH_SMOKE=1 (bench_smoke.h): 200 tasks, one run. */
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omniq.h"
#include "base/ids.h"
#include "bench_smoke.h"
#include "hand_sql.h"

static int tasks = 10000; /* TASKS */
static int reps = 3;      /* REPS */
#define LEASE_MS 30000
#define ARGS "[1,2,3]"

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_enqueue_one: %s: %s\n", what, msg);
  exit(1);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void open_store(const char *dir, omniq_t **oq) {
  omniq_settings_t s;
  omniq_settings_init(&s);
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  s.log_level = OMNIQ_LOG_ERROR; /* an INFO line per task would measure the terminal */
  s.lease_ms = LEASE_MS;
  if (omniq_open(oq, &s) != OMNIQ_OK) die("omniq_open", omniq_errmsg(NULL));
}

/* ---- through OmniQ ------------------------------------------------------------ */

typedef struct counter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  long runs;
} counter_t;

static int counted(omniq_job_t *job, void *userdata) {
  counter_t *c = userdata;
  (void)job;
  pthread_mutex_lock(&c->lock);
  if (++c->runs == tasks) pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
  return OMNIQ_OK;
}

static int64_t run_omniq(void) {
  char dir[] = "/tmp/omniq-bench-XXXXXX";
  counter_t c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  omniq_t *oq;
  omniq_worker_t *w;
  omniq_worker_opts_t wo;
  int64_t counts[OMNIQ_STATUS_COUNT];
  if (mkdtemp(dir) == NULL) die("mkdtemp", "failed");
  open_store(dir, &oq);
  if (omniq_register(oq, "bench.noop", counted, &c) != OMNIQ_OK) die("register", omniq_errmsg(oq));
  omniq_worker_opts_init(&wo);
  wo.concurrency = 1;
  wo.isolation = OMNIQ_ISOLATION_THREAD;
  if (omniq_worker_start(oq, &wo, &w) != OMNIQ_OK) die("omniq_worker_start", omniq_errmsg(oq));

  int64_t t = now_ns();
  for (long i = 0; i < tasks; i++)
    if (omniq_enqueue(oq, "bench.noop", ARGS, NULL, NULL, NULL) != OMNIQ_OK)
      die("omniq_enqueue", omniq_errmsg(oq));
  pthread_mutex_lock(&c.lock);
  while (c.runs < tasks) pthread_cond_wait(&c.cond, &c.lock);
  pthread_mutex_unlock(&c.lock);
  if (omniq_worker_stop(w) != OMNIQ_OK) die("omniq_worker_stop", omniq_errmsg(oq));
  t = now_ns() - t;

  if (omniq_count_by_status(oq, counts) != OMNIQ_OK) die("count_by_status", omniq_errmsg(oq));
  if (counts[OMNIQ_SUCCESS] != tasks) die("omniq", "not every task succeeded");
  omniq_close(oq);
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return t;
}

/* ---- the same transactions by hand --------------------------------------------- */

static const char insert_sql[] =
    "INSERT INTO tasks (id, func, queue, args, kwargs, status, priority, attempts,"
    " max_retries, eta, interval_ms, timeout_ms, created_at, started_at, lease_until, token,"
    " last_error) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, 0, ?6, ?7, 0, ?8, ?7, 0, 0, 0, NULL)";

typedef struct hand {
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *insert, *queue, *claim, *take, *finish, *total, *put;
  pthread_mutex_t lock; /* the connection, as a handle's */
  pthread_cond_t wake;  /* an enqueue committed */
  long enqueued;        /* under lock */
} hand_t;

static void step(hand_t *h, sqlite3_stmt *s) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) die("hand step", sqlite3_errmsg(h->db));
  sqlite3_reset(s);
}

static sqlite3_stmt *prepare(hand_t *h, const char *sql) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v3(h->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
    die("hand prepare", sqlite3_errmsg(h->db));
  return s;
}

static void *producer(void *arg) {
  hand_t *h = arg;
  char id[OMNIQ_ID_SIZE];
  for (long i = 0; i < tasks; i++) {
    int64_t now = wall_ms();
    omniq__id_new(now, id);
    pthread_mutex_lock(&h->lock);
    step(h, h->begin);
    sqlite3_bind_text(h->insert, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(h->insert, 2, "bench.noop", -1, SQLITE_STATIC);
    sqlite3_bind_text(h->insert, 3, OMNIQ_DEFAULT_QUEUE, -1, SQLITE_STATIC);
    sqlite3_bind_text(h->insert, 4, ARGS, -1, SQLITE_STATIC);
    sqlite3_bind_text(h->insert, 5, "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int(h->insert, 6, OMNIQ_DEFAULT_MAX_RETRIES);
    sqlite3_bind_int64(h->insert, 7, now);
    sqlite3_bind_int64(h->insert, 8, OMNIQ_DEFAULT_TIMEOUT_MS);
    step(h, h->insert);
    step(h, h->commit);
    h->enqueued++;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
  }
  return NULL;
}

/* Reports (id, token) if held, then claims one; lock held. Returns 1 if it
 * claimed a task (now in id, token). */
static int finish_and_claim(hand_t *h, char *id, int64_t *token, int held, long *done) {
  volatile size_t sink = 0; /* keeps the column reads from being optimised away */
  int64_t now = wall_ms();
  int got = 0, rc;
  step(h, h->begin);
  if (held) {
    const char *queue = OMNIQ_DEFAULT_QUEUE; /* where every task of this program is */
    if (hand_sql_finish(h->db, h->finish, id, *token, queue, now) != 0)
      die("hand finish", "claim token no longer valid");
    sqlite3_bind_text(h->total, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(h->total, 2, OMNIQ_RUNS_SUCCEEDED);
    step(h, h->total);
    sqlite3_bind_text(h->put, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(h->put, 2, OMNIQ_SUCCESS);
    sqlite3_bind_text(h->put, 3, "null", -1, SQLITE_STATIC);
    sqlite3_bind_null(h->put, 4);
    sqlite3_bind_int(h->put, 5, 1);
    sqlite3_bind_int64(h->put, 6, now);
    sqlite3_bind_int64(h->put, 7, now);
    step(h, h->put);
    (*done)++;
  }
  sqlite3_bind_text(h->queue, 1, OMNIQ_DEFAULT_QUEUE, -1, SQLITE_STATIC);
  step(h, h->queue);
  sqlite3_bind_int64(h->claim, 1, now);
  sqlite3_bind_int64(h->claim, 2, now + LEASE_MS);
  sqlite3_bind_int64(h->claim, 3, 1);
  sqlite3_bind_text(h->claim, 4, OMNIQ_DEFAULT_QUEUE, -1, SQLITE_STATIC);
  sqlite3_bind_int64(h->claim, 5, 1);
  while ((rc = sqlite3_step(h->claim)) == SQLITE_ROW) {
    for (int c = 1; c <= 4; c++) sink += (size_t)sqlite3_column_bytes(h->claim, c);
    for (int c = 5; c <= 15; c++) sink += (size_t)sqlite3_column_int64(h->claim, c);
    memcpy(id, sqlite3_column_text(h->claim, 0), OMNIQ_ID_SIZE);
    *token = sqlite3_column_int64(h->claim, 15) + 1; /* as the take leaves it */
    got = 1;
  }
  if (rc != SQLITE_DONE) die("hand claim", sqlite3_errmsg(h->db));
  sqlite3_reset(h->claim);
  if (got && hand_sql_take(h->db, h->take, now, now + LEASE_MS, OMNIQ_DEFAULT_QUEUE, 1, 1) != 0)
    die("hand claim", sqlite3_errmsg(h->db));
  step(h, h->commit);
  (void)sink;
  return got;
}

static void *worker(void *arg) {
  hand_t *h = arg;
  char id[OMNIQ_ID_SIZE];
  int64_t token = 0;
  long done = 0, seen = 0;
  int held = 0;
  pthread_mutex_lock(&h->lock);
  while (done < tasks) {
    seen = h->enqueued; /* a commit after this read signals the wait below */
    held = finish_and_claim(h, id, &token, held, &done);
    if (held) {
      pthread_mutex_unlock(&h->lock); /* the no-op handler runs here */
      pthread_mutex_lock(&h->lock);
    } else {
      while (h->enqueued == seen && done < tasks) pthread_cond_wait(&h->wake, &h->lock);
    }
  }
  pthread_mutex_unlock(&h->lock);
  return NULL;
}

static int64_t run_hand(void) {
  char dir[] = "/tmp/omniq-bench-XXXXXX", path[sizeof dir + 16];
  hand_t h = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};
  pthread_t p, w;
  omniq_t *oq;
  if (mkdtemp(dir) == NULL) die("mkdtemp", "failed");
  open_store(dir, &oq); /* the schema comes from OmniQ; nothing else of it is used */
  omniq_close(oq);
  snprintf(path, sizeof path, "%s/omniq.db", dir);
  if (sqlite3_open_v2(path, &h.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
    die("hand open", sqlite3_errmsg(h.db));
  if (sqlite3_exec(h.db,
                   "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                   " PRAGMA wal_autocheckpoint = 8192; PRAGMA cache_size = -16384;"
                   " PRAGMA temp_store = MEMORY",
                   NULL, NULL, NULL) != SQLITE_OK)
    die("hand pragmas", sqlite3_errmsg(h.db));
  h.begin = prepare(&h, "BEGIN IMMEDIATE");
  h.commit = prepare(&h, "COMMIT");
  h.insert = prepare(&h, insert_sql);
  h.queue = prepare(&h, queue_sql);
  h.claim = prepare(&h, claim_read_sql);
  h.take = prepare(&h, claim_sql);
  h.finish = prepare(&h, finish_sql);
  h.total = prepare(&h, total_sql);
  h.put = prepare(&h, put_sql);

  int64_t t = now_ns();
  if (pthread_create(&w, NULL, worker, &h) != 0 || pthread_create(&p, NULL, producer, &h) != 0)
    die("pthread_create", "failed");
  pthread_join(p, NULL);
  pthread_join(w, NULL);
  t = now_ns() - t;

  sqlite3_stmt *all[] = {h.begin,  h.commit, h.insert, h.queue, h.claim,
                         h.take,   h.finish, h.total,  h.put};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  sqlite3_close(h.db);
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return t;
}

int main(void) {
  int64_t best_oq = 0, best_hand = 0;
  hand_sql_configure();
  if (bench_smoke()) tasks = 200, reps = 1;
  for (int r = 0; r < reps; r++) {
    int64_t o = run_omniq(), h = run_hand();
    if (best_oq == 0 || o < best_oq) best_oq = o;
    if (best_hand == 0 || h < best_hand) best_hand = h;
  }
  double ro = tasks * 1e9 / (double)best_oq, rh = tasks * 1e9 / (double)best_hand;
  printf("One omniq_enqueue per task while a pool of 1 runs, SQLite, %d no-op tasks; best of %d;"
         " tasks per second\n",
         tasks, reps);
  printf("%10s %10s %7s\n", "omniq", "hand", "ratio");
  printf("%10.0f %10.0f %7.2f   (target ratio >= 0.9: %s)\n", ro, rh, ro / rh,
         ro / rh >= 0.9 ? "met" : "NOT met");
  return 0;
}
