# SPDX-License-Identifier: MIT
"""OmniQ and AsyncOmniQ: a handle on one store, for producers and workers.

An OmniQ opens one C handle (omniq_open) and closes it in close(), when
used as a context manager, or at interpreter exit. Every call checks in
and out of the handle (_Use), and close() waits for calls in progress and
stops the handle's pools before it frees anything, so no thread is left
calling into a freed handle.

Blocking waits (get_result with wait) are slices of at most WAIT_SLICE
seconds of C waiting: between slices Python can deliver KeyboardInterrupt,
and close() can end the wait. A result landing in this process still wakes
the waiter at once.

AsyncOmniQ runs the same calls in worker threads (asyncio.to_thread), so a
busy store never blocks the event loop.
"""

import asyncio
import atexit
import concurrent.futures
import ctypes
import datetime
import functools
import threading
import time
import weakref

from . import _codec, _lib
from ._dispatch import Dispatcher
from ._manage import Operations
from .config import Settings
from .errors import ClosedError, DuplicateTaskError, InvalidArgumentError
from .models import _STATUSES, Task, TaskResult
from .worker import AsyncWorkerPool, WorkerPool

WAIT_SLICE = 1.0
WAIT_THREADS = 256  # AsyncOmniQ: result waits in progress at once
lib = _lib.lib
_open = weakref.WeakSet()  # closed at exit
_busy = set()  # handles with pools: C threads call into them, so they must stay alive


class _Use:
    """Checks a call in and out of the handle; refuses once closing."""

    __slots__ = ("q",)

    def __init__(self, q):
        self.q = q

    def __enter__(self):
        q = self.q
        with q._cond:
            if q._closing:
                raise ClosedError("this OmniQ is closed")
            q._active += 1
        return q._oq

    def __exit__(self, *exc):
        q = self.q
        with q._cond:
            q._active -= 1
            if q._active == 0:
                q._cond.notify_all()


def _max_retries(value):
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("max_retries must be an int >= 0 (got %r)" % (value,))
    return value


def _optional_bytes(name, value):
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("%s must be a str, not %r" % (name, value))
    return value.encode()


