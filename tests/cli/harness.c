/* SPDX-License-Identifier: MIT */
/* The CLI test harness: see harness.h. Each run is fork + exec of the built
 * binary (OMNIQ_CLI_BIN) with its working directory set to the test's
 * fresh directory and stdout/stderr on pipes, read with poll until both
 * close, so a chatty command never blocks on a full pipe. */
#include "harness.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../cli/duration.h"
#include "support/helpers.h"

#define MAX_ARGS 64
#define POLL_STEP_MS 10

const char *cli_backend_arg(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "file") == 0) return "file";
  if (argc > 1 && strcmp(argv[1], "postgres") == 0) return "postgres";
  return "sqlite";
}

/* 1 if pid is alive with dir as its working directory: one of this test's
 * commands, not a process that got the pid since. */
static int runs_in(pid_t pid, const char *dir) {
  char link[64], cwd[2048];
  snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
  ssize_t n = readlink(link, cwd, sizeof cwd - 1);
  if (n < 0) return 0;
  cwd[n] = '\0';
  return strcmp(cwd, dir) == 0;
}

int cli_setup(void **state) {
  cli_env_t *env = calloc(1, sizeof *env);
  char data[1100];
  if (env == NULL) return -1;
  env->backend = *state != NULL ? *state : "sqlite";
  env->dir = th_tmpdir();
  if (env->dir == NULL) {
    free(env);
    return -1;
  }
  snprintf(data, sizeof data, "%s/data", env->dir);
  setenv("OMNIQ_BACKEND", env->backend, 1);
  setenv("OMNIQ_BASE_DIR", data, 1);
  /* Retries come due in milliseconds; file-backend writes skip fsync. */
  setenv("OMNIQ_RETRY_BASE", "0.01", 1);
  setenv("OMNIQ_RETRY_CAP", "0.05", 1);
  setenv("OMNIQ_FSYNC", "0", 1);
  if (strcmp(env->backend, "postgres") == 0) {
    /* The server OMNIQ_DB_URL names (the ctest fixture's cluster); a fresh
     * store is a schema of its own, named after the test's directory. */
    char schema[64];
    const char *base = strrchr(env->dir, '/');
    if (getenv("OMNIQ_DB_URL") == NULL) {
      fprintf(stderr, "postgres: OMNIQ_DB_URL is not set (run under the test cluster)\n");
      th_rmtree(env->dir);
      free(env);
      return -1;
    }
    snprintf(schema, sizeof schema, "cli_%s", base != NULL ? base + 1 : env->dir);
    for (char *c = schema; *c; c++)
      *c = isalnum((unsigned char)*c) ? (char)tolower((unsigned char)*c) : '_';
    setenv("OMNIQ_DB_SCHEMA", schema, 1);
  } else {
    unsetenv("OMNIQ_DB_URL");
  }
  unsetenv("OMNIQ_LOG_LEVEL");
  unsetenv("OMNIQ_LEASE");
  *state = env;
  return 0;
}

