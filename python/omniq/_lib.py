# SPDX-License-Identifier: MIT
"""The C library, seen through ctypes: loading it, the structs mirrored from
omniq.h, the prototypes, and turning status codes into exceptions.

Which libomniq is loaded, first match wins:
  1. the path in the OMNIQ_LIBRARY environment variable (the build tree's
     tests set it to build/libomniq.so);
  2. the library installed beside this package by `make install` (the path
     relative to the package is written into _install.py at install time);
  3. "libomniq.so.0" found the way the dynamic loader finds libraries.

Structs: omniq.h promises that option structs only grow at the end, and
each has an _init() that fills the whole C struct. So every mirror the C
side writes into carries a zeroed tail (_RESERVED bytes): a libomniq newer
than this package can append fields without writing past Python's buffer.
python/tests/test_layout.py compares each mirror with the C compiler's view.

Every call into the library goes through ctypes.CDLL, which releases the GIL
for the call's duration: a blocking wait or a worker stop never holds up
other Python threads, and C threads may call back into Python meanwhile.
"""

import ctypes
import os

from . import errors

ID_SIZE = 37  # OMNIQ_ID_SIZE
MAX_QUEUES = 16  # OMNIQ_MAX_QUEUES
NAME_MAX = 64  # OMNIQ_NAME_MAX
PATH_MAX = 1024  # OMNIQ_PATH_MAX
HANDLER_PATH_MAX = 4096  # OMNIQ_HANDLER_PATH_MAX
STATUS_COUNT = 5  # OMNIQ_STATUS_COUNT
_RESERVED = 1024

# The status codes this package acts on (omniq.h's OMNIQ_ERRNO_MAP).
OK = 0
DEFERRED = 1
ENOTFOUND = -3
ETIMEDOUT = -4
EHANDLER = -13
EFAILED = -15
EEXISTS = -16

LIST_MAX_LIMIT = 1000  # OMNIQ_LIST_MAX_LIMIT
RUNS_KINDS = 4  # OMNIQ_RUNS_KINDS: succeeded, failed, retried, lost

ISOLATION_THREAD = 0
SERIALIZERS = {"json": 0, "raw": 1}
LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
LOG_FORMATS = {"text": 0, "json": 1}

c_int64 = ctypes.c_int64
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
c_int = ctypes.c_int

LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)
CLOCK_FN = ctypes.CFUNCTYPE(c_int64, c_void_p)
HANDLER_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)


class SettingsStruct(ctypes.Structure):
    """omniq_settings_t."""

    _fields_ = [
        ("backend", ctypes.c_char * NAME_MAX),
        ("db_url", ctypes.c_char * PATH_MAX),
        ("base_dir", ctypes.c_char * PATH_MAX),
        ("default_timeout_ms", c_int64),
        ("default_max_retries", c_int),
        ("lease_ms", c_int64),
        ("result_ttl_ms", c_int64),
        ("serializer", c_int),
        ("log_level", c_int),
        ("log_format", c_int),
        ("retry_base_ms", c_int64),
        ("retry_cap_ms", c_int64),
        ("fsync", c_int),
        ("log_fn", LOG_FN),
        ("log_userdata", c_void_p),
        ("clock_fn", CLOCK_FN),
        ("clock_userdata", c_void_p),
        ("task_ttl_ms", c_int64),
        ("crash_budget", c_int),
        ("db_schema", ctypes.c_char * NAME_MAX),
        # Libraries a worker may load for lib.so:symbol; Settings leaves it
        # empty: a Python worker runs registered and fallback handlers.
        ("handler_path", ctypes.c_char * HANDLER_PATH_MAX),
        ("_reserved", ctypes.c_char * _RESERVED),
    ]


class EnqueueOpts(ctypes.Structure):
    """omniq_enqueue_opts_t."""

    _fields_ = [
        ("eta_ms", c_int64),
        ("delay_ms", c_int64),
        ("interval_ms", c_int64),
        ("max_retries", c_int),
        ("timeout_ms", c_int64),
        ("queue", c_char_p),
        ("priority", c_int),
        ("unique_key", c_char_p),
        ("unique_for_ms", c_int64),
        ("cron", c_char_p),
        ("_reserved", ctypes.c_char * _RESERVED),
    ]


class EnqueueItem(ctypes.Structure):
    """omniq_enqueue_item_t (no _init: the C side never writes one)."""

    _fields_ = [
        ("func", c_char_p),
        ("args_json", c_char_p),
        ("kwargs_json", c_char_p),
        ("opts", ctypes.POINTER(EnqueueOpts)),
    ]


class WorkerOpts(ctypes.Structure):
    """omniq_worker_opts_t."""

    _fields_ = [
        ("concurrency", c_int),
        ("poll_interval_ms", c_int64),
        ("shutdown_timeout_ms", c_int64),
        ("isolation", c_int),
        ("queues", c_char_p * MAX_QUEUES),
        ("max_tasks_per_child", ctypes.c_long),
        ("memory_limit_bytes", c_int64),
        ("cpu_limit_ms", c_int64),
        ("files_limit", c_int),
        ("handler_path", c_char_p),
        ("_reserved", ctypes.c_char * _RESERVED),
    ]


