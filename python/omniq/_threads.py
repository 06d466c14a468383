# SPDX-License-Identifier: MIT
"""Python thread states for the C library's worker threads.

ctypes runs a callback on a thread Python did not create under a thread
state made for that one call and deleted after it, together with the
16 KiB frame stack its first frame maps: an mmap and an munmap per task,
about a sixth of a no-op task's whole cost. So the first handler call on
such a thread keeps its state (one more PyGILState_Ensure, never
released), and the state is deleted later, from another thread, once its
thread has ended.

When that is known: a pool joins every thread it started when it stops
(omniq_worker_stop, omniq_worker_process), except the threads of runs a
stop gave up on, which may still be in Python. So once no pool of the
handle runs, every kept state belongs to an ended thread, except after a
stop that timed out: the states kept by then are let go of, never deleted
(a small leak rather than a crash).

Python's own threads that call handlers (the caller of process_tasks is
one of that pool's runners) have a lasting state already; owned() marks
them before they call into the library, so they are never kept here.

Only the public C API is used: PyGILState_Ensure, PyThreadState_Get, and
PyThreadState_Clear and PyThreadState_Delete, which may be given another
thread's state with the GIL held, as every call through ctypes.pythonapi
holds it.
"""

import ctypes
import threading

_api = ctypes.pythonapi
_api.PyGILState_Ensure.restype = ctypes.c_int
_api.PyThreadState_Get.restype = ctypes.c_void_p
for _name in ("PyThreadState_Clear", "PyThreadState_Delete"):
    getattr(_api, _name).argtypes = [ctypes.c_void_p]
    getattr(_api, _name).restype = None

_local = threading.local()  # per thread state: a fresh one has no `seen`


def owned():
    """Marks the calling Python thread as one whose state Python manages."""
    _local.seen = True


class Keeper:
    """The thread states kept for one handle's library threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._kept = []

    def keep(self):
        """First thing in each handler call."""
        if getattr(_local, "seen", False):
            return
        _api.PyGILState_Ensure()  # outlives this call: the state stays
        _local.seen = True
        with self._lock:
            self._kept.append(_api.PyThreadState_Get())

    def take(self):
        """The states kept so far, for delete() once their threads ended."""
        with self._lock:
            kept, self._kept = self._kept, []
        return kept

    def let_go(self):
        """A stop gave up on running handlers: their threads may live on,
        so nothing kept so far may be deleted."""
        self.take()


def delete(states):
    for state in states:
        _api.PyThreadState_Clear(state)
        _api.PyThreadState_Delete(state)
