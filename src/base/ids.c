/* SPDX-License-Identifier: MIT */
/* Task ids: UUIDv7 (RFC 9562) text.
 *
 * Layout: 48-bit Unix ms | version 7 | 12-bit counter | variant | 62 random
 * bits. The 12-bit field is a counter within one millisecond (RFC 9562
 * method 1), so ids made by one process strictly increase: when the counter
 * runs out, or the clock steps back, the timestamp field is carried forward
 * instead. Random bits come from a generator seeded by getrandom() and
 * re-seeded after fork, so two processes never share a sequence. */
#include "base/ids.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "omniq/storage.h"

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static unsigned counter;
static uint64_t rng_state;
static pid_t rng_pid;

/* splitmix64: fast, and plenty for the random tail of an id. */
static uint64_t next_random(void) {
  if (rng_pid != getpid()) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
      seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)&seed;
    rng_state ^= seed;
    rng_pid = getpid();
  }
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void omniq__id_new(int64_t now_ms, char out[OMNIQ_ID_SIZE]) {
  uint64_t ms, rand_b;
  unsigned seq;

  pthread_mutex_lock(&id_lock);
  if (now_ms > last_ms) {
    last_ms = now_ms;
    counter = (unsigned)(next_random() & 0x1FF); /* leave room to count up */
  } else if (++counter > 0xFFF) {
    last_ms++;
    counter = 0;
  }
  ms = (uint64_t)last_ms & 0xFFFFFFFFFFFFULL;
  seq = counter;
  rand_b = next_random() & 0x3FFFFFFFFFFFFFFFULL;
  pthread_mutex_unlock(&id_lock);

  /* Each field is passed in a type no wider than its digits, so the
   * compiler can see the text always fits (-Wformat-truncation, which an
   * unoptimised build cannot otherwise prove). */
  snprintf(out, OMNIQ_ID_SIZE, "%08x-%04hx-%04hx-%04hx-%04hx%08x", (unsigned)(ms >> 16),
           (unsigned short)(ms & 0xFFFF), (unsigned short)(0x7000 | seq),
           (unsigned short)(0x8000 | (rand_b >> 48)), (unsigned short)((rand_b >> 32) & 0xFFFF),
           (unsigned)(rand_b & 0xFFFFFFFFULL));
}

int omniq_id_valid(const char *s) {
  if (s == NULL) return 0;
  for (int i = 0; i < OMNIQ_ID_LEN; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return 0;
    }
  }
  return s[OMNIQ_ID_LEN] == '\0';
}
