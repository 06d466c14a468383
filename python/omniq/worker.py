# SPDX-License-Identifier: MIT
"""WorkerPool and AsyncWorkerPool: the C worker pool running Python handlers.

start() starts a C pool (omniq_worker_start) and returns once its threads
run; it never waits for work. Handlers run on the pool's threads (plain
functions) or on the handle's event loop thread (async functions): see
_dispatch.py. stop() stops claiming and waits for running tasks
(omniq_worker_stop), up to the pool's shutdown_timeout.

process_tasks() drains in the caller instead: omniq_worker_process, run in
slices of `chunk` tasks so that a KeyboardInterrupt between slices can end
it gracefully (a C drain cannot be told to stop). A slice that finishes
fewer tasks than it asked for found nothing due, which ends the drain. The
slice size adapts, doubling while slices take under CHUNK_FAST seconds and
halving past CHUNK_SLOW, so short tasks are not slowed by slicing and an
interrupt waits for about CHUNK_SLOW seconds of work at most.

KeyboardInterrupt: run() returns after a graceful stop; process_tasks()
finishes the slice under way and re-raises it; a `with` block stops the
pool on the way out; start() re-raises it with the pool started if the C
pool runs already. Both run() and process_tasks() wait in the main thread
(the C work goes on in another), because Python delivers signals there only
between bytecodes, never inside a C call.
"""

import asyncio
import ctypes
import signal
import threading
import time

from . import _codec, _lib, _threads
from .errors import InvalidArgumentError

CHUNK_FAST = 0.05
CHUNK_SLOW = 0.2
CHUNK_MAX = 4096
# The main thread's waits wake this often to let Python run a signal
# handler: a SIGINT that lands just before the wait blocks interrupts
# nothing, and would otherwise be handled only when the wait ends.
SIGNAL_CHECK = 0.25

lib = _lib.lib


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


