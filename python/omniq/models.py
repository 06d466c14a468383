# SPDX-License-Identifier: MIT
"""Records as OmniQ v1 shapes them: TaskStatus, TaskError (exactly six
fields), and Task and TaskResult, which are dicts (v1 code reads
result["result"]) whose keys can also be read as attributes (result.result).

Times are timezone-aware datetimes in UTC; the C library keeps milliseconds
since the epoch.
"""

import dataclasses
import datetime
import enum
from . import _json, _lib

UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


class TaskStatus(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


# omniq_status_t order.
_STATUSES = (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.SUCCESS, TaskStatus.FAILED,
             TaskStatus.CANCELLED)


def seconds(ms):
    """Milliseconds as seconds: an int when whole (300), else a float."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def from_ms(ms):
    """Milliseconds since the epoch as an aware UTC datetime; 0 is None."""
    return _EPOCH + datetime.timedelta(milliseconds=ms) if ms else None


def loads(raw):
    """JSON text from the store as a value. A task stored with the raw
    serializer may hold any bytes: those come back as text."""
    if raw is None:
        return None
    try:
        return _json.loads(raw)
    except ValueError:
        return _lib.text(raw)


def to_ms(when):
    """An aware datetime as milliseconds since the epoch."""
    return (when - _EPOCH) // datetime.timedelta(milliseconds=1)


@dataclasses.dataclass
class TaskError:
    """Why a run failed. Its JSON form (to_dict) has exactly these six keys,
    the same as the C library's."""

    error_type: str
    message: str
    timestamp: datetime.datetime = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(UTC))
    traceback: str = None
    retry_count: int = 0
    is_retryable: bool = True

    def can_retry(self):
        return self.is_retryable

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["timestamp"] = self.timestamp.isoformat()
        return d

    @classmethod
    def from_dict(cls, data):
        ts = data.get("timestamp")
        if isinstance(ts, str):
            ts = datetime.datetime.fromisoformat(ts)
        return cls(error_type=data["error_type"], message=data.get("message", ""),
                   timestamp=ts if ts is not None else datetime.datetime.now(UTC),
                   traceback=data.get("traceback"), retry_count=data.get("retry_count", 0),
                   is_retryable=data.get("is_retryable", True))

    @classmethod
    def _from_c(cls, e):
        if not e:
            return None
        lib = _lib.lib
        return cls(error_type=_lib.text(lib.omniq_error_type(e)),
                   message=_lib.text(lib.omniq_error_message(e)),
                   timestamp=from_ms(lib.omniq_error_timestamp(e)),
                   traceback=_lib.text(lib.omniq_error_traceback(e)),
                   retry_count=lib.omniq_error_retry_count(e),
                   is_retryable=bool(lib.omniq_error_is_retryable(e)))


class _Record(dict):
    """A dict whose keys read as attributes too."""

    __slots__ = ()

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class TaskResult(_Record):
    """Keys: task_id, status, result (the handler's return value), error
    (a TaskError, or None on success), finished_at, attempts,
    last_attempt_at."""

    __slots__ = ()

    @classmethod
    def _from_c(cls, r):
        lib = _lib.lib
        return cls(task_id=_lib.text(lib.omniq_result_task_id(r)),
                   status=_STATUSES[lib.omniq_result_status(r)],
                   result=loads(lib.omniq_result_value(r)),
                   error=TaskError._from_c(lib.omniq_result_error(r)),
                   finished_at=from_ms(lib.omniq_result_finished_at(r)),
                   attempts=lib.omniq_result_attempts(r),
                   last_attempt_at=from_ms(lib.omniq_result_last_attempt_at(r)))


class Task(_Record):
    """Keys: id, func_path, args, kwargs, status, schedule ({"eta": datetime,
    "interval": timedelta or None, "cron": str or None}), max_retries,
    timeout (seconds, None for none), attempts, created_at, started_at (the
    current or last run's claim, None if never), finished_at (None unless
    SUCCESS, FAILED or CANCELLED), error (the last run's TaskError or None),
    queue, priority, unique_key (or None), crashes (runs since enqueue or the
    last retry that crashed or lost their worker)."""

    __slots__ = ()

    @classmethod
    def _from_c(cls, t):
        lib = _lib.lib
        interval = lib.omniq_task_interval(t)
        timeout = lib.omniq_task_timeout(t)
        return cls(id=_lib.text(lib.omniq_task_id(t)),
                   func_path=_lib.text(lib.omniq_task_func(t)),
                   args=loads(lib.omniq_task_args(t)),
                   kwargs=loads(lib.omniq_task_kwargs(t)),
                   status=_STATUSES[lib.omniq_task_status(t)],
                   schedule={"eta": from_ms(lib.omniq_task_eta(t)),
                             "interval": datetime.timedelta(milliseconds=interval)
                             if interval else None,
                             "cron": _lib.text(lib.omniq_task_cron(t))},
                   max_retries=lib.omniq_task_max_retries(t),
                   timeout=seconds(timeout) if timeout else None,
                   attempts=lib.omniq_task_attempts(t),
                   created_at=from_ms(lib.omniq_task_created_at(t)),
                   started_at=from_ms(lib.omniq_task_started_at(t)),
                   finished_at=from_ms(lib.omniq_task_finished_at(t)),
                   error=TaskError._from_c(lib.omniq_task_last_error(t)),
                   queue=_lib.text(lib.omniq_task_queue(t)),
                   priority=lib.omniq_task_priority(t),
                   unique_key=_lib.text(lib.omniq_task_unique_key(t)),
                   crashes=lib.omniq_task_crashes(t))


class TaskPage(list):
    """One page of list_tasks: a list of Task, and `next_cursor`, which
    list_tasks(cursor=...) takes to read the page after it (None when this
    page is the last)."""

    def __init__(self, tasks=(), next_cursor=None):
        super().__init__(tasks)
        self.next_cursor = next_cursor

    def __repr__(self):
        return "TaskPage(%s, next_cursor=%r)" % (list.__repr__(self), self.next_cursor)


@dataclasses.dataclass(frozen=True)
class QueueStats:
    """One queue as the store sees it when read (queue_stats, stats).

    counts: {TaskStatus: tasks of the queue in it}. oldest_due: how long the
    oldest due PENDING task has waited (timedelta(0) when none is due).
    rate_limit: starts allowed per rate_period, or None for no limit. The
    run totals count finished runs since the store was created, by how they
    ended: succeeded, failed (for good), retried (failed and put back), lost
    (the worker stopped renewing its lease); every process reads the same."""

    name: str
    paused: bool
    counts: dict
    oldest_due: datetime.timedelta
    rate_limit: int = None
    rate_period: datetime.timedelta = None
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0

    @classmethod
    def _from_c(cls, info):
        lib = _lib.lib
        limit = lib.omniq_queue_info_rate_limit(info)
        runs = [lib.omniq_queue_info_runs(info, k) for k in range(_lib.RUNS_KINDS)]
        return cls(name=_lib.text(lib.omniq_queue_info_name(info)),
                   paused=bool(lib.omniq_queue_info_paused(info)),
                   counts={s: lib.omniq_queue_info_count(info, i)
                           for i, s in enumerate(_STATUSES)},
                   oldest_due=datetime.timedelta(
                       milliseconds=lib.omniq_queue_info_oldest_due_ms(info)),
                   rate_limit=limit or None,
                   rate_period=datetime.timedelta(
                       milliseconds=lib.omniq_queue_info_rate_period_ms(info)) if limit else None,
                   succeeded=runs[0], failed=runs[1], retried=runs[2], lost=runs[3])
