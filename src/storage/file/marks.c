/* SPDX-License-Identifier: MIT */
/* The listing index of the file backend.
 *
 * What it owns: base_dir/index/<tree>/<L0>/<L1>/<L2>/<L3>/<id>.<qdir>, one
 * empty file (a marker) per task, in the tree of the task's status: tree 0
 * holds PENDING and RUNNING tasks (the "active" tree), trees 2, 3 and 4
 * SUCCESS, FAILED and CANCELLED. Claims and retries move a task between
 * PENDING and RUNNING many times and the listing reads each task it shows
 * anyway, so sharing a tree keeps those transitions free of index work;
 * only a task's end (and a retry by hand) moves its marker. L0 to L3
 * are the first 6, then 2, 2 and 2 hex digits of the id, which for a
 * UUIDv7 are its creation time in ms: an L0 folder spans about 4.7 hours
 * and holds at most 256 L1 folders (65 s each), each at most 256 L2
 * folders (256 ms), each at most 256 L3 folders (one ms each) of markers;
 * one process makes at most 4096 ids in a ms, so even a store filled in
 * one burst keeps its folders small. Names sort as ids do, so a walk in id
 * order reads the folders on its way and nothing else: a page of 100 from
 * a million tasks reads the few folders around the cursor (plus each
 * level's list of at most 256 names), not the million. Markers carry the
 * queue folder, so a queue filter needs no task file either.
 *
 * Why not the task folders themselves: pending/ is ordered for claiming,
 * and the terminal folders are flat (readdir order is hash order), so
 * either would be read whole for one page. Why not memory: a worker with a
 * million pending tasks must stay small, so nothing here is per task in
 * memory.
 *
 * Keeping it true: a marker moves (one rename) when its task changes
 * status, under the task's lock, after the transition's commit and as part
 * of the steps a roll-forward repeats (transitions.c), so a crash leaves at
 * worst a marker in the old tree. The listing reads each marked task under
 * its lock and moves a marker it finds in the wrong tree; a task is never
 * without a marker, because markers are made before a task is placed and
 * only removed with it. The index is a hint about where to look, never the
 * truth about a task.
 *
 * Folders come and go: a move or removal that empties an L2 folder removes
 * it (and its L1 and L0 when they empty), so the index holds no folder for
 * a time span with no task. A writer that finds its target folder gone
 * makes it again and retries. A marker is a hard link to one empty file,
 * index/blank, so markers cost names, not inodes (a store of 10^6 tasks
 * would otherwise hold 2 * 10^6 empty files). Nothing is synced: after a
 * power loss the listing repairs what it meets, and index/READY missing (a build cut
 * short) makes the next open rebuild. */
#include "storage/file/marks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "storage/file/record.h"

#define READY "READY"
#define BLANK "blank" /* the empty file every marker is a link to */
#define LEVELS 4 /* of folders; markers are one level below */
#define DIR_SIZE 32 /* "L0/L1/L2/L3" */
#define REL_SIZE (DIR_SIZE + OMNIQ_ID_LEN + 1 + OMNIQ__QDIR_MAX + 1)
#define MOVE_TRIES 4

static const int level_len[LEVELS] = {6, 2, 2, 2};
static const int level_at[LEVELS] = {0, 6, 9, 11}; /* where in the id (past its dash) */

