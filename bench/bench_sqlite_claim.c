/* SPDX-License-Identifier: MIT */
/* Claim throughput of the SQLite backend, beside the same SQL by hand.
 *
 * For 10^3 and 10^6 pending tasks, a worker loop claims (1 task, or a batch
 * of 32) and completes each task, first through the backend's ops table,
 * then with the same SQL statements run directly on a second sqlite3
 * connection to the same file, in the same process and run. The hand loop
 * is what the backend would cost with nothing of its own: no mutex, no
 * records built, no busy retries. The ratio omniq / hand is that overhead.
 *
 * Completing re-arms the task (PENDING, eta = now, result stored), as an
 * interval task does, so the number of pending tasks stays at N throughout
 * and each timed run sees the same queue depth. Time is a logical clock
 * advanced 1 ms per claim, so re-armed tasks queue behind the others.
 *
 * The last column runs the hand loop again with SQLite's default
 * wal_autocheckpoint (1000 pages) instead of the backend's, to show what
 * moving checkpoints off the hot path buys.
 *
 * Each figure is the best of REPS runs of TASKS tasks, runs of the three
 * loops interleaved so drift hits all alike. The last line is the claim's
 * cost at 10^6 pending over its cost at 10^3 (target: at most 1.5), for
 * the backend and, as the baseline, for the hand loop.
 *
 * OMNIQ_BENCH_SMOKE=1 (bench_smoke.h): 10^3 and 2 x 10^3 pending, one run
 * of 100 tasks. */
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"
#include "storage/registry.h"
#include "storage/sqlite/backend.h"
#include "bench_smoke.h"
#include "hand_sql.h"

static int tasks = 4000; /* TASKS: claimed and completed per timed run */
static int reps = 3;     /* REPS */
#define T0 INT64_C(1800000000000)
#define LEASE_MS 30000

static const omniq_storage_ops_t *ops = &omniq__sqlite_ops;

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_sqlite_claim: %s: %s\n", what, msg);
  exit(1);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct stat_s {
  int64_t claim_ns, complete_ns;
  long calls, tasks;
} stat_t;

static double per(int64_t ns, long n) { return n > 0 ? (double)ns / 1000.0 / (double)n : 0; }
static double task_us(const stat_t *s) { return per(s->claim_ns + s->complete_ns, s->tasks); }

/* ---- through the backend ------------------------------------------------- */

static void run_backend(void *be, size_t k, int64_t *clock, stat_t *st) {
  static const char *const q[] = {"default"};
  char err[512];
  memset(st, 0, sizeof *st);
  while (st->tasks < tasks) {
    int64_t now = ++*clock;
    omniq_claim_req_t req = {
        .now_ms = now, .lease_until_ms = now + LEASE_MS, .queues = q, .nqueues = 1, .max = k};
    omniq_task_t **got = NULL;
    size_t n = 0;
    int64_t t = now_ns();
    if (ops->claim(be, &req, &got, &n, err, sizeof err) != OMNIQ_OK) die("claim", err);
    st->claim_ns += now_ns() - t;
    st->calls++;
    if (n == 0) die("claim", "nothing due");
    for (size_t i = 0; i < n; i++) {
      omniq_result_t r = {.status = OMNIQ_SUCCESS,
                          .value = "null",
                          .attempts = got[i]->attempts,
                          .finished_at_ms = now,
                          .last_attempt_at_ms = now};
      memcpy(r.task_id, got[i]->id, OMNIQ_ID_SIZE);
      omniq_decision_t d = {.id = got[i]->id,
                            .token = got[i]->token,
                            .queue = got[i]->queue, /* as the engine names it */
                            .next_status = OMNIQ_PENDING,
                            .eta_ms = now,
                            .reset_attempts = 1,
                            .result = &r};
      t = now_ns();
      if (ops->finish(be, &d, err, sizeof err) != OMNIQ_OK) die("finish", err);
      st->complete_ns += now_ns() - t;
    }
    st->tasks += (long)n;
    omniq__tasks_free(got, n);
  }
}

/* ---- the same SQL by hand ------------------------------------------------ */

