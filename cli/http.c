/* SPDX-License-Identifier: MIT */
/* omniq serve's HTTP layer: libmicrohttpd does the protocol; this file
 * binds the socket, puts every request through the same gate, hands it to
 * the routes (api.c) and sends what they fill in with the same headers.
 *
 * The gate, in order:
 *   1. Host. On a loopback address only the Host names of that address are
 *      accepted (127.0.0.1:PORT, localhost:PORT, [::1]:PORT): a page of
 *      another site whose DNS name was re-pointed at 127.0.0.1 (DNS
 *      rebinding) would otherwise be "same-origin" with us and could read
 *      the API. On other addresses any Host is accepted (docs/monitoring.md).
 *   2. Method: GET and HEAD read, POST acts; anything else is 405.
 *   3. For an action (the routes say which), http_action_allowed: the
 *      request must not come from another site's page (Sec-Fetch-Site,
 *      Origin), must carry no body, and must carry the token in the
 *      X-OmniQ-Token header. A form or a plain cross-site fetch cannot set
 *      that header, and a fetch that does would need a CORS preflight we
 *      never answer. The cross-site checks come first, so a leaked token
 *      used from another site's page is still refused.
 * No response carries a CORS header. Every one carries the security
 * headers below: a CSP that allows only our own script and style (the page
 * has no inline script or style), nosniff, no referrer, no framing.
 *
 * Threads: libmicrohttpd's own pool of HTTP_THREADS runs the requests;
 * routes call the library, whose handle is thread-safe. http_stop returns
 * once every request in flight has ended. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_THREADS 4
#define HTTP_MAX_CONNECTIONS 64
#define HTTP_IDLE_TIMEOUT_S 30

static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct http_server {
  struct MHD_Daemon *daemon;
  serve_t *sv;
};

/* ---- the request ---------------------------------------------------------- */

const char *http_arg(const http_req_t *rq, const char *name) {
  return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
  int (*fn)(void *, const char *, const char *);
  void *arg;
  int rc;
} each_t;

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value) {
  each_t *e = cls;
  e->rc = e->fn(e->arg, key, value);
  return e->rc == 0 ? MHD_YES : MHD_NO;
}

int http_args_each(const http_req_t *rq, int (*fn)(void *arg, const char *key, const char *value),
                   void *arg) {
  each_t e = {fn, arg, 0};
  MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, each_arg, &e);
  return e.rc;
}

static const char *header(const http_req_t *rq, const char *name) {
  return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* Compares every byte whatever differs first, so the time taken does not
 * say how much of a guess was right. */
static int same_secret(const char *given, const char *token) {
  size_t a = strlen(given), b = strlen(token);
  unsigned diff = (unsigned)(a ^ b);
  for (size_t i = 0; i < b; i++) diff |= (unsigned char)token[i] ^ (unsigned char)given[i < a ? i : 0];
  return diff == 0 && a > 0;
}

unsigned http_action_allowed(const serve_t *sv, const http_req_t *rq, const char *why[1]) {
  const char *site = header(rq, "Sec-Fetch-Site"), *origin = header(rq, "Origin");
  const char *host = header(rq, MHD_HTTP_HEADER_HOST), *token = header(rq, SERVE_TOKEN_HEADER);
  if (sv->token[0] == '\0') {
    *why = "this server is read-only (started with --read-only): it takes no actions";
    return MHD_HTTP_FORBIDDEN;
  }
  if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0) {
    *why = "cross-site request refused (Sec-Fetch-Site)";
    return MHD_HTTP_FORBIDDEN;
  }
  if (origin != NULL && (host == NULL || strncmp(origin, "http://", 7) != 0 ||
                         strcasecmp(origin + 7, host) != 0)) {
    *why = "cross-origin request refused (Origin)";
    return MHD_HTTP_FORBIDDEN;
  }
  if (rq->body_bytes > 0) {
    *why = "an action takes no request body";
    return MHD_HTTP_CONTENT_TOO_LARGE;
  }
  if (token == NULL || !same_secret(token, sv->token)) {
    *why = token == NULL ? "an action needs the token in the " SERVE_TOKEN_HEADER " header"
                         : "wrong token";
    return MHD_HTTP_FORBIDDEN;
  }
  return 0;
}

