/* SPDX-License-Identifier: MIT */
/* The file backend's durable path: syncs of concurrent operations made in
 * shared rounds (storage/file/syncs.c), and what a returned call promises
 * across a crash.
 *
 * Sharing is made certain, not hoped for: the test's sync call holds the
 * first round until every other caller has joined the next one, then
 * counts the rounds and what each held. Durability: a worker process
 * reports each finished run through its log (the line comes after the
 * finish returned) and each enqueue after omniq_enqueue returned; the test
 * SIGKILLs it at once and finds every reported task and result in the
 * store.
 *
 * Power loss cannot be staged in a test, so the order of a finish's
 * folder syncs is checked where it can be seen: the test's sync call
 * looks at the store as each round begins. A file system without a
 * journal writes folders back in any order, so results/<id>.json must
 * have been in a synced results/ before the task's file leaves the slot
 * (its only other copy), and every folder the finished task and its
 * result live in must be synced before the finish returns; a delete
 * syncs the result's removal before it removes the task; a cancel and a
 * retry by hand sync every folder they took the task out of or put it
 * in, after the move, once each. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/syncs.h"
#include "support/backend.h"
#include "support/gate.h"
#include "support/crash.h"
#include "support/helpers.h"

#define N 8

/* ---- rounds ------------------------------------------------------------------- */

typedef struct rounds {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int calls, held, released;
  size_t sizes[N];
  int fail_round; /* 1-based round that returns EIO; 0: none */
} rounds_t;