static int is_hex(const char *s, int n) {
  for (int i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

/* The shard names of an id: "0189ab", "cd", "ef", "01" for
 * "0189abcd-ef01-...". */
static void shards(const char *id, char key[LEVELS][7]) {
  for (int l = 0; l < LEVELS; l++) {
    memcpy(key[l], id + level_at[l], (size_t)level_len[l]);
    key[l][level_len[l]] = '\0';
  }
}

/* Copies s (at most max bytes of it) to p; the end, unterminated. Paths
 * are made twice or three times a task: pieces copied, not formatted
 * (every piece's length is bounded: the sizes above hold them all). */
static char *put(char *p, const char *s, size_t max) {
  size_t n = strnlen(s, max);
  memcpy(p, s, n);
  return p + n;
}

/* "L0/L1/L2/L3" from the shard names. */
static void shard_dir(char key[LEVELS][7], char dir[DIR_SIZE]) {
  char *p = dir;
  for (int l = 0; l < LEVELS; l++) {
    if (l > 0) *p++ = '/';
    p = put(p, key[l], 6);
  }
  *p = '\0';
}

/* "L0/L1/L2/L3" and "L0/L1/L2/L3/<id>.<qdir>". */
static void paths(const char *id, const char *qdir, char dir[DIR_SIZE], char rel[REL_SIZE]) {
  char key[LEVELS][7];
  shards(id, key);
  shard_dir(key, dir);
  char *p = put(rel, dir, DIR_SIZE);
  *p++ = '/';
  p = put(p, id, OMNIQ_ID_LEN);
  *p++ = '.';
  p = put(p, qdir, OMNIQ__QDIR_MAX);
  *p = '\0';
}

/* mkdir -p of dir under root, deepest folder first: usually only the leaf
 * is missing (a new one each ms), so this is one mkdir, not one a level.
 * A folder of the chain may be pruned by another writer between two steps
 * (prune below): the walk then goes up again. */
static int make_dirs(int root, const char *dir) {
  char p[DIR_SIZE];
  size_t cut[DIR_SIZE];
  int n = 0;
  snprintf(p, sizeof p, "%s", dir);
  for (size_t i = 0; p[i] != '\0'; i++)
    if (p[i] == '/') cut[n++] = i;
  cut[n++] = strlen(p);
  int d = n; /* the folder tried: p cut at cut[d - 1] */
  for (int steps = 0; steps < MOVE_TRIES * 2 * n; steps++) {
    char c = p[cut[d - 1]];
    p[cut[d - 1]] = '\0';
    int r = mkdirat(root, p, 0777), e = errno;
    p[cut[d - 1]] = c;
    if (r == 0 || e == EEXIST) {
      if (d == n) return 0;
      d++;
    } else if (e == ENOENT && d > 1) {
      d--; /* its parent is missing */
    } else {
      errno = e;
      return -1;
    }
  }
  errno = EAGAIN;
  return -1;
}

/* Removes dir and its parents while they are empty. */
static void prune_now(int root, const char *dir) {
  char p[DIR_SIZE];
  snprintf(p, sizeof p, "%s", dir);
  for (;;) {
    if (unlinkat(root, p, AT_REMOVEDIR) != 0) return; /* not empty, or gone */
    char *slash = strrchr(p, '/');
    if (slash == NULL) return;
    *slash = '\0';
  }
}

/* Folders whose prune a batch put off (omniq__fmark_defer): one try per
 * folder per batch, not one per marker moved out of it. Per thread: a
 * batch runs in one. */
#define DEFER_MAX 64
typedef struct deferred {
  int on, n;
  int root[DEFER_MAX];
  char dir[DEFER_MAX][DIR_SIZE];
} deferred_t;
static _Thread_local deferred_t deferred;

static void prune(int root, const char *dir) {
  deferred_t *d = &deferred;
  if (d->on) {
    for (int i = 0; i < d->n; i++)
      if (d->root[i] == root && strcmp(d->dir[i], dir) == 0) return;
    if (d->n < DEFER_MAX) {
      d->root[d->n] = root;
      snprintf(d->dir[d->n++], DIR_SIZE, "%s", dir);
      return;
    }
  }
  prune_now(root, dir);
}

void omniq__fmark_defer(int on) {
  deferred_t *d = &deferred;
  d->on = on;
  if (on) return;
  for (int i = 0; i < d->n; i++) prune_now(d->root[i], d->dir[i]);
  d->n = 0;
}

/* Makes index/blank anew: the empty file markers are links to. The one it
 * replaces keeps the links it has (nothing frees it while they last). */
static int new_blank(omniq__fs_t *fs) {
  char e[8];
  omniq__fio_t nosync = fs->io; /* a lost blank is made again when next needed */
  nosync.fsync = 0;
  int rc = omniq__fio_write(&nosync, fs->index_root_fd, BLANK, "", 0, e, sizeof e);
  return rc == OMNIQ_OK ? 0 : -1;
}

/* Makes the marker root/rel (in folder dir): a hard link to index/blank,
 * which makes no inode (a marker's content is never read, only its name),
 * or, where the file system refuses links, an empty file of its own. A
 * full link count (EMLINK: 65,000 on ext4) or a missing blank makes a new
 * blank; a missing folder is made. 0, or -1 with errno. */
static int create(omniq__fs_t *fs, int root, const char *dir, const char *rel) {
  for (int i = 0; i < MOVE_TRIES; i++) {
    if (!atomic_load(&fs->marks_unlinked)) {
      if (linkat(fs->index_root_fd, BLANK, root, rel, 0) == 0 || errno == EEXIST) return 0;
      int no_blank = errno == ENOENT &&
                     faccessat(fs->index_root_fd, BLANK, F_OK, AT_SYMLINK_NOFOLLOW) != 0;
      if (errno == EMLINK || no_blank) {
        if (new_blank(fs) != 0) return -1;
        continue;
      }
      if (errno == EPERM || errno == EOPNOTSUPP) {
        atomic_store(&fs->marks_unlinked, 1); /* no hard links here: files of their own */
        continue;
      }
    } else {
      int fd = openat(root, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd >= 0 || errno == EEXIST) {
        if (fd >= 0) close(fd);
        return 0;
      }
    }
    if (errno != ENOENT || make_dirs(root, dir) != 0) return -1;
  }
  return -1;
}

int omniq__fmark_tree(int status) { return status == OMNIQ_RUNNING ? OMNIQ_PENDING : status; }

enum { MOVED = 0, NOT_HERE = 1, FAILED = -1 };

/* Renames the marker from one tree to another, making the target folder
 * when it is missing: MOVED, NOT_HERE, or FAILED with errno. */
static int move(int from, int to, const char *dir, const char *rel) {
  for (int i = 0; i < MOVE_TRIES; i++) {
    if (renameat(from, rel, to, rel) == 0) return MOVED;
    if (errno != ENOENT) return FAILED;
    if (faccessat(from, rel, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
      return errno == ENOENT ? NOT_HERE : FAILED;
    if (make_dirs(to, dir) != 0) return FAILED; /* the target folder was missing */
  }
  errno = EAGAIN;
  return FAILED;
}

int omniq__fmark_set(omniq__fs_t *fs, const char *id, const char *qdir, int status, int hint) {
  char dir[DIR_SIZE], rel[REL_SIZE];
  int tree = omniq__fmark_tree(status), e = 0;
  if (hint >= 0 && hint < OMNIQ_STATUS_COUNT && omniq__fmark_tree(hint) == tree)
    return OMNIQ_OK; /* the same tree: nothing moves */
  paths(id, qdir, dir, rel);
  int order[OMNIQ_STATUS_COUNT], n = 0, to = fs->index_fd[tree];
  if (hint >= 0 && hint < OMNIQ_STATUS_COUNT) order[n++] = omniq__fmark_tree(hint);
  for (int t = 0; t < OMNIQ_STATUS_COUNT; t++)
    if (t != OMNIQ_RUNNING && t != tree && (n == 0 || t != order[0])) order[n++] = t;
  for (int i = 0; i < n; i++) {
    int r = move(fs->index_fd[order[i]], to, dir, rel);
    if (r == MOVED) {
      prune(fs->index_fd[order[i]], dir);
      return OMNIQ_OK;
    }
    if (r == FAILED) {
      e = errno;
      break;
    }
  }
  /* In no other tree: it is in the right one already, or new. */
  if (e == 0) {
    if (create(fs, to, dir, rel) == 0) return OMNIQ_OK;
    e = errno;
  }
  omniq__log(&fs->log, OMNIQ_LOG_WARNING, "storage.index", id,
             "cannot file the task under %s in index/: %s (listings repair it)",
             omniq_status_name(status), strerror(e));
  return omniq__errno_code(e);
}

int omniq__fmark_new(omniq__fs_t *fs, const char *id, const char *qdir) {
  char dir[DIR_SIZE], rel[REL_SIZE];
  paths(id, qdir, dir, rel);
  if (create(fs, fs->index_fd[OMNIQ_PENDING], dir, rel) == 0) return OMNIQ_OK;
  return omniq__errno_code(errno);
}

void omniq__fmark_drop(omniq__fs_t *fs, const char *id, const char *qdir) {
  char dir[DIR_SIZE], rel[REL_SIZE];
  paths(id, qdir, dir, rel);
  for (int t = 0; t < OMNIQ_STATUS_COUNT; t++)
    if (t != OMNIQ_RUNNING && unlinkat(fs->index_fd[t], rel, 0) == 0) prune(fs->index_fd[t], dir);
}

/* ---- walking ---------------------------------------------------------------- */

typedef struct names {
  char **v;
  size_t n, cap;
} names_t;

static void names_free(names_t *ns) {
  for (size_t i = 0; i < ns->n; i++) omniq__free(ns->v[i]);
  omniq__free(ns->v);
  memset(ns, 0, sizeof *ns);
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A marker name: "<id>.<qdir>", after `prefix` bytes ("<time>." in the
 * finish-time tree). */
static int leaf_ok(const char *name, size_t prefix) {
  size_t n = strlen(name);
  if (n <= prefix) return 0;
  name += prefix;
  n -= prefix;
  return n > OMNIQ_ID_LEN + 1 && name[OMNIQ_ID_LEN] == '.' &&
         omniq__fname_qdir_valid(name + OMNIQ_ID_LEN + 1, n - OMNIQ_ID_LEN - 1);
}

/* The sorted names of dirfd/sub that have the shape of `level` (below
 * LEVELS: hex shards; LEVELS: markers). ENOENT (a folder pruned meanwhile)
 * is an empty list. */
static int list_dir(int dirfd, const char *sub, int level, size_t prefix, names_t *ns) {
  int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  struct dirent *de;
  memset(ns, 0, sizeof *ns);
  if (d == NULL) {
    int e = errno;
    if (fd >= 0) close(fd);
    return e == ENOENT ? OMNIQ_OK : omniq__errno_code(e);
  }
  while ((de = readdir(d)) != NULL) {
    const char *nm = de->d_name;
    int ok = level < LEVELS
                 ? (int)strlen(nm) == level_len[level] && is_hex(nm, level_len[level])
                 : leaf_ok(nm, prefix);
    if (!ok) continue;
    if (ns->n == ns->cap) {
      size_t cap = ns->cap ? ns->cap * 2 : 64;
      char **v = omniq__realloc(ns->v, cap * sizeof *v);
      if (v == NULL) break;
      ns->v = v;
      ns->cap = cap;
    }
    if ((ns->v[ns->n] = omniq__strdup(nm)) == NULL) break;
    ns->n++;
  }
  int oom = de != NULL;
  closedir(d);
  if (oom) {
    names_free(ns);
    return OMNIQ_ENOMEM;
  }
  if (ns->n > 1) qsort(ns->v, ns->n, sizeof *ns->v, by_name); /* v is NULL when empty */
  return OMNIQ_OK;
}

/* A time as the first 13 characters of a UUIDv7 show one ("%08x-%04x" of
 * the ms), so the shards of shards() apply to it unchanged. */
static void time_text(int64_t ms, char out[14]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t u = ms < 0 ? 0 : (uint64_t)ms & 0xFFFFFFFFFFFFULL;
  /* "%08x-%04x" of the 48 bits, by hand. */
  for (int i = 12; i >= 0; i--) {
    if (i == 8) {
      out[i] = '-';
      continue;
    }
    out[i] = hex[u & 15];
    u >>= 4;
  }
  out[13] = '\0';
}

static int64_t time_of(const char *name) {
  int64_t ms = 0;
  for (int i = 0; i < 13; i++)
    if (name[i] != '-') ms = ms * 16 + (name[i] <= '9' ? name[i] - '0' : name[i] - 'a' + 10);
  return ms;
}

typedef struct walk {
  omniq__fs_t *fs;
  int root;
  const char *after;     /* NULL, or the id the walk starts after */
  char key[LEVELS][7];   /* after's shards */
  int desc;
  omniq__fmark_fn fn;
  void *ud;
  /* The finish-time tree: names start with the time, and fn_timed gets it. */
  size_t prefix;
  omniq__fmark_timed_fn fn_timed;
} walk_t;

/* Walks path (relative to the tree's root) at level; bounded: while the
 * walk is still on the cursor's branch, names before the cursor's shard
 * are skipped. Returns 0 to go on, 1 when fn stopped, or an error. */
static int walk_level(walk_t *w, const char *path, int level, int on_branch) {
  names_t ns;
  int rc = list_dir(w->root, path, level, w->prefix, &ns);
  if (rc != OMNIQ_OK) return rc;
  for (size_t k = 0; rc == 0 && k < ns.n; k++) {
    const char *nm = ns.v[w->desc ? ns.n - 1 - k : k];
    if (level == LEVELS) {
      char id[OMNIQ_ID_SIZE];
      memcpy(id, nm + w->prefix, OMNIQ_ID_LEN);
      id[OMNIQ_ID_LEN] = '\0';
      if (!omniq_id_valid(id)) continue;
      if (on_branch && w->after != NULL) {
        int c = strcmp(id, w->after);
        if (w->desc ? c >= 0 : c <= 0) continue;
      }
      const char *qdir = nm + w->prefix + OMNIQ_ID_LEN + 1;
      rc = w->fn_timed != NULL ? w->fn_timed(w->fs, id, qdir, time_of(nm), w->ud)
                               : w->fn(w->fs, id, qdir, w->ud);
      continue;
    }
    int branch = 0;
    if (on_branch && w->after != NULL) {
      int c = strcmp(nm, w->key[level]);
      if (w->desc ? c > 0 : c < 0) continue;
      branch = c == 0;
    }
    char sub[DIR_SIZE];
    int n = level == 0 ? snprintf(sub, sizeof sub, "%s", nm)
                       : snprintf(sub, sizeof sub, "%s/%s", path, nm);
    if (n < 0 || (size_t)n >= sizeof sub) continue; /* no marker folder is that long */
    rc = walk_level(w, sub, level + 1, branch);
  }
  names_free(&ns);
  return rc;
}

int omniq__fmark_walk(omniq__fs_t *fs, int status, const char *after_id, int desc,
                      omniq__fmark_fn fn, void *ud) {
  walk_t w = {fs, fs->index_fd[omniq__fmark_tree(status)], after_id, {"", "", "", ""}, desc, fn,
              ud, 0, NULL};
  if (after_id != NULL) shards(after_id, w.key);
  int rc = walk_level(&w, ".", 0, 1);
  return rc == 1 ? OMNIQ_OK : rc;
}

/* ---- the finish-time tree -------------------------------------------------- */

/* The folders of the time, and "<folders>/<time>.<id>.<qdir>". */
static void timed_paths(int64_t ms, const char *id, const char *qdir, char dir[DIR_SIZE],
                        char rel[REL_SIZE + 16]) {
  char tt[14], key[LEVELS][7];
  time_text(ms, tt);
  shards(tt, key);
  shard_dir(key, dir);
  char *p = put(rel, dir, DIR_SIZE);
  *p++ = '/';
  p = put(p, tt, 13);
  *p++ = '.';
  p = put(p, id, OMNIQ_ID_LEN);
  *p++ = '.';
  p = put(p, qdir, OMNIQ__QDIR_MAX);
  *p = '\0';
}

int omniq__fmark_timed(omniq__fs_t *fs, const char *id, const char *qdir, int64_t finished_ms) {
  char dir[DIR_SIZE], rel[REL_SIZE + 16];
  timed_paths(finished_ms, id, qdir, dir, rel);
  if (create(fs, fs->index_done_fd, dir, rel) == 0) return OMNIQ_OK;
  int e = errno;
  omniq__log(&fs->log, OMNIQ_LOG_WARNING, "storage.index", id,
             "cannot file the task by its finish time in index/: %s", strerror(e));
  return omniq__errno_code(e);
}

void omniq__fmark_untimed(omniq__fs_t *fs, const char *id, const char *qdir, int64_t finished_ms) {
  char dir[DIR_SIZE], rel[REL_SIZE + 16];
  timed_paths(finished_ms, id, qdir, dir, rel);
  if (unlinkat(fs->index_done_fd, rel, 0) == 0) prune(fs->index_done_fd, dir);
}

int omniq__fmark_walk_finished(omniq__fs_t *fs, omniq__fmark_timed_fn fn, void *ud) {
  walk_t w = {fs, fs->index_done_fd, NULL, {"", "", "", ""}, 0, NULL, ud, 14, fn};
  int rc = walk_level(&w, ".", 0, 1);
  return rc == 1 ? OMNIQ_OK : rc;
}

/* ---- building -------------------------------------------------------------- */

static int mark_pending(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  char id[OMNIQ_ID_SIZE];
  uint32_t iprio;
  int64_t eta;
  (void)dirfd;
  if (omniq__fname_pending_parse(name, &iprio, &eta, id) == OMNIQ_OK)
    omniq__fmark_set(fs, id, ud, OMNIQ_PENDING, -1);
  return 0;
}

static int mark_queue_folder(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  (void)ud;
  if (!omniq__fname_qdir_valid(name, strlen(name))) return 0;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return 0;
  int rc = omniq__fs_each(fs, fd, mark_pending, (void *)name);
  close(fd);
  return rc;
}

/* A task file of running/ or a terminal folder: its own status and queue. */
static int mark_task_file(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  char id[OMNIQ_ID_SIZE], qdir[OMNIQ__QDIR_SIZE], e[OMNIQ__ERRMSG_MAX];
  omniq_task_t *t = NULL;
  (void)ud;
  if (omniq__fname_id_parse(name, id) != OMNIQ_OK) return 0;
  if (omniq__frec_read(dirfd, name, id, &t, NULL, e, sizeof e) == OMNIQ_OK &&
      omniq__fname_qdir(t->queue, qdir) == OMNIQ_OK) {
    omniq__fmark_set(fs, id, qdir, t->status, -1);
    if (omniq_status_is_terminal(t->status))
      omniq__fmark_timed(fs, id, qdir, t->finished_at_ms > 0 ? t->finished_at_ms : t->created_at_ms);
  }
  omniq_task_free(t);
  return 0;
}

int omniq__fmark_build(omniq__fs_t *fs, char *err, size_t errlen) {
  struct stat st;
  int rc;
  if (fstatat(fs->index_root_fd, READY, &st, 0) == 0) return OMNIQ_OK;
  rc = omniq__fs_each(fs, fs->pending_fd, mark_queue_folder, NULL);
  if (rc == OMNIQ_OK) rc = omniq__fs_each(fs, fs->running_fd, mark_task_file, NULL);
  for (int k = 0; rc == OMNIQ_OK && k < OMNIQ__FS_NDONE; k++)
    rc = omniq__fs_each(fs, fs->done_fd[k], mark_task_file, NULL);
  if (rc == OMNIQ_OK)
    rc = omniq__fio_write(&fs->io, fs->index_root_fd, READY, "", 0, err, errlen);
  else
    snprintf(err, errlen, "file store: building index/ from the task folders failed");
  if (rc == OMNIQ_OK)
    omniq__log(&fs->log, OMNIQ_LOG_INFO, "storage.index_built", NULL,
               "index/ now lists every task of the store");
  return rc;
}
