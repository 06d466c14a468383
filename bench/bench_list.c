/* SPDX-License-Identifier: MIT */
/* Listing a page of 100 tasks from a store of 10^6, on each backend,
 * beside baselines run in the same process and run.
 *
 * The store: N tasks (OMNIQ_BENCH_TASKS, default 1,000,000) created 1 ms
 * apart, 99% SUCCESS and 1% FAILED, one in ten in queue "mail" (every
 * FAILED one among them); the SQLite store also holds one PENDING task in
 * 50. Pages, each the best of REPS runs:
 *   failed   the 100 newest FAILED tasks (a rare status)
 *   cursor   100 tasks of every status after a cursor halfway through
 *   queue    the 100 newest tasks of queue "mail"
 *   failedq  the 100 newest FAILED tasks of queue "mail" (SQLite)
 *   pending  the 100 newest PENDING tasks (SQLite)
 * OMNIQ_BENCH_BACKENDS=sqlite or =file runs one backend only.
 * OMNIQ_BENCH_SMOKE=1 (bench_smoke.h): both stores of 10,000 tasks,
 * each page once.
 *
 * Baselines:
 *   SQLite   "hand": the backend's own statements (omniq__sqlite_list_sql)
 *            run by hand on a second connection: the library's overhead.
 *            "scan": the same query NOT INDEXED, what a page costs when it
 *            must read every row and sort: what the indexes save.
 *   file     "scan": the page without the listing index: list the task
 *            folders of the statuses asked (10^6 names), sort, read the
 *            tasks from the end until the page is full.
 * And scale: the same pages on a store of 10,000 tasks; the ratio N / 10,000
 * of a page's cost shows it does not grow with the store.
 *
 * What a page reads: SQLite walks one index per status asked for (one
 * for every status: the id index, or tasks_queue_id with a queue) from the
 * cursor, one B-tree descent and the rows returned each
 * (src/storage/sqlite/list.c). The file backend reads the index's L0
 * folder (one name per 4.7 hours of creation time), one L1 folder (at most
 * 256 names), the L2 folders the page crosses (256 ms of creation time
 * each) and the page's task files; markers of another queue are skipped by
 * name. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"
#include "storage/registry.h"
#include "storage/sqlite/backend.h"
#include "bench_smoke.h"

#define T0 INT64_C(1800000000000)
static int small_tasks = 10000; /* SMALL: the store of the scale's baseline */
#define PAGE 100
static int reps = 5;      /* REPS */
#define NPAGES 5
#define FILE_PAGES 3

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_list: %s: %s\n", what, msg);
  exit(1);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* The id of the task halfway through the last store filled. */
static char mid_id[OMNIQ_ID_SIZE];

/* The SQLite store also holds PENDING tasks (one in 50); the file
 * store's fill writes finished tasks only. */
static int with_pending;

/* Task i of a store of n: a new id, its status and queue. */
static void task_of(long i, long n, char id[OMNIQ_ID_SIZE], int *status, const char **queue) {
  omniq__id_new(T0 + i, id);
  if (i == n / 2) memcpy(mid_id, id, OMNIQ_ID_SIZE);
  *status = i % 100 == 0 ? OMNIQ_FAILED : OMNIQ_SUCCESS;
  if (with_pending && i % 50 == 7) *status = OMNIQ_PENDING;
  *queue = i % 10 == 0 ? "mail" : "default";
}

/* The pages; `mid` is the cursor halfway through. The file backend
 * reads the first FILE_PAGES. */
static void pages(omniq_list_req_t req[NPAGES], const char *mid) {
  memset(req, 0, NPAGES * sizeof *req);
  req[0] = (omniq_list_req_t){.statuses = OMNIQ_STATUS_BIT(OMNIQ_FAILED), .newest_first = 1,
                              .limit = PAGE};
  req[1] = (omniq_list_req_t){.statuses = OMNIQ_STATUS_ALL, .after_id = mid, .limit = PAGE};
  req[2] = (omniq_list_req_t){.statuses = OMNIQ_STATUS_ALL, .queue = "mail", .newest_first = 1,
                              .limit = PAGE};
  req[3] = (omniq_list_req_t){.statuses = OMNIQ_STATUS_BIT(OMNIQ_FAILED), .queue = "mail",
                              .newest_first = 1, .limit = PAGE};
  req[4] = (omniq_list_req_t){.statuses = OMNIQ_STATUS_BIT(OMNIQ_PENDING), .newest_first = 1,
                              .limit = PAGE};
}

