/* SPDX-License-Identifier: MIT */
/* Several processes started at once, each task handled exactly once: the
 * one harness for the tests that prove claims are atomic across processes.
 *
 *   th_procs_start  forks n children; each sets itself up (opens its own
 *                   store: nothing the parent opened may cross fork) and
 *                   calls th_procs_ready; start returns once all are ready.
 *   th_procs_go     releases them together.
 *   th_procs_wait   waits for all; each must exit 0.
 *   th_procs_ids    gathers the ids each child wrote with th_procs_put_ids.
 *   th_assert_exactly_once  every id wanted, each once, nothing else.
 *
 * Readiness is a pipe each child writes one byte to and then closes; go is
 * the parent closing a second pipe, which every child reads as EOF. A child
 * that dies before it is ready closes its end too, so the parent never
 * waits on a dead child, and nothing sleeps. Public API only: also built
 * into the storage contract library. Include after <cmocka.h>'s
 * prerequisites. */
#ifndef OMNIQ_TEST_PROCS_H
#define OMNIQ_TEST_PROCS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "omniq.h"

#define TH_PROCS_MAX 16

typedef struct th_procs {
  int n;
  pid_t pids[TH_PROCS_MAX];
  int ready[2], go[2]; /* the parent's ends; -1 once closed */
  char *dir;           /* the children's id files */
} th_procs_t;

/* A child's body (index 0..n-1): set up, th_procs_ready, work,
 * th_procs_put_ids; the return value is its exit code (0 = clean). It must
 * not use cmocka's assertions: they belong to the parent's test runner. */
typedef int (*th_proc_fn)(th_procs_t *p, int index, void *ud);

/* Forks n (<= TH_PROCS_MAX) children running fn and returns once each has
 * called th_procs_ready. Fails the test if one exits before. */
void th_procs_start(th_procs_t *p, int n, th_proc_fn fn, void *ud);
/* Releases every child at once. */
void th_procs_go(th_procs_t *p);
/* Waits for every child; fails the test unless each exited with 0. */
void th_procs_wait(th_procs_t *p);
/* Appends every child's ids to *ids (realloc'd, yours: free) and adds
 * their number to *n; returns how many children handled at least one. */
int th_procs_ids(th_procs_t *p, char (**ids)[OMNIQ_ID_SIZE], size_t *n);
/* Removes the children's files. */
void th_procs_free(th_procs_t *p);

/* In a child: says ready and blocks until th_procs_go. 0, or -1. */
int th_procs_ready(th_procs_t *p);
/* In a child: hands its ids to the parent. 0, or -1. */
int th_procs_put_ids(th_procs_t *p, int index, const char (*ids)[OMNIQ_ID_SIZE], size_t n);

/* Fails the test unless got holds exactly the ids in want, each once. Both
 * arrays are sorted in place. */
void th_assert_exactly_once(char (*want)[OMNIQ_ID_SIZE], size_t nwant,
                            char (*got)[OMNIQ_ID_SIZE], size_t ngot);

/* th_child_pool's shutdown_timeout_ms: ten minutes, longer than any test. */
#define TH_CHILD_STOP_MS 600000

/* What a test's child process needs beside th_procs: the store, a pipe it
 * reads for "stop" (EOF once the test closes stop[1]) and one it writes its
 * news to, a byte at a time. */
typedef struct th_child {
  omniq_settings_t settings;
  int stop[2], news[2];
  const char *queues[3]; /* th_child_pool's queues, NULL-terminated; none = default */
  int64_t poll_ms;       /* th_child_pool's poll_interval_ms */
  char id[OMNIQ_ID_SIZE]; /* the test's own use */
} th_child_t;

/* Makes both pipes (fails the test if it cannot). */
void th_child_pipes(th_child_t *c);
/* In the child: closes the ends that are the test's. */
void th_child_ends(th_child_t *c);
/* A th_proc_fn: a pool of two threads on c->queues, polling every
 * c->poll_ms, whose "work" handler writes 's' to news at each start, until
 * the test closes stop[1]. Returns 0, or 10 to 14 for the step that failed. */
int th_child_pool(th_procs_t *p, int index, void *ud);

#endif
