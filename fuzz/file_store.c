/* SPDX-License-Identifier: MIT */
/* Fuzz target: a file backend store holding one file an attacker wrote.
 * The first byte picks where the rest of the input goes: a pending task
 * file, the running slot (a transition's commit record), a result file, a
 * terminal task file, the journal, a file of a committed batch, a queue's
 * settings, running totals (a stripe's and a gone handle's), or FORMAT.
 * Then the store is opened (recovery runs) and every operation is tried on
 * the task the file claims to be. Properties: no crash or sanitizer report;
 * each call returns a code; whatever the file held, a task the store hands
 * out reads back and can be finished. */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "omniq/storage.h"
#include "storage/file/names.h"

#define ID "01890000-0000-7000-8000-000000000001"
#define T0 INT64_C(1800000000000)

static char base[256];
static const omniq_storage_ops_t *ops;

static void quiet(void *ud, int level, const char *line) {
  (void)ud;
  (void)level;
  (void)line;
}

static int64_t fixed_clock(void *ud) {
  (void)ud;
  return T0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  if (ftw->level > 0) remove(path);
  return 0;
}

static void remove_base(void) {
  nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  rmdir(base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* tmpfs when there is one: every input is a dozen renames, which a disk
   * file system can make a hundred times slower. */
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || *tmp == '\0') tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  if (snprintf(base, sizeof base, "%s/omniq-fuzz-XXXXXX", tmp) >= (int)sizeof base ||
      mkdtemp(base) == NULL)
    abort();
  atexit(remove_base);
  ops = omniq_storage_find("file");
  return 0;
}

static void mkdirs(const char *rel) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", base, rel);
  for (char *p = path + strlen(base) + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      mkdir(path, 0777);
      *p = '/';
    }
  mkdir(path, 0777);
}

static void plant(const char *dir, const char *name, const uint8_t *data, size_t size) {
  char path[1024];
  mkdirs(dir);
  snprintf(path, sizeof path, "%s/%s/%s", base, dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) abort();
  if (size > 0 && write(fd, data, size) != (ssize_t)size) abort();
  close(fd);
}

/* Everything a worker and a producer do to the store. */
static void exercise(void *b) {
  char err[512];
  omniq_task_t *t = NULL, **got = NULL;
  omniq_result_t *r = NULL;
  int64_t counts[OMNIQ_STATUS_COUNT], purged;
  size_t n = 0;
  static const char *const queues[] = {"default", "q"};

  ops->get_task(b, ID, &t, err, sizeof err);
  omniq_task_free(t);
  ops->get_result(b, ID, &r, err, sizeof err);
  omniq_result_free(r);
  ops->count_by_status(b, counts, err, sizeof err);

  omniq_claim_req_t req = {T0, T0 + 30000, queues, 2, 4};
  if (ops->claim(b, &req, &got, &n, err, sizeof err) == OMNIQ_OK) {
    for (size_t i = 0; i < n; i++) {
      FUZZ_CHECK(got[i]->status == OMNIQ_RUNNING);
      FUZZ_CHECK(ops->extend_lease(b, got[i]->id, got[i]->token, T0 + 60000, err, sizeof err) ==
                 OMNIQ_OK);
      omniq_result_t res = {.status = OMNIQ_SUCCESS, .value = "1", .attempts = got[i]->attempts,
                            .finished_at_ms = T0, .last_attempt_at_ms = T0};
      memcpy(res.task_id, got[i]->id, OMNIQ_ID_SIZE);
      omniq_decision_t d = {.id = got[i]->id, .token = got[i]->token,
                            .next_status = OMNIQ_SUCCESS, .result = &res,
                            .runs = OMNIQ_RUNS_SUCCEEDED};
      FUZZ_CHECK(ops->finish(b, &d, err, sizeof err) == OMNIQ_OK);
      omniq_task_free(got[i]);
    }
    free(got);
  }
  got = NULL;
  n = 0;
  if (ops->expired_leases(b, T0 + 3600000, 8, &got, &n, err, sizeof err) == OMNIQ_OK) {
    for (size_t i = 0; i < n; i++) {
      omniq_decision_t d = {.id = got[i]->id, .token = got[i]->token,
                            .next_status = OMNIQ_PENDING, .eta_ms = T0, .runs = OMNIQ_RUNS_LOST};
      ops->finish(b, &d, err, sizeof err);
      omniq_task_free(got[i]);
    }
    free(got);
  }
  ops->cancel(b, ID, T0, NULL, err, sizeof err);
  ops->purge_results(b, T0 + 1, &purged, err, sizeof err);

  /* Storage ABI 3: a listing and the statistics read every file above. */
  omniq_list_req_t lr = {.statuses = (1u << OMNIQ_STATUS_COUNT) - 1, .limit = 10};
  got = NULL;
  n = 0;
  if (ops->list(b, &lr, &got, &n, err, sizeof err) == OMNIQ_OK) {
    for (size_t i = 0; i < n; i++) omniq_task_free(got[i]);
    free(got);
  }
  omniq_queue_info_t *qi = NULL;
  if (ops->queue_stats(b, NULL, T0, &qi, &n, err, sizeof err) == OMNIQ_OK) free(qi);
  ops->retry(b, ID, T0, T0, NULL, NULL, err, sizeof err);
  ops->delete_task(b, ID, NULL, err, sizeof err);
  ops->purge_tasks(b, T0 + 1, 8, &purged, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char pname[OMNIQ__PNAME_SIZE], err[512];
  void *b = NULL;
  if (size == 0) return 0;
  nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  const uint8_t *body = data + 1;
  size_t len = size - 1;
  omniq__fname_pending(omniq__fname_iprio(0), T0, ID, pname);
  switch (data[0] % 9) {
  case 0: plant("queue/pending/default", pname, body, len); break;
  case 1: plant("queue/running", ID ".json", body, len); break;
  case 2: plant("results", ID ".json", body, len); break;
  case 3: plant("queue/success", ID ".json", body, len); break;
  case 4: plant("queue", "journal", body, len); break;
  case 5: plant("batches/batch-1-1", "1-1.tmp", body, len); break;
  case 6: plant("queues", "default.json", body, len); break;
  case 7: /* running totals: a stripe file of earlier versions, and the
           * file of a handle that is gone (folded in at open) */
    plant("stats", "0000.json", body, len);
    plant("stats", "h-4294967296.json", body, len);
    break;
  default: plant(".", "FORMAT", body, len); break;
  }

  omniq_settings_t s;
  omniq_settings_init(&s);
  snprintf(s.backend, sizeof s.backend, "file");
  snprintf(s.base_dir, sizeof s.base_dir, "%s", base);
  s.fsync = 0;
  s.log_fn = quiet;
  s.clock_fn = fixed_clock;
  if (ops->open(&s, &b, err, sizeof err) != OMNIQ_OK) return 0;
  exercise(b);
  ops->close(b);
  return 0;
}
