/* SPDX-License-Identifier: MIT */
/* Process-wide generation counters with one condition variable each. A
 * broadcast per event is cheap next to the storage write that causes it. */
#include "base/notify.h"

#include <pthread.h>

#include "base/clock.h"

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint64_t gen;
} channel_t;

static channel_t channels[2] = {{PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0},
                                {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}};
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The static initialiser waits on CLOCK_REALTIME; waits measure real
 * durations, so switch each condvar to the monotonic clock once. */
static void init_channels(void) {
  for (int i = 0; i < 2; i++) {
    pthread_cond_destroy(&channels[i].cond);
    omniq__cond_init_monotonic(&channels[i].cond);
  }
}

uint64_t omniq__notify_gen(omniq__event_t ev) {
  channel_t *c = &channels[ev];
  pthread_once(&init_once, init_channels);
  pthread_mutex_lock(&c->lock);
  uint64_t g = c->gen;
  pthread_mutex_unlock(&c->lock);
  return g;
}

void omniq__notify(omniq__event_t ev) {
  channel_t *c = &channels[ev];
  pthread_once(&init_once, init_channels);
  pthread_mutex_lock(&c->lock);
  c->gen++;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

uint64_t omniq__notify_wait(omniq__event_t ev, uint64_t seen, int64_t timeout_ms) {
  channel_t *c = &channels[ev];
  struct timespec deadline;
  pthread_once(&init_once, init_channels);
  if (timeout_ms >= 0) deadline = omniq__mono_deadline(timeout_ms);
  pthread_mutex_lock(&c->lock);
  while (c->gen == seen) {
    int rc = timeout_ms < 0 ? pthread_cond_wait(&c->cond, &c->lock)
                            : pthread_cond_timedwait(&c->cond, &c->lock, &deadline);
    if (rc != 0) break; /* timed out */
  }
  uint64_t g = c->gen;
  pthread_mutex_unlock(&c->lock);
  return g;
}
