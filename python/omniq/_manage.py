# SPDX-License-Identifier: MIT
"""Operating a queue from Python: listing tasks, retrying and deleting them,
retention, pausing a queue, its rate limit, and its statistics
(docs/operations.md). OmniQ gets these methods from Operations; AsyncOmniQ
awaits the same ones in a thread.

Listing is paged by the C library with an opaque cursor. list_tasks keeps
OmniQ v1's shape (a list of at most `limit` tasks) and returns a TaskPage,
a list that also carries the cursor of the page after it; iter_tasks walks
every page for the caller. A limit above the C library's page size is served
by reading several pages, so a caller never meets that bound.

Filters are keyword-only and each maps to one field of omniq_list_opts_t:
status (one or several), queue, func (a callable or its name), and time
ranges [since, before) on creation and finish. Every argument is checked
here or by the library before anything reaches the store.
"""

import ctypes

from . import _codec, _lib
from .models import _STATUSES, QueueStats, Task, TaskPage, TaskStatus

lib = _lib.lib
DEFAULT_QUEUE = "default"


def _bytes(name, value):
    if not isinstance(value, str):
        raise TypeError("%s must be a str, not %r" % (name, value))
    return value.encode()


def _status_bits(status):
    """None, a TaskStatus or its name, or several of them as a set of bits."""
    if status is None:
        return 0
    many = [status] if isinstance(status, str) else list(status)
    if not many:
        raise ValueError("status: an empty set of statuses matches no task")
    bits = 0
    for s in many:
        try:
            s = s if isinstance(s, TaskStatus) else TaskStatus(str(s).upper())
        except ValueError:
            raise ValueError("status %r is not one of %s"
                             % (s, ", ".join(x.value for x in TaskStatus))) from None
        bits |= 1 << _STATUSES.index(s)
    return bits


def _filter(status, queue, func, created_since, created_before, finished_since,
            finished_before):
    opts = _lib.new_list_opts()
    opts.statuses = _status_bits(status)
    if queue is not None:
        opts.queue = _bytes("queue", queue)
    if func is not None:
        opts.func = _codec.func_name(func).encode()
    for field, name, when in (("created_from_ms", "created_since", created_since),
                              ("created_to_ms", "created_before", created_before),
                              ("finished_from_ms", "finished_since", finished_since),
                              ("finished_to_ms", "finished_before", finished_before)):
        if when is not None:
            setattr(opts, field, _codec.time_ms(name, when))
    return opts


def _limit(limit):
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be an int >= 1, or None for every task (got %r)"
                         % (limit,))
    return limit