/* Records the round; the first one waits until the test releases it. */
static int fake_sync(const omniq__fsync_item_t *items, size_t n, void *ud) {
  rounds_t *r = ud;
  (void)items;
  pthread_mutex_lock(&r->mu);
  int call = r->calls++;
  if (call < N) r->sizes[call] = n;
  if (call == 0) {
    r->held = 1;
    pthread_cond_broadcast(&r->cv);
    while (!r->released) pthread_cond_wait(&r->cv, &r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return call + 1 == r->fail_round ? EIO : 0;
}

typedef struct syncer {
  omniq__fsyncq_t *q;
  omniq__fsync_item_t item;
  int rc;
  pthread_t tid;
} syncer_t;

static void *sync_main(void *arg) {
  syncer_t *s = arg;
  s->rc = omniq__fsyncq_sync(s->q, &s->item, 1);
  return NULL;
}

/* Runs N callers: the first leads round 1 and is held there until the
 * other N-1 have joined round 2. */
static void run_callers(omniq__fsyncq_t *q, rounds_t *r, syncer_t *s) {
  const struct timespec tick = {0, 200000};
  for (int i = 0; i < N; i++) s[i] = (syncer_t){.q = q, .item = {100 + i, i % 2}};
  assert_int_equal(pthread_create(&s[0].tid, NULL, sync_main, &s[0]), 0);
  pthread_mutex_lock(&r->mu);
  while (!r->held) pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
  for (int i = 1; i < N; i++)
    assert_int_equal(pthread_create(&s[i].tid, NULL, sync_main, &s[i]), 0);
  for (int w = 0; omniq__fsyncq_gathered(q) < N - 1; w++) {
    if (w > TH_WAIT_MS * 5) fail_msg("only %zu callers joined", omniq__fsyncq_gathered(q));
    nanosleep(&tick, NULL);
  }
  pthread_mutex_lock(&r->mu);
  r->released = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  for (int i = 0; i < N; i++) pthread_join(s[i].tid, NULL);
}

static rounds_t *rounds_new(int fail_round) {
  rounds_t *r = calloc(1, sizeof *r);
  assert_non_null(r);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  r->fail_round = fail_round;
  return r;
}

static void rounds_free(rounds_t *r) {
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
}

/* N-1 callers that arrive while a round runs are all served by one more. */
static void test_callers_waiting_behind_a_round_share_the_next_one(void **state) {
  (void)state;
  omniq__fsyncq_t *q = omniq__fsyncq_new();
  rounds_t *r = rounds_new(0);
  syncer_t s[N];
  assert_non_null(q);
  omniq__fsyncq_set_fn(q, fake_sync, r);
  run_callers(q, r, s);
  assert_int_equal(r->calls, 2);
  assert_int_equal(r->sizes[0], 1);
  assert_int_equal(r->sizes[1], N - 1);
  for (int i = 0; i < N; i++) assert_int_equal(s[i].rc, 0);
  omniq__fsyncq_free(q);
  rounds_free(r);
}

/* A failed sync fails every caller of its round, and only those. */
static void test_a_failed_round_fails_every_caller_in_it(void **state) {
  (void)state;
  omniq__fsyncq_t *q = omniq__fsyncq_new();
  rounds_t *r = rounds_new(2);
  syncer_t s[N];
  assert_non_null(q);
  omniq__fsyncq_set_fn(q, fake_sync, r);
  run_callers(q, r, s);
  assert_int_equal(r->calls, 2);
  assert_int_equal(s[0].rc, 0);
  for (int i = 1; i < N; i++) assert_int_equal(s[i].rc, EIO);
  omniq__fsyncq_free(q);
  rounds_free(r);
}

/* Descriptors given twice in one round are synced once. */
static void test_a_descriptor_is_synced_once_per_round(void **state) {
  (void)state;
  omniq__fsyncq_t *q = omniq__fsyncq_new();
  rounds_t *r = rounds_new(0);
  r->released = 1; /* nobody is held */
  omniq__fsync_item_t items[3] = {{7, 1}, {7, 1}, {7, 0}};
  omniq__fsyncq_set_fn(q, fake_sync, r);
  assert_int_equal(omniq__fsyncq_sync(q, items, 3), 0);
  assert_int_equal(r->calls, 1);
  assert_int_equal(r->sizes[0], 2); /* the folder once, the data once */
  omniq__fsyncq_free(q);
  rounds_free(r);
}

/* ---- the order of a finish's folder syncs ---------------------------------- */

#define K 4

/* What the rounds of a finish found: for each task, whether a round synced
 * results/ while its result was there, and success/ while its file was. */
typedef struct order {
  th_be_t *f;
  const char *ids[K];
  size_t n;
  ino_t results_ino, success_ino;
  int result_synced[K], task_synced[K];
  int moved_early; /* a task in success/ at a round's start, its result not yet synced */
} order_t;

static ino_t ino_of(const th_be_t *f, const char *sub) {
  char path[2048];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", f->dir, sub);
  assert_int_equal(stat(path, &st), 0);
  return st.st_ino;
}

static int watch_round(const omniq__fsync_item_t *items, size_t n, void *ud) {
  order_t *o = ud;
  for (size_t t = 0; t < o->n; t++)
    if (th_be_has(o->f, "queue/success", o->ids[t]) && !o->result_synced[t]) o->moved_early++;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (!items[i].dir || fstat(items[i].fd, &st) != 0) continue;
    for (size_t t = 0; t < o->n; t++) {
      if (st.st_ino == o->results_ino && th_be_has(o->f, "results", o->ids[t]))
        o->result_synced[t] = 1;
      if (st.st_ino == o->success_ino && th_be_has(o->f, "queue/success", o->ids[t]))
        o->task_synced[t] = 1;
    }
  }
  for (size_t i = 0; i < n; i++)
    if ((items[i].dir ? fsync(items[i].fd) : fdatasync(items[i].fd)) != 0) return errno;
  return 0;
}

/* Claims k tasks and finishes them SUCCESS with a result, through
 * finish_many (many != 0) or one finish each, watching every round. */
static void finish_watched(th_be_t *f, size_t k, int many, order_t *o) {
  omniq__fs_t *fs = f->b;
  omniq_task_t **got;
  omniq_result_t *rs[K];
  omniq_decision_t ds[K];
  int rcs[K];
  for (size_t i = 0; i < k; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, k, &got), k);
  *o = (order_t){.f = f, .n = k};
  o->results_ino = ino_of(f, "results");
  o->success_ino = ino_of(f, "queue/success");
  for (size_t i = 0; i < k; i++) {
    o->ids[i] = got[i]->id;
    rs[i] = th_be_result(got[i]->id, OMNIQ_SUCCESS, th_be_now(f));
    ds[i] = (omniq_decision_t){.id = got[i]->id,
                               .token = got[i]->token,
                               .next_status = OMNIQ_SUCCESS,
                               .result = rs[i],
                               .runs = OMNIQ_RUNS_SUCCEEDED};
  }
  omniq__fsyncq_set_fn(fs->io.syncq, watch_round, o);
  if (many) {
    omniq_task_t **next = NULL;
    size_t nnext = 0;
    int claimed = 0;
    assert_int_equal(f->ops->finish_many(f->b, ds, k, rcs, NULL, &next, &nnext, &claimed, f->err,
                                         sizeof f->err),
                     OMNIQ_OK);
    for (size_t i = 0; i < k; i++) assert_int_equal(rcs[i], OMNIQ_OK);
  } else {
    for (size_t i = 0; i < k; i++) assert_int_equal(th_be_finish(f, &ds[i]), OMNIQ_OK);
  }
  omniq__fsyncq_set_fn(fs->io.syncq, NULL, NULL);
  for (size_t i = 0; i < k; i++) {
    assert_true(th_be_has(f, "queue/success", o->ids[i]));
    assert_true(th_be_has(f, "results", o->ids[i]));
    omniq_result_free(rs[i]);
  }
  omniq__tasks_free(got, k); /* o->ids pointed into got: read before this */
}