/* ---- replies ------------------------------------------------------------------ */

void http_reply_json(http_reply_t *r, unsigned status, json_t *j) {
  char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(j);
  r->type = "application/json";
  if (text == NULL) {
    static const char oom[] = "{\"error\":\"out of memory\"}";
    r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    r->static_body = oom;
    r->len = sizeof oom - 1;
    return;
  }
  r->status = status;
  r->body = text;
  r->len = strlen(text);
}

void http_reply_error(http_reply_t *r, unsigned status, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* json_string refuses text that is not UTF-8 (a bad byte a client sent
   * us, echoed in the message): say so rather than lose the reply. */
  json_t *s = json_string(msg);
  http_reply_json(r, status, json_pack("{s:o}", "error", s ? s : json_string("bad input")));
}

static void add_headers(struct MHD_Response *resp, const http_reply_t *r) {
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_SECURITY_POLICY, csp);
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(resp, "X-Frame-Options", "DENY");
  MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
  MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                          r->cacheable ? "no-cache" : "no-store");
  if (r->allow != NULL) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, http_reply_t *r) {
  struct MHD_Response *resp;
  if (r->body != NULL)
    resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
  else
    resp = MHD_create_response_from_buffer(r->len, (void *)r->static_body,
                                           MHD_RESPMEM_PERSISTENT);
  if (resp == NULL) {
    free(r->body);
    return MHD_NO; /* out of memory: libmicrohttpd closes the connection */
  }
  add_headers(resp, r);
  enum MHD_Result ok = MHD_queue_response(conn, r->status, resp);
  MHD_destroy_response(resp);
  return ok;
}

/* ---- the gate ------------------------------------------------------------------ */

static int host_allowed(const serve_t *sv, const char *host) {
  if (sv->nhosts == 0) return 1;
  if (host == NULL) return 0;
  for (int i = 0; i < sv->nhosts; i++)
    if (strcasecmp(host, sv->hosts[i]) == 0) return 1;
  return 0;
}

/* Markers for *con_cls between libmicrohttpd's calls for one request: the
 * headers were seen; a body arrived too. No allocation, nothing to free. */
static char seen_headers, seen_body;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
  serve_t *sv = cls;
  http_reply_t r = {.status = MHD_HTTP_OK, .type = "text/plain; charset=utf-8"};
  if (*con_cls == NULL) { /* headers only: say we want the rest */
    *con_cls = &seen_headers;
    return MHD_YES;
  }
  if (*upload_size > 0) { /* body bytes are counted, never kept */
    *con_cls = &seen_body;
    *upload_size = 0;
    return MHD_YES;
  }
  http_req_t rq = {conn, method, url, *con_cls == &seen_body ? 1u : 0u};
  if (!host_allowed(sv, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_HOST))) {
    http_reply_error(&r, MHD_HTTP_FORBIDDEN,
                     "Host header not allowed: ask for this server by its own address");
  } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
             strcmp(method, "POST") != 0) {
    http_reply_error(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed", method);
    r.allow = "GET, HEAD, POST";
  } else {
    serve_api_dispatch(sv, &rq, &r);
  }
  return send_reply(conn, &r);
}

static void on_log(void *cls, const char *fmt, va_list ap) {
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  msg[strcspn(msg, "\n")] = '\0';
  fprintf(stderr, "omniq serve: http: %s\n", msg);
}

/* ---- listening ----------------------------------------------------------------- */