int cli_teardown(void **state) {
  cli_env_t *env = *state;
  pid_t pids[16];
  for (int i = 0; i < CLI_MAX_STARTED; i++)
    if (env->started[i] > 0) {
      kill(env->started[i], SIGKILL);
      waitpid(env->started[i], NULL, 0);
    }
  for (int i = 0, n = cli_read_pids(env, "pids", pids, 16); i < n; i++)
    if (runs_in(pids[i], env->dir)) kill(pids[i], SIGKILL);
  th_rmtree(env->dir);
  free(env);
  return 0;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cli_now(void) { return cli_now_ms(); }

int64_t cli_time(const char *rfc3339) {
  int64_t ms = 0;
  char why[200];
  if (rfc3339 == NULL || cli_parse_time(rfc3339, &ms, why, sizeof why) != 0)
    fail_msg("not an RFC 3339 time: %s", rfc3339 ? rfc3339 : "(null)");
  return ms;
}

/* ---- running ------------------------------------------------------------------ */

static void append(char **buf, size_t *len, const char *data, size_t n) {
  char *grown = realloc(*buf, *len + n + 1);
  assert_non_null(grown);
  memcpy(grown + *len, data, n);
  *len += n;
  grown[*len] = '\0';
  *buf = grown;
}

static int exit_code(int st) {
  return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static void __attribute__((noreturn)) exec_omniq(const cli_env_t *env, char *const *argv) {
  char *args[MAX_ARGS + 2];
  int n = 0;
  args[n++] = (char *)OMNIQ_CLI_BIN;
  for (; argv[n - 1] != NULL && n <= MAX_ARGS; n++) args[n] = argv[n - 1];
  args[n] = NULL;
  if (chdir(env->dir) != 0) _exit(126);
  execv(OMNIQ_CLI_BIN, args);
  _exit(127);
}

cli_out_t cli_runv(const cli_env_t *env, char *const *argv) {
  cli_out_t o = {-1, NULL, NULL};
  size_t outlen = 0, errlen = 0;
  int outp[2], errp[2];
  assert_int_equal(pipe2(outp, O_CLOEXEC), 0);
  assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(outp[1], 1);
    dup2(errp[1], 2);
    exec_omniq(env, argv);
  }
  close(outp[1]);
  close(errp[1]);
  append(&o.out, &outlen, "", 0);
  append(&o.err, &errlen, "", 0);
  int64_t deadline = mono_ms() + CLI_DEADLINE_MS;
  struct pollfd pf[2] = {{.fd = outp[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
  while (pf[0].fd >= 0 || pf[1].fd >= 0) {
    int64_t left = deadline - mono_ms();
    if (left <= 0 || (poll(pf, 2, (int)left) < 0 && errno != EINTR)) {
      int saved = errno;
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0) close(pf[i].fd);
      cli_out_free(&o); /* fail_msg does not return: nothing else would free it */
      if (left > 0) fail_msg("poll: %s", strerror(saved));
      fail_msg("omniq %s did not finish within %d ms", argv[0], CLI_DEADLINE_MS);
    }
    for (int i = 0; i < 2; i++) {
      if (pf[i].fd < 0 || pf[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = read(pf[i].fd, buf, sizeof buf);
      if (n > 0) {
        append(i == 0 ? &o.out : &o.err, i == 0 ? &outlen : &errlen, buf, (size_t)n);
      } else if (n == 0 || errno != EINTR) {
        close(pf[i].fd);
        pf[i].fd = -1;
      }
    }
  }
  int st;
  while (waitpid(pid, &st, 0) < 0) assert_int_equal(errno, EINTR);
  o.status = exit_code(st);
  return o;
}

static void collect(char **args, const char *first, va_list ap) {
  int n = 0;
  for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
    assert_true(n < MAX_ARGS);
    args[n++] = (char *)a;
  }
  args[n] = NULL;
}

cli_out_t cli_run(const cli_env_t *env, const char *arg, ...) {
  char *args[MAX_ARGS + 1];
  va_list ap;
  va_start(ap, arg);
  collect(args, arg, ap);
  va_end(ap);
  return cli_runv(env, args);
}

void cli_out_free(cli_out_t *o) {
  free(o->out);
  free(o->err);
  o->out = o->err = NULL;
}

pid_t cli_start(cli_env_t *env, const char *log, const char *arg, ...) {
  char *args[MAX_ARGS + 1];
  va_list ap;
  va_start(ap, arg);
  collect(args, arg, ap);
  va_end(ap);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (chdir(env->dir) != 0) _exit(126);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) _exit(126);
    dup2(fd, 1);
    dup2(fd, 2);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    exec_omniq(env, args);
  }
  for (int i = 0; i < CLI_MAX_STARTED; i++)
    if (env->started[i] == 0) {
      env->started[i] = pid;
      break;
    }
  return pid;
}

int cli_stop(cli_env_t *env, pid_t pid, int sig) {
  int st;
  if (sig != 0) kill(pid, sig);
  int64_t deadline = mono_ms() + CLI_DEADLINE_MS;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      for (int i = 0; i < CLI_MAX_STARTED; i++)
        if (env->started[i] == pid) env->started[i] = 0;
      return exit_code(st);
    }
    assert_int_equal(r, 0);
    if (mono_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      fail_msg("process %d did not exit within %d ms", (int)pid, CLI_DEADLINE_MS);
    }
    struct timespec step = {0, POLL_STEP_MS * 1000000L};
    nanosleep(&step, NULL);
  }
}

pid_t cli_start_worker(cli_env_t *env, const char *queues) {
  pid_t pid = queues != NULL ? cli_start(env, "worker.log", "worker", "--poll", "20ms",
                                         "--queues", queues, NULL)
                             : cli_start(env, "worker.log", "worker", "--poll", "20ms", NULL);
  cli_wait_for_log(env, "worker.log", "worker.started");
  return pid;
}

void cli_stop_worker(cli_env_t *env, pid_t pid) {
  int status = cli_stop(env, pid, SIGTERM);
  if (status != 0) {
    char *log = cli_read_file(env, "worker.log");
    fail_msg("worker exited %d:\n%s", status, log ? log : "");
  }
}

char *cli_enqueue(const cli_env_t *env, const char *arg, ...) {
  char *args[MAX_ARGS + 1];
  va_list ap;
  args[0] = "enqueue";
  va_start(ap, arg);
  collect(args + 1, arg, ap);
  va_end(ap);
  cli_out_t o = cli_runv(env, args);
  if (o.status != 0) fail_msg("enqueue exited %d: %s", o.status, o.err);
  size_t n = strlen(o.out);
  assert_true(n == 37 && o.out[36] == '\n'); /* an id and a newline */
  o.out[36] = '\0';
  char *id = strdup(o.out);
  cli_out_free(&o);
  return id;
}

