/* SPDX-License-Identifier: MIT */
/* Shell-command tasks: the handler `omniq worker` registers as
 * "omniq.command", and the args `omniq enqueue` stores for it.
 *
 * A task's args are its argv (["sh", "-c", "exit 3"] for --shell). The
 * handler validates them, builds the command's environment (the worker's
 * base environment plus OMNIQ_TASK_ID and OMNIQ_ATTEMPT), looks the program
 * up in that PATH, and starts it under a supervisor (supervisor.c), which
 * owns the command's process tree. The handler then only reads: the
 * command's stdout and stderr into bounded tails (tail.c), and the
 * supervisor's one record of how the command ended.
 *
 * Stopping: every TICK_MS the handler looks at omniq_job_cancelled(), which
 * the library sets at the task's deadline (after recording "TimeoutError"),
 * on a cancel, and when a worker stop gives up on the run. It then sends the
 * supervisor SIGTERM, which stops the whole group (SIGTERM, kill_after,
 * SIGKILL) and reports. The handler never blocks on anything but poll with
 * that tick, so it cannot hold up a worker's stop.
 *
 * Outcome (the library applies the retry policy):
 *   exit 0         success; value {"exit_code", "stdout", "stderr",
 *                  "stdout_bytes", "stderr_bytes"}
 *   exit N != 0    "CommandFailed", retryable; message "exit code N" and the
 *                  stderr tail on the following lines
 *   signal         "Crash", retryable; "killed by signal 9 (SIGKILL)" + tail
 *   cannot exec    "CommandFailed", retryable, exit code 127 as a shell says
 *   bad args       "InvalidCommand", not retryable
 * A run that was cancelled reports nothing useful: its outcome is dropped
 * by the library, which already recorded the timeout or cancel.
 *
 * Failures carry the stderr tail in the message because omniq_job_fail has
 * no traceback parameter. Nothing here is logged: args and output may hold
 * secrets. */
#include "command_task.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor.h"
#include "tail.h"

#define TICK_MS 100

/* ---- the environment ---------------------------------------------------------- */