static void assert_synced_in_order(const order_t *o) {
  assert_int_equal(o->moved_early, 0);
  for (size_t i = 0; i < o->n; i++) {
    assert_true(o->result_synced[i]);
    assert_true(o->task_synced[i]);
  }
}

/* A batch of outcomes syncs results/ before any task of it leaves the
 * slot, and success/ before it returns. */
static void test_finish_many_syncs_results_before_a_task_leaves_its_slot(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  order_t o;
  finish_watched(f, K, 1, &o);
  assert_synced_in_order(&o);
  th_be_free(f);
}

/* The same for a finish of one task. */
static void test_one_finish_syncs_its_result_before_its_task_leaves_the_slot(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  order_t o;
  finish_watched(f, 1, 0, &o);
  assert_synced_in_order(&o);
  th_be_free(f);
}

/* What the rounds of a delete found: whether results/ was synced while
 * the result was gone and the task still there. */
typedef struct removal {
  th_be_t *f;
  const char *id;
  ino_t results_ino;
  int results_synced_first;
} removal_t;

static int watch_removal(const omniq__fsync_item_t *items, size_t n, void *ud) {
  removal_t *r = ud;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (items[i].dir && fstat(items[i].fd, &st) == 0 && st.st_ino == r->results_ino &&
        !th_be_has(r->f, "results", r->id) && th_be_has(r->f, "queue/success", r->id))
      r->results_synced_first = 1;
  }
  for (size_t i = 0; i < n; i++)
    if ((items[i].dir ? fsync(items[i].fd) : fdatasync(items[i].fd)) != 0) return errno;
  return 0;
}

/* A delete makes the result's removal durable before it removes the task:
 * a power loss never leaves a result without its task. */
static void test_a_delete_syncs_the_results_removal_before_the_tasks(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  order_t o;
  int prev = -1;
  finish_watched(f, 1, 0, &o);
  char id[256];
  th_be_only_name(f, "queue/success", id);
  id[OMNIQ_ID_LEN] = '\0'; /* "<id>.json" */
  removal_t r = {f, id, ino_of(f, "results"), 0};
  omniq__fsyncq_set_fn(((omniq__fs_t *)f->b)->io.syncq, watch_removal, &r);
  th_be_ok(f->err, f->ops->delete_task(f->b, id, &prev, f->err, sizeof f->err));
  omniq__fsyncq_set_fn(((omniq__fs_t *)f->b)->io.syncq, NULL, NULL);
  assert_int_equal(prev, OMNIQ_SUCCESS);
  assert_false(th_be_has(f, "queue/success", id));
  assert_true(r.results_synced_first);
  th_be_free(f);
}