static const char *const page_names[NPAGES] = {"failed", "cursor", "queue", "failedq", "pending"};

/* Best time of a page through the backend's table. */
static double via_backend(const omniq_storage_ops_t *ops, void *be, const omniq_list_req_t *req) {
  char err[512];
  double best = 1e18;
  for (int r = 0; r < reps; r++) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    double t = now_ms();
    if (ops->list(be, req, &got, &n, err, sizeof err) != OMNIQ_OK) die("list", err);
    t = now_ms() - t;
    if (n != PAGE) die("list", "a short page");
    omniq__tasks_free(got, n);
    if (t < best) best = t;
  }
  return best;
}

/* ---- SQLite ------------------------------------------------------------------ */

static void sqlite_fill(const char *path, long n) {
  sqlite3 *db;
  sqlite3_stmt *st;
  if (sqlite3_open(path, &db) != SQLITE_OK) die("open", sqlite3_errmsg(db));
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO tasks (id, func, queue, args, kwargs, status, eta,"
                         " created_at, finished_at, attempts, started_at)"
                         " VALUES (?1, 'bench.noop', ?2, '[1,2,3]', '{}', ?3, ?4, ?4, ?5, 1, ?4)",
                         -1, &st, NULL) != SQLITE_OK)
    die("prepare", sqlite3_errmsg(db));
  for (long i = 0; i < n; i++) {
    char id[OMNIQ_ID_SIZE];
    int status;
    const char *queue;
    task_of(i, n, id, &status, &queue);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, status);
    sqlite3_bind_int64(st, 4, T0 + i);
    sqlite3_bind_int64(st, 5, status >= OMNIQ_SUCCESS ? T0 + i + 10 : 0);
    if (sqlite3_step(st) != SQLITE_DONE) die("insert", sqlite3_errmsg(db));
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) die("commit", sqlite3_errmsg(db));
  sqlite3_close(db);
}

/* The backend's statement for one walk, or that statement with its index
 * taken away (scan: NOT INDEXED). */
static sqlite3_stmt *walk_stmt(sqlite3 *db, const omniq_list_req_t *req, int status, int scan) {
  char *sql = omniq__sqlite_list_sql(req, status);
  if (scan) {
    char *at = strstr(sql, "INDEXED BY ");
    char *from = strstr(sql, " FROM tasks") + strlen(" FROM tasks");
    char *plain = at != NULL ? sqlite3_mprintf("%.*sNOT INDEXED%s", (int)(at - sql), sql,
                                               strchr(at + 11, ' '))
                             : sqlite3_mprintf("%.*s NOT INDEXED%s", (int)(from - sql), sql, from);
    sqlite3_free(sql);
    sql = plain;
  }
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die("prepare", sqlite3_errmsg(db));
  sqlite3_free(sql);
  return st;
}

/* A page by hand with the backend's walks and statement texts. */
static double sqlite_by_hand(sqlite3 *db, const omniq_list_req_t *req, int scan) {
  int walks[OMNIQ_STATUS_COUNT];
  sqlite3_stmt *st[OMNIQ_STATUS_COUNT];
  size_t nw = omniq__sqlite_list_walks(req, walks);
  for (size_t w = 0; w < nw; w++) st[w] = walk_stmt(db, req, walks[w], scan);
  double best = 1e18;
  for (int r = 0; r < reps; r++) {
    long rows = 0;
    volatile size_t sink = 0;
    double t = now_ms();
    for (size_t w = 0; w < nw; w++) {
      if (req->after_id != NULL) sqlite3_bind_text(st[w], 2, req->after_id, -1, SQLITE_STATIC);
      sqlite3_bind_int64(st[w], 3, (int64_t)req->limit);
      if (req->queue != NULL) sqlite3_bind_text(st[w], 4, req->queue, -1, SQLITE_STATIC);
      while (sqlite3_step(st[w]) == SQLITE_ROW) {
        for (int c = 0; c < 5; c++) sink += (size_t)sqlite3_column_bytes(st[w], c);
        rows++;
      }
      sqlite3_reset(st[w]);
    }
    t = now_ms() - t;
    (void)sink;
    if (rows < PAGE) die("by hand", "a short page");
    if (t < best) best = t;
  }
  for (size_t w = 0; w < nw; w++) sqlite3_finalize(st[w]);
  return best;
}