class OmniQ(Operations):
    """The queue: enqueue, results, tasks, control, and worker pools; the
    operations on tasks and queues come from Operations (_manage.py)."""

    def __init__(self, settings=None):
        self.settings = settings if settings is not None else Settings.from_env()
        struct, self._clock_callback = self.settings._to_struct()
        oq = ctypes.c_void_p()
        _lib.check(lib.omniq_open(ctypes.byref(oq), ctypes.byref(struct)), None)
        self._oq = oq.value
        self._cond = threading.Condition()
        self._active = 0
        self._closing = False
        self._dispatcher = None
        self._pools = set()
        _open.add(self)

    @classmethod
    def from_env(cls):
        return cls(Settings.from_env())

    # ---- enqueue -------------------------------------------------------------

    @staticmethod
    def _opts(eta, interval, max_retries, timeout, queue, priority, unique_key=None,
              unique_for=None, cron=None):
        opts = _lib.new_enqueue_opts()
        opts.eta_ms = _codec.eta_ms(eta)
        if interval is not None:
            opts.interval_ms = _codec.duration_ms("interval", interval)
        opts.max_retries = _max_retries(max_retries)
        if timeout is not None:
            opts.timeout_ms = _codec.duration_ms("timeout", timeout)
        opts.queue = _optional_bytes("queue", queue)
        if priority is not None:
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise TypeError("priority must be an int, not %r" % (priority,))
            opts.priority = priority
        opts.unique_key = _optional_bytes("unique_key", unique_key)
        if unique_for is not None:
            if unique_key is None:
                raise ValueError("unique_for is how long a unique_key stays held: give one")
            opts.unique_for_ms = _codec.duration_ms("unique_for", unique_for)
        opts.cron = _optional_bytes("cron", cron)
        return opts

    def enqueue(self, func, *args, eta=None, interval=None, max_retries=None, timeout=None,
                queue=None, priority=None, unique_key=None, unique_for=None, cron=None,
                **kwargs):
        """Stores a call of func(*args, **kwargs) and returns its task id.

        func: a module-level callable, or its "module.qualname". eta: an
        aware datetime (default now). interval: seconds or a timedelta; the
        task re-runs this long after each run until cancelled. max_retries:
        total runs allowed (default from settings). timeout: seconds or a
        timedelta per run (None = settings default, 0 = none). queue: its
        name (None = "default"); priority: higher runs first (default 0).
        unique_key: while a task of the queue holds this key (PENDING,
        RUNNING, and unique_for seconds or timedelta after it finished),
        enqueueing it again raises DuplicateTaskError, whose task_id is the
        holder's. cron: a five-field cron expression in UTC; the task runs
        at each match until cancelled (not with interval). Arguments JSON
        cannot carry raise SerializationError; nothing is stored."""
        name = _codec.func_name(func)
        args_json, kwargs_json = _codec.dumps_call(name, args, kwargs)
        opts = self._opts(eta, interval, max_retries, timeout, queue, priority, unique_key,
                          unique_for, cron)
        out = ctypes.create_string_buffer(_lib.ID_SIZE)
        with _Use(self) as oq:
            rc = lib.omniq_enqueue(oq, name.encode(), args_json, kwargs_json, ctypes.byref(opts),
                                   out)
            if rc != _lib.OK:
                exc = _lib.error(rc, oq, "enqueue " + name)
                if isinstance(exc, DuplicateTaskError):
                    exc.task_id = out.value.decode() or None
                raise exc
        return out.value.decode()

    def enqueue_many(self, calls, *, eta=None, interval=None, max_retries=None, timeout=None,
                     queue=None, priority=None):
        """Stores many calls in one transaction, all or none, and returns
        their ids in order. calls: (func, args) or (func, args, kwargs)
        tuples; the options (as enqueue's) apply to each."""
        opts = self._opts(eta, interval, max_retries, timeout, queue, priority)
        keep = []
        for call in calls:
            func, args, kwargs = (tuple(call) + ({},))[:3]
            name = _codec.func_name(func)
            keep.append((name.encode(),) + _codec.dumps_call(name, args, kwargs))
        n = len(keep)
        if n == 0:
            return []
        items = (_lib.EnqueueItem * n)()
        popts = ctypes.pointer(opts)
        for item, (name, args_json, kwargs_json) in zip(items, keep):
            item.func, item.args_json, item.kwargs_json, item.opts = (name, args_json,
                                                                      kwargs_json, popts)
        out = ctypes.create_string_buffer(_lib.ID_SIZE * n)
        with _Use(self) as oq:
            _lib.check(lib.omniq_enqueue_many(oq, items, n, out), oq, "enqueue_many")
        raw = out.raw
        return [raw[i * _lib.ID_SIZE:(i + 1) * _lib.ID_SIZE - 1].decode() for i in range(n)]

    # ---- results and tasks -----------------------------------------------------

    def get_result(self, task_id, wait=False, timeout=None):
        """The task's TaskResult, or None: no result yet (a task that will
        retry has none), an unknown id, or `timeout` seconds passed while
        waiting (wait=True; timeout None waits as long as it takes)."""
        return self._get_result(task_id, wait, timeout, None)

    def _get_result(self, task_id, wait, timeout, cancelled):
        tid = _codec.task_id(task_id)
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        out = ctypes.c_void_p()
        while True:
            slice_ = 0.0
            if wait:
                slice_ = WAIT_SLICE if deadline is None else min(WAIT_SLICE,
                                                                 deadline - time.monotonic())
            with _Use(self) as oq:
                rc = lib.omniq_get_result(oq, tid, max(slice_, 0.0), ctypes.byref(out))
                if rc == _lib.OK:
                    try:
                        return TaskResult._from_c(out.value)
                    finally:
                        lib.omniq_result_free(out.value)
                if rc == _lib.ENOTFOUND:
                    return None
                if rc != _lib.ETIMEDOUT:
                    raise _lib.error(rc, oq, "get_result")
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if cancelled is not None and cancelled.is_set():
                return None

    def get_task(self, task_id):
        """The Task, or None for an unknown id."""
        out = ctypes.c_void_p()
        with _Use(self) as oq:
            rc = lib.omniq_get_task(oq, _codec.task_id(task_id), ctypes.byref(out))
            if rc == _lib.ENOTFOUND:
                return None
            _lib.check(rc, oq, "get_task")
        try:
            return Task._from_c(out.value)
        finally:
            lib.omniq_task_free(out.value)

    def count_by_status(self):
        """{TaskStatus: number of tasks in it}."""
        counts = (ctypes.c_int64 * _lib.STATUS_COUNT)()
        with _Use(self) as oq:
            _lib.check(lib.omniq_count_by_status(oq, counts), oq, "count_by_status")
        return {status: counts[i] for i, status in enumerate(_STATUSES)}

    # ---- control ---------------------------------------------------------------

    def cancel(self, task_id):
        """PENDING or RUNNING -> CANCELLED. A running handler sees
        omniq.is_cancelled() and its outcome is discarded. Raises
        TaskNotFoundError for an unknown id, InvalidTransitionError for a
        finished task."""
        with _Use(self) as oq:
            _lib.check(lib.omniq_cancel(oq, _codec.task_id(task_id)), oq, "cancel")

    def purge(self, older_than=None):
        """Deletes results and returns how many. older_than: an age in
        seconds or a timedelta, or an aware datetime cutoff; None = older
        than settings.result_ttl."""
        count = ctypes.c_int64()
        with _Use(self) as oq:
            if older_than is None:
                rc = lib.omniq_purge_expired_results(oq, ctypes.byref(count))
            else:
                if isinstance(older_than, datetime.datetime):
                    cutoff = _codec.eta_ms(older_than)
                else:
                    age = _codec.duration_ms("older_than", older_than)
                    cutoff = int(self.settings.now() * 1000) - age
                rc = lib.omniq_purge_results(oq, cutoff, ctypes.byref(count))
            _lib.check(rc, oq, "purge")
        return count.value

    # ---- workers -----------------------------------------------------------------

    def worker(self, concurrency=1, poll_interval=1.0, *, shutdown_timeout=None, queues=None,
               allowed_modules=None):
        """A WorkerPool on this handle (not started: see WorkerPool)."""
        return WorkerPool(self, concurrency, poll_interval, shutdown_timeout=shutdown_timeout,
                          queues=queues, allowed_modules=allowed_modules)

    def _attach(self, pool, allowed):
        """A pool starts: the handle's dispatcher, made on first use. Pools
        on one handle share it, so they must agree on allowed_modules."""
        with self._cond:
            if self._closing:
                raise ClosedError("this OmniQ is closed")
            d = self._dispatcher
            if d is None:
                d = self._dispatcher = Dispatcher(self._oq, allowed)
            elif d.allowed_modules != allowed:
                if any(p is not pool for p in self._pools):
                    raise InvalidArgumentError(
                        "pools on one OmniQ share its handler lookup: allowed_modules %r differs "
                        "from the running pools' %r" % (allowed, d.allowed_modules))
                d.allowed_modules = allowed
                d.clear_cache()
            self._pools.add(pool)
            _busy.add(self)
        return d

    def _detach(self, pool):
        with self._cond:
            self._pools.discard(pool)
            if not self._pools:
                _busy.discard(self)

    def _use(self):
        """`with self._use() as oq:` around every call into the handle."""
        return _Use(self)

    def _process(self, opts, limit):
        done = ctypes.c_long()
        with _Use(self) as oq:
            rc = lib.omniq_worker_process(oq, ctypes.byref(opts), limit, ctypes.byref(done))
            _lib.check(rc, oq, "process_tasks")
        return done.value

    def _start(self, opts, w):
        """Starts a C pool into w (a c_void_p): the library stores it there
        before Python runs again, so an exception raised as the call returns
        cannot lose a pool that runs."""
        with _Use(self) as oq:
            _lib.check(lib.omniq_worker_start(oq, ctypes.byref(opts), ctypes.byref(w)), oq,
                       "worker start")

    # ---- closing -------------------------------------------------------------------

    def close(self):
        """Stops this handle's pools (waiting for their tasks as stop()
        does), waits for calls in progress, and closes the store."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            pools = list(self._pools)
        for pool in pools:
            pool._close()
        with self._cond:
            while self._active:
                self._cond.wait()
        lib.omniq_close(self._oq)
        self._oq = None
        _open.discard(self)

    @property
    def closed(self):
        return self._closing

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if not self._closing:
                self.close()
        except Exception:
            pass


@atexit.register
def _close_all():
    """Pool threads call into Python: stop them before the interpreter goes."""
    for q in list(_open):
        q.close()


def _in_thread(method):
    """An AsyncOmniQ coroutine that runs OmniQ's `method` in a thread."""
    @functools.wraps(method)
    async def call(self, *args, **kwargs):
        return await asyncio.to_thread(method, self._q, *args, **kwargs)
    return call


