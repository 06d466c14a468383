# SPDX-License-Identifier: MIT
"""Handlers the tests enqueue; workers import them as omniq_test_tasks.<name>.

Tests coordinate with running handlers through named gates: a handler
announces it started (started(name)) and holds until the test opens its
gate (release(name)), sync and async handlers alike. Every wait is bounded
by WAIT so that a broken test fails instead of hanging; the fixture in
conftest.py opens every gate at teardown.
"""

import asyncio
import collections
import signal
import threading
import time

import omniq

WAIT = 30

_lock = threading.Lock()
runs = collections.Counter()  # tag -> runs of it
cancelled_seen = set()  # names whose handler saw omniq.is_cancelled()
threads = {}  # tag -> name of the thread that ran it
_gates = {}
_started = {}
_async_waiters = collections.defaultdict(list)  # name -> [(loop, asyncio.Event)]
_arrived = collections.Counter()
_running = 0
max_running = 0


def reset():
    global _running, max_running
    with _lock:
        runs.clear()
        cancelled_seen.clear()
        threads.clear()
        _gates.clear()
        _started.clear()
        _async_waiters.clear()
        _arrived.clear()
        _running = max_running = 0


def _event(table, name):
    with _lock:
        return table.setdefault(name, threading.Event())


def started(name):
    return _event(_started, name)


def release(name):
    _event(_gates, name).set()
    with _lock:
        waiters = list(_async_waiters[name])
    for loop, event in waiters:
        if not loop.is_closed():  # a loop ended by its pool's stop needs nothing
            loop.call_soon_threadsafe(event.set)


def release_all():
    with _lock:
        names = list(_gates) + list(_async_waiters)
    for name in names:
        release(name)


def _record(tag):
    with _lock:
        runs[tag] += 1
        threads[tag] = threading.current_thread().name
        return runs[tag]


# ---- plain handlers ----------------------------------------------------------


def add(a, b):
    return a + b


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


def record(tag):
    _record(tag)
    return tag


def always_fails(tag):
    _record(tag)
    raise ConnectionError("upstream down (%s)" % tag)


class BadInput(omniq.NonRetryableError):
    pass


class TryAgain(omniq.RetryableError):
    pass


def rejects(tag):
    _record(tag)
    raise BadInput("bad input %s" % tag)


def asks_again(tag):
    _record(tag)
    raise TryAgain("not yet")


def flaky(tag, failures):
    """Fails its first `failures` runs, then succeeds."""
    n = _record(tag)
    if n <= failures:
        raise RuntimeError("failure %d of %d" % (n, failures))
    return "ok after %d runs" % n


def returns_a_set():
    return {1, 2}


def returns_a_huge_int():
    return 2 ** 70


def hold(name):
    """Holds until released; returns early if its run is cancelled."""
    _record(name)
    started(name).set()
    gate = _event(_gates, name)
    deadline = time.monotonic() + WAIT
    while not gate.wait(0.01):
        if omniq.is_cancelled():
            with _lock:
                cancelled_seen.add(name)
            return "noticed the cancel"
        if time.monotonic() > deadline:
            raise TimeoutError("hold(%s) was never released" % name)
    return name


def timed(tag, seconds):
    """Sleeps, counting how many timed() runs overlap."""
    global _running, max_running
    _record(tag)
    with _lock:
        _running += 1
        max_running = max(max_running, _running)
    try:
        time.sleep(seconds)
    finally:
        with _lock:
            _running -= 1
    return tag


def interrupt(tag):
    """Sends the main thread SIGINT, as Ctrl-C would (a KeyboardInterrupt)."""
    _record(tag)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    return tag


# ---- async handlers ------------------------------------------------------------


async def multiply(a, b):
    await asyncio.sleep(0)
    return a * b


async def _released(name):
    event = asyncio.Event()
    with _lock:
        _async_waiters[name].append((asyncio.get_running_loop(), event))
    if _event(_gates, name).is_set():
        return
    await asyncio.wait_for(event.wait(), WAIT)


async def hold_async(name):
    """Holds until released; records a cancellation of its coroutine."""
    _record(name)
    started(name).set()
    try:
        await _released(name)
    except asyncio.CancelledError:
        with _lock:
            cancelled_seen.add(name)
        raise
    return name


async def meet(name, tag, n):
    """Finishes only once n meet() runs of `name` are waiting at once."""
    _record(tag)
    with _lock:
        _arrived[name] += 1
        everyone = _arrived[name] == n
    if everyone:
        release(name)
    await _released(name)
    return tag


async def fails_async(tag):
    _record(tag)
    await asyncio.sleep(0)
    raise KeyError(tag)
