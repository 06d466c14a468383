# SPDX-License-Identifier: MIT
"""Claims, attempts and retries as seen from Python: the lifecycle contract
of docs/lifecycle.md, on each backend."""

import threading

import pytest

import omniq
import omniq_test_tasks as tasks
from conftest import make_settings
from omniq import TaskStatus


@pytest.mark.parametrize("ntasks", [1, 40])
def test_five_concurrent_claimers_run_each_task_exactly_once(real_settings, ntasks):
    producer = omniq.OmniQ(real_settings)
    ids = producer.enqueue_many((tasks.record, ("t%d" % i,)) for i in range(ntasks))
    # Five handles on one store, as five worker processes would be.
    handles = [omniq.OmniQ(real_settings) for _ in range(5)]
    barrier = threading.Barrier(5)
    done = [0] * 5
    errors = []

    def claimer(i):
        try:
            barrier.wait(tasks.WAIT)
            done[i] = handles[i].worker().process_tasks()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(done) == ntasks
    assert tasks.runs == {"t%d" % i: 1 for i in range(ntasks)}
    for task_id in ids:
        result = producer.get_result(task_id)
        assert (result.status, result.attempts) == (TaskStatus.SUCCESS, 1)
    for h in handles + [producer]:
        h.close()


def test_a_claim_counts_one_attempt(q):
    task_id = q.enqueue(tasks.record, "once")
    assert q.get_task(task_id).attempts == 0
    assert q.worker().process_tasks() == 1
    assert q.get_task(task_id).attempts == 1
    assert q.get_result(task_id).attempts == 1


def test_max_retries_3_means_three_runs(q, clock):
    task_id = q.enqueue(tasks.always_fails, "x", max_retries=3)
    pool = q.worker()
    for run in (1, 2, 3):
        assert pool.process_tasks() == 1
        assert q.get_task(task_id).attempts == run
        clock.advance(2)  # past the retry delay (1 s, +-25%)
    assert pool.process_tasks() == 0
    assert tasks.runs["x"] == 3
    result = q.get_result(task_id)
    assert (result.status, result.attempts) == (TaskStatus.FAILED, 3)
    assert result.error.error_type == "ConnectionError"


@pytest.mark.parametrize("max_retries", [0, 1])
def test_max_retries_0_and_1_both_mean_one_run(q, clock, max_retries):
    task_id = q.enqueue(tasks.always_fails, "x", max_retries=max_retries)
    q.worker().process_tasks()
    clock.advance(60)
    q.worker().process_tasks()
    assert tasks.runs["x"] == 1
    assert q.get_result(task_id).status == TaskStatus.FAILED


def test_a_failed_run_is_rescheduled_once_with_no_result_yet(q, clock, settings):
    task_id = q.enqueue(tasks.always_fails, "x", max_retries=3)
    pool = q.worker()
    assert pool.process_tasks() == 1
    task = q.get_task(task_id)
    assert (task.status, task.attempts) == (TaskStatus.PENDING, 1)
    assert task.error.error_type == "ConnectionError"
    delay = task.schedule["eta"].timestamp() - clock()
    assert 0.75 * settings.retry_base <= delay <= 1.25 * settings.retry_base
    # One task, pending once: not also failed, running, or queued twice.
    counts = q.count_by_status()
    assert counts[TaskStatus.PENDING] == 1 and sum(counts.values()) == 1
    assert q.get_result(task_id) is None
    assert pool.process_tasks() == 0  # not due again before its eta
    assert tasks.runs["x"] == 1


def test_flaky_task_succeeds_on_its_third_run(q, clock):
    task_id = q.enqueue(tasks.flaky, "f", failures=2, max_retries=3)
    pool = q.worker()
    while q.get_result(task_id) is None:
        pool.process_tasks()
        clock.advance(2)
    result = q.get_result(task_id)
    assert (result.status, result.result, result.attempts) == (TaskStatus.SUCCESS,
                                                               "ok after 3 runs", 3)


def test_two_thousand_tasks_drain_exactly_once_with_four_workers(backend, tmp_path):
    settings = make_settings(backend, tmp_path / "store")
    producer = omniq.OmniQ(settings)
    ids = producer.enqueue_many((tasks.record, (i,)) for i in range(2000))
    workers = [omniq.OmniQ(settings) for _ in range(4)]
    threads = [threading.Thread(target=w.worker().process_tasks) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tasks.runs == {i: 1 for i in range(2000)}
    assert producer.count_by_status()[TaskStatus.SUCCESS] == 2000
    assert all(producer.get_result(i).status == TaskStatus.SUCCESS for i in ids)
    for h in workers + [producer]:
        h.close()
