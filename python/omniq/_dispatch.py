# SPDX-License-Identifier: MIT
"""The worker side of a handle: the fallback handler that runs the Python
callable each task names, and the event loop that async handlers run on.

One run: a C runner thread calls Dispatcher._on_job (ctypes takes the GIL
for it). It resolves the func name to a callable (cached), decodes the JSON
arguments and calls it in that thread. A plain function's return value is
encoded and set with omniq_job_return, and the run ends when _on_job
returns. An async function's call returns a coroutine: it is handed to the
event loop thread and _on_job returns OMNIQ_DEFERRED; the loop sets the
outcome and calls omniq_job_complete, which ends the run. Meanwhile the
runner thread waits in C without the GIL: the pool slot stays taken, Python
is free.

Failures: an exception fails the run with error_type = its class name, its
message and its formatted traceback, retryable unless it derives from
NonRetryableError. A func that does not resolve fails as "HandlerNotFound",
not retryable, as the C library fails an unregistered name. A result JSON
cannot carry fails as "SerializationError", not retryable. _on_job never
lets an exception escape: ctypes would print it and return 0, which the
library would read as success.

Cancellation: omniq_job_cancelled() turns true at the task's deadline, on a
cancel, or when a stop gives up. Sync handlers may poll omniq.is_cancelled();
the loop looks at its runs every CANCEL_CHECK seconds and cancels the
asyncio task of any whose job was cancelled (the library has recorded the
outcome already and ignores a late one).

The loop thread starts with the first pool (or process_tasks) on the handle
and stops after the last: it cancels the runs still on it and completes
them, since a deferred job is only freed by its omniq_job_complete.
"""

import asyncio
import contextvars
import inspect
import threading
import traceback

from . import _codec, _json, _lib, _threads
from .errors import NonRetryableError, SerializationError

CANCEL_CHECK = 0.05
HANDLER_NOT_FOUND = b"HandlerNotFound"
SERIALIZATION_ERROR = SerializationError.__name__.encode()

lib = _lib.lib
_current_job = contextvars.ContextVar("omniq_job", default=None)


def is_cancelled():
    """True when the task the calling handler runs for was cancelled, passed
    its timeout, or its worker is stopping. False outside a handler."""
    job = _current_job.get()
    return bool(job) and bool(lib.omniq_job_cancelled(job))


def _fail(job, error_type, message, tb, retryable):
    lib.omniq_job_fail_traceback(job, error_type, message.encode("utf-8", "replace"),
                                 tb.encode("utf-8", "replace") if tb else None, int(retryable))


def _fail_exception(job, exc):
    tb = exc.__traceback__
    tb = tb.tb_next if tb is not None and tb.tb_next is not None else tb  # our own frame
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    _fail(job, type(exc).__name__.encode("utf-8", "replace"), str(exc), text,
          not isinstance(exc, NonRetryableError))
    return _lib.EFAILED


def _return(oq, job, value, name):
    """Sets the run's result; a value JSON cannot carry fails the run."""
    if value is None:
        return _lib.OK
    try:
        text = _json.dumps(value, "result", name)
    except SerializationError as exc:
        _fail(job, SERIALIZATION_ERROR, str(exc), None, False)
        return _lib.EFAILED
    if lib.omniq_job_return(job, text) != _lib.OK:  # e.g. an int jansson cannot hold
        _fail(job, SERIALIZATION_ERROR, "result of %s: %s" % (_lib.text(name), _lib.errmsg(oq)),
              None, False)
        return _lib.EFAILED
    return _lib.OK