class ListOpts(ctypes.Structure):
    """omniq_list_opts_t."""

    _fields_ = [
        ("statuses", ctypes.c_uint),
        ("queue", c_char_p),
        ("func", c_char_p),
        ("created_from_ms", c_int64),
        ("created_to_ms", c_int64),
        ("finished_from_ms", c_int64),
        ("finished_to_ms", c_int64),
        ("limit", ctypes.c_size_t),
        ("cursor", c_char_p),
        ("newest_first", c_int),
        ("_reserved", ctypes.c_char * _RESERVED),
    ]


# name: (restype, argtypes)
_PROTOTYPES = {
    "omniq_strerror": (c_char_p, [c_int]),
    "omniq_err_name": (c_char_p, [c_int]),
    "omniq_errmsg": (c_char_p, [c_void_p]),
    "omniq_settings_init": (None, [ctypes.POINTER(SettingsStruct)]),
    "omniq_settings_from_env": (c_int, [ctypes.POINTER(SettingsStruct)]),
    "omniq_open": (c_int, [ctypes.POINTER(c_void_p), ctypes.POINTER(SettingsStruct)]),
    "omniq_close": (None, [c_void_p]),
    "omniq_enqueue_opts_init": (None, [ctypes.POINTER(EnqueueOpts)]),
    "omniq_enqueue": (c_int, [c_void_p, c_char_p, c_char_p, c_char_p,
                              ctypes.POINTER(EnqueueOpts), c_char_p]),
    "omniq_enqueue_many": (c_int, [c_void_p, ctypes.POINTER(EnqueueItem),
                                   ctypes.c_size_t, c_char_p]),
    "omniq_get_result": (c_int, [c_void_p, c_char_p, ctypes.c_double,
                                 ctypes.POINTER(c_void_p)]),
    "omniq_result_free": (None, [c_void_p]),
    "omniq_result_task_id": (c_char_p, [c_void_p]),
    "omniq_result_status": (c_int, [c_void_p]),
    "omniq_result_value": (c_char_p, [c_void_p]),
    "omniq_result_error": (c_void_p, [c_void_p]),
    "omniq_result_attempts": (c_int, [c_void_p]),
    "omniq_result_finished_at": (c_int64, [c_void_p]),
    "omniq_result_last_attempt_at": (c_int64, [c_void_p]),
    "omniq_error_type": (c_char_p, [c_void_p]),
    "omniq_error_message": (c_char_p, [c_void_p]),
    "omniq_error_timestamp": (c_int64, [c_void_p]),
    "omniq_error_traceback": (c_char_p, [c_void_p]),
    "omniq_error_retry_count": (c_int, [c_void_p]),
    "omniq_error_is_retryable": (c_int, [c_void_p]),
    "omniq_get_task": (c_int, [c_void_p, c_char_p, ctypes.POINTER(c_void_p)]),
    "omniq_task_free": (None, [c_void_p]),
    "omniq_task_id": (c_char_p, [c_void_p]),
    "omniq_task_func": (c_char_p, [c_void_p]),
    "omniq_task_queue": (c_char_p, [c_void_p]),
    "omniq_task_args": (c_char_p, [c_void_p]),
    "omniq_task_kwargs": (c_char_p, [c_void_p]),
    "omniq_task_status": (c_int, [c_void_p]),
    "omniq_task_attempts": (c_int, [c_void_p]),
    "omniq_task_max_retries": (c_int, [c_void_p]),
    "omniq_task_priority": (c_int, [c_void_p]),
    "omniq_task_eta": (c_int64, [c_void_p]),
    "omniq_task_interval": (c_int64, [c_void_p]),
    "omniq_task_timeout": (c_int64, [c_void_p]),
    "omniq_task_created_at": (c_int64, [c_void_p]),
    "omniq_task_last_error": (c_void_p, [c_void_p]),
    "omniq_task_started_at": (c_int64, [c_void_p]),
    "omniq_task_finished_at": (c_int64, [c_void_p]),
    "omniq_task_unique_key": (c_char_p, [c_void_p]),
    "omniq_task_cron": (c_char_p, [c_void_p]),
    "omniq_task_crashes": (c_int, [c_void_p]),
    "omniq_list_opts_init": (None, [ctypes.POINTER(ListOpts)]),
    "omniq_list_tasks": (c_int, [c_void_p, ctypes.POINTER(ListOpts), ctypes.POINTER(c_void_p)]),
    "omniq_task_list_count": (ctypes.c_size_t, [c_void_p]),
    "omniq_task_list_at": (c_void_p, [c_void_p, ctypes.c_size_t]),
    "omniq_task_list_next_cursor": (c_char_p, [c_void_p]),
    "omniq_task_list_free": (None, [c_void_p]),
    "omniq_cancel": (c_int, [c_void_p, c_char_p]),
    "omniq_retry": (c_int, [c_void_p, c_char_p, c_int64]),
    "omniq_retry_many": (c_int, [c_void_p, ctypes.POINTER(ListOpts), c_int64,
                                 ctypes.POINTER(c_int64)]),
    "omniq_delete": (c_int, [c_void_p, c_char_p]),
    "omniq_purge_expired": (c_int, [c_void_p, ctypes.POINTER(c_int64)]),
    "omniq_queue_pause": (c_int, [c_void_p, c_char_p]),
    "omniq_queue_resume": (c_int, [c_void_p, c_char_p]),
    "omniq_queue_set_rate": (c_int, [c_void_p, c_char_p, c_int64, c_int64]),
    "omniq_queue_info": (c_int, [c_void_p, c_char_p, ctypes.POINTER(c_void_p)]),
    "omniq_queue_info_free": (None, [c_void_p]),
    "omniq_queue_info_name": (c_char_p, [c_void_p]),
    "omniq_queue_info_paused": (c_int, [c_void_p]),
    "omniq_queue_info_count": (c_int64, [c_void_p, c_int]),
    "omniq_queue_info_oldest_due_ms": (c_int64, [c_void_p]),
    "omniq_queue_info_rate_limit": (c_int64, [c_void_p]),
    "omniq_queue_info_rate_period_ms": (c_int64, [c_void_p]),
    "omniq_queue_info_runs": (c_int64, [c_void_p, c_int]),
    "omniq_stats": (c_int, [c_void_p, ctypes.POINTER(c_void_p)]),
    "omniq_stats_count": (ctypes.c_size_t, [c_void_p]),
    "omniq_stats_queue": (c_void_p, [c_void_p, ctypes.c_size_t]),
    "omniq_stats_free": (None, [c_void_p]),
    "omniq_purge_results": (c_int, [c_void_p, c_int64, ctypes.POINTER(c_int64)]),
    "omniq_purge_expired_results": (c_int, [c_void_p, ctypes.POINTER(c_int64)]),
    "omniq_count_by_status": (c_int, [c_void_p, c_int64 * STATUS_COUNT]),
    "omniq_register_fallback": (c_int, [c_void_p, HANDLER_FN, c_void_p]),
    "omniq_job_id": (c_char_p, [c_void_p]),
    "omniq_job_func": (c_char_p, [c_void_p]),
    "omniq_job_args": (c_char_p, [c_void_p]),
    "omniq_job_kwargs": (c_char_p, [c_void_p]),
    "omniq_job_attempt": (c_int, [c_void_p]),
    "omniq_job_cancelled": (c_int, [c_void_p]),
    "omniq_job_return": (c_int, [c_void_p, c_char_p]),
    "omniq_job_fail_traceback": (c_int, [c_void_p, c_char_p, c_char_p, c_char_p, c_int]),
    "omniq_job_complete": (c_int, [c_void_p]),
    "omniq_worker_opts_init": (None, [ctypes.POINTER(WorkerOpts)]),
    "omniq_worker_start": (c_int, [c_void_p, ctypes.POINTER(WorkerOpts),
                                   ctypes.POINTER(c_void_p)]),
    "omniq_worker_stop": (c_int, [c_void_p]),
    "omniq_worker_process": (c_int, [c_void_p, ctypes.POINTER(WorkerOpts), ctypes.c_long,
                                     ctypes.POINTER(ctypes.c_long)]),
}


