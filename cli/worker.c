/* SPDX-License-Identifier: MIT */
/* omniq worker: runs tasks until stopped, or (--burst) until nothing is due.
 *
 * Threads: the main thread only waits for signals (sigtimedwait) and draws
 * the progress line once a tick; the tasks run on the library's pool
 * threads (omniq_worker_start) or, with --burst, on `concurrency` burst
 * threads. SIGINT, SIGTERM and SIGUSR1 are blocked in every thread before
 * any is started, so they are only ever taken by that wait: no signal
 * handler runs in the middle of a task.
 *
 * Stopping. The first SIGINT or SIGTERM stops claiming and lets running
 * tasks finish: omniq_worker_stop on a helper thread (it blocks up to
 * --shutdown-timeout, after which the library gives up on the runs left and
 * leaves them to lease expiry), or the burst threads' stop flag. The main
 * thread keeps waiting meanwhile, so a second signal is still heard: it
 * exits at once with _exit, without waiting for anything. Every command
 * task's supervisor then gets its parent-death signal and stops its command
 * (see supervisor.c), and the tasks that were running are recovered by the
 * next worker when their lease expires ("WorkerLost"). A helper thread that
 * is done wakes the main thread with SIGUSR1.
 *
 * --burst runs `concurrency` threads, each a loop of
 * omniq_worker_process(limit 1, one slot): each slot claims its next task as
 * soon as its last one ended, and a slot whose claim finds nothing due ends.
 * The worker exits when every slot has ended. A stop flag checked between
 * tasks is what makes a burst stoppable: one omniq_worker_process call with
 * no limit could not be interrupted.
 *
 * --burst with --isolation process runs one thread instead, a loop of
 * omniq_worker_process(limit concurrency, all slots): a round of at most
 * `concurrency` tasks in one pool, ended when they all have; a round that
 * finished fewer than it could found nothing due, which ends the burst.
 * Each pool forks its zygote as it starts, and a fork copies every lock as
 * the other threads held it then: one slot starting its pool while the
 * others claim and run would hand the zygote, and so every child, a lock
 * that nobody in them will release (an allocator's that is not reset
 * across fork, as AddressSanitizer's is not), and the child blocks on it for
 * ever. With one pool at a time, the zygote is forked while no other thread
 * of the worker does anything but wait for a signal. The stop flag is
 * checked between rounds, so a stop still lets only running tasks finish;
 * the cost is that a slot free before the round's slowest task ends waits
 * for it. */
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "command_task.h"
#include "duration.h"
#include "progress.h"

#define TICK_MS 500
#define MAX_LOADS 32
#define MAX_ENV 64

enum {
  OPT_ISOLATION = CLI_OPT_FIRST_FREE,
  OPT_LOAD,
  OPT_POLL,
  OPT_BURST,
  OPT_SHUTDOWN,
  OPT_KILL_AFTER,
  OPT_MAX_TASKS_PER_CHILD,
  OPT_MEMORY_LIMIT,
  OPT_CPU_LIMIT,
  OPT_FILES_LIMIT
};

static const struct option options[] = {
    {"concurrency", required_argument, NULL, 'c'},
    {"queues", required_argument, NULL, 'q'},
    {"isolation", required_argument, NULL, OPT_ISOLATION},
    {"load", required_argument, NULL, OPT_LOAD},
    {"poll", required_argument, NULL, OPT_POLL},
    {"burst", no_argument, NULL, OPT_BURST},
    {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN},
    {"kill-after", required_argument, NULL, OPT_KILL_AFTER},
    {"env", required_argument, NULL, 'e'},
    {"max-tasks-per-child", required_argument, NULL, OPT_MAX_TASKS_PER_CHILD},
    {"memory-limit", required_argument, NULL, OPT_MEMORY_LIMIT},
    {"cpu-limit", required_argument, NULL, OPT_CPU_LIMIT},
    {"files-limit", required_argument, NULL, OPT_FILES_LIMIT},
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0}};

