# SPDX-License-Identifier: MIT
"""Queues as a whole: pause and resume, rate limits, and statistics."""

import asyncio
import datetime

import pytest

import omniq
import omniq_test_tasks as tasks
from conftest import at
from omniq import TaskStatus

W = tasks.WAIT


def test_a_paused_queue_is_not_served_until_resumed(q):
    before = q.enqueue(tasks.record, "before")
    q.pause()
    during = q.enqueue(tasks.record, "during")  # enqueue still works
    assert q.worker().process_tasks() == 0
    assert q.queue_stats().paused
    q.resume()
    assert q.worker().process_tasks() == 2
    assert [q.get_task(t).status for t in (before, during)] == [TaskStatus.SUCCESS] * 2


def test_pausing_one_queue_leaves_the_others_served(q):
    q.enqueue(tasks.record, "mail", queue="mail")
    q.enqueue(tasks.record, "reports", queue="reports")
    q.pause("mail")
    assert q.worker(queues=["mail", "reports"]).process_tasks() == 1
    assert (tasks.runs["mail"], tasks.runs["reports"]) == (0, 1)


def test_a_pause_reaches_a_running_pool_and_lets_its_task_finish(q):
    running = q.enqueue(tasks.hold, "running")
    waiting = q.enqueue(tasks.record, "waiting")
    with q.worker() as pool:
        pool.start()
        assert tasks.started("running").wait(W)
        q.pause()
        tasks.release("running")
        assert q.get_result(running, wait=True, timeout=W).status == TaskStatus.SUCCESS
        assert pool.stop()
    assert q.get_task(waiting).status == TaskStatus.PENDING
    assert tasks.runs["waiting"] == 0


def test_a_rate_limit_caps_starts_per_window(q, clock):
    for i in range(5):
        q.enqueue(tasks.add, i, i, queue="api")
    q.set_rate_limit("api", 2, per=datetime.timedelta(minutes=1))
    stats = q.queue_stats("api")
    assert (stats.rate_limit, stats.rate_period) == (2, datetime.timedelta(minutes=1))
    pool = q.worker(queues="api")
    assert pool.process_tasks() == 2
    assert pool.process_tasks() == 0  # the window is used up
    clock.advance(60)
    assert pool.process_tasks() == 2
    q.set_rate_limit("api", None)
    assert q.queue_stats("api").rate_limit is None
    assert pool.process_tasks() == 1


@pytest.mark.parametrize("limit, per, error", [
    (-1, 1, omniq.InvalidArgumentError),
    (10, 2 * 86400, omniq.InvalidArgumentError),
    (10, 0, omniq.InvalidArgumentError),
    (1.5, 1, TypeError),
])
def test_bad_rate_limits_are_refused(q, limit, per, error):
    with pytest.raises(error):
        q.set_rate_limit("api", limit, per=per)
    assert q.queue_stats("api").rate_limit is None


def test_queue_stats_count_tasks_and_runs_by_how_they_ended(q, clock):
    q.enqueue(tasks.add, 1, 1, queue="s")
    q.enqueue(tasks.rejects, "r", queue="s")
    flaky = q.enqueue(tasks.flaky, "f", 1, queue="s", max_retries=2)
    q.enqueue(tasks.add, 2, 2, queue="s", eta=at(clock() + 3600))
    clock.advance(30)
    q.worker(queues="s").process_tasks()  # flaky fails once and waits for its backoff
    stats = q.queue_stats("s")
    assert stats.name == "s" and not stats.paused
    assert stats.counts == {TaskStatus.PENDING: 2, TaskStatus.RUNNING: 0,
                            TaskStatus.SUCCESS: 1, TaskStatus.FAILED: 1,
                            TaskStatus.CANCELLED: 0}
    assert (stats.succeeded, stats.failed, stats.retried, stats.lost) == (1, 1, 1, 0)
    assert stats.oldest_due == datetime.timedelta(0)  # flaky's retry is not due yet
    clock.advance(5)
    due = q.get_task(flaky).schedule["eta"]  # its backoff: about a second, with jitter
    assert q.queue_stats("s").oldest_due == at(clock()) - due


def test_stats_lists_every_queue_by_name(q):
    q.enqueue(tasks.add, 1, 1, queue="b")
    q.enqueue(tasks.add, 1, 1)
    q.pause("a")  # a setting alone makes a queue known
    stats = q.stats()
    assert list(stats) == ["a", "b", "default"]
    assert stats["a"].paused and stats["b"].counts[TaskStatus.PENDING] == 1
    unknown = q.queue_stats("never-used")
    assert sum(unknown.counts.values()) == 0 and not unknown.paused


def test_async_pause_rate_and_stats(settings):
    async def main():
        async with omniq.AsyncOmniQ(settings) as q:
            await q.enqueue(tasks.add, 1, 1)
            await q.pause()
            served_paused = await q.worker().process_tasks()
            await q.resume()
            await q.set_rate_limit("default", 10, per=1)
            served = await q.worker().process_tasks()
            return served_paused, served, await q.queue_stats(), await q.stats()

    served_paused, served, stats, every = asyncio.run(main())
    assert (served_paused, served) == (0, 1)
    assert (stats.paused, stats.rate_limit, stats.succeeded) == (False, 10, 1)
    assert list(every) == ["default"]