static int env_name_ok(const char *name, size_t n) {
  if (n == 0 || (name[0] >= '0' && name[0] <= '9')) return 0;
  for (size_t i = 0; i < n; i++)
    if (!(name[i] == '_' || (name[i] >= 'A' && name[i] <= 'Z') ||
          (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')))
      return 0;
  return 1;
}

static int is_name(const char *s, size_t n, const char *name) {
  return n == strlen(name) && strncmp(s, name, n) == 0;
}

/* Sets NAME=value in the list (replacing an earlier NAME). */
static int env_put(char ***env, size_t *n, const char *name, size_t namelen, const char *value) {
  size_t len = namelen + 1 + strlen(value) + 1;
  char *entry = malloc(len);
  if (entry == NULL) return -1;
  snprintf(entry, len, "%.*s=%s", (int)namelen, name, value);
  for (size_t i = 0; i < *n; i++)
    if (strncmp((*env)[i], entry, namelen + 1) == 0) {
      free((*env)[i]);
      (*env)[i] = entry;
      return 0;
    }
  char **grown = realloc(*env, (*n + 2) * sizeof *grown);
  if (grown == NULL) {
    free(entry);
    return -1;
  }
  grown[(*n)++] = entry;
  grown[*n] = NULL;
  *env = grown;
  return 0;
}

int cli_command_config_init(cli_command_config_t *cfg, char *const *extra, int nextra, char *why,
                            size_t whylen) {
  static const char *const passed[] = {CLI_PASSED_ENV};
  size_t n = 0;
  cfg->env = calloc(1, sizeof *cfg->env);
  cfg->kill_after_ms = CLI_DEFAULT_KILL_AFTER_MS;
  if (cfg->env == NULL) goto nomem;
  for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++) {
    const char *v = getenv(passed[i]);
    if (v == NULL && strcmp(passed[i], "PATH") == 0) v = CLI_DEFAULT_PATH;
    if (v != NULL && env_put(&cfg->env, &n, passed[i], strlen(passed[i]), v) != 0) goto nomem;
  }
  for (int i = 0; i < nextra; i++) {
    const char *eq = strchr(extra[i], '=');
    size_t namelen = eq != NULL ? (size_t)(eq - extra[i]) : strlen(extra[i]);
    if (!env_name_ok(extra[i], namelen) || is_name(extra[i], namelen, "OMNIQ_TASK_ID") ||
        is_name(extra[i], namelen, "OMNIQ_ATTEMPT")) {
      snprintf(why, whylen, "--env: '%s' is not NAME or NAME=VALUE (OMNIQ_TASK_ID and "
               "OMNIQ_ATTEMPT are set by the worker)", extra[i]);
      cli_command_config_free(cfg);
      return -1;
    }
    const char *v = eq != NULL ? eq + 1 : getenv(extra[i]);
    if (v != NULL && env_put(&cfg->env, &n, extra[i], namelen, v) != 0) goto nomem;
  }
  return 0;
nomem:
  snprintf(why, whylen, "out of memory");
  cli_command_config_free(cfg);
  return -1;
}

void cli_command_config_free(cli_command_config_t *cfg) {
  for (size_t i = 0; cfg->env != NULL && cfg->env[i] != NULL; i++) free(cfg->env[i]);
  free(cfg->env);
  cfg->env = NULL;
}

/* ---- args --------------------------------------------------------------------- */

char *cli_command_args(char *const *argv, int argc, char *why, size_t whylen) {
  json_t *arr = json_array();
  char *text = NULL;
  for (int i = 0; arr != NULL && i < argc; i++) {
    json_t *s = json_string(argv[i]);
    if (s == NULL) {
      snprintf(why, whylen, "argument %d is not valid UTF-8", i + 1);
      json_decref(arr);
      return NULL;
    }
    json_array_append_new(arr, s);
  }
  if (arr != NULL) text = json_dumps(arr, JSON_COMPACT);
  json_decref(arr);
  if (text == NULL) snprintf(why, whylen, "out of memory");
  return text;
}

/* ---- one run ------------------------------------------------------------------- */

typedef struct command {
  json_t *args;   /* keeps argv's strings alive */
  char **argv;
  char **envp;    /* the config's entries (borrowed) + two of ours (owned) */
  char *task_env[2];
  char *path;     /* resolved program, or NULL */
} command_t;

static void command_free(command_t *c) {
  json_decref(c->args);
  free(c->argv);
  free(c->envp);
  free(c->task_env[0]);
  free(c->task_env[1]);
  free(c->path);
}

/* The program's path as execvp would find it, looked up before any fork
 * (the supervisor may not allocate) in the command's own PATH. */
static char *resolve(const char *prog, char *const *envp) {
  const char *path = "";
  struct stat st;
  if (strchr(prog, '/') != NULL) return strdup(prog);
  for (char *const *e = envp; *e != NULL; e++)
    if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
  for (const char *p = path;; p++) {
    size_t n = strcspn(p, ":");
    size_t len = n + 1 + strlen(prog) + 1;
    char *cand = malloc(len);
    if (cand == NULL) return NULL;
    /* An empty element means the current directory, as in POSIX. */
    snprintf(cand, len, "%.*s%s%s", (int)n, n ? p : ".", "/", prog);
    if (access(cand, X_OK) == 0 && stat(cand, &st) == 0 && S_ISREG(st.st_mode)) return cand;
    free(cand);
    p += n;
    if (*p == '\0') return NULL;
  }
}

static int command_build(omniq_job_t *job, const cli_command_config_t *cfg, command_t *c,
                         char *why, size_t whylen) {
  size_t n, nenv = 0;
  json_t *kwargs = json_loads(omniq_job_kwargs(job), 0, NULL);
  int kwargs_ok = json_is_object(kwargs) && json_object_size(kwargs) == 0;
  json_decref(kwargs);
  memset(c, 0, sizeof *c);
  if (!kwargs_ok) {
    snprintf(why, whylen, "kwargs must be {} for %s", CLI_COMMAND_FUNC);
    return -1;
  }
  c->args = json_loads(omniq_job_args(job), 0, NULL);
  if (!json_is_array(c->args) || (n = json_array_size(c->args)) == 0) {
    snprintf(why, whylen, "args must be a non-empty array of strings (the argv)");
    return -1;
  }
  if ((c->argv = calloc(n + 1, sizeof *c->argv)) == NULL) goto nomem;
  for (size_t i = 0; i < n; i++) {
    json_t *s = json_array_get(c->args, i);
    if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s)) {
      snprintf(why, whylen, "args[%zu] is not a string without NUL bytes", i);
      return -1;
    }
    c->argv[i] = (char *)json_string_value(s);
  }
  while (cfg->env[nenv] != NULL) nenv++;
  if ((c->envp = calloc(nenv + 3, sizeof *c->envp)) == NULL) goto nomem;
  memcpy(c->envp, cfg->env, nenv * sizeof *c->envp);
  const char *id = omniq_job_id(job);
  size_t idlen = strlen("OMNIQ_TASK_ID=") + strlen(id) + 1;
  if ((c->task_env[0] = malloc(idlen)) == NULL || (c->task_env[1] = malloc(32)) == NULL)
    goto nomem;
  snprintf(c->task_env[0], idlen, "OMNIQ_TASK_ID=%s", id);
  snprintf(c->task_env[1], 32, "OMNIQ_ATTEMPT=%d", omniq_job_attempt(job));
  c->envp[nenv] = c->task_env[0];
  c->envp[nenv + 1] = c->task_env[1];
  errno = 0;
  c->path = resolve(c->argv[0], c->envp);
  if (c->path == NULL && errno == ENOMEM) goto nomem;
  return 0;
nomem:
  snprintf(why, whylen, "out of memory");
  return -2;
}