def _candidates():
    path = os.environ.get("OMNIQ_LIBRARY")
    if path:
        return [path]
    found = []
    try:
        from . import _install  # written by `make install`
    except ImportError:
        pass
    else:
        found.append(os.path.normpath(os.path.join(os.path.dirname(__file__), _install.LIBRARY)))
    found.append("libomniq.so.0")
    return found


def _load():
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as exc:
            tried.append(str(exc))
    else:
        raise ImportError(
            "omniq: cannot load libomniq (%s); build it with `make` and set OMNIQ_LIBRARY "
            "to build/libomniq.so, or install it with `make install`" % "; ".join(tried))
    for name, (restype, argtypes) in _PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError("omniq: %s has no %s(); it is older than this package"
                              % (lib._name, name)) from None
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = _load()
path = lib._name


def text(b):
    """bytes from the library (or None) as str."""
    return None if b is None else b.decode("utf-8", "replace")


def errmsg(oq):
    """The calling thread's last message for handle oq (None: calls without one)."""
    return text(lib.omniq_errmsg(oq))


def error(rc, oq, what=None):
    """The exception for status code rc, with the handle's message."""
    name = text(lib.omniq_err_name(rc))
    message = errmsg(oq) or text(lib.omniq_strerror(rc))
    if what:
        message = "%s: %s" % (what, message)
    return errors.from_code(rc, name, message)


def check(rc, oq, what=None):
    """Raises the exception for rc unless it is OMNIQ_OK."""
    if rc != OK:
        raise error(rc, oq, what)


def new_enqueue_opts():
    opts = EnqueueOpts()
    lib.omniq_enqueue_opts_init(ctypes.byref(opts))
    return opts


def new_list_opts():
    opts = ListOpts()
    lib.omniq_list_opts_init(ctypes.byref(opts))
    return opts


def new_worker_opts():
    opts = WorkerOpts()
    lib.omniq_worker_opts_init(ctypes.byref(opts))
    return opts
