# SPDX-License-Identifier: MIT
"""eta and intervals, driven by the manual clock: no test waits for time."""

import datetime

import pytest

import omniq_test_tasks as tasks
from omniq import TaskStatus

UTC = datetime.timezone.utc


def at(clock, seconds):
    return datetime.datetime.fromtimestamp(clock() + seconds, UTC)


def test_eta_holds_a_task_until_it_is_due(q, clock):
    task_id = q.enqueue(tasks.record, "later", eta=at(clock, 60))
    pool = q.worker()
    assert pool.process_tasks() == 0
    clock.advance(59.999)
    assert pool.process_tasks() == 0
    clock.advance(0.001)
    assert pool.process_tasks() == 1
    assert q.get_result(task_id).status == TaskStatus.SUCCESS


def test_eta_in_the_past_runs_at_once(q, clock):
    task_id = q.enqueue(tasks.record, "past", eta=at(clock, -3600))
    assert q.worker().process_tasks() == 1
    assert q.get_result(task_id).result == "past"


@pytest.mark.parametrize("interval", [30, 30.0, datetime.timedelta(seconds=30)])
def test_interval_task_re_runs_under_the_same_id(q, clock, interval):
    task_id = q.enqueue(tasks.record, "tick", interval=interval)
    pool = q.worker()
    assert pool.process_tasks() == 1
    first = q.get_result(task_id)
    task = q.get_task(task_id)
    assert (task.status, task.attempts) == (TaskStatus.PENDING, 0)
    assert task.schedule["eta"] == first.finished_at + datetime.timedelta(seconds=30)
    assert pool.process_tasks() == 0
    clock.advance(30)
    assert pool.process_tasks() == 1
    second = q.get_result(task_id)
    assert second.finished_at == first.finished_at + datetime.timedelta(seconds=30)
    assert tasks.runs["tick"] == 2
    q.cancel(task_id)
    clock.advance(30)
    assert pool.process_tasks() == 0
    assert q.get_task(task_id).status == TaskStatus.CANCELLED


def test_failing_interval_task_is_re_armed_after_its_budget(q, clock):
    task_id = q.enqueue(tasks.always_fails, "tick", interval=60, max_retries=1)
    pool = q.worker()
    assert pool.process_tasks() == 1
    assert q.get_result(task_id).status == TaskStatus.FAILED
    assert q.get_task(task_id).status == TaskStatus.PENDING
    clock.advance(60)
    assert pool.process_tasks() == 1
    assert tasks.runs["tick"] == 2
