/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: LISTEN/NOTIFY wake-ups across hosts (listen.c). */
#ifndef OMNIQ_PG_LISTEN_H
#define OMNIQ_PG_LISTEN_H

#include <stddef.h>

/* What a notification says happened. */
enum {
  OMNIQ__PG_EV_WORK = 1,   /* tasks became PENDING (enqueue, retry, re-arm) */
  OMNIQ__PG_EV_RESULT = 2, /* a result was stored */
  OMNIQ__PG_EV_LOST = 4,   /* the listener's connection died */
};

/* Called from the listener's thread with a mask of OMNIQ__PG_EV_*; after
 * a reconnect with both bits, since notifications sent meanwhile are lost;
 * with OMNIQ__PG_EV_LOST when the listener's connection died (the server
 * restarted or the network dropped), so the backend can stop trusting its
 * other idle connections. Must be quick. */
typedef void (*omniq__pg_wake_fn)(void *userdata, int events);

typedef struct omniq__pg_listener omniq__pg_listener_t;

/* The channel names for schema: "<schema>_work" and "<schema>_result". */
void omniq__pg_channel(const char *schema, int event, char *out, size_t outlen);

/* Connects, LISTENs on the schema's two channels and returns once they are
 * in place, so anything committed afterwards wakes fn. A thread then waits
 * for notifications and reconnects with backoff when the connection drops.
 * On OMNIQ_OK *out is yours: omniq__pg_listener_stop. */
int omniq__pg_listener_start(const char *conninfo, const char *schema, omniq__pg_wake_fn fn,
                             void *userdata, omniq__pg_listener_t **out, char *err,
                             size_t errlen);
/* Stops the thread and closes the connection. NULL is a no-op. */
void omniq__pg_listener_stop(omniq__pg_listener_t *l);

#endif
