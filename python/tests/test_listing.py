# SPDX-License-Identifier: MIT
"""list_tasks and iter_tasks: OmniQ v1's list of tasks, with the C
library's filters and cursor pages."""

import asyncio
import datetime

import pytest

import omniq
import omniq_test_tasks as tasks
from conftest import at, ids
from omniq import TaskStatus


def test_list_tasks_gives_v1_tasks_oldest_first_and_a_cursor_to_the_next_page(q):
    made = [q.enqueue(tasks.add, i, i) for i in range(5)]
    first = q.list_tasks(limit=3)
    assert isinstance(first, list) and ids(first) == made[:3]
    assert first[0]["func_path"] == "omniq_test_tasks.add" and first[0].args == [0, 0]
    assert first.next_cursor is not None
    rest = q.list_tasks(limit=3, cursor=first.next_cursor)
    assert ids(rest) == made[3:]
    assert rest.next_cursor is None  # the last page says so
    assert ids(q.list_tasks()) == made  # the v1 call: every status, 25 at most
    assert ids(q.list_tasks(limit=5, newest_first=True)) == made[::-1]


def test_list_tasks_filters_by_status_queue_and_func(q):
    a = q.enqueue(tasks.add, 1, 1, queue="a")
    b = q.enqueue(tasks.record, "b", queue="b")
    failed = q.enqueue(tasks.rejects, "x", queue="b")
    q.worker(queues=["b"]).process_tasks()  # b SUCCESS, failed FAILED; a stays PENDING
    assert ids(q.list_tasks(TaskStatus.PENDING)) == [a]
    assert ids(q.list_tasks("failed")) == [failed]
    assert ids(q.list_tasks({TaskStatus.SUCCESS, "FAILED"})) == [b, failed]
    assert ids(q.list_tasks(queue="b")) == [b, failed]
    assert ids(q.list_tasks(queue="b", status=TaskStatus.SUCCESS)) == [b]
    assert ids(q.list_tasks(func=tasks.add)) == [a]
    assert ids(q.list_tasks(func="omniq_test_tasks.record")) == [b]
    assert q.list_tasks(queue="none") == []


def test_list_tasks_filters_by_creation_and_finish_time(q, clock):
    early = q.enqueue(tasks.add, 1, 1)
    clock.advance(60)
    late = q.enqueue(tasks.add, 2, 2)
    start = clock()
    assert ids(q.list_tasks(created_before=at(start))) == [early]
    assert ids(q.list_tasks(created_since=at(start))) == [late]  # since is included
    q.worker().process_tasks(limit=1)  # early finishes at `start`
    clock.advance(60)
    q.worker().process_tasks()  # late finishes a minute later
    assert ids(q.list_tasks(finished_since=at(start), finished_before=at(start + 60))) == [early]
    assert ids(q.list_tasks(finished_since=at(start + 60))) == [late]
    task = q.get_task(early)
    assert (task.started_at, task.finished_at, task.crashes) == (at(start), at(start), 0)
    assert q.get_task(late).finished_at == at(start + 60)


def test_a_limit_beyond_one_page_of_the_library_reads_several(q):
    made = q.enqueue_many([(tasks.add, (i, i)) for i in range(1205)])
    listed = q.list_tasks(limit=1100)
    assert ids(listed) == made[:1100]
    assert ids(q.list_tasks(limit=None, cursor=listed.next_cursor)) == made[1100:]
    everything = q.list_tasks(limit=None)
    assert ids(everything) == made and everything.next_cursor is None


def test_iter_tasks_walks_every_page_once_and_meets_tasks_created_meanwhile(q):
    made = [q.enqueue(tasks.add, i, i) for i in range(5)]
    seen = []
    for task in q.iter_tasks(page_size=2):
        seen.append(task.id)
        if len(seen) == 1:
            made.append(q.enqueue(tasks.add, 9, 9))
    assert seen == made
    assert ids(q.iter_tasks(TaskStatus.PENDING, func=tasks.add, newest_first=True,
                            page_size=4)) == made[::-1]


@pytest.mark.parametrize("call, error, says", [
    (dict(status="DONE"), ValueError, "DONE"),
    (dict(status=[]), ValueError, "empty"),
    (dict(limit=0), ValueError, "limit"),
    (dict(limit=True), ValueError, "limit"),
    (dict(cursor="not-a-cursor"), omniq.InvalidArgumentError, "cursor"),
    (dict(created_since=datetime.datetime(2030, 1, 1)), ValueError, "timezone-aware"),
    (dict(queue=7), TypeError, "queue"),
])
def test_bad_listing_arguments_are_refused_with_a_message(q, call, error, says):
    with pytest.raises(error) as info:
        q.list_tasks(**call)
    assert says in str(info.value)


def test_a_cursor_of_the_other_order_is_refused(q):
    for i in range(3):
        q.enqueue(tasks.add, i, i)
    page = q.list_tasks(limit=1)
    with pytest.raises(omniq.InvalidArgumentError):
        q.list_tasks(limit=1, cursor=page.next_cursor, newest_first=True)


def test_async_listing_pages_and_iterates(settings):
    async def main():
        async with omniq.AsyncOmniQ(settings) as q:
            made = [await q.enqueue(tasks.add, i, i) for i in range(3)]
            page = await q.list_tasks(limit=2)
            rest = await q.list_tasks(limit=2, cursor=page.next_cursor)
            walked = [t.id async for t in q.iter_tasks(page_size=1)]
            return made, ids(page) + ids(rest), walked

    made, paged, walked = asyncio.run(main())
    assert paged == made and walked == made