typedef struct worker {
  omniq_worker_opts_t opts;
  char queue_buf[CLI_QUEUES_BUF];
  const char *loads[MAX_LOADS];
  void *handles[MAX_LOADS];
  int nloads;
  char allow[OMNIQ_HANDLER_PATH_MAX]; /* the loaded files: the pool's handler_path */
  char *env[MAX_ENV];
  int nenv;
  int burst;
  int64_t kill_after_ms;

  omniq_t *oq;
  pthread_t main_thread;
  /* burst */
  pthread_t *threads;
  int nthreads;
  atomic_int stop, alive, error;
  char error_msg[512]; /* the library's message for error, from the thread that met it */
  /* graceful stop of a pool */
  omniq_worker_t *pool;
  atomic_int stopped;
  int stop_rc;
} worker_t;

/* ---- options ------------------------------------------------------------------- */

static int parse(cli_t *cli, int argc, char **argv, worker_t *w) {
  long n;
  int c;
  while ((c = cli_getopt(cli, &cli_cmd_worker, argc, argv, ":c:q:e:", options)) != -1) {
    switch (c) {
    case 'c':
      if (cli_opt_int(cli, "--concurrency", optarg, 1, 1024, &n)) return -1;
      w->opts.concurrency = (int)n;
      break;
    case 'q':
      if ((cli->exit_code = cli_opt_queues(cli, optarg, w->queue_buf, w->opts.queues)) !=
          CLI_EXIT_OK)
        return -1;
      break;
    case OPT_ISOLATION:
      if (strcmp(optarg, "thread") == 0) {
        w->opts.isolation = OMNIQ_ISOLATION_THREAD;
      } else if (strcmp(optarg, "process") == 0) {
        w->opts.isolation = OMNIQ_ISOLATION_PROCESS;
      } else {
        cli->exit_code = cli_usage(cli, "--isolation: '%s' is not thread or process", optarg);
        return -1;
      }
      break;
    case OPT_LOAD:
      if (w->nloads == MAX_LOADS) {
        cli->exit_code = cli_usage(cli, "--load: at most %d libraries", MAX_LOADS);
        return -1;
      }
      w->loads[w->nloads++] = optarg;
      break;
    case OPT_POLL:
      if (cli_opt_duration(cli, "--poll", optarg, &w->opts.poll_interval_ms)) return -1;
      if (w->opts.poll_interval_ms == 0) {
        cli->exit_code = cli_usage(cli, "--poll: must be more than 0");
        return -1;
      }
      break;
    case OPT_BURST:
      w->burst = 1;
      break;
    case OPT_SHUTDOWN:
      if (cli_opt_duration(cli, "--shutdown-timeout", optarg, &w->opts.shutdown_timeout_ms))
        return -1;
      break;
    case OPT_KILL_AFTER:
      if (cli_opt_duration(cli, "--kill-after", optarg, &w->kill_after_ms)) return -1;
      break;
    /* The per-child limits: the library checks that they go with process
     * isolation and says which field when they do not. */
    case OPT_MAX_TASKS_PER_CHILD:
      if (cli_opt_int(cli, "--max-tasks-per-child", optarg, 0, 1000000000, &n)) return -1;
      w->opts.max_tasks_per_child = n;
      break;
    case OPT_MEMORY_LIMIT:
      if (cli_opt_size(cli, "--memory-limit", optarg, &w->opts.memory_limit_bytes)) return -1;
      break;
    case OPT_CPU_LIMIT:
      if (cli_opt_duration(cli, "--cpu-limit", optarg, &w->opts.cpu_limit_ms)) return -1;
      break;
    case OPT_FILES_LIMIT:
      if (cli_opt_int(cli, "--files-limit", optarg, 0, 1000000, &n)) return -1;
      w->opts.files_limit = (int)n;
      break;
    case 'e':
      if (w->nenv == MAX_ENV) {
        cli->exit_code = cli_usage(cli, "--env: at most %d variables", MAX_ENV);
        return -1;
      }
      w->env[w->nenv++] = optarg;
      break;
    default:
      return -1;
    }
  }
  if (optind < argc) {
    cli->exit_code = cli_usage(cli, "unexpected argument '%s'", argv[optind]);
    return -1;
  }
  return 0;
}

/* ---- running ------------------------------------------------------------------- */

static void wake_main(worker_t *w) { pthread_kill(w->main_thread, SIGUSR1); }