class AsyncOmniQ:
    """OmniQ for asyncio programs: the same calls, awaited."""

    def __init__(self, settings=None):
        self._q = OmniQ(settings)
        self.settings = self._q.settings
        # Waits for results get threads of their own: in the loop's default
        # executor (a handful of threads) they could hold up every other call.
        self._waits = concurrent.futures.ThreadPoolExecutor(WAIT_THREADS, "omniq-wait")

    @classmethod
    def from_env(cls):
        return cls(Settings.from_env())

    enqueue = _in_thread(OmniQ.enqueue)

    async def enqueue_many(self, calls, **options):
        return await asyncio.to_thread(self._q.enqueue_many, list(calls), **options)

    async def get_result(self, task_id, wait=False, timeout=None):
        if not wait:
            return await asyncio.to_thread(self._q.get_result, task_id)
        cancelled = threading.Event()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._waits, self._q._get_result, task_id, wait, timeout, cancelled)
        except asyncio.CancelledError:
            cancelled.set()  # the waiting thread gives up within WAIT_SLICE
            raise

    async def get_task(self, task_id):
        return await asyncio.to_thread(self._q.get_task, task_id)

    async def count_by_status(self):
        return await asyncio.to_thread(self._q.count_by_status)

    async def cancel(self, task_id):
        await asyncio.to_thread(self._q.cancel, task_id)

    async def purge(self, older_than=None):
        return await asyncio.to_thread(self._q.purge, older_than)

    # The operations on tasks and queues: OmniQ's, run in a thread.
    list_tasks = _in_thread(OmniQ.list_tasks)
    retry = _in_thread(OmniQ.retry)
    retry_many = _in_thread(OmniQ.retry_many)
    delete = _in_thread(OmniQ.delete)
    delete_expired = _in_thread(OmniQ.delete_expired)
    pause = _in_thread(OmniQ.pause)
    resume = _in_thread(OmniQ.resume)
    set_rate_limit = _in_thread(OmniQ.set_rate_limit)
    queue_stats = _in_thread(OmniQ.queue_stats)
    stats = _in_thread(OmniQ.stats)

    async def iter_tasks(self, status=None, *, page_size=100, **filters):
        """OmniQ.iter_tasks as an async iterator: `async for task in ...`;
        each page is read in a thread."""
        cursor = None
        while True:
            page = await asyncio.to_thread(self._q.list_tasks, status, page_size, cursor=cursor,
                                           **filters)
            for task in page:
                yield task
            cursor = page.next_cursor
            if cursor is None:
                return

    def worker(self, concurrency=1, poll_interval=1.0, **options):
        """An AsyncWorkerPool on this handle (not started)."""
        return AsyncWorkerPool(self._q.worker(concurrency, poll_interval, **options))

    async def close(self):
        await asyncio.to_thread(self._q.close)
        self._waits.shutdown(wait=False)

    @property
    def closed(self):
        return self._q.closed

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

