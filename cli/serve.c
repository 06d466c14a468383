/* SPDX-License-Identifier: MIT */
/* omniq serve: Prometheus metrics, a JSON API and a dashboard page for the
 * store, on one HTTP port (docs/monitoring.md).
 *
 * Start, in order: options; the action token (OMNIQ_DASHBOARD_TOKEN, or 32
 * random bytes printed once, or none with --read-only); signals blocked in
 * every thread to come; the store, twice (serve.h says why); the sampler (its first sample is taken
 * before anything listens, so the first page already has numbers); the
 * optional pool (--worker); the HTTP server. Then the main thread waits for
 * SIGINT or SIGTERM and stops in the reverse order: no request is in flight
 * when the sampler stops, and no run is when the handle closes (omniq_close
 * waits for runs a pool stop gave up on), so the pool is freed last.
 *
 * What it prints on stdout, once listening, is for people and for tests:
 *   omniq serve: listening on http://127.0.0.1:8080/
 *   omniq serve: action token: <hex> (open http://127.0.0.1:8080/#token=<hex>)
 * The page reads the token from the URL's fragment, which never reaches
 * the server or its logs, keeps it for the tab (sessionStorage) and removes
 * it from the address bar. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cli.h"
#include "http.h"
#include "serve.h"

enum { OPT_LISTEN = CLI_OPT_FIRST_FREE, OPT_READ_ONLY, OPT_SHOW_ARGS, OPT_SAMPLE, OPT_WORKER };

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"read-only", no_argument, NULL, OPT_READ_ONLY},
    {"show-args", no_argument, NULL, OPT_SHOW_ARGS},
    {"sample", required_argument, NULL, OPT_SAMPLE},
    {"worker", required_argument, NULL, OPT_WORKER},
    {"queues", required_argument, NULL, 'q'},
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0}};

typedef struct {
  const char *listen;
  int read_only, show_args;
  int64_t sample_ms;
  omniq_worker_opts_t pool;
  char queue_buf[CLI_QUEUES_BUF];
  int queues_given;
} serve_opts_t;

static int parse(cli_t *cli, int argc, char **argv, serve_opts_t *o) {
  char host[64], why[200];
  unsigned port;
  long n;
  int c;
  while ((c = cli_getopt(cli, &cli_cmd_serve, argc, argv, ":q:", options)) != -1) {
    switch (c) {
    case OPT_LISTEN:
      if (http_listen_parse(optarg, host, sizeof host, &port, why, sizeof why) != 0) {
        cli->exit_code = cli_usage(cli, "--listen: %s", why);
        return -1;
      }
      o->listen = optarg;
      break;
    case OPT_READ_ONLY:
      o->read_only = 1;
      break;
    case OPT_SHOW_ARGS:
      o->show_args = 1;
      break;
    case OPT_SAMPLE:
      if (cli_opt_duration(cli, "--sample", optarg, &o->sample_ms)) return -1;
      if (o->sample_ms < SERVE_MIN_SAMPLE_MS || o->sample_ms > SERVE_MAX_SAMPLE_MS) {
        cli->exit_code = cli_usage(cli, "--sample: must be from 1s to 5m");
        return -1;
      }
      break;
    case OPT_WORKER:
      if (cli_opt_int(cli, "--worker", optarg, 0, 1024, &n)) return -1;
      o->pool.concurrency = (int)n;
      break;
    case 'q':
      if ((cli->exit_code = cli_opt_queues(cli, optarg, o->queue_buf, o->pool.queues)) !=
          CLI_EXIT_OK)
        return -1;
      o->queues_given = 1;
      break;
    default:
      return -1;
    }
  }
  if (optind < argc) {
    cli->exit_code = cli_usage(cli, "unexpected argument '%s'", argv[optind]);
    return -1;
  }
  if (o->queues_given && o->pool.concurrency == 0) {
    cli->exit_code = cli_usage(cli, "--queues goes with --worker N");
    return -1;
  }
  return 0;
}

/* ---- the token ------------------------------------------------------------------ */

static int token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         strchr("-._~+/=", c) != NULL;
}

/* Fills sv->token; *generated says whether it must be printed. */
static int make_token(cli_t *cli, serve_t *sv, int read_only, int *generated) {
  const char *env = getenv(SERVE_TOKEN_ENV);
  unsigned char raw[32];
  *generated = 0;
  if (read_only) return CLI_EXIT_OK;
  if (env != NULL && env[0] != '\0') {
    size_t n = strlen(env);
    for (size_t i = 0; i < n; i++)
      if (!token_char(env[i])) n = 0;
    if (n < SERVE_TOKEN_MIN || n > SERVE_TOKEN_MAX)
      return cli_usage(cli, SERVE_TOKEN_ENV ": must be %d-%d characters of A-Z a-z 0-9 - . _ ~ + / =",
                       SERVE_TOKEN_MIN, SERVE_TOKEN_MAX);
    memcpy(sv->token, env, n + 1);
    return CLI_EXIT_OK;
  }
  if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
    return cli_error(cli, CLI_EXIT_STORAGE, "cannot read random bytes for the token");
  for (size_t i = 0; i < sizeof raw; i++) snprintf(sv->token + 2 * i, 3, "%02x", raw[i]);
  *generated = 1;
  return CLI_EXIT_OK;
}

