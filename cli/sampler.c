/* SPDX-License-Identifier: MIT */
/* omniq serve's sampler: the store's statistics for the page, taken in the
 * background so that no page refresh ever costs a count.
 *
 * omniq_stats counts every task of every queue (a GROUP BY over an index in
 * SQLite, a walk of the files in the file backend): milliseconds on a small
 * store, seconds at 10^6 tasks. So one thread calls it every interval and
 * keeps the latest answer; the page's API calls read that copy under a
 * mutex, in microseconds, and say how old it is. The thread also keeps a
 * ring of samples (the running totals and the counts, summed over queues)
 * for the throughput chart: one hour of them at the configured interval.
 *
 * Cost bound: the next sample starts no sooner than COST_FACTOR times the
 * last one took, whatever the interval and however often actions poke it,
 * so on its own the sampler never uses more than 1 / (COST_FACTOR + 1) of
 * a core.
 *
 * A scrape of /metrics wants numbers no older than itself: it asks for a
 * sample that starts after it arrived (serve_sampler_fresh), which the
 * thread takes at once, cost bound or not, and waits for it. Scrapes that
 * arrive together share one sample, and the sample feeds the page and the
 * chart too, so a scrape never costs more than one count of its own (two
 * when it arrives while one is under way: that one may have started before
 * the scrape's own request, so it does not count).
 *
 * Locking: `lock` guards everything below it in the struct; omniq_stats is
 * called without it, so readers never wait for a count. Stopping: `stop`
 * under the lock and a broadcast of both conditions; the thread notices at
 * its next wait (or when its omniq_stats call returns) and exits, and a
 * scrape still waiting gets the last sample; serve_sampler_stop joins. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duration.h"
#include "serve.h"

struct serve_sampler {
  omniq_t *oq;
  int64_t interval_ms;
  pthread_t thread;

  pthread_mutex_t lock;
  pthread_cond_t wake;    /* the thread's: on CLOCK_MONOTONIC */
  pthread_cond_t sampled; /* a sample ended: for serve_sampler_fresh */
  int stop, poked, wanted;
  uint64_t started, ended; /* samples begun, and finished */
  omniq_stats_t *latest;
  int64_t taken_ms, cost_ms;
  char error[256];
  serve_sample_t *ring;
  size_t cap, head, n; /* head: the next slot written */
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void summarise(const omniq_stats_t *st, int64_t t_ms, serve_sample_t *out) {
  memset(out, 0, sizeof *out);
  out->t_ms = t_ms;
  for (size_t i = 0; i < omniq_stats_count(st); i++) {
    const omniq_queue_info_t *q = omniq_stats_queue(st, i);
    for (int k = 0; k < OMNIQ_RUNS_KINDS; k++) out->runs[k] += omniq_queue_info_runs(q, k);
    for (int s = 0; s < OMNIQ_STATUS_COUNT; s++) out->counts[s] += omniq_queue_info_count(q, s);
  }
}

/* One sample; the lock is held on entry and on return, not during the call. */
static void sample(serve_sampler_t *s) {
  omniq_stats_t *st = NULL;
  s->started++;
  s->wanted = s->poked = 0;
  pthread_mutex_unlock(&s->lock);
  int64_t t0 = mono_ms();
  int rc = omniq_stats(s->oq, &st);
  int64_t cost = mono_ms() - t0, now = cli_now_ms();
  char error[sizeof s->error] = "";
  if (rc != OMNIQ_OK)
    snprintf(error, sizeof error, "%s: %s", omniq_strerror(rc), omniq_errmsg(s->oq));
  pthread_mutex_lock(&s->lock);
  s->ended++;
  pthread_cond_broadcast(&s->sampled);
  s->cost_ms = cost;
  memcpy(s->error, error, sizeof error);
  if (st == NULL) return; /* the last good sample stays, with the error beside it */
  omniq_stats_free(s->latest);
  s->latest = st;
  s->taken_ms = now;
  summarise(st, now, &s->ring[s->head]);
  s->head = (s->head + 1) % s->cap;
  if (s->n < s->cap) s->n++;
}

static void wait_until(serve_sampler_t *s, int64_t at_mono_ms) {
  struct timespec ts = {(time_t)(at_mono_ms / 1000), (long)(at_mono_ms % 1000) * 1000000L};
  pthread_cond_timedwait(&s->wake, &s->lock, &ts);
}

