#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""OmniQ for Python end to end, beside the same work through the C API in
the same process and run.

Throughput: TASKS no-op tasks noop(1, 2, 3) are enqueued with
OmniQ.enqueue_many in batches of BATCH into a fresh SQLite store, then a
WorkerPool with 2 workers drains them (process_tasks). Baseline: the same
tasks through the C API called directly (ctypes, no OmniQ Python code):
omniq_enqueue_many of the same batches, then omniq_worker_process with 2
runner threads and a C no-op handler (python_baseline.c), so no Python runs
per task. Every task must end SUCCESS before a figure is printed. Each
figure is the best of REPS runs, Python and C alternating.

Latency: a started pool of 2 workers; ROUNDS times, one task is enqueued
and its result awaited (get_result(wait=True)). The handler returns the
CLOCK_MONOTONIC time it ran, so "wake-up" is from the handler's run to the
waiter holding the decoded result (the result's commit, the wake-up, the
read), and "round trip" is from enqueue to result. Baseline: omniq_enqueue
and omniq_get_result called directly, a C handler.

usage: bench_python.py BUILD_DIR        (make bench runs it)
OMNIQ_BENCH_SMOKE=1 runs it at its least (the suite's smoke test).
"""

import ctypes
import os
import sys
import tempfile
import time

import omniq
from omniq import _lib

TASKS = 20000
BATCH = 500
WORKERS = 2
REPS = 3
ROUNDS = 2000
ARGS = (1, 2, 3)
# OMNIQ_BENCH_SMOKE=1 (bench/bench_smoke.h): one run of one batch, 20 rounds;
# every step and check still taken, the figures meaningless.
if os.environ.get("OMNIQ_BENCH_SMOKE", "") not in ("", "0"):
    TASKS, REPS, ROUNDS = BATCH, 1, 20

lib = _lib.lib
lib.omniq_register.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _lib.HANDLER_FN,
                               ctypes.c_void_p]
lib.omniq_register.restype = ctypes.c_int


def noop(*args):
    return None


def stamp():
    return time.monotonic_ns()


def settings(directory):
    return omniq.Settings(base_dir=directory, log_level="WARNING")


def check_all_succeeded(q, n):
    counts = q.count_by_status()
    if counts[omniq.TaskStatus.SUCCESS] != n:
        sys.exit("bench_python: not every task succeeded: %r" % counts)


def run_python():
    with tempfile.TemporaryDirectory() as d, omniq.OmniQ(settings(d)) as q:
        began = time.perf_counter()
        for _ in range(TASKS // BATCH):
            q.enqueue_many([(noop, ARGS)] * BATCH)
        enqueued = time.perf_counter()
        done = q.worker(concurrency=WORKERS).process_tasks()
        drained = time.perf_counter()
        assert done == TASKS
        check_all_succeeded(q, TASKS)
    return enqueued - began, drained - enqueued


def run_c(handlers):
    with tempfile.TemporaryDirectory() as d, omniq.OmniQ(settings(d)) as q:
        oq = q._oq
        _lib.check(lib.omniq_register(oq, b"bench.nothing", handlers["nothing"], None), oq)
        items = (_lib.EnqueueItem * BATCH)()
        for item in items:
            item.func, item.args_json, item.kwargs_json = b"bench.nothing", b"[1,2,3]", b"{}"
        opts = _lib.new_worker_opts()
        opts.concurrency = WORKERS
        done = ctypes.c_long()
        began = time.perf_counter()
        for _ in range(TASKS // BATCH):
            _lib.check(lib.omniq_enqueue_many(oq, items, BATCH, None), oq)
        enqueued = time.perf_counter()
        _lib.check(lib.omniq_worker_process(oq, ctypes.byref(opts), 0, ctypes.byref(done)), oq)
        drained = time.perf_counter()
        assert done.value == TASKS
        check_all_succeeded(q, TASKS)
    return enqueued - began, drained - enqueued


def latency_python():
    wake, trip = [], []
    with tempfile.TemporaryDirectory() as d, omniq.OmniQ(settings(d)) as q:
        with q.worker(concurrency=WORKERS) as pool:
            pool.start()
            for _ in range(ROUNDS):
                t0 = time.monotonic_ns()
                result = q.get_result(q.enqueue(stamp), wait=True)
                t1 = time.monotonic_ns()
                wake.append(t1 - result["result"])
                trip.append(t1 - t0)
    return wake, trip


def latency_c(handlers):
    wake, trip = [], []
    with tempfile.TemporaryDirectory() as d, omniq.OmniQ(settings(d)) as q:
        oq = q._oq
        _lib.check(lib.omniq_register(oq, b"bench.stamp", handlers["stamp"], None), oq)
        opts = _lib.new_worker_opts()
        opts.concurrency = WORKERS
        w = ctypes.c_void_p()
        _lib.check(lib.omniq_worker_start(oq, ctypes.byref(opts), ctypes.byref(w)), oq)
        task_id = ctypes.create_string_buffer(_lib.ID_SIZE)
        r = ctypes.c_void_p()
        for _ in range(ROUNDS):
            t0 = time.monotonic_ns()
            _lib.check(lib.omniq_enqueue(oq, b"bench.stamp", None, None, None, task_id), oq)
            _lib.check(lib.omniq_get_result(oq, task_id.value, -1.0, ctypes.byref(r)), oq)
            ran = int(lib.omniq_result_value(r.value))
            lib.omniq_result_free(r.value)
            t1 = time.monotonic_ns()
            wake.append(t1 - ran)
            trip.append(t1 - t0)
        lib.omniq_worker_stop(w.value)
    return wake, trip


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] / 1000  # ns -> us


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench_python.py BUILD_DIR")
    dll = ctypes.CDLL(os.path.join(sys.argv[1], "libomniq_bench_baseline.so"))
    handlers = {"nothing": _lib.HANDLER_FN(("omniq_bench_nothing", dll)),
                "stamp": _lib.HANDLER_FN(("omniq_bench_stamp", dll))}

    py, c = [], []
    for _ in range(REPS):
        py.append(run_python())
        c.append(run_c(handlers))
    print("OmniQ for Python vs the C API in the same process: SQLite, %d no-op tasks "
          "enqueued in batches of %d, drained by %d workers; best of %d; tasks per second"
          % (TASKS, BATCH, WORKERS, REPS))
    print("%-12s %10s %10s %7s" % ("", "python", "C API", "ratio"))
    rows = [("enqueue", lambda r: TASKS / r[0]), ("drain", lambda r: TASKS / r[1]),
            ("end to end", lambda r: TASKS / (r[0] + r[1]))]
    figures = {}
    for name, rate in rows:
        p, b = max(map(rate, py)), max(map(rate, c))
        figures[name] = p
        print("%-12s %10.0f %10.0f %7.2f" % (name, p, b, p / b))

    wake_py, trip_py = latency_python()
    wake_c, trip_c = latency_c(handlers)
    print()
    print("Result latency in the same process, one task at a time, a started pool of %d "
          "workers; %d rounds; microseconds" % (WORKERS, ROUNDS))
    print("%-12s %10s %10s %7s %10s %10s %7s" % ("", "python p50", "C p50", "ratio",
                                                 "python p99", "C p99", "ratio"))
    for name, p, b in (("wake-up", wake_py, wake_c), ("round trip", trip_py, trip_c)):
        print("%-12s %10.0f %10.0f %7.2f %10.0f %10.0f %7.2f"
              % (name, pct(p, 50), pct(b, 50), pct(p, 50) / pct(b, 50), pct(p, 99),
                 pct(b, 99), pct(p, 99) / pct(b, 99)))

    print()
    tput, wake = figures["end to end"], pct(wake_py, 50)
    print("targets: >= 5000 no-op tasks/s end to end with %d workers: %s (%.0f); "
          "result wake-up p50 < 1000 us: %s (%.0f us)"
          % (WORKERS, "met" if tput >= 5000 else "NOT met", tput,
             "met" if wake < 1000 else "NOT met", wake))


if __name__ == "__main__":
    main()