def _run_interruptibly(target, on_interrupt):
    """Runs target in a new thread and waits for it in this (the main)
    thread. A KeyboardInterrupt meanwhile calls on_interrupt and the wait
    goes on; the first one is returned, not raised.

    SIGINT is blocked while the thread starts, so the new thread inherits
    the block (Ctrl-C is the main thread's) and no interrupt lands before
    the wait can take it. The wait is on an Event, not Thread.join(): an
    interrupted join() in Python 3.11 can mark a running thread as ended."""
    done = threading.Event()

    def run():
        try:
            target()
        finally:
            done.set()

    thread = threading.Thread(target=run, name="omniq-drain", daemon=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        thread.start()
    finally:
        # Unblocked before the first look at `done`, whatever it says: a
        # target that ended before this line would otherwise leave SIGINT
        # blocked in the main thread, and a Ctrl-C sent meanwhile pending
        # there for good.
        interrupted = None
        while True:
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
                if done.wait(SIGNAL_CHECK):
                    break
            except KeyboardInterrupt as exc:
                interrupted = interrupted or exc
                on_interrupt()
    return interrupted


class WorkerPool:
    """Worker threads running the tasks of one OmniQ's store.

    concurrency: tasks run at once. poll_interval: seconds an idle pool
    waits before looking again for work it was not told about (other
    processes' tasks, retries and delays coming due). shutdown_timeout:
    seconds stop() waits for running tasks (default: the C library's 30).
    queues: queue names to serve (default "default"). allowed_modules:
    module names or package prefixes whose functions may run; None = any
    importable one (see docs/python.md, Security)."""

    def __init__(self, omniq, concurrency=1, poll_interval=1.0, *, shutdown_timeout=None,
                 queues=None, allowed_modules=None):
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError("concurrency must be an int >= 1 (got %r)" % (concurrency,))
        opts = _lib.new_worker_opts()
        opts.concurrency = concurrency
        opts.poll_interval_ms = max(1, _codec.duration_ms("poll_interval", poll_interval))
        if shutdown_timeout is not None:
            opts.shutdown_timeout_ms = _codec.duration_ms("shutdown_timeout", shutdown_timeout)
        queues = [queues] if isinstance(queues, str) else list(queues or [])
        if len(queues) > _lib.MAX_QUEUES:
            raise InvalidArgumentError("at most %d queues" % _lib.MAX_QUEUES)
        self._queues = [q.encode() for q in queues]  # kept alive for opts.queues
        for i, q in enumerate(self._queues):
            opts.queues[i] = q
        if isinstance(allowed_modules, str):
            allowed_modules = [allowed_modules]
        self.allowed_modules = tuple(allowed_modules) if allowed_modules is not None else None
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self._omniq = omniq
        self._opts = opts
        self._lock = threading.RLock()  # start, stop and drains, one at a time
        self._w = None  # the started C pool
        self._dispatcher = None
        self._stopper = None  # a stop still finishing after stop(timeout) gave up
        self._wake = threading.Event()  # ends run()
        self._drain_stop = threading.Event()  # ends process_tasks() after its slice
        self._stopped_cleanly = True

    @property
    def running(self):
        return self._w is not None

    # ---- started pools -------------------------------------------------------

    def start(self):
        """Starts the workers and returns once they run."""
        with self._lock:
            if self._w is not None:
                raise RuntimeError("this pool is already started")
            self._join_stopper()
            d = self._omniq._attach(self, self.allowed_modules)
            d.acquire()
            w = ctypes.c_void_p()
            # Cleared before the pool runs, never after: its first task may
            # end, and another thread call stop() (which sets _wake, then
            # waits for this lock), before the C call returns; clearing
            # then would erase that stop and leave run() waiting for good.
            self._wake.clear()
            try:
                self._omniq._start(self._opts, w)
            finally:
                # A KeyboardInterrupt can land as the C call returns (a
                # handler may send it at once): the pool runs all the same,
                # its threads may be in our handlers already, so it stays
                # started for stop() to stop. Releasing the dispatcher now
                # would stop the loop its async handlers need and delete the
                # thread states its threads run on.
                if w.value:
                    self._dispatcher = d
                    self._w = w.value
                else:
                    d.release()
                    self._omniq._detach(self)

    def stop(self, timeout=None):
        """Stops claiming and waits for running tasks, then returns True;
        False if some were still running at shutdown_timeout (they are
        left to their lease, as the C library does) or after `timeout`
        seconds (the stop then finishes in the background; start() and
        OmniQ.close() wait for it). Stopping a stopped pool returns True."""
        self._wake.set()
        with self._lock:
            w, self._w = self._w, None
            if w is None:
                return self._join_stopper()
            if timeout is None:
                return self._stop_uninterrupted(w)
            stopper = threading.Thread(target=self._finish_stop, args=(w,),
                                       name="omniq-pool-stop", daemon=True)
            # Recorded before the wait, which a Ctrl-C can end: start() and
            # close() then still wait for the stop under way.
            self._stopper = stopper
            stopper.start()
            stopper.join(max(timeout, 0))
            if stopper.is_alive():
                return False
            self._stopper = None
            return self._stopped_cleanly

    def _stop_uninterrupted(self, w):
        """_finish_stop(w), finished whatever Ctrl-C lands meanwhile.

        In the main thread a KeyboardInterrupt could otherwise be raised
        just before the C stop (the pool runs on, forgotten) or just after
        it (the dispatcher its threads used is never released). The stop
        runs in a thread of its own instead, and an interrupt during it is
        raised once it has finished: at most shutdown_timeout later."""
        if not _in_main_thread():
            return self._finish_stop(w)
        outcome = []

        def finish():
            try:
                outcome.append(self._finish_stop(w))
            except BaseException as exc:  # re-raised in the caller's thread
                outcome.append(exc)

        interrupted = _run_interruptibly(finish, lambda: None)
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        if interrupted is not None:
            raise interrupted
        return outcome[0]

    def _finish_stop(self, w):
        rc = lib.omniq_worker_stop(w)
        self._dispatcher.release(gave_up=rc != _lib.OK)
        self._dispatcher = None
        self._omniq._detach(self)
        self._stopped_cleanly = rc == _lib.OK
        return self._stopped_cleanly

    def _join_stopper(self):
        if self._stopper is None:
            return True
        self._stopper.join()
        self._stopper = None
        return self._stopped_cleanly

    def run(self):
        """Starts the pool (unless started) and works until stop() is
        called from another thread, KeyboardInterrupt, or SIGTERM; then
        stops gracefully and returns."""
        previous = None
        try:
            if _in_main_thread():
                previous = signal.signal(signal.SIGTERM, lambda *_: self._wake.set())
            if not self.running:
                self.start()
            while not self._wake.is_set():
                self._wake.wait(SIGNAL_CHECK)
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.stop()

    # ---- draining in the caller ---------------------------------------------------

    def process_tasks(self, limit=None):
        """Runs due tasks until `limit` have finished (None = no limit) or
        nothing is due; returns how many finished. Does not wait for work."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise InvalidArgumentError("limit must be an int >= 0 or None (got %r)" % (limit,))
        with self._lock:
            if self._w is not None:
                raise RuntimeError("process_tasks() drains in the caller; stop() the started "
                                   "pool first")
            # Made before _attach lists the pool, so OmniQ.close() finds it.
            self._drain_stop = threading.Event()
            d = self._omniq._attach(self, self.allowed_modules)
            d.acquire()
            try:
                return self._drain(limit, d)
            finally:
                d.release()
                self._omniq._detach(self)

    def _drain(self, limit, dispatcher):
        stop = self._drain_stop
        box = {"done": 0}

        def drain():
            _threads.owned()  # this thread is one of the runners
            chunk = self.concurrency
            while not stop.is_set():
                want = chunk if limit is None else min(chunk, limit - box["done"])
                if want <= 0:
                    return
                started = time.monotonic()
                n = self._omniq._process(self._opts, want)
                dispatcher.slice_ended()
                box["done"] += n
                if n < want:
                    return
                took = time.monotonic() - started
                if took < CHUNK_FAST:
                    chunk = min(chunk * 2, CHUNK_MAX)
                elif took > CHUNK_SLOW:
                    chunk = max(chunk // 2, self.concurrency)

        def guarded():
            try:
                drain()
            except BaseException as exc:
                box["error"] = exc

        if not _in_main_thread():
            drain()
            return box["done"]
        interrupted = _run_interruptibly(guarded, stop.set)
        if "error" in box:
            raise box["error"]
        if interrupted is not None:
            raise interrupted
        return box["done"]

    def _close(self):
        """OmniQ.close(): ends a drain after its slice, stops a started
        pool, and waits for a stop still finishing."""
        self._drain_stop.set()
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class AsyncWorkerPool:
    """WorkerPool for asyncio programs. Handlers run on the pool's threads
    and its own event loop, never on the caller's loop."""

    def __init__(self, pool):
        self._pool = pool
        self._stopped = None

    @property
    def running(self):
        return self._pool.running

    @property
    def concurrency(self):
        return self._pool.concurrency

    async def start(self):
        await asyncio.to_thread(self._pool.start)

    async def stop(self, timeout=None):
        if self._stopped is not None:
            self._stopped.set()
        return await asyncio.to_thread(self._pool.stop, timeout)

    async def process_tasks(self, limit=None):
        return await asyncio.to_thread(self._pool.process_tasks, limit)

    async def run(self):
        """Starts the pool (unless started) and works until stop() or until
        this coroutine is cancelled (as asyncio.run does on Ctrl-C); then
        stops gracefully."""
        self._stopped = asyncio.Event()
        if not self.running:
            await self.start()
        try:
            await self._stopped.wait()
        finally:
            await asyncio.shield(asyncio.to_thread(self._pool.stop))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.stop()