typedef struct hand {
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *queue, *claim, *take, *finish, *total, *put;
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

static void hand_open(hand_t *h, const char *path, int checkpoint_pages) {
  char sql[256];
  if (sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
    die("hand open", sqlite3_errmsg(h->db));
  sqlite3_busy_timeout(h->db, 5000);
  snprintf(sql, sizeof sql,
           "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = %d;"
           "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY",
           checkpoint_pages);
  if (sqlite3_exec(h->db, sql, NULL, NULL, NULL) != SQLITE_OK)
    die("hand pragmas", sqlite3_errmsg(h->db));
  h->begin = hand_prepare(h, "BEGIN IMMEDIATE");
  h->commit = hand_prepare(h, "COMMIT");
  h->queue = hand_prepare(h, queue_sql);
  h->claim = hand_prepare(h, claim_read_sql);
  h->take = hand_prepare(h, claim_sql);
  h->finish = hand_prepare(h, finish_sql);
  h->total = hand_prepare(h, total_sql);
  h->put = hand_prepare(h, put_sql);
}

static void hand_close(hand_t *h) {
  sqlite3_stmt *all[] = {h->begin,  h->commit, h->queue, h->claim,
                         h->take,   h->finish, h->total, h->put};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  sqlite3_close(h->db);
}

typedef struct claimed {
  char id[OMNIQ_ID_SIZE];
  int64_t token;
  int attempts;
} claimed_t;

static void run_hand(hand_t *h, size_t k, int64_t *clock, stat_t *st) {
  claimed_t got[64];
  volatile size_t sink = 0; /* keeps the column reads from being optimised away */
  memset(st, 0, sizeof *st);
  while (st->tasks < tasks) {
    int64_t now = ++*clock;
    size_t n = 0;
    int64_t t = now_ns();
    hand_step(h, h->begin);
    sqlite3_bind_int64(h->claim, 1, now);
    sqlite3_bind_int64(h->claim, 2, now + LEASE_MS);
    sqlite3_bind_text(h->queue, 1, "default", -1, SQLITE_STATIC);
    hand_step(h, h->queue);
    sqlite3_bind_int64(h->claim, 3, (int64_t)k);
    sqlite3_bind_text(h->claim, 4, "default", -1, SQLITE_STATIC);
    sqlite3_bind_int64(h->claim, 5, (int64_t)k);
    while (sqlite3_step(h->claim) == SQLITE_ROW) {
      /* Read every column, as the backend does to build a record. */
      for (int c = 1; c <= 4; c++) sink += (size_t)sqlite3_column_bytes(h->claim, c);
      for (int c = 5; c <= 15; c++) sink += (size_t)sqlite3_column_int64(h->claim, c);
      sink += (size_t)sqlite3_column_bytes(h->claim, 16);
      memcpy(got[n].id, sqlite3_column_text(h->claim, 0), OMNIQ_ID_SIZE);
      got[n].attempts = sqlite3_column_int(h->claim, 7) + 1; /* as the take leaves them */
      got[n].token = sqlite3_column_int64(h->claim, 15) + 1;
      n++;
    }
    sqlite3_reset(h->claim);
    if (n > 0 && hand_sql_take(h->db, h->take, now, now + LEASE_MS, "default", (int64_t)k,
                               (int)n) != 0)
      die("hand claim", sqlite3_errmsg(h->db));
    hand_step(h, h->commit);
    st->claim_ns += now_ns() - t;
    st->calls++;
    if (n == 0) die("hand claim", "nothing due");
    for (size_t i = 0; i < n; i++) {
      t = now_ns();
      hand_step(h, h->begin);
      /* As the backend's finish of a decision naming its queue: one update
       * by id under the claim token (here a re-arm: PENDING again,
       * attempts reset). */
      if (hand_sql_finish_as(h->db, h->finish, got[i].id, got[i].token, "default", OMNIQ_PENDING,
                             now, 1, now) != 0)
        die("hand finish", "claim no longer valid");
      sqlite3_bind_text(h->total, 1, "default", -1, SQLITE_STATIC);
      sqlite3_bind_int(h->total, 2, OMNIQ_RUNS_SUCCEEDED);
      hand_step(h, h->total);
      sqlite3_bind_text(h->put, 1, got[i].id, -1, SQLITE_STATIC);
      sqlite3_bind_int(h->put, 2, OMNIQ_SUCCESS);
      sqlite3_bind_text(h->put, 3, "null", -1, SQLITE_STATIC);
      sqlite3_bind_null(h->put, 4);
      sqlite3_bind_int(h->put, 5, got[i].attempts);
      sqlite3_bind_int64(h->put, 6, now);
      sqlite3_bind_int64(h->put, 7, now);
      hand_step(h, h->put);
      hand_step(h, h->commit);
      st->complete_ns += now_ns() - t;
    }
    st->tasks += (long)n;
  }
  (void)sink;
}

/* ---- setup and report ---------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void fill(void *be, long n) {
  char err[512];
  omniq_task_t *batch[1000];
  for (long done = 0; done < n;) {
    size_t m = n - done < 1000 ? (size_t)(n - done) : 1000;
    for (size_t i = 0; i < m; i++) {
      omniq_task_t *t = batch[i] = omniq_task_new();
      omniq__id_new(T0, t->id);
      t->func = omniq__strdup("bench.noop");
      t->queue = omniq__strdup("default");
      t->args = omniq__strdup("[1,2,3]");
      t->kwargs = omniq__strdup("{}");
      t->max_retries = 3;
      t->interval_ms = 1000;
      t->eta_ms = T0 - 1000;
      t->created_at_ms = T0 - 1000;
      if (!t->func || !t->queue || !t->args || !t->kwargs) die("fill", "out of memory");
    }
    if (ops->enqueue(be, batch, m, err, sizeof err) != OMNIQ_OK) die("enqueue", err);
    for (size_t i = 0; i < m; i++) omniq_task_free(batch[i]);
    done += (long)m;
  }
}

static void keep_best(stat_t *best, const stat_t *s) {
  if (best->tasks == 0 || task_us(s) < task_us(best)) *best = *s;
}

/* Prints the figures at `pending`; returns the backend's and the hand
 * loop's microseconds per claim of one task. */
static void bench(long pending, double *be_claim, double *hand_claim) {
  char dir[] = "/tmp/omniq-bench-XXXXXX", err[512], path[sizeof dir + 16];
  omniq_settings_t s;
  void *be = NULL;
  hand_t hand, hand_default;
  int64_t clock = T0;
  if (mkdtemp(dir) == NULL) die("mkdtemp", "failed");
  memset(&s, 0, sizeof s);
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  if (ops->open(&s, &be, err, sizeof err) != OMNIQ_OK) die("open", err);
  fill(be, pending);
  snprintf(path, sizeof path, "%s/omniq.db", dir);
  hand_open(&hand, path, 8192);
  hand_open(&hand_default, path, 1000);

  static const size_t batches[] = {1, 32};
  for (size_t b = 0; b < 2; b++) {
    size_t k = batches[b];
    stat_t best_be = {0}, best_hand = {0}, best_default = {0}, st;
    run_backend(be, k, &clock, &st); /* warm the caches */
    run_hand(&hand, k, &clock, &st);
    for (int r = 0; r < reps; r++) {
      run_backend(be, k, &clock, &st);
      keep_best(&best_be, &st);
      run_hand(&hand, k, &clock, &st);
      keep_best(&best_hand, &st);
      run_hand(&hand_default, k, &clock, &st);
      keep_best(&best_default, &st);
    }
    printf("%8ld %6zu %10.1f %10.1f %7.2f %10.1f %10.1f %7.2f %10.1f %10.1f %7.2f %12.1f\n",
           pending, k, per(best_be.claim_ns, best_be.calls),
           per(best_hand.claim_ns, best_hand.calls),
           per(best_be.claim_ns, best_be.calls) / per(best_hand.claim_ns, best_hand.calls),
           per(best_be.complete_ns, best_be.tasks), per(best_hand.complete_ns, best_hand.tasks),
           per(best_be.complete_ns, best_be.tasks) / per(best_hand.complete_ns, best_hand.tasks),
           task_us(&best_be), task_us(&best_hand), task_us(&best_be) / task_us(&best_hand),
           task_us(&best_default));
    if (k == 1) {
      *be_claim = per(best_be.claim_ns, best_be.calls);
      *hand_claim = per(best_hand.claim_ns, best_hand.calls);
    }
  }
  hand_close(&hand);
  hand_close(&hand_default);
  ops->close(be);
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  long large = 1000000;
  hand_sql_configure();
  if (bench_smoke()) large = 2000, tasks = 100, reps = 1;
  printf(
      "SQLite claim: backend (omniq) vs the same SQL by hand; best of %d runs of %d tasks;"
      " times in microseconds\n",
      reps, tasks);
  printf("%8s %6s %10s %10s %7s %10s %10s %7s %10s %10s %7s %12s\n", "pending", "batch",
         "claim/call", "hand", "ratio", "complete", "hand", "ratio", "per task", "hand", "ratio",
         "hand,ckpt1000");
  double be_small, hand_small, be_large, hand_large;
  bench(1000, &be_small, &hand_small);
  bench(large, &be_large, &hand_large);
  printf("claim of 1 at 10^6 pending / at 10^3: omniq %.2fx (target <= 1.5x: %s), hand %.2fx\n",
         be_large / be_small, be_large / be_small <= 1.5 ? "met" : "NOT met",
         hand_large / hand_small);
  return 0;
}