/* How many tasks one omniq_worker_process call of a burst thread may take:
 * one per slot in process isolation (the thread has every slot), else 1. */
static long burst_round(const worker_t *w) {
  return w->opts.isolation == OMNIQ_ISOLATION_PROCESS ? w->opts.concurrency : 1;
}

static void *burst_main(void *arg) {
  worker_t *w = arg;
  omniq_worker_opts_t slots = w->opts;
  long round = burst_round(w);
  slots.concurrency = (int)round;
  while (!atomic_load(&w->stop)) {
    long done = 0;
    int rc = omniq_worker_process(w->oq, &slots, round, &done);
    if (rc != OMNIQ_OK) {
      /* The message is the failing thread's own (omniq_errmsg is per thread):
       * the first thread to fail keeps it for the main thread to report. */
      int none = OMNIQ_OK;
      if (atomic_compare_exchange_strong(&w->error, &none, rc))
        snprintf(w->error_msg, sizeof w->error_msg, "%s", omniq_errmsg(w->oq));
      break;
    }
    if (done < round) break; /* nothing more due for these slots */
  }
  if (atomic_fetch_sub(&w->alive, 1) == 1) wake_main(w);
  return NULL;
}

static void *stop_main(void *arg) {
  worker_t *w = arg;
  w->stop_rc = omniq_worker_stop(w->pool);
  atomic_store(&w->stopped, 1);
  wake_main(w);
  return NULL;
}

static int start(cli_t *cli, worker_t *w) {
  if (!w->burst) {
    int rc = omniq_worker_start(w->oq, &w->opts, &w->pool);
    return rc == OMNIQ_OK ? CLI_EXIT_OK : cli_fail_call(cli, w->oq, rc, "cannot start", NULL);
  }
  int nthreads = (int)(w->opts.concurrency / burst_round(w));
  w->threads = calloc((size_t)nthreads, sizeof *w->threads);
  if (w->threads == NULL) return cli_error(cli, CLI_EXIT_STORAGE, "out of memory");
  atomic_store(&w->alive, nthreads);
  for (; w->nthreads < nthreads; w->nthreads++)
    if (pthread_create(&w->threads[w->nthreads], NULL, burst_main, w) != 0) {
      atomic_store(&w->stop, 1);
      atomic_fetch_sub(&w->alive, nthreads - w->nthreads);
      return cli_error(cli, CLI_EXIT_STORAGE, "cannot start a thread");
    }
  return CLI_EXIT_OK;
}