/* ---- the folders a cancel and a retry by hand sync --------------------------- */

/* One folder a call must leave synced: whether a round synced it while
 * the task was (present) or was not (!present) in it, and how many
 * rounds synced it at all (running/ is synced by both rounds of a
 * transition, at the commit and after the move; any other folder once). */
typedef struct folder_watch {
  const char *sub;
  ino_t ino;
  int present, synced, rounds, once;
} folder_watch_t;

typedef struct moves {
  th_be_t *f;
  const char *id;
  folder_watch_t w[4];
  int n;
} moves_t;

/* Whether a name in dir/sub holds id ("<id>.json", or a pending file's
 * "<priority>-<eta>-<id>.json"). */
static int holds_task(const th_be_t *f, const char *sub, const char *id) {
  char path[2048];
  int found = 0;
  snprintf(path, sizeof path, "%s/%s", f->dir, sub);
  DIR *d = opendir(path);
  assert_non_null(d);
  for (struct dirent *de; !found && (de = readdir(d)) != NULL;)
    found = strstr(de->d_name, id) != NULL;
  closedir(d);
  return found;
}

static void watch_folder(moves_t *m, const char *sub, int present) {
  folder_watch_t *w = &m->w[m->n++];
  *w = (folder_watch_t){.sub = sub,
                        .ino = ino_of(m->f, sub),
                        .present = present,
                        .once = strcmp(sub, "queue/running") != 0};
}

static int watch_moves(const omniq__fsync_item_t *items, size_t n, void *ud) {
  moves_t *m = ud;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (!items[i].dir || fstat(items[i].fd, &st) != 0) continue;
    for (int k = 0; k < m->n; k++) {
      folder_watch_t *w = &m->w[k];
      if (st.st_ino != w->ino) continue;
      w->rounds++;
      if (holds_task(m->f, w->sub, m->id) == w->present) w->synced = 1;
    }
  }
  for (size_t i = 0; i < n; i++)
    if ((items[i].dir ? fsync(items[i].fd) : fdatasync(items[i].fd)) != 0) return errno;
  return 0;
}

static void watch_start(moves_t *m) {
  omniq__fsyncq_set_fn(((omniq__fs_t *)m->f->b)->io.syncq, watch_moves, m);
}

/* Every watched folder was synced after the move (running/: after the
 * task left it), by one round unless it is running/. */
static void assert_moves_synced(const moves_t *m) {
  omniq__fsyncq_set_fn(((omniq__fs_t *)m->f->b)->io.syncq, NULL, NULL);
  for (int k = 0; k < m->n; k++) {
    if (!m->w[k].synced || (m->w[k].once && m->w[k].rounds != 1))
      fail_msg("%s: synced after the move %d, in %d rounds", m->w[k].sub, m->w[k].synced,
               m->w[k].rounds);
  }
}

/* The pending folder of the one queue the test's tasks are in. */
static void pending_folder(th_be_t *f, char sub[300]) {
  char q[256];
  th_be_only_name(f, "queue/pending", q);
  assert_true(q[0] != '\0');
  snprintf(sub, 300, "queue/pending/%s", q);
}

/* Cancels id, watching the folders a cancel changes (pending: the folder
 * it is taken out of, or NULL for a RUNNING task); returns the status it
 * had. */
static int cancel_watched(th_be_t *f, const char *id, const char *pending) {
  int prev = -1;
  moves_t m = {.f = f, .id = id};
  if (pending != NULL) watch_folder(&m, pending, 0);
  watch_folder(&m, "queue/running", 0);
  watch_folder(&m, "queue/cancelled", 1);
  watch_folder(&m, "results", 1);
  watch_start(&m);
  th_be_ok(f->err, f->ops->cancel(f->b, id, th_be_now(f), &prev, f->err, sizeof f->err));
  assert_moves_synced(&m);
  assert_true(th_be_has(f, "queue/cancelled", id));
  return prev;
}

