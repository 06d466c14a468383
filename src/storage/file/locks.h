/* SPDX-License-Identifier: MIT */
/* Task locks of the file backend: what makes a transition of one task safe
 * across threads and processes.
 *
 * Locks are striped: a task's lock is byte (hash(id) % STRIPES) of
 * base_dir/lock, taken with an OFD lock (processes) under the stripe's
 * mutex (threads of one process share the lock file's description, so the
 * OFD lock alone would not exclude them). An OFD lock dies with its
 * process, so a lock that can be taken proves its last holder is gone. A
 * batch needs many task locks at once: a small one takes its stripes'
 * mutexes in order under `gate` shared, as every single-task lock holds
 * it; a large one (an enqueue of many) takes `gate` exclusively instead;
 * then the OFD bytes in stripe order. */
#ifndef OMNIQ_STORAGE_FILE_LOCKS_H
#define OMNIQ_STORAGE_FILE_LOCKS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define OMNIQ__FLOCK_STRIPES 1024
/* Most stripes a set locks one by one for the threads of its process
 * (more take the gate exclusively; see locks.c). */
#define OMNIQ__FLOCK_SMALL_SET 16

typedef struct omniq__flock {
  int fd;               /* base_dir/lock; the owner opens and closes it */
  const char *base_dir; /* for messages; borrowed */
  pthread_rwlock_t gate; /* shared: one task lock; exclusive: a batch */
  pthread_mutex_t stripes[OMNIQ__FLOCK_STRIPES];
} omniq__flock_t;

/* Initialises the mutexes (fd -1). Pair with omniq__flock_destroy. */
void omniq__flock_init(omniq__flock_t *l, const char *base_dir);
void omniq__flock_destroy(omniq__flock_t *l);

/* Which stripe (0..OMNIQ__FLOCK_STRIPES-1) a name's lock is. Every function
 * here takes a task id or, for a lock space of other names (the backend's
 * queue, key and chore locks), any NUL-terminated name. */
unsigned omniq__flock_stripe(const char *name);

/* Takes task id's lock, waiting for it. */
int omniq__flock_take(omniq__flock_t *l, const char *id, char *err, size_t errlen);
/* 1 if taken, 0 if another thread or process holds it. */
int omniq__flock_try(omniq__flock_t *l, const char *id);
void omniq__flock_release(omniq__flock_t *l, const char *id);
/* The same by stripe (s < OMNIQ__FLOCK_STRIPES): every task lock that is
 * that stripe, for a reader of what the stripe's holders write. */
int omniq__flock_take_stripe(omniq__flock_t *l, unsigned s, char *err, size_t errlen);
void omniq__flock_release_stripe(omniq__flock_t *l, unsigned s);

/* Takes every id's task lock: for the threads of this process, up to
 * OMNIQ__FLOCK_SMALL_SET stripes' mutexes in stripe order under the gate
 * shared, or else the gate exclusively (no other thread of this process
 * holds a task lock meanwhile); then each stripe's OFD byte in stripe
 * order, so two batches cannot deadlock. *set yours: release with
 * omniq__flock_release_set. */
int omniq__flock_take_set(omniq__flock_t *l, const char *const *ids, size_t n, uint16_t **set,
                          size_t *nset, char *err, size_t errlen);
void omniq__flock_release_set(omniq__flock_t *l, uint16_t *set, size_t nset);

#endif