static int finished(worker_t *w) {
  return w->burst ? atomic_load(&w->alive) == 0 : atomic_load(&w->stopped);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for signals and the end; returns the exit code of a graceful end. */
static int supervise(cli_t *cli, worker_t *w, cli_progress_t *prog, const sigset_t *set,
                     int tty) {
  int stopping = 0, has_stopper = 0;
  pthread_t stopper;
  char note[200];
  int64_t counts[OMNIQ_STATUS_COUNT], next_count = 0;
  int have = 0;
  for (;;) {
    int done = finished(w);
    /* Counting reads every task (a GROUP BY scan, a folder listing), so on
     * a big store it is repeated no more often than 20 times its own cost:
     * at most 5% of a core. The last line always has fresh counts. */
    if (tty && (done || mono_ms() >= next_count)) {
      int64_t t0 = mono_ms();
      have = omniq_count_by_status(w->oq, counts) == OMNIQ_OK;
      next_count = mono_ms() + 20 * (mono_ms() - t0);
    }
    cli_progress_tick(prog, have ? counts : NULL,
                      stopping ? "stopping: signal again to stop at once" : NULL, mono_ms());
    if (done) break;
    struct timespec tick = {TICK_MS / 1000, (TICK_MS % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, tty ? &tick : NULL);
    if (sig != SIGINT && sig != SIGTERM) continue;
    if (stopping) {
      cli_progress_end(prog);
      fprintf(stderr, "omniq worker: SIG%s again: stopping at once; running tasks are left "
              "to their lease\n", sigabbrev_np(sig));
      _exit(CLI_EXIT_FAILED);
    }
    stopping = 1;
    snprintf(note, sizeof note,
             "omniq worker: SIG%s: finishing running tasks (up to %llds); send it again to "
             "stop at once",
             sigabbrev_np(sig), (long long)(w->opts.shutdown_timeout_ms / 1000));
    cli_progress_say(prog, note);
    if (w->burst) {
      atomic_store(&w->stop, 1);
    } else if (pthread_create(&stopper, NULL, stop_main, w) == 0) {
      has_stopper = 1;
    } else {
      w->stop_rc = omniq_worker_stop(w->pool); /* no thread: stop from here */
      atomic_store(&w->stopped, 1);
    }
  }
  if (has_stopper) pthread_join(stopper, NULL); /* it still wakes us after `stopped` */
  cli_progress_end(prog);
  if (w->burst) {
    for (int i = 0; i < w->nthreads; i++) pthread_join(w->threads[i], NULL);
    int err = atomic_load(&w->error);
    if (err != OMNIQ_OK) {
      const char *msg = w->error_msg[0] != '\0' ? w->error_msg : omniq_strerror(err);
      int code = cli_exit_for(err);
      /* A bad option the library refused needs no preamble (as cli_fail_call). */
      return code == CLI_EXIT_USAGE ? cli_error(cli, code, "%s", msg)
                                    : cli_error(cli, code, "stopped on an error: %s", msg);
    }
    return CLI_EXIT_OK;
  }
  if (w->stop_rc == OMNIQ_ETIMEDOUT)
    return cli_error(cli, CLI_EXIT_FAILED,
                     "tasks still running after --shutdown-timeout were left to their lease");
  return CLI_EXIT_OK;
}

/* Loads each --load library and allows exactly those files to the pool
 * (omniq_worker_opts_t.handler_path): the library loads LIB.so:symbol only
 * from what it is allowed. */
static int load_libraries(cli_t *cli, worker_t *w) {
  size_t used = 0;
  for (int i = 0; i < w->nloads; i++) {
    struct link_map *lm = NULL;
    /* The flags the library uses for lib.so:symbol, so a task naming the
     * same file gets this very copy. */
    w->handles[i] = dlopen(w->loads[i], RTLD_NOW | RTLD_LOCAL);
    if (w->handles[i] == NULL) return cli_usage(cli, "--load: %s", dlerror());
    /* The file the loader found (a bare name is searched for). */
    const char *file = dlinfo(w->handles[i], RTLD_DI_LINKMAP, &lm) == 0 && lm != NULL &&
                               lm->l_name != NULL && lm->l_name[0] != '\0'
                           ? lm->l_name
                           : w->loads[i];
    int n = snprintf(w->allow + used, sizeof w->allow - used, "%s%s", used > 0 ? ":" : "", file);
    if (strchr(file, ':') != NULL || n < 0 || (size_t)n >= sizeof w->allow - used)
      return cli_usage(cli, "--load: %s: cannot be allowed (a ':' in it, or too many)", file);
    used += (size_t)n;
  }
  if (used > 0) w->opts.handler_path = w->allow;
  return CLI_EXIT_OK;
}

static int run(cli_t *cli, int argc, char **argv) {
  worker_t w;
  omniq_settings_t s;
  cli_command_config_t cfg = {NULL, 0};
  cli_progress_t *prog = NULL;
  sigset_t set;
  char why[300];
  int code;

  memset(&w, 0, sizeof w);
  omniq_worker_opts_init(&w.opts);
  w.kill_after_ms = CLI_DEFAULT_KILL_AFTER_MS;
  if (parse(cli, argc, argv, &w) != 0) return cli->exit_code;
  if ((code = cli_settings(cli, &s, 0)) != CLI_EXIT_OK) return code;

  /* Shown: OMNIQ_LOG_LEVEL if set; else warnings on a terminal (the live
   * line says the rest) and INFO on a pipe. The library is always asked
   * for INFO so the progress can count runs. */
  int tty = isatty(STDERR_FILENO);
  const char *level = getenv("OMNIQ_LOG_LEVEL");
  int show = level != NULL && level[0] != '\0' ? s.log_level
             : tty                             ? OMNIQ_LOG_WARNING
                                               : OMNIQ_LOG_INFO;
  if (s.log_level > OMNIQ_LOG_INFO) s.log_level = OMNIQ_LOG_INFO;
  if ((prog = cli_progress_new(tty, show, s.log_format)) == NULL)
    return cli_error(cli, CLI_EXIT_STORAGE, "out of memory");
  s.log_fn = cli_progress_log;
  s.log_userdata = prog;

  if (cli_command_config_init(&cfg, w.env, w.nenv, why, sizeof why) != 0) {
    cli_progress_free(prog);
    return cli_usage(cli, "%s", why);
  }
  cfg.kill_after_ms = w.kill_after_ms;

  /* SIGUSR1: a helper thread that is done wakes the main thread. */
  cli_block_stop_signals(&set, SIGUSR1);
  w.main_thread = pthread_self();

  int rc = omniq_open(&w.oq, &s);
  if (rc != OMNIQ_OK) {
    code = cli_error(cli, rc == OMNIQ_ECONFIG || rc == OMNIQ_EINVAL ? CLI_EXIT_USAGE
                                                                    : CLI_EXIT_STORAGE,
                     "cannot open the store: %s", omniq_errmsg(NULL));
  } else if ((rc = cli_command_register(w.oq, &cfg)) != OMNIQ_OK) {
    code = cli_fail_call(cli, w.oq, rc, "cannot register " CLI_COMMAND_FUNC, NULL);
  } else if ((code = load_libraries(cli, &w)) == CLI_EXIT_OK &&
             (code = start(cli, &w)) == CLI_EXIT_OK) {
    code = supervise(cli, &w, prog, &set, tty);
  } else if (w.burst) {
    for (int i = 0; i < w.nthreads; i++) pthread_join(w.threads[i], NULL);
  }
  omniq_close(w.oq); /* waits for every pool thread; the log sink is still valid */
  for (int i = 0; i < w.nloads; i++)
    if (w.handles[i] != NULL) dlclose(w.handles[i]);
  free(w.threads);
  cli_command_config_free(&cfg);
  cli_progress_free(prog);
  return code;
}

const cli_command_t cli_cmd_worker = {
    "worker",
    "[OPTIONS]",
    "Run tasks until SIGINT/SIGTERM (or, with --burst, until nothing is due).",
    "  -c, --concurrency N   tasks run at once (default " CLI_STR(OMNIQ_DEFAULT_CONCURRENCY) ")\n"
    "  -q, --queues A,B      queues to take tasks from (default: " OMNIQ_DEFAULT_QUEUE ")\n"
    "  --isolation MODE      thread (default) or process: each task in a child process\n"
    "  --load LIB.so         allow and preload a handler library for LIB.so:symbol\n"
    "                        tasks (repeatable)\n"
    "  --poll DURATION       how often an idle worker looks for work (default "
    CLI_STR(OMNIQ_DEFAULT_POLL_INTERVAL_MS) "ms)\n"
    "  --burst               exit once nothing is due\n"
    "  --shutdown-timeout D  on SIGINT/SIGTERM, wait this long for running tasks\n"
    "                        (default " CLI_STR(OMNIQ_DEFAULT_SHUTDOWN_TIMEOUT_MS)
    "ms); a second signal stops at once\n"
    "  --kill-after D        SIGTERM to SIGKILL grace for a command being stopped\n"
    "                        (default " CLI_STR(CLI_DEFAULT_KILL_AFTER_MS) "ms)\n"
    "  -e, --env NAME[=VAL]  pass NAME from this environment, or set it, for command\n"
    "                        tasks (repeatable); they otherwise get only PATH, HOME,\n"
    "                        USER, LOGNAME, LANG, LC_ALL, TZ, TMPDIR, OMNIQ_TASK_ID\n"
    "                        and OMNIQ_ATTEMPT\n"
    "with --isolation process only (0 = none, the default):\n"
    "  --max-tasks-per-child N  replace a child after it ran N tasks\n"
    "  --memory-limit SIZE   memory one task may add to its child (512M, 2G; K M G\n"
    "                        are powers of 1024); past it the task fails (MemoryLimit)\n"
    "  --cpu-limit DURATION  CPU time one task may use (CpuLimit)\n"
    "  --files-limit N       descriptors one task may open (FileLimit)\n",
    0,
    run};