/* Reads what is there into the tail; returns 0 at EOF or error. */
static int drain(int fd, cli_tail_t *t) {
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) < 0 && errno == EINTR) {
  }
  if (n <= 0) return 0;
  cli_tail_add(t, buf, (size_t)n);
  return 1;
}

/* Runs the command to its end; *rec gets the record (kind 0 = none). */
static int command_run(omniq_job_t *job, const command_t *c, int64_t kill_after_ms,
                       cli_tail_t *out, cli_tail_t *err, cli_run_record_t *rec) {
  cli_spawn_t sp = {c->path, c->argv, c->envp, kill_after_ms};
  int fds[3], open_fds = 3, stop_sent = 0;
  size_t got = 0;
  pid_t sup;
  memset(rec, 0, sizeof *rec);
  if (cli_supervisor_start(&sp, fds, &sup) != 0) return -1;

  /* Until the supervisor has reported: then every writer of the output
   * pipes is dead and they reach EOF. A supervisor that died without a
   * record may have left writers behind, so its EOF ends the wait. */
  while (open_fds > 0) {
    struct pollfd pf[3];
    int np = 0;
    if (!stop_sent && omniq_job_cancelled(job)) {
      kill(sup, SIGTERM);
      stop_sent = 1;
    }
    for (int i = 0; i < 3; i++)
      if (fds[i] >= 0) pf[np++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    if (poll(pf, (nfds_t)np, TICK_MS) < 0 && errno != EINTR) break;
    for (int i = 0; i < np; i++) {
      if (pf[i].revents == 0) continue;
      int k = pf[i].fd == fds[0] ? 0 : pf[i].fd == fds[1] ? 1 : 2;
      int more;
      if (k < 2) {
        more = drain(fds[k], k == 0 ? out : err);
      } else {
        ssize_t n = read(fds[2], (char *)rec + got, sizeof *rec - got);
        more = n > 0 || (n < 0 && errno == EINTR);
        if (n > 0) got += (size_t)n;
      }
      if (!more) {
        close(fds[k]);
        fds[k] = -1;
        open_fds--;
      }
    }
    if (fds[2] < 0 && got != sizeof *rec) break;
  }
  /* Only a failed poll leaves the loop with the supervisor unheard from:
   * stop the command rather than wait for it unwatched. */
  if (fds[2] >= 0 && !stop_sent) kill(sup, SIGTERM);
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0) close(fds[i]);
  while (waitpid(sup, NULL, 0) < 0 && errno == EINTR) {
  }
  if (got != sizeof *rec) rec->kind = 0;
  return 0;
}

/* "exit code 3" or "killed by signal 9 (SIGKILL)", then the stderr tail on
 * the following lines (a NUL in it would end the message early: it becomes
 * '?'). */
