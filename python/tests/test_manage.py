# SPDX-License-Identifier: MIT
"""Operating on tasks: retry by hand (one and many), delete, retention,
unique keys and cron schedules at enqueue, queue and priority."""

import asyncio
import datetime

import pytest

import omniq
import omniq_test_tasks as tasks
from conftest import at, ids, make_settings
from omniq import TaskStatus


def failed_task(q, tag, **options):
    task_id = q.enqueue(tasks.rejects, tag, **options)
    q.worker(queues=[options.get("queue", "default")]).process_tasks()
    assert q.get_task(task_id).status == TaskStatus.FAILED
    return task_id


def test_retry_runs_a_failed_task_again_with_a_fresh_budget(q, clock):
    task_id = q.enqueue(tasks.flaky, "f", 1, max_retries=1)
    q.worker().process_tasks()
    assert q.get_result(task_id).status == TaskStatus.FAILED
    q.retry(task_id)
    task = q.get_task(task_id)
    assert (task.status, task.attempts) == (TaskStatus.PENDING, 0)
    assert q.get_result(task_id).status == TaskStatus.FAILED  # until the new run's replaces it
    clock.advance(0.001)
    assert q.worker().process_tasks() == 1
    result = q.get_result(task_id)
    assert (result.status, result.result, result.attempts) == (TaskStatus.SUCCESS,
                                                               "ok after 2 runs", 1)


def test_retry_waits_for_its_eta(q, clock):
    task_id = failed_task(q, "x")
    q.retry(task_id, eta=at(clock() + 60))
    assert q.worker().process_tasks() == 0
    clock.advance(60)
    assert q.worker().process_tasks() == 1
    assert tasks.runs["x"] == 2


def test_retry_is_refused_for_unfinished_successful_and_unknown_tasks(q):
    pending = q.enqueue(tasks.add, 1, 1)
    with pytest.raises(omniq.InvalidTransitionError) as info:
        q.retry(pending)
    assert "PENDING" in str(info.value)
    q.worker().process_tasks()
    with pytest.raises(omniq.InvalidTransitionError):
        q.retry(pending)
    with pytest.raises(omniq.TaskNotFoundError):
        q.retry("01900000-0000-7000-8000-000000000000")
    with pytest.raises(TypeError):
        q.retry(42)


def test_retry_many_retries_what_the_filter_matches_and_counts_it(q):
    a1, a2 = failed_task(q, "a1", queue="a"), failed_task(q, "a2", queue="a")
    b = failed_task(q, "b", queue="b")
    cancelled = q.enqueue(tasks.add, 1, 1, queue="a")
    q.cancel(cancelled)
    done = q.enqueue(tasks.add, 1, 1, queue="a")
    q.worker(queues=["a"]).process_tasks()
    assert q.retry_many(TaskStatus.FAILED, queue="a") == 2
    assert ids(q.list_tasks(TaskStatus.PENDING)) == [a1, a2]
    assert q.retry_many(queue="a") == 1  # FAILED and CANCELLED: the cancelled one is left
    assert q.get_task(cancelled).status == TaskStatus.PENDING
    assert (q.get_task(b).status, q.get_task(done).status) == (TaskStatus.FAILED,
                                                               TaskStatus.SUCCESS)
    with pytest.raises(omniq.InvalidArgumentError):
        q.retry_many(TaskStatus.SUCCESS)


def test_delete_removes_a_finished_task_and_refuses_an_unfinished_one(q):
    done = q.enqueue(tasks.add, 1, 1)
    q.worker().process_tasks()
    pending = q.enqueue(tasks.add, 2, 2)
    q.delete(done)
    assert q.get_task(done) is None and q.get_result(done) is None
    with pytest.raises(omniq.InvalidTransitionError):
        q.delete(pending)
    with pytest.raises(omniq.TaskNotFoundError):
        q.delete(done)
    assert ids(q.list_tasks()) == [pending]


def test_delete_expired_removes_tasks_finished_longer_ago_than_task_ttl(backend, tmp_path,
                                                                         clock):
    with omniq.OmniQ(make_settings(backend, tmp_path / "s", clock=clock, task_ttl=3600)) as q:
        old = q.enqueue(tasks.add, 1, 1)
        q.worker().process_tasks()
        clock.advance(1800)
        new = q.enqueue(tasks.add, 2, 2)
        q.worker().process_tasks()
        waiting = q.enqueue(tasks.add, 3, 3, eta=at(clock() + 86400))
        clock.advance(1801)
        assert q.delete_expired() == 1
        assert q.get_task(old) is None and q.get_result(old) is None
        assert ids(q.list_tasks()) == [new, waiting]


