/* SPDX-License-Identifier: MIT */
/* omniq serve's HTTP layer (http.c, on libmicrohttpd): one request as the
 * routes (api.c) see it, the reply they fill in, and the checks an action
 * must pass. */
#ifndef OMNIQ_CLI_HTTP_H
#define OMNIQ_CLI_HTTP_H

#include <stddef.h>

#include "serve.h"

struct MHD_Connection;

typedef struct http_req {
  struct MHD_Connection *conn;
  const char *method; /* "GET", "HEAD" or "POST": http.c refuses the others */
  const char *path;   /* decoded, without the query */
  size_t body_bytes;  /* bytes of body received (actions take none) */
} http_req_t;

typedef struct http_reply {
  unsigned status;
  const char *type;        /* Content-Type */
  char *body;              /* malloc'd, freed by http.c; or NULL and: */
  const void *static_body; /* borrowed for the life of the process */
  size_t len;
  const char *allow;       /* the Allow header of a 405 */
  int cacheable;           /* an embedded asset; everything else is no-store */
} http_reply_t;

/* The value of query parameter name, or NULL. */
const char *http_arg(const http_req_t *rq, const char *name);
/* Calls fn for every query parameter (value NULL for "?a"), stopping at
 * the first that returns non-zero; returns that value, or 0. */
int http_args_each(const http_req_t *rq, int (*fn)(void *arg, const char *key, const char *value),
                   void *arg);

/* May this request run an action? No when the page it came from is another
 * site's (Sec-Fetch-Site, Origin), when it carries a body, or when its
 * token header is missing or wrong, or the server is read-only. Returns 0,
 * or the status to refuse with (403, 413) and the reason in why. */
unsigned http_action_allowed(const serve_t *sv, const http_req_t *rq, const char *why[1]);

/* Fills r with a JSON body (j is consumed: json_decref'd here) and status.
 * Out of memory becomes a 500. */
struct json_t;
void http_reply_json(http_reply_t *r, unsigned status, struct json_t *j);
/* {"error": message} with status. */
void http_reply_error(http_reply_t *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The routes (api.c): fills r for rq. */
void serve_api_dispatch(serve_t *sv, const http_req_t *rq, http_reply_t *r);

typedef struct http_server http_server_t;

/* Listens on where ("HOST:PORT", HOST an IPv4 address, [IPv6] or
 * "localhost"; PORT 0 picks a free one) and serves sv from a small thread
 * pool. Fills sv->hosts (the Host headers accepted: on a loopback address,
 * its own names only; elsewhere any), url with the server's address, and
 * *loopback. NULL on failure, with the reason in why. */
http_server_t *http_start(serve_t *sv, const char *where, char *url, size_t urllen,
                          int *loopback, char *why, size_t whylen);
/* Stops listening, waits for the requests in flight, frees. NULL is fine. */
void http_stop(http_server_t *h);

/* Checks a --listen value without binding: 0, or -1 with why. */
int http_listen_parse(const char *where, char *host, size_t hostlen, unsigned *port,
                      char *why, size_t whylen);

#endif