static void *sampler_main(void *arg) {
  serve_sampler_t *s = arg;
  pthread_mutex_lock(&s->lock);
  while (!s->stop) {
    int64_t done = mono_ms();
    int64_t floor = done + SERVE_SAMPLER_COST_FACTOR * s->cost_ms;
    int64_t next = done + s->interval_ms;
    if (next < floor) next = floor;
    /* Until it is time, a scrape wants one, or a poke once the cost bound
     * allows. */
    while (!s->stop && !s->wanted && mono_ms() < next && !(s->poked && mono_ms() >= floor))
      wait_until(s, s->poked ? floor : next);
    if (s->stop) break;
    sample(s);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

/* Frees a sampler whose thread is not running (never started, or joined). */
static void destroy(serve_sampler_t *s) {
  omniq_stats_free(s->latest);
  pthread_cond_destroy(&s->sampled);
  pthread_cond_destroy(&s->wake);
  pthread_mutex_destroy(&s->lock);
  free(s->ring);
  free(s);
}

serve_sampler_t *serve_sampler_start(omniq_t *oq, int64_t interval_ms, char *why, size_t whylen) {
  serve_sampler_t *s = calloc(1, sizeof *s);
  pthread_condattr_t ca;
  if (s == NULL) goto oom;
  s->oq = oq;
  s->interval_ms = interval_ms;
  /* An hour of samples, and one more so the oldest spans the whole hour. */
  s->cap = (size_t)(SERVE_WINDOW_MS / interval_ms) + 2;
  if ((s->ring = calloc(s->cap, sizeof *s->ring)) == NULL) goto oom;
  pthread_mutex_init(&s->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->wake, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&s->sampled, NULL);
  pthread_mutex_lock(&s->lock);
  sample(s); /* the page has numbers from its first request */
  pthread_mutex_unlock(&s->lock);
  int err = pthread_create(&s->thread, NULL, sampler_main, s);
  if (err == 0) return s;
  snprintf(why, whylen, "cannot start the sampler thread: %s", strerror(err));
  destroy(s);
  return NULL;
oom:
  if (s != NULL) free(s->ring);
  free(s);
  snprintf(why, whylen, "out of memory");
  return NULL;
}

void serve_sampler_stop(serve_sampler_t *s) {
  if (s == NULL) return;
  pthread_mutex_lock(&s->lock);
  s->stop = 1;
  pthread_cond_broadcast(&s->wake);
  pthread_cond_broadcast(&s->sampled);
  pthread_mutex_unlock(&s->lock);
  pthread_join(s->thread, NULL);
  destroy(s);
}

void serve_sampler_poke(serve_sampler_t *s) {
  pthread_mutex_lock(&s->lock);
  s->poked = 1;
  pthread_cond_broadcast(&s->wake);
  pthread_mutex_unlock(&s->lock);
}

void *serve_sampler_with_stats(serve_sampler_t *s, serve_stats_fn fn, void *arg) {
  pthread_mutex_lock(&s->lock);
  void *out = fn(s->latest, s->taken_ms, s->cost_ms, s->error, arg);
  pthread_mutex_unlock(&s->lock);
  return out;
}

void *serve_sampler_fresh(serve_sampler_t *s, serve_stats_fn fn, void *arg) {
  pthread_mutex_lock(&s->lock);
  uint64_t need = s->started + 1; /* one that starts from now on */
  s->wanted = 1;
  pthread_cond_broadcast(&s->wake);
  while (!s->stop && s->ended < need) pthread_cond_wait(&s->sampled, &s->lock);
  void *out = fn(s->latest, s->taken_ms, s->cost_ms, s->error, arg);
  pthread_mutex_unlock(&s->lock);
  return out;
}

long serve_sampler_series(serve_sampler_t *s, int64_t since_ms, serve_sample_t **out,
                          int64_t *interval_ms) {
  long n = 0;
  *out = NULL;
  *interval_ms = s->interval_ms;
  pthread_mutex_lock(&s->lock);
  if (s->n > 0 && (*out = malloc(s->n * sizeof **out)) == NULL) n = -1;
  for (size_t i = 0; n >= 0 && i < s->n; i++) {
    const serve_sample_t *x = &s->ring[(s->head + s->cap - s->n + i) % s->cap];
    if (x->t_ms >= since_ms) (*out)[n++] = *x;
  }
  pthread_mutex_unlock(&s->lock);
  if (n <= 0) {
    free(*out);
    *out = NULL;
  }
  return n;
}