/* A cancel of a PENDING task takes its file out of pending/<q>/: that
 * folder is synced before the cancel returns, or a power loss brings the
 * task back beside its cancelled copy. */
static void test_a_cancel_of_a_pending_task_syncs_its_pending_folder(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  char id[OMNIQ_ID_SIZE], pending[300];
  th_be_add(f, NULL, 0, th_be_now(f), id);
  pending_folder(f, pending);
  assert_int_equal(cancel_watched(f, id, pending), OMNIQ_PENDING);
  assert_false(holds_task(f, pending, id));
  th_be_free(f);
}

/* A cancel of a RUNNING task: the slot's folder and the terminal one. */
static void test_a_cancel_of_a_running_task_syncs_both_ends(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  omniq_task_t **got;
  char id[OMNIQ_ID_SIZE];
  th_be_add(f, NULL, 0, th_be_now(f), id);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  omniq__tasks_free(got, 1);
  assert_int_equal(cancel_watched(f, id, NULL), OMNIQ_RUNNING);
  th_be_free(f);
}

/* A retry by hand removes the terminal file and puts the task in
 * pending/<q>/: both folders are synced before it returns, or a power
 * loss leaves the task cancelled as well as pending. */
static void test_a_retry_by_hand_syncs_the_terminal_and_the_pending_folder(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  char id[OMNIQ_ID_SIZE], holder[OMNIQ_ID_SIZE], pending[300];
  int prev = -1;
  th_be_add(f, NULL, 0, th_be_now(f), id);
  pending_folder(f, pending);
  th_be_ok(f->err, f->ops->cancel(f->b, id, th_be_now(f), &prev, f->err, sizeof f->err));
  moves_t m = {.f = f, .id = id};
  watch_folder(&m, pending, 1);
  watch_folder(&m, "queue/running", 0);
  watch_folder(&m, "queue/cancelled", 0);
  watch_start(&m);
  th_be_ok(f->err, f->ops->retry(f->b, id, th_be_now(f), th_be_now(f), &prev, holder, f->err,
                                 sizeof f->err));
  assert_moves_synced(&m);
  assert_int_equal(prev, OMNIQ_CANCELLED);
  assert_true(holds_task(f, pending, id));
  th_be_free(f);
}

/* The test's sync call in a child: the process dies as the first round
 * of folders begins (a cancel's commit is made, nothing after it synced). */
static int die_at_first_folder_round(const omniq__fsync_item_t *items, size_t n, void *ud) {
  (void)ud;
  for (size_t i = 0; i < n; i++)
    if (items[i].dir) _exit(0);
  for (size_t i = 0; i < n; i++)
    if (fdatasync(items[i].fd) != 0) return errno;
  return 0;
}

/* A cancel of a PENDING task that died after its commit leaves the
 * CANCELLED slot, its pending folder never synced: the roll-forward that
 * finishes the cancel syncs that folder too. */
static void test_a_rolled_forward_cancel_syncs_the_pending_folder(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  char id[OMNIQ_ID_SIZE], pending[300];
  int prev = -1, status = -1;
  th_be_add(f, NULL, 0, th_be_now(f), id);
  pending_folder(f, pending);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    omniq__fsyncq_set_fn(((omniq__fs_t *)f->b)->io.syncq, die_at_first_folder_round, NULL);
    f->ops->cancel(f->b, id, th_be_now(f), &prev, f->err, sizeof f->err);
    _exit(1); /* the round above never came */
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(th_be_has(f, "queue/running", id));
  moves_t m = {.f = f, .id = id};
  watch_folder(&m, pending, 0);
  watch_folder(&m, "queue/cancelled", 1);
  watch_start(&m);
  assert_int_equal(f->ops->cancel(f->b, id, th_be_now(f), &prev, f->err, sizeof f->err),
                   OMNIQ_ESTATE);
  assert_moves_synced(&m);
  assert_int_equal(prev, OMNIQ_CANCELLED);
  assert_false(th_be_has(f, "queue/running", id));
  th_be_free(f);
}