class Dispatcher:
    """Registered as the fallback handler of one handle."""

    def __init__(self, oq, allowed_modules):
        self.allowed_modules = allowed_modules
        self._oq = oq
        self._cache = {}  # func name (bytes) -> callable
        self._lock = threading.Lock()  # guards the loop fields below
        self._users = 0
        self._loop = None
        self._thread = None
        self._running = {}  # loop thread only: job -> its asyncio task
        self._checking = False
        self._threads = _threads.Keeper()
        self.callback = _lib.HANDLER_FN(self._on_job)
        _lib.check(lib.omniq_register_fallback(oq, self.callback, None), oq)

    def clear_cache(self):
        """Forgets resolved funcs (allowed_modules changed)."""
        self._cache = {}

    # ---- running one job (C runner threads) ------------------------------

    def _on_job(self, job, _userdata):
        try:
            self._threads.keep()
            name = lib.omniq_job_func(job)
            func = self._cache.get(name)
            if func is None:
                try:
                    func = _codec.resolve(_lib.text(name), self.allowed_modules)
                except _codec.ResolveError as exc:
                    _fail(job, HANDLER_NOT_FOUND, str(exc), None, False)
                    return _lib.EHANDLER
                self._cache[name] = func
            try:
                args = _json.loads(lib.omniq_job_args(job))
                kw = lib.omniq_job_kwargs(job)
                kwargs = _json.loads(kw) if kw != b"{}" else {}
                if not isinstance(args, list) or not isinstance(kwargs, dict):
                    raise ValueError("args must be an array and kwargs an object")
            except ValueError as exc:
                _fail(job, SERIALIZATION_ERROR, "arguments of %s: %s" % (_lib.text(name), exc),
                      None, False)
                return _lib.EFAILED
            token = _current_job.set(job)
            try:
                value = func(*args, **kwargs)
            except BaseException as exc:
                return _fail_exception(job, exc)
            finally:
                _current_job.reset(token)
            if inspect.iscoroutine(value):
                return self._defer(job, value, name)
            return _return(self._oq, job, value, name)
        except BaseException as exc:  # a bug here must still fail the run, not pass it
            try:
                return _fail_exception(job, exc)
            except BaseException:
                return _lib.EFAILED

    def _defer(self, job, coro, name):
        with self._lock:
            loop = self._loop
            if loop is not None:
                asyncio.run_coroutine_threadsafe(self._run_async(job, coro, name), loop)
                return _lib.DEFERRED
        coro.close()  # a run abandoned by a stop, returning after the loop ended
        _fail(job, b"WorkerStopped", "the worker's event loop has stopped", None, True)
        return _lib.EFAILED

    async def _run_async(self, job, coro, name):
        self._running[job] = asyncio.current_task()
        if not self._checking:
            self._checking = True
            asyncio.get_running_loop().call_later(CANCEL_CHECK, self._check_cancelled)
        token = _current_job.set(job)
        try:
            value = await coro
        except BaseException as exc:  # CancelledError too: the job must still complete
            _fail_exception(job, exc)
        else:
            _return(self._oq, job, value, name)
        finally:
            _current_job.reset(token)
            del self._running[job]
            lib.omniq_job_complete(job)

    def _check_cancelled(self):
        for job, task in list(self._running.items()):
            if lib.omniq_job_cancelled(job):
                task.cancel()
        self._checking = bool(self._running)
        if self._checking:
            asyncio.get_running_loop().call_later(CANCEL_CHECK, self._check_cancelled)

    # ---- the loop thread ---------------------------------------------------

    def acquire(self):
        """A pool starts: the loop runs while any pool does."""
        with self._lock:
            self._users += 1
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop_main, args=(self._loop,),
                                                name="omniq-async-handlers", daemon=True)
                self._thread.start()

    def slice_ended(self):
        """A process_tasks slice ended, and its threads with it: unless
        another pool runs (their threads' states are kept too), delete the
        states kept so far rather than let a long drain pile them up."""
        with self._lock:
            ended = self._threads.take() if self._users == 1 else []
        _threads.delete(ended)

    def release(self, gave_up=False):
        """A pool stopped (gave_up: its stop left handlers running). The
        last one stops the loop and deletes the thread states kept for the
        pools' threads, which have all ended."""
        if gave_up:
            self._threads.let_go()
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            # Taken under the lock: a pool started from now on keeps its own.
            ended = self._threads.take()
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        _threads.delete(ended)

    def _loop_main(self, loop):
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            self._checking = False  # the next loop starts its own checks