int http_listen_parse(const char *where, char *host, size_t hostlen, unsigned *port, char *why,
                      size_t whylen) {
  const char *colon = strrchr(where, ':');
  const char *h = where;
  size_t n;
  char *end;
  if (colon == NULL) {
    snprintf(why, whylen, "'%.100s' is not HOST:PORT", where);
    return -1;
  }
  n = (size_t)(colon - where);
  if (n >= 2 && h[0] == '[' && h[n - 1] == ']') { /* [IPv6] */
    h++;
    n -= 2;
  }
  unsigned long p = strtoul(colon + 1, &end, 10);
  if (colon[1] == '\0' || *end != '\0' || p > 65535 || colon[1] == '-' || colon[1] == '+') {
    snprintf(why, whylen, "'%.100s': the port must be a number from 0 to 65535", where);
    return -1;
  }
  if (n == 0 || n >= hostlen) {
    snprintf(why, whylen, "'%.100s': the host is missing or too long", where);
    return -1;
  }
  memcpy(host, h, n);
  host[n] = '\0';
  if (strcmp(host, "localhost") == 0) snprintf(host, hostlen, "127.0.0.1");
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) != 1 && inet_pton(AF_INET6, host, &a6) != 1) {
    snprintf(why, whylen, "'%.100s': the host must be an IP address or localhost", where);
    return -1;
  }
  *port = (unsigned)p;
  return 0;
}

/* The Host headers a loopback listen accepts: its own address, and the
 * loopback names a browser may use for it (no port for port 80). */
static void allow_hosts(serve_t *sv, const char *host, int v6, unsigned port, int loopback) {
  char p[16] = "";
  if (port != 80) snprintf(p, sizeof p, ":%u", port);
  snprintf(sv->hosts[0], sizeof sv->hosts[0], v6 ? "[%s]%s" : "%s%s", host, p);
  snprintf(sv->hosts[1], sizeof sv->hosts[1], "localhost%s", p);
  snprintf(sv->hosts[2], sizeof sv->hosts[2], v6 ? "[::1]%s" : "127.0.0.1%s", p);
  sv->nhosts = loopback ? 3 : 0;
}

/* Binds and listens here rather than in libmicrohttpd, so that the port
 * (PORT 0 picks one) and the Host rule are known before any request can
 * be read. Returns the socket, or -1 with why. */
static int bind_socket(const char *where, const char *host, unsigned *port, int *v6,
                       int *loopback, char *why, size_t whylen) {
  struct sockaddr_storage ss;
  socklen_t len;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  int one = 1;
  memset(&ss, 0, sizeof ss);
  *v6 = inet_pton(AF_INET, host, &a4->sin_addr) != 1;
  if (!*v6) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)*port);
    *loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    len = sizeof *a4;
  } else {
    inet_pton(AF_INET6, host, &a6->sin6_addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)*port);
    *loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
    len = sizeof *a6;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      (*v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
      bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, HTTP_MAX_CONNECTIONS) != 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
    snprintf(why, whylen, "cannot listen on %s: %s", where, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(*v6 ? a6->sin6_port : a4->sin_port);
  return fd;
}

http_server_t *http_start(serve_t *sv, const char *where, char *url, size_t urllen,
                          int *loopback, char *why, size_t whylen) {
  char host[64];
  unsigned port;
  int v6;
  if (http_listen_parse(where, host, sizeof host, &port, why, whylen) != 0) return NULL;
  int fd = bind_socket(where, host, &port, &v6, loopback, why, whylen);
  if (fd < 0) return NULL;
  allow_hosts(sv, host, v6, port, *loopback);
  snprintf(url, urllen, "http://%s/", sv->hosts[0]);
  http_server_t *h = calloc(1, sizeof *h);
  if (h == NULL) {
    snprintf(why, whylen, "out of memory");
    close(fd);
    return NULL;
  }
  h->sv = sv;
  h->daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0),
      0, NULL, NULL, on_request, sv, MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
      MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)HTTP_IDLE_TIMEOUT_S, MHD_OPTION_END);
  if (h->daemon == NULL) {
    snprintf(why, whylen, "cannot start the HTTP server on %s", where);
    close(fd);
    free(h);
    return NULL;
  }
  return h;
}

void http_stop(http_server_t *h) {
  if (h == NULL) return;
  MHD_stop_daemon(h->daemon);
  free(h);
}