class Operations:
    """The operations on tasks and queues of an OmniQ handle."""

    # ---- listing -------------------------------------------------------------

    def list_tasks(self, status=None, limit=25, *, queue=None, func=None, cursor=None,
                   newest_first=False, created_since=None, created_before=None,
                   finished_since=None, finished_before=None):
        """Tasks in creation order (newest_first=True: the reverse), at most
        `limit` (None: all), as a TaskPage: a list of Task whose
        `next_cursor`, given back as `cursor=`, reads on from where it ends
        (None when nothing follows). Filters: status (a TaskStatus, its
        name, or several), queue, func (a callable or its name), creation
        and finish times as aware datetimes, `since` included and `before`
        not. A cursor must come from a listing in the same order."""
        limit = _limit(limit)
        opts = _filter(status, queue, func, created_since, created_before, finished_since,
                       finished_before)
        opts.newest_first = int(bool(newest_first))
        if cursor is not None:
            opts.cursor = _bytes("cursor", cursor)
        page = TaskPage()
        while True:
            opts.limit = _lib.LIST_MAX_LIMIT if limit is None else min(
                limit - len(page), _lib.LIST_MAX_LIMIT)
            tasks, page.next_cursor = self._list_page(opts)
            page.extend(tasks)
            if page.next_cursor is None or (limit is not None and len(page) >= limit):
                return page
            opts.cursor = page.next_cursor.encode()

    def _list_page(self, opts):
        out = ctypes.c_void_p()
        with self._use() as oq:
            _lib.check(lib.omniq_list_tasks(oq, ctypes.byref(opts), ctypes.byref(out)), oq,
                       "list_tasks")
        try:
            tasks = [Task._from_c(lib.omniq_task_list_at(out, i))
                     for i in range(lib.omniq_task_list_count(out))]
            return tasks, _lib.text(lib.omniq_task_list_next_cursor(out))
        finally:
            lib.omniq_task_list_free(out)

    def iter_tasks(self, status=None, *, page_size=100, **filters):
        """Every task that matches, page by page as it is consumed: the
        filters and order of list_tasks (not cursor). A task created while
        iterating oldest first is met too; none is met twice."""
        cursor = None
        while True:
            page = self.list_tasks(status, page_size, cursor=cursor, **filters)
            yield from page
            cursor = page.next_cursor
            if cursor is None:
                return

    # ---- retry and delete ------------------------------------------------------

    def retry(self, task_id, *, eta=None):
        """Runs a FAILED or CANCELLED task again: PENDING with the same id
        and a fresh budget of runs, due at eta (an aware datetime; None =
        now). Its last result stays readable until the new run's replaces
        it. Raises TaskNotFoundError, InvalidTransitionError for a task in
        another status, DuplicateTaskError when another task took its
        unique key meanwhile."""
        with self._use() as oq:
            _lib.check(lib.omniq_retry(oq, _codec.task_id(task_id), _codec.eta_ms(eta)), oq,
                       "retry")

    def retry_many(self, status=None, *, queue=None, func=None, created_since=None,
                   created_before=None, finished_since=None, finished_before=None, eta=None):
        """retry() for every task the filters (as list_tasks') match and
        returns how many: status may name FAILED and CANCELLED only (None:
        both). Tasks that changed meanwhile, or whose key is held, are
        skipped."""
        opts = _filter(status, queue, func, created_since, created_before, finished_since,
                       finished_before)
        count = ctypes.c_int64()
        with self._use() as oq:
            _lib.check(lib.omniq_retry_many(oq, ctypes.byref(opts), _codec.eta_ms(eta),
                                            ctypes.byref(count)), oq, "retry_many")
        return count.value

    def delete(self, task_id):
        """Deletes a SUCCESS, FAILED or CANCELLED task with its result and
        frees its unique key. Raises TaskNotFoundError, and
        InvalidTransitionError for a PENDING or RUNNING task (cancel it
        first)."""
        with self._use() as oq:
            _lib.check(lib.omniq_delete(oq, _codec.task_id(task_id)), oq, "delete")

    def delete_expired(self):
        """Deletes every task that finished more than settings.task_ttl ago,
        with its result, and returns how many. Running pools do this by
        themselves about once a minute per store."""
        count = ctypes.c_int64()
        with self._use() as oq:
            _lib.check(lib.omniq_purge_expired(oq, ctypes.byref(count)), oq, "delete_expired")
        return count.value

    # ---- queues --------------------------------------------------------------------

    def pause(self, queue=DEFAULT_QUEUE):
        """No worker, in any process sharing the store, starts a task of
        this queue until resume(); enqueue still works and running tasks
        finish. Kept in the store, so it outlasts this process."""
        with self._use() as oq:
            _lib.check(lib.omniq_queue_pause(oq, _bytes("queue", queue)), oq, "pause")

    def resume(self, queue=DEFAULT_QUEUE):
        """Ends a pause(): workers take the queue's tasks again."""
        with self._use() as oq:
            _lib.check(lib.omniq_queue_resume(oq, _bytes("queue", queue)), oq, "resume")

    def set_rate_limit(self, queue, limit, per=1):
        """At most `limit` task starts of the queue in each window of `per`
        (seconds or a timedelta, up to a day; windows aligned to multiples
        of it since the epoch), across every process sharing the store.
        limit None or 0 removes the limit."""
        if limit is None:
            limit = 0
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError("limit must be an int or None, not %r" % (limit,))
        period = _codec.duration_ms("per", per) if limit else 0
        with self._use() as oq:
            _lib.check(lib.omniq_queue_set_rate(oq, _bytes("queue", queue), limit, period), oq,
                       "set_rate_limit")

    def queue_stats(self, queue=DEFAULT_QUEUE):
        """The queue's QueueStats now (all zero for a queue never used)."""
        out = ctypes.c_void_p()
        with self._use() as oq:
            _lib.check(lib.omniq_queue_info(oq, _bytes("queue", queue), ctypes.byref(out)), oq,
                       "queue_stats")
        try:
            return QueueStats._from_c(out.value)
        finally:
            lib.omniq_queue_info_free(out.value)

    def stats(self):
        """{queue name: QueueStats} for every queue that has tasks, run
        totals or a setting, in name order."""
        out = ctypes.c_void_p()
        with self._use() as oq:
            _lib.check(lib.omniq_stats(oq, ctypes.byref(out)), oq, "stats")
        try:
            queues = (QueueStats._from_c(lib.omniq_stats_queue(out, i))
                      for i in range(lib.omniq_stats_count(out)))
            return {s.name: s for s in queues}
        finally:
            lib.omniq_stats_free(out)

