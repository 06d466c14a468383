/* SPDX-License-Identifier: MIT */
/* Coordination between a test and the handlers its workers run: a counter
 * with a condition variable. Every wait has a generous real-time bound, so
 * a broken pool fails an assertion instead of hanging; no test sleeps to
 * let something happen. */
#ifndef OMNIQ_TEST_GATE_H
#define OMNIQ_TEST_GATE_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define TH_WAIT_MS 30000 /* "never" for a healthy pool on a loaded 2-core box */

typedef struct th_gate {
  pthread_mutex_t m;
  pthread_cond_t c;
  long n;
} th_gate_t;

static inline void th_gate_init(th_gate_t *g) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_mutex_init(&g->m, NULL);
  pthread_cond_init(&g->c, &a);
  pthread_condattr_destroy(&a);
  g->n = 0;
}

static inline void th_gate_destroy(th_gate_t *g) {
  pthread_cond_destroy(&g->c);
  pthread_mutex_destroy(&g->m);
}

static inline void th_gate_add(th_gate_t *g, long k) {
  pthread_mutex_lock(&g->m);
  g->n += k;
  pthread_cond_broadcast(&g->c);
  pthread_mutex_unlock(&g->m);
}

static inline long th_gate_get(th_gate_t *g) {
  pthread_mutex_lock(&g->m);
  long n = g->n;
  pthread_mutex_unlock(&g->m);
  return n;
}

static inline int64_t th_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the count reaches at least n, for up to timeout_ms. Returns 1
 * if it did. */
static inline int th_gate_wait(th_gate_t *g, long n, int64_t timeout_ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&g->m);
  int rc = 0;
  while (g->n < n && rc == 0) rc = pthread_cond_timedwait(&g->c, &g->m, &ts);
  int ok = g->n >= n;
  pthread_mutex_unlock(&g->m);
  return ok;
}

#endif