static void sqlite_store(long n, double out[NPAGES][3]) {
  char dir[] = "/tmp/omniq-bench-XXXXXX", err[512], path[64];
  omniq_settings_t s;
  void *be = NULL;
  const omniq_storage_ops_t *ops = &omniq__sqlite_ops;
  omniq_list_req_t req[NPAGES];
  if (mkdtemp(dir) == NULL) die("mkdtemp", "failed");
  memset(&s, 0, sizeof s);
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  if (ops->open(&s, &be, err, sizeof err) != OMNIQ_OK) die("open", err);
  ops->close(be);
  snprintf(path, sizeof path, "%s/omniq.db", dir);
  sqlite_fill(path, n);
  if (ops->open(&s, &be, err, sizeof err) != OMNIQ_OK) die("open", err);
  pages(req, mid_id);
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) die("open", "hand");
  for (int p = 0; p < NPAGES; p++) {
    out[p][0] = via_backend(ops, be, &req[p]);
    out[p][1] = sqlite_by_hand(db, &req[p], 0);
    out[p][2] = sqlite_by_hand(db, &req[p], 1);
  }
  sqlite3_close(db);
  ops->close(be);
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- file ------------------------------------------------------------------- */

static void put(const char *path, const char *text, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, text, len) != (ssize_t)len) die("write", path);
  close(fd);
}

/* The files the backend would have written for these tasks, written
 * straight (no tmp, no sync): the task file, and its marker. */
static void file_fill(const char *dir, long n) {
  char path[1024], mdir[512] = "";
  for (long i = 0; i < n; i++) {
    char id[OMNIQ_ID_SIZE], prefix[512];
    int status;
    const char *queue;
    task_of(i, n, id, &status, &queue);
    omniq_task_t t = {.func = "bench.noop", .queue = (char *)queue, .args = "[1,2,3]",
                      .kwargs = "{}", .status = status, .attempts = 1, .eta_ms = T0 + i,
                      .created_at_ms = T0 + i, .started_at_ms = T0 + i,
                      .finished_at_ms = T0 + i + 10};
    memcpy(t.id, id, OMNIQ_ID_SIZE);
    char *json = omniq_task_to_json(&t);
    snprintf(path, sizeof path, "%s/queue/%s/%s.json", dir,
             status == OMNIQ_FAILED ? "failed" : "success", id);
    put(path, json, strlen(json));
    omniq__free(json);
    snprintf(prefix, sizeof prefix, "%s/index/%d/%.6s/%.2s/%.2s/%.2s", dir, status, id, id + 6,
             id + 9, id + 11);
    if (strcmp(prefix, mdir) != 0) { /* a new L3 folder (and maybe its parents) */
      char p[512];
      snprintf(p, sizeof p, "%s/index/%d/%.6s", dir, status, id);
      mkdir(p, 0777);
      snprintf(p, sizeof p, "%s/index/%d/%.6s/%.2s", dir, status, id, id + 6);
      mkdir(p, 0777);
      snprintf(p, sizeof p, "%s/index/%d/%.6s/%.2s/%.2s", dir, status, id, id + 6, id + 9);
      mkdir(p, 0777);
      mkdir(prefix, 0777);
      snprintf(mdir, sizeof mdir, "%s", prefix);
    }
    snprintf(path, sizeof path, "%s/%s.%s", prefix, id, queue);
    put(path, "", 0);
  }
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The page without the index: every name of the statuses' folders,
 * sorted, then task files read from the right end until the page is full. */
static double file_scan(const char *dir, const omniq_list_req_t *req) {
  double best = 1e18;
  for (int r = 0; r < reps; r++) {
    double t = now_ms();
    char **names = NULL, path[512];
    size_t n = 0, cap = 0;
    for (int s = OMNIQ_SUCCESS; s <= OMNIQ_CANCELLED; s++) {
      static const char *const folders[] = {"success", "failed", "cancelled"};
      if (!(req->statuses & OMNIQ_STATUS_BIT(s))) continue;
      snprintf(path, sizeof path, "%s/queue/%s", dir, folders[s - OMNIQ_SUCCESS]);
      DIR *d = opendir(path);
      struct dirent *de;
      while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) names = realloc(names, (cap = cap ? cap * 2 : 4096) * sizeof *names);
        if (asprintf(&names[n++], "%s/%s", folders[s - OMNIQ_SUCCESS], de->d_name) < 0)
          die("asprintf", "out of memory");
      }
      if (d != NULL) closedir(d);
    }
    qsort(names, n, sizeof *names, by_name);
    size_t taken = 0;
    for (size_t k = 0; k < n && taken < PAGE; k++) {
      const char *nm = names[req->newest_first ? n - 1 - k : k];
      char *text = NULL;
      size_t tcap = 0;
      snprintf(path, sizeof path, "%s/queue/%s", dir, nm);
      FILE *f = fopen(path, "r");
      if (f == NULL || getdelim(&text, &tcap, '\0', f) < 0) die("read", path);
      fclose(f);
      omniq_task_t *task = NULL;
      if (omniq_task_from_json(text, &task) != OMNIQ_OK) die("parse", path);
      int after = req->after_id == NULL || strcmp(task->id, req->after_id) > 0;
      if (after && (req->queue == NULL || strcmp(task->queue, req->queue) == 0)) taken++;
      omniq_task_free(task);
      free(text);
    }
    for (size_t k = 0; k < n; k++) free(names[k]);
    free(names);
    t = now_ms() - t;
    if (taken < PAGE) die("scan", "a short page");
    if (t < best) best = t;
  }
  return best;
}

