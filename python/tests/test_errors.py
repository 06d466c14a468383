# SPDX-License-Identifier: MIT
"""How a handler's failure is stored: TaskError's six fields, the Python
traceback, retryable or not, and funcs that resolve to nothing."""

import dataclasses

import pytest

import omniq
import omniq_test_tasks as tasks
from omniq import TaskError, TaskStatus

SIX_FIELDS = ["error_type", "message", "timestamp", "traceback", "retry_count", "is_retryable"]


def run_one(q, func, *args, **options):
    task_id = q.enqueue(func, *args, **options)
    q.worker().process_tasks()
    return q.get_result(task_id)


def test_task_error_has_six_fields_and_round_trips(q, clock):
    result = run_one(q, tasks.always_fails, "e", max_retries=1)
    error = result.error
    assert [f.name for f in dataclasses.fields(TaskError)] == SIX_FIELDS
    assert list(error.to_dict()) == SIX_FIELDS
    assert TaskError.from_dict(error.to_dict()) == error
    assert error.error_type == "ConnectionError"
    assert error.message == "upstream down (e)"
    assert error.timestamp.timestamp() == clock()
    assert error.retry_count == 1
    assert error.is_retryable is True
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "in always_fails" in error.traceback
    assert error.traceback.rstrip().endswith("ConnectionError: upstream down (e)")
    assert "_dispatch.py" not in error.traceback  # the handler's frames, not OmniQ's


def test_non_retryable_error_fails_at_once_whatever_the_budget(q):
    result = run_one(q, tasks.rejects, "r", max_retries=3)
    assert (result.status, result.attempts) == (TaskStatus.FAILED, 1)
    assert result.error.error_type == "BadInput"
    assert result.error.is_retryable is False
    assert tasks.runs["r"] == 1


def test_retryable_error_is_retried(q, clock):
    task_id = q.enqueue(tasks.asks_again, "a", max_retries=2)
    q.worker().process_tasks()
    assert q.get_task(task_id).status == TaskStatus.PENDING
    clock.advance(2)
    q.worker().process_tasks()
    result = q.get_result(task_id)
    assert (result.status, result.error.error_type, result.error.is_retryable) == (
        TaskStatus.FAILED, "TryAgain", True)
    assert tasks.runs["a"] == 2


def test_async_handler_failure_is_stored_like_a_sync_one(q):
    result = run_one(q, tasks.fails_async, "k", max_retries=1)
    assert (result.error.error_type, result.error.message) == ("KeyError", "'k'")
    assert "in fails_async" in result.error.traceback


@pytest.mark.parametrize("func, says", [
    ("no_such_module.run", "no module named 'no_such_module'"),
    ("omniq_test_tasks.no_such_function", "has no attribute 'no_such_function'"),
    ("omniq_test_tasks.omniq.OmniQ", "reaches module 'omniq'"),
    ("omniq_test_tasks.WAIT", "is not callable"),
    ("nodots", "is not a module.qualname"),
])
def test_unresolvable_func_fails_at_once_as_handler_not_found(q, func, says):
    result = run_one(q, func, max_retries=3)
    assert (result.status, result.attempts) == (TaskStatus.FAILED, 1)
    assert result.error.error_type == "HandlerNotFound"
    assert result.error.is_retryable is False
    assert says in result.error.message


def test_allowed_modules_keep_a_worker_to_its_own_code(q):
    allowed = q.enqueue(tasks.add, 1, 2)
    other = q.enqueue("os.getcwd")
    q.worker(allowed_modules=["omniq_test_tasks"]).process_tasks()
    assert q.get_result(allowed).result == 3
    error = q.get_result(other).error
    assert error.error_type == "HandlerNotFound"
    assert "not in the modules this worker may run" in error.message


@pytest.mark.parametrize("func, says", [(tasks.returns_a_set, "set"),
                                        (tasks.returns_a_huge_int, "omniq_job_return")])
def test_result_json_cannot_carry_fails_the_run_for_good(q, func, says):
    result = run_one(q, func, max_retries=3)
    assert (result.status, result.attempts) == (TaskStatus.FAILED, 1)
    assert result.error.error_type == "SerializationError"
    assert says in result.error.message


def test_exceptions_from_the_library_name_its_code(q):
    with pytest.raises(omniq.InvalidArgumentError) as info:
        q.get_result("not-a-task-id")
    assert info.value.code_name == "OMNIQ_EINVAL"
    assert "not a task id" in str(info.value)
    assert isinstance(info.value, ValueError)