def test_a_unique_key_is_refused_while_its_task_holds_it(q):
    first = q.enqueue(tasks.add, 1, 1, unique_key="invoice:1")
    with pytest.raises(omniq.DuplicateTaskError) as info:
        q.enqueue(tasks.add, 1, 1, unique_key="invoice:1")
    assert info.value.task_id == first
    assert ids(q.list_tasks()) == [first]  # nothing stored
    other_queue = q.enqueue(tasks.add, 1, 1, unique_key="invoice:1", queue="other")
    assert q.get_task(other_queue).unique_key == "invoice:1"
    q.worker().process_tasks()  # first finishes: with unique_for 0 its key is free
    assert q.enqueue(tasks.add, 1, 1, unique_key="invoice:1") != first


def test_unique_for_holds_the_key_after_the_task_finished(q, clock):
    first = q.enqueue(tasks.add, 1, 1, unique_key="k", unique_for=datetime.timedelta(hours=1))
    q.worker().process_tasks()
    clock.advance(3599)
    with pytest.raises(omniq.DuplicateTaskError) as info:
        q.enqueue(tasks.add, 1, 1, unique_key="k")
    assert info.value.task_id == first
    clock.advance(2)
    assert q.enqueue(tasks.add, 1, 1, unique_key="k")


def test_deleting_a_task_frees_its_key_and_retry_takes_it_again(q):
    held = failed_task(q, "u", unique_key="k")
    q.delete(held)
    again = q.enqueue(tasks.rejects, "u", unique_key="k")
    q.worker().process_tasks()
    taker = q.enqueue(tasks.add, 1, 1, unique_key="k")  # again failed: its key is free
    with pytest.raises(omniq.DuplicateTaskError):
        q.retry(again)
    assert q.get_task(again).status == TaskStatus.FAILED
    assert q.get_task(taker).status == TaskStatus.PENDING


def test_unique_for_needs_a_unique_key(q):
    with pytest.raises(ValueError):
        q.enqueue(tasks.add, 1, 1, unique_for=60)


def test_a_cron_task_runs_at_each_match_and_keeps_its_id(q, clock):
    # The manual clock starts at 2027-01-15 08:00 UTC.
    task_id = q.enqueue(tasks.record, "nightly", cron="30 9 * * *")
    task = q.get_task(task_id)
    assert task.schedule["cron"] == "30 9 * * *"
    assert task.schedule["eta"] == datetime.datetime(2027, 1, 15, 9, 30, tzinfo=datetime.timezone.utc)
    assert q.worker().process_tasks() == 0
    clock.advance(90 * 60)
    assert q.worker().process_tasks() == 1
    task = q.get_task(task_id)
    assert (task.status, tasks.runs["nightly"]) == (TaskStatus.PENDING, 1)
    assert task.schedule["eta"] == datetime.datetime(2027, 1, 16, 9, 30, tzinfo=datetime.timezone.utc)
    assert q.get_result(task_id).result == "nightly"


@pytest.mark.parametrize("options, says", [
    (dict(cron="0 25 * * *"), "hour"),
    (dict(cron="0 0 30 2 *"), "matches no date"),
    (dict(cron="* * * * *", interval=60), "interval"),
])
def test_a_bad_cron_is_refused_with_where_it_is_wrong(q, options, says):
    with pytest.raises(omniq.InvalidArgumentError) as info:
        q.enqueue(tasks.add, 1, 1, **options)
    assert says in str(info.value)
    assert q.list_tasks() == []


def test_queue_and_priority_at_enqueue(q):
    low = q.enqueue(tasks.record, "low", queue="jobs")
    high = q.enqueue(tasks.record, "high", queue="jobs", priority=5)
    assert (q.get_task(high).queue, q.get_task(high).priority) == ("jobs", 5)
    assert q.worker().process_tasks() == 0  # the default queue has nothing
    assert q.worker(queues="jobs").process_tasks(limit=1) == 1
    assert (q.get_task(high).status, q.get_task(low).status) == (TaskStatus.SUCCESS,
                                                                 TaskStatus.PENDING)
    ids_ = q.enqueue_many([(tasks.add, (1, 1))], queue="jobs", priority=2)
    assert q.get_task(ids_[0]).queue == "jobs"


def test_async_retry_delete_and_unique_keys(settings):
    async def main():
        async with omniq.AsyncOmniQ(settings) as q:
            task_id = await q.enqueue(tasks.rejects, "a", unique_key="k")
            with pytest.raises(omniq.DuplicateTaskError):
                await q.enqueue(tasks.rejects, "a", unique_key="k", unique_for=1)
            await q.worker().process_tasks()
            await q.retry(task_id)
            await q.worker().process_tasks()
            retried = await q.retry_many()
            await q.worker().process_tasks()
            await q.delete(task_id)
            return retried, await q.get_task(task_id), await q.delete_expired()

    assert asyncio.run(main()) == (1, None, 0)
    assert tasks.runs["a"] == 3
