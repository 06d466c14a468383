# SPDX-License-Identifier: MIT
"""Cancel, timeouts and purge."""

import datetime

import pytest

import omniq
import omniq_test_tasks as tasks
from omniq import TaskStatus

W = tasks.WAIT


def test_cancelled_pending_task_never_runs(q):
    task_id = q.enqueue(tasks.record, "never")
    q.cancel(task_id)
    assert q.worker().process_tasks() == 0
    assert tasks.runs["never"] == 0
    result = q.get_result(task_id)
    assert result.status == TaskStatus.CANCELLED
    assert q.get_task(task_id).status == TaskStatus.CANCELLED


@pytest.mark.parametrize("handler", [tasks.hold, tasks.hold_async])
def test_cancel_of_a_running_task_reaches_its_handler_and_discards_its_outcome(q, handler):
    task_id = q.enqueue(handler, "c")
    with q.worker() as pool:
        pool.start()
        assert tasks.started("c").wait(W)
        q.cancel(task_id)
        result = q.get_result(task_id, wait=True, timeout=W)
        assert result.status == TaskStatus.CANCELLED
        assert pool.stop()  # the handler ended: it saw the cancel
    assert "c" in tasks.cancelled_seen
    assert q.get_result(task_id).status == TaskStatus.CANCELLED  # its return was dropped


def test_cancel_of_a_finished_task_is_refused(q):
    task_id = q.enqueue(tasks.add, 1, 2)
    q.worker().process_tasks()
    with pytest.raises(omniq.InvalidTransitionError):
        q.cancel(task_id)
    assert q.get_result(task_id).status == TaskStatus.SUCCESS


@pytest.mark.parametrize("handler", [tasks.hold, tasks.hold_async])
def test_timeout_fails_the_run_as_timeout_error(q, clock, handler):
    task_id = q.enqueue(handler, "slow", timeout=5, max_retries=1)
    with q.worker() as pool:
        pool.start()
        assert tasks.started("slow").wait(W)
        clock.advance(5)
        result = q.get_result(task_id, wait=True, timeout=W)
        assert pool.stop()
    assert (result.status, result.attempts) == (TaskStatus.FAILED, 1)
    assert result.error.error_type == "TimeoutError"
    assert result.error.is_retryable is True
    assert "slow" in tasks.cancelled_seen  # the handler was told, and stopped


def test_timed_out_run_is_retried_within_its_budget(q, clock):
    task_id = q.enqueue(tasks.hold, "slow", timeout=5, max_retries=2)
    with q.worker() as pool:
        pool.start()
        assert tasks.started("slow").wait(W)
        clock.advance(5)
        assert pool.stop()
    task = q.get_task(task_id)
    assert (task.status, task.attempts, task.error.error_type) == (TaskStatus.PENDING, 1,
                                                                  "TimeoutError")


def test_purge_deletes_results_older_than_an_age(q, clock):
    old = q.enqueue(tasks.add, 1, 1)
    q.worker().process_tasks()
    clock.advance(3600)
    new = q.enqueue(tasks.add, 2, 2)
    q.worker().process_tasks()
    assert q.purge(older_than=datetime.timedelta(minutes=30)) == 1
    assert q.get_result(old) is None
    assert q.get_result(new).result == 4
    clock.advance(0.001)  # "older than" is strict
    assert q.purge(older_than=0) == 1


def test_purge_without_an_age_uses_the_result_ttl(q, clock, settings):
    task_id = q.enqueue(tasks.add, 1, 1)
    q.worker().process_tasks()
    assert q.purge() == 0
    clock.advance(settings.result_ttl + 1)
    assert q.purge() == 1
    assert q.get_result(task_id) is None