static char *failure_message(const char *head, const char *tail, size_t taillen) {
  size_t o = strlen(head);
  char *msg = malloc(o + 1 + taillen + 1);
  if (msg == NULL) return NULL;
  memcpy(msg, head, o);
  if (taillen > 0) msg[o++] = '\n';
  for (size_t i = 0; i < taillen; i++) msg[o++] = tail[i] != '\0' ? tail[i] : '?';
  msg[o] = '\0';
  return msg;
}

static int report(omniq_job_t *job, const command_t *c, const cli_run_record_t *rec,
                  const cli_tail_t *out, const cli_tail_t *err) {
  size_t outlen = 0, errlen = 0;
  char head[160];
  char *outtext = cli_tail_text(out, &outlen), *errtext = cli_tail_text(err, &errlen);
  int rc;
  if (outtext == NULL || errtext == NULL) {
    rc = omniq_job_fail(job, "Error", "out of memory collecting the command's output", 1);
    goto done;
  }
  if (rec->kind == CLI_RUN_EXITED && rec->value == 0) {
    json_t *v = json_pack("{s:i, s:s%, s:s%, s:I, s:I}", "exit_code", 0, "stdout", outtext,
                          outlen, "stderr", errtext, errlen, "stdout_bytes",
                          (json_int_t)out->total, "stderr_bytes", (json_int_t)err->total);
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(v);
    rc = text != NULL ? omniq_job_return(job, text) : OMNIQ_ENOMEM;
    free(text);
    goto done;
  }
  const char *type = "CommandFailed";
  switch (rec->kind) {
  case CLI_RUN_EXITED:
    snprintf(head, sizeof head, "exit code %d", rec->value);
    break;
  case CLI_RUN_SIGNALED: {
    const char *abbrev = sigabbrev_np(rec->value);
    type = "Crash";
    snprintf(head, sizeof head, "killed by signal %d (SIG%s)", rec->value,
             abbrev ? abbrev : "?");
    break;
  }
  case CLI_RUN_SPAWN_FAILED:
    snprintf(head, sizeof head, "cannot run '%.100s': %s (exit code 127)", c->argv[0],
             strerror(rec->value));
    break;
  default:
    type = "Crash";
    snprintf(head, sizeof head, "the command's supervisor died without a report");
  }
  char *msg = failure_message(head, errtext, errlen);
  omniq_job_fail(job, type, msg != NULL ? msg : head, 1);
  free(msg);
  rc = OMNIQ_EFAILED;
done:
  free(outtext);
  free(errtext);
  return rc;
}

int cli_command_handler(omniq_job_t *job, void *userdata) {
  const cli_command_config_t *cfg = userdata;
  command_t c;
  cli_tail_t out, err;
  cli_run_record_t rec;
  char why[256];
  int rc = command_build(job, cfg, &c, why, sizeof why);
  memset(&out, 0, sizeof out);
  memset(&err, 0, sizeof err);
  if (rc != 0) {
    omniq_job_fail(job, rc == -1 ? "InvalidCommand" : "Error", why, rc != -1);
    command_free(&c);
    return OMNIQ_EINVAL;
  }
  if (cli_tail_init(&out, CLI_TAIL_BYTES) != 0 || cli_tail_init(&err, CLI_TAIL_BYTES) != 0) {
    omniq_job_fail(job, "Error", "out of memory", 1);
    rc = OMNIQ_ENOMEM;
  } else if (command_run(job, &c, cfg->kill_after_ms, &out, &err, &rec) != 0) {
    snprintf(why, sizeof why, "cannot start the command: %s", strerror(errno));
    omniq_job_fail(job, "Error", why, 1);
    rc = OMNIQ_EFAILED;
  } else {
    /* A cancelled run's outcome is dropped by the library anyway. */
    rc = omniq_job_cancelled(job) ? OMNIQ_OK : report(job, &c, &rec, &out, &err);
  }
  cli_tail_free(&out);
  cli_tail_free(&err);
  command_free(&c);
  return rc;
}

int cli_command_register(omniq_t *oq, const cli_command_config_t *cfg) {
  return omniq_register(oq, CLI_COMMAND_FUNC, cli_command_handler, (void *)cfg);
}