json_t *cli_json(const cli_out_t *o) {
  json_error_t err;
  json_t *j = json_loads(o->out, 0, &err);
  if (j == NULL) fail_msg("not one JSON document (%s): %s", err.text, o->out);
  return j;
}

json_t *cli_json_lines(const cli_out_t *o) {
  json_t *all = json_array();
  for (const char *line = o->out; *line != '\0';) {
    size_t n = strcspn(line, "\n");
    json_error_t err;
    json_t *j = json_loadb(line, n, 0, &err);
    if (j == NULL) fail_msg("a line is not JSON (%s): %.*s", err.text, (int)n, line);
    json_array_append_new(all, j);
    line += n + (line[n] == '\n');
  }
  return all;
}

const char *cli_jstr(json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  if (s == NULL) fail_msg("no string member '%s'", key);
  return s;
}

json_int_t cli_jint(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  if (!json_is_integer(v)) fail_msg("no integer member '%s'", key);
  return json_integer_value(v);
}

json_t *cli_show_json(const cli_env_t *env, const char *id) {
  cli_out_t o = cli_run(env, "show", "--json", id, NULL);
  if (o.status != 0) fail_msg("omniq show %s: exit %d: %s", id, o.status, o.err);
  json_t *j = cli_json(&o);
  cli_out_free(&o);
  return j;
}

const char *cli_not_a_store(const cli_env_t *env, char *value, size_t len) {
  if (strcmp(env->backend, "postgres") == 0) {
    snprintf(value, len, "postgresql://omniq@127.0.0.1:1/omniq?connect_timeout=5");
    return "--db";
  }
  snprintf(value, len, "%s/not-a-store", env->dir);
  FILE *f = fopen(value, "w");
  assert_non_null(f);
  for (int i = 0; i < 200; i++) fputs("this is not an OmniQ store\n", f);
  fclose(f);
  return strcmp(env->backend, "sqlite") == 0 ? "--db" : "--base-dir";
}

typedef struct log_text {
  const char *log, *text;
} log_text_t;

static int log_has(const cli_env_t *env, const void *arg) {
  const log_text_t *lt = arg;
  char *contents = cli_read_file(env, lt->log);
  int found = contents != NULL && strstr(contents, lt->text) != NULL;
  free(contents);
  return found;
}

void cli_wait_for_log(const cli_env_t *env, const char *log, const char *text) {
  log_text_t lt = {log, text};
  char what[256];
  snprintf(what, sizeof what, "'%s' in %s", text, log);
  cli_wait_for(log_has, env, &lt, what);
}

/* ---- waiting and files ----------------------------------------------------------- */

void cli_wait_for(int (*cond)(const cli_env_t *env, const void *arg), const cli_env_t *env,
                  const void *arg, const char *what) {
  int64_t deadline = mono_ms() + CLI_DEADLINE_MS;
  while (!cond(env, arg)) {
    if (mono_ms() > deadline) fail_msg("gave up after %d ms waiting for %s", CLI_DEADLINE_MS, what);
    struct timespec step = {0, POLL_STEP_MS * 1000000L};
    nanosleep(&step, NULL);
  }
}

char *cli_read_file(const cli_env_t *env, const char *name) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s", env->dir, name);
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t len = 0;
  if (f == NULL) return NULL;
  char chunk[4096];
  size_t n;
  append(&buf, &len, "", 0);
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) append(&buf, &len, chunk, n);
  fclose(f);
  return buf;
}

int cli_count_lines(const cli_env_t *env, const char *name) {
  char *s = cli_read_file(env, name);
  int n = 0;
  for (char *p = s; p != NULL && *p != '\0'; p++) n += *p == '\n';
  free(s);
  return n;
}

int cli_read_pids(const cli_env_t *env, const char *name, pid_t *pids, int max) {
  char *s = cli_read_file(env, name), *p = s;
  int n = 0;
  while (p != NULL && n < max) {
    char *nl = strchr(p, '\n');
    if (nl == NULL) break; /* a line still being written */
    pids[n++] = (pid_t)strtol(p, NULL, 10);
    p = nl + 1;
  }
  free(s);
  return n;
}

int cli_pid_alive(pid_t pid) {
  char path[64], buf[512];
  if (pid <= 0) return 0;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* "pid (comm) S ...": the state follows the last ')'. */
  char *close_paren = strrchr(buf, ')');
  return close_paren == NULL || close_paren[1] == '\0' || close_paren[2] != 'Z';
}