/* ---- running ---------------------------------------------------------------------- */

static int announce(const serve_t *sv, const char *url, int loopback, int generated) {
  printf("omniq serve: listening on %s\n", url);
  if (sv->token[0] == '\0')
    printf("omniq serve: read-only: every action is refused\n");
  else if (generated)
    printf("omniq serve: action token: %s (open %s#token=%s)\n", sv->token, url, sv->token);
  else
    printf("omniq serve: actions take the token in " SERVE_TOKEN_ENV "\n");
  if (!loopback)
    printf("omniq serve: warning: not a loopback address: whoever reaches it can read the "
           "queue; actions still need the token\n");
  return fflush(stdout);
}

static void wait_for_signal(const sigset_t *set) {
  int sig = 0;
  while (sig != SIGINT && sig != SIGTERM) sigwait(set, &sig);
}

static int serve(cli_t *cli, serve_t *sv, const serve_opts_t *o, int generated,
                 const sigset_t *set) {
  char why[300], url[128];
  int loopback, code = CLI_EXIT_OK;
  serve_pool_t *pool = NULL;
  http_server_t *http = NULL;

  sv->sampler = serve_sampler_start(sv->stats_oq, sv->sample_ms, why, sizeof why);
  if (sv->sampler == NULL) return cli_error(cli, CLI_EXIT_STORAGE, "%s", why);
  if (o->pool.concurrency > 0) {
    if ((pool = serve_pool_start(sv->oq, &o->pool, why, sizeof why)) == NULL)
      code = cli_error(cli, CLI_EXIT_STORAGE, "%s", why);
    sv->runs = serve_pool_runs(pool);
  }
  if (code == CLI_EXIT_OK &&
      (http = http_start(sv, o->listen, url, sizeof url, &loopback, why, sizeof why)) == NULL)
    code = cli_error(cli, CLI_EXIT_FAILED, "%s", why);
  if (code == CLI_EXIT_OK) {
    if (announce(sv, url, loopback, generated) != 0)
      code = cli_error(cli, CLI_EXIT_FAILED, "cannot write to stdout");
    else
      wait_for_signal(set);
  }
  http_stop(http);
  serve_sampler_stop(sv->sampler);
  if (serve_pool_stop(pool) == OMNIQ_ETIMEDOUT && code == CLI_EXIT_OK)
    code = cli_error(cli, CLI_EXIT_FAILED,
                     "tasks still running after the shutdown timeout were left to their lease");
  omniq_close(sv->oq);
  omniq_close(sv->stats_oq);
  serve_pool_free(pool);
  return code;
}

static int run(cli_t *cli, int argc, char **argv) {
  serve_opts_t o;
  serve_t sv;
  omniq_settings_t s;
  sigset_t set;
  int code, generated;

  memset(&o, 0, sizeof o);
  memset(&sv, 0, sizeof sv);
  o.listen = SERVE_DEFAULT_LISTEN;
  o.sample_ms = SERVE_DEFAULT_SAMPLE_MS;
  omniq_worker_opts_init(&o.pool);
  o.pool.concurrency = 0;
  if (parse(cli, argc, argv, &o) != 0) return cli->exit_code;
  sv.show_args = o.show_args;
  sv.sample_ms = o.sample_ms;
  if ((code = make_token(cli, &sv, o.read_only, &generated)) != CLI_EXIT_OK) return code;
  /* Only a pool's lifecycle lines are worth a serve's stderr by default. */
  if ((code = cli_settings(cli, &s, o.pool.concurrency == 0)) != CLI_EXIT_OK) return code;

  cli_block_stop_signals(&set, 0);

  int rc = omniq_open(&sv.oq, &s);
  if (rc == OMNIQ_OK && (rc = omniq_open(&sv.stats_oq, &s)) != OMNIQ_OK) omniq_close(sv.oq);
  if (rc != OMNIQ_OK)
    return cli_error(cli, rc == OMNIQ_ECONFIG || rc == OMNIQ_EINVAL ? CLI_EXIT_USAGE
                                                                    : CLI_EXIT_STORAGE,
                     "cannot open the store: %s", omniq_errmsg(NULL));
  return serve(cli, &sv, &o, generated, &set);
}

const cli_command_t cli_cmd_serve = {
    "serve",
    "[OPTIONS]",
    "Serve Prometheus metrics, a JSON API and a dashboard page over HTTP.",
    "  --listen HOST:PORT    where to listen (default " SERVE_DEFAULT_LISTEN "; PORT 0 = any\n"
    "                        free port); HOST is an IP address or localhost\n"
    "  --read-only           refuse every action, even with a token\n"
    "  --show-args           show task args, kwargs and result values (they may hold\n"
    "                        secrets: off by default)\n"
    "  --sample DURATION     how often the page's counts are taken (default "
    CLI_STR(SERVE_DEFAULT_SAMPLE_MS) "ms; 1s-5m)\n"
    "  --worker N            also run N threads of command tasks in this process, which\n"
    "                        adds run-duration histograms to /metrics (default 0)\n"
    "  -q, --queues A,B      with --worker: the queues to take tasks from (default: "
    OMNIQ_DEFAULT_QUEUE ")\n"
    "Actions (retry, cancel, delete, pause, resume) need the token in " SERVE_TOKEN_ENV ",\n"
    "or the one printed at start.\n",
    0,
    run};