static void file_store(long n, double out[NPAGES][3]) {
  char dir[] = "/tmp/omniq-bench-XXXXXX", err[512];
  omniq_settings_t s;
  void *be = NULL;
  const omniq_storage_ops_t *ops = &omniq__file_ops;
  omniq_list_req_t req[NPAGES];
  if (mkdtemp(dir) == NULL) die("mkdtemp", "failed");
  memset(&s, 0, sizeof s);
  snprintf(s.base_dir, sizeof s.base_dir, "%s", dir);
  s.log_level = OMNIQ_LOG_ERROR;
  if (ops->open(&s, &be, err, sizeof err) != OMNIQ_OK) die("open", err); /* the layout */
  ops->close(be);
  file_fill(dir, n);
  if (ops->open(&s, &be, err, sizeof err) != OMNIQ_OK) die("open", err);
  pages(req, mid_id);
  for (int p = 0; p < FILE_PAGES; p++) {
    out[p][0] = via_backend(ops, be, &req[p]);
    out[p][1] = file_scan(dir, &req[p]);
  }
  ops->close(be);
  nftw(dir, rm_entry, 64, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  const char *env = getenv("OMNIQ_BENCH_TASKS");
  long n = env != NULL ? atol(env) : 1000000;
  double big[NPAGES][3], small[NPAGES][3];
  /* OMNIQ_BENCH_BACKENDS=sqlite (or file) runs one backend: filling 10^6
   * task files takes far longer than filling 10^6 rows. */
  const char *only = getenv("OMNIQ_BENCH_BACKENDS");
  if (n < 10 * small_tasks) n = 10 * small_tasks;
  if (bench_smoke()) n = small_tasks, reps = 1; /* 1% FAILED: a full page needs 10^4 */
  printf("Listing a page of %d tasks from %ld (and from %d); best of %d; ms\n", PAGE, n,
         small_tasks, reps);
  if (only == NULL || strcmp(only, "sqlite") == 0) {
    with_pending = 1;
    sqlite_store(small_tasks, small);
    sqlite_store(n, big);
    with_pending = 0;
    printf("\nsqlite   page      omniq     hand    scan   omniq/hand  scan/omniq"
           "  omniq at %ld / at %d\n", n, small_tasks);
    for (int p = 0; p < NPAGES; p++)
      printf("         %-7s %8.3f %8.3f %8.1f   %8.2fx  %9.0fx  %8.2fx\n", page_names[p],
             big[p][0], big[p][1], big[p][2], big[p][0] / big[p][1], big[p][2] / big[p][0],
             big[p][0] / small[p][0]);
  }
  if (only == NULL || strcmp(only, "file") == 0) {
    file_store(small_tasks, small);
    file_store(n, big);
    printf("\nfile     page      omniq     scan   scan/omniq  omniq at %ld / at %d\n", n,
           small_tasks);
    for (int p = 0; p < FILE_PAGES; p++)
      printf("         %-7s %8.3f %8.1f   %9.0fx  %8.2fx\n", page_names[p], big[p][0], big[p][1],
             big[p][1] / big[p][0], big[p][0] / small[p][0]);
  }
  return 0;
}