/* The test's sync call: the first round of folders fails, as a disk that
 * reports EIO would (files' data is synced). */
static int fail_first_folder_round(const omniq__fsync_item_t *items, size_t n, void *ud) {
  int *failed = ud;
  for (size_t i = 0; i < n; i++)
    if (items[i].dir && !*failed) {
      *failed = 1;
      return EIO;
    }
  for (size_t i = 0; i < n; i++)
    if ((items[i].dir ? fsync(items[i].fd) : fdatasync(items[i].fd)) != 0) return errno;
  return 0;
}

/* A cancel of a PENDING task whose commit is made but whose first folder
 * round fails reports the failure and leaves the CANCELLED slot for a
 * roll-forward: the slot is not put back into pending/<q>/, where a
 * claimer would find a CANCELLED file and quarantine it. */
static void test_a_cancel_whose_folder_sync_fails_leaves_its_slot_to_a_roll_forward(
    void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  char id[OMNIQ_ID_SIZE], pending[300];
  int prev = -1, failed = 0;
  th_be_add(f, NULL, 0, th_be_now(f), id);
  pending_folder(f, pending);
  omniq__fsyncq_set_fn(((omniq__fs_t *)f->b)->io.syncq, fail_first_folder_round, &failed);
  assert_int_not_equal(f->ops->cancel(f->b, id, th_be_now(f), &prev, f->err, sizeof f->err),
                       OMNIQ_OK);
  omniq__fsyncq_set_fn(((omniq__fs_t *)f->b)->io.syncq, NULL, NULL);
  assert_true(failed);
  assert_false(holds_task(f, pending, id));
  assert_true(th_be_has(f, "queue/running", id));
  assert_int_equal(f->ops->cancel(f->b, id, th_be_now(f), &prev, f->err, sizeof f->err),
                   OMNIQ_ESTATE);
  assert_int_equal(prev, OMNIQ_CANCELLED);
  assert_true(th_be_has(f, "queue/cancelled", id));
  assert_int_equal(th_be_count(f, "quarantine"), 0);
  th_be_free(f);
}

/* ---- a crash right after the report ------------------------------------------ */

/* fsync stays on: the durable path is the one under test. */
static void test_what_was_reported_survives_a_sigkill_right_after(void **state) {
  th_store_t *st = *state;
  st->settings.fsync = 1;
  th_assert_reports_survive_sigkill(st, 100);
}

static int setup(void **state) {
  *state = (void *)"file";
  return th_store_setup(state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_callers_waiting_behind_a_round_share_the_next_one),
      cmocka_unit_test(test_a_failed_round_fails_every_caller_in_it),
      cmocka_unit_test(test_a_descriptor_is_synced_once_per_round),
      cmocka_unit_test(test_finish_many_syncs_results_before_a_task_leaves_its_slot),
      cmocka_unit_test(test_one_finish_syncs_its_result_before_its_task_leaves_the_slot),
      cmocka_unit_test(test_a_delete_syncs_the_results_removal_before_the_tasks),
      cmocka_unit_test(test_a_cancel_of_a_pending_task_syncs_its_pending_folder),
      cmocka_unit_test(test_a_cancel_of_a_running_task_syncs_both_ends),
      cmocka_unit_test(test_a_retry_by_hand_syncs_the_terminal_and_the_pending_folder),
      cmocka_unit_test(test_a_rolled_forward_cancel_syncs_the_pending_folder),
      cmocka_unit_test(test_a_cancel_whose_folder_sync_fails_leaves_its_slot_to_a_roll_forward),
      cmocka_unit_test_setup_teardown(test_what_was_reported_survives_a_sigkill_right_after,
                                      setup, th_store_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
