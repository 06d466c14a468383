/* SPDX-License-Identifier: MIT */
/* The worker's display.
 *
 * On a terminal, one line redrawn in place ("\r" + clear to end of line):
 *
 *   running 2  pending 15  done 120  failed 3  retried 1  4.2/s
 *
 * running and pending are the store's counts (omniq_count_by_status, every
 * queue, every worker), read by the caller once per tick; done, failed and
 * retried count the runs this worker finished, and the rate is their sum
 * per second over the last RATE_WINDOW ticks. Log lines that are shown
 * (warnings by default) are printed above the line, which is then redrawn.
 * On a pipe there is no live line; the library's log lines are printed as
 * they come, so a service manager or a file gets one line per event.
 *
 * Counting uses the library's own events, received through the log sink
 * (settings.log_fn): "task.succeeded", "task.failed", "task.retry" are
 * logged by the queue engine once per finished run in the process that ran
 * it (docs/workers.md lists them). The sink gets every INFO line so it can
 * count, and prints only those at or above show_level. The event is the
 * third word of a text line, or the "event" member of a JSON line.
 *
 * Threads: the sink runs on library threads, several at once; the ticks run
 * on the worker's main thread. Counters are atomics; everything written to
 * stderr is written under `lock`, so a log line never lands in the middle
 * of the live line. */
#include "progress.h"

#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define RATE_WINDOW 10 /* ticks the rate is measured over */
#define EVENT_MAX 64

struct cli_progress {
  int tty, show_level, log_format;
  atomic_long done, failed, retried;
  pthread_mutex_t lock;
  char line[512]; /* the live line as last drawn; "" = none on screen */
  /* (time, runs finished) at recent ticks, for the rate */
  int64_t t[RATE_WINDOW];
  long runs[RATE_WINDOW];
  int nsamples, next;
};

cli_progress_t *cli_progress_new(int tty, int show_level, int log_format) {
  cli_progress_t *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  if (pthread_mutex_init(&p->lock, NULL) != 0) {
    free(p);
    return NULL;
  }
  p->tty = tty;
  p->show_level = show_level;
  p->log_format = log_format;
  return p;
}

void cli_progress_free(cli_progress_t *p) {
  if (p == NULL) return;
  pthread_mutex_destroy(&p->lock);
  free(p);
}

/* ---- counting ----------------------------------------------------------------- */

/* Copies the line's event name into ev (EVENT_MAX bytes); "" if none. */
static void event_of(const char *line, int format, char ev[EVENT_MAX]) {
  const char *s = line;
  size_t n = 0;
  if (format == OMNIQ_LOG_JSON) {
    s = strstr(line, "\"event\":\"");
    if (s != NULL) {
      s += strlen("\"event\":\"");
      n = strcspn(s, "\"");
    }
  } else {
    /* "2026-11-26T09:07:24.123Z INFO task.enqueued id=..." */
    for (int word = 0; word < 2 && s != NULL; word++) {
      s = strchr(s, ' ');
      if (s != NULL) s++;
    }
    if (s != NULL) n = strcspn(s, " ");
  }
  if (s == NULL || n >= EVENT_MAX) n = 0;
  memcpy(ev, s != NULL ? s : "", n);
  ev[n] = '\0';
}

/* ---- drawing (under lock) ------------------------------------------------------- */

static void clear_line(cli_progress_t *p) {
  if (p->tty && p->line[0] != '\0') fputs("\r\033[K", stderr);
}

static void draw_line(cli_progress_t *p) {
  if (p->tty && p->line[0] != '\0') fputs(p->line, stderr);
  fflush(stderr);
}

static void print_above(cli_progress_t *p, const char *text) {
  pthread_mutex_lock(&p->lock);
  clear_line(p);
  fputs(text, stderr);
  fputc('\n', stderr);
  draw_line(p);
  pthread_mutex_unlock(&p->lock);
}

void cli_progress_log(void *userdata, int level, const char *line) {
  cli_progress_t *p = userdata;
  char ev[EVENT_MAX];
  event_of(line, p->log_format, ev);
  if (strcmp(ev, "task.succeeded") == 0)
    atomic_fetch_add(&p->done, 1);
  else if (strcmp(ev, "task.failed") == 0)
    atomic_fetch_add(&p->failed, 1);
  else if (strcmp(ev, "task.retry") == 0)
    atomic_fetch_add(&p->retried, 1);
  if (level >= p->show_level) print_above(p, line);
}

void cli_progress_say(cli_progress_t *p, const char *msg) { print_above(p, msg); }

static double rate(cli_progress_t *p, int64_t now, long runs) {
  int oldest = p->nsamples < RATE_WINDOW ? 0 : p->next;
  double rps = 0;
  if (p->nsamples > 0 && now > p->t[oldest])
    rps = (double)(runs - p->runs[oldest]) * 1000.0 / (double)(now - p->t[oldest]);
  p->t[p->next] = now;
  p->runs[p->next] = runs;
  p->next = (p->next + 1) % RATE_WINDOW;
  if (p->nsamples < RATE_WINDOW) p->nsamples++;
  return rps;
}

void cli_progress_tick(cli_progress_t *p, const int64_t counts[OMNIQ_STATUS_COUNT],
                       const char *note, int64_t now_ms) {
  char text[sizeof p->line];
  size_t n = 0;
  long done = atomic_load(&p->done), failed = atomic_load(&p->failed),
       retried = atomic_load(&p->retried);
  double rps = rate(p, now_ms, done + failed + retried);
  if (!p->tty) return;
  if (counts != NULL)
    n += (size_t)snprintf(text + n, sizeof text - n, "running %lld  pending %lld  ",
                          (long long)counts[OMNIQ_RUNNING], (long long)counts[OMNIQ_PENDING]);
  n += (size_t)snprintf(text + n, sizeof text - n, "done %ld  failed %ld  retried %ld  %.1f/s",
                        done, failed, retried, rps);
  if (note != NULL && n < sizeof text)
    snprintf(text + n, sizeof text - n, "  (%s)", note);
  /* One line only: a line wider than the terminal would wrap, and "\r"
   * would then redraw just its last row. */
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && ws.ws_col <= sizeof text)
    text[ws.ws_col - 1] = '\0';
  pthread_mutex_lock(&p->lock);
  clear_line(p);
  memcpy(p->line, text, sizeof text);
  draw_line(p);
  pthread_mutex_unlock(&p->lock);
}

void cli_progress_end(cli_progress_t *p) {
  pthread_mutex_lock(&p->lock);
  if (p->tty && p->line[0] != '\0') fputc('\n', stderr);
  p->line[0] = '\0';
  fflush(stderr);
  pthread_mutex_unlock(&p->lock);
}
