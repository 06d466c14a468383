/* SPDX-License-Identifier: MIT */
/* Task ids: UUIDv7 (RFC 9562) text.
 *
 * Layout: 48-bit Unix ms | version 7 | 12-bit counter | variant | 62 random
 * bits. The 12-bit field is a counter within one millisecond (RFC 9562
 * method 1), so ids made by one process strictly increase: when the counter
 * runs out, or the clock steps back, the timestamp field is carried forward
 * instead. Random bits come from a generator seeded by getrandom() and
 * re-seeded after fork, so two processes never share a sequence: a
 * pthread_atfork handler marks the child's generator for a new seed, which
 * spares every id a getpid() system call. The text is written digit by
 * digit: snprintf cost more than the rest of an id together. */
#include "base/ids.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "omniq/storage.h"

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static int64_t last_ms = -1;
static unsigned counter;
static uint64_t rng_state;
static int seeded; /* 0 in a process that has not drawn a seed yet */

/* Around a fork id_lock is held, so the child gets it unheld and its
 * generator unseeded (its state is the parent's: it must not repeat it). */
static void fork_prepare(void) { pthread_mutex_lock(&id_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&id_lock); }
static void fork_child(void) {
  seeded = 0;
  pthread_mutex_unlock(&id_lock);
}
static void watch_forks(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

/* splitmix64: fast, and plenty for the random tail of an id. id_lock held. */
static uint64_t next_random(void) {
  if (!seeded) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
      seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)&seed;
    rng_state ^= seed;
    seeded = 1;
  }
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* The low `digits` hex digits of v, lowercase, at p. */
static char *put_hex(char *p, uint64_t v, int digits) {
  static const char hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; i--, v >>= 4) p[i] = hex[v & 0xF];
  return p + digits;
}

void omniq__id_new(int64_t now_ms, char out[OMNIQ_ID_SIZE]) {
  uint64_t ms, rand_b;
  unsigned seq;

  pthread_once(&fork_once, watch_forks);
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

  /* 8-4-4-4-12: the timestamp's 48 bits, version and counter, variant and
   * the first 14 random bits, then the other 48. */
  char *p = put_hex(out, ms >> 16, 8);
  *p++ = '-';
  p = put_hex(p, ms & 0xFFFF, 4);
  *p++ = '-';
  p = put_hex(p, 0x7000 | seq, 4);
  *p++ = '-';
  p = put_hex(p, 0x8000 | (rand_b >> 48), 4);
  *p++ = '-';
  p = put_hex(p, rand_b & 0xFFFFFFFFFFFFULL, 12);
  *p = '\0';
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
