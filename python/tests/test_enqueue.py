# SPDX-License-Identifier: MIT
"""Enqueueing: func names, JSON arguments, and the options; anything that
cannot be stored faithfully is refused before anything is stored."""

import datetime
import math

import pytest

import omniq
import omniq_test_tasks as tasks
from omniq import SerializationError, TaskStatus

UTC = datetime.timezone.utc


class Holder:
    @staticmethod
    def static(a):
        return a

    @classmethod
    def klass(cls, a):
        return a

    def method(self, a):
        return a


def nothing_stored(q):
    return sum(q.count_by_status().values()) == 0


@pytest.mark.parametrize("args, kwargs, says", [
    (({1, 2},), {}, "set"),
    ((b"bytes",), {}, "bytes"),
    ((math.nan,), {}, "Out of range float"),
    ((object(),), {}, "object"),
    (({1: "int key"},), {}, "dict key 1 is not a str"),
    (([{"deep": {(1, 2): "x"}}],), {}, "dict key (1, 2)"),
    ((), {"when": datetime.datetime.now(UTC)}, "datetime"),
    (("\ud800",), {}, "surrogate"),
])
def test_arguments_json_cannot_carry_are_refused_before_storing(q, args, kwargs, says):
    with pytest.raises(SerializationError) as info:
        q.enqueue(tasks.echo, *args, **kwargs)
    assert says in str(info.value)
    assert "omniq_test_tasks.echo" in str(info.value)
    assert nothing_stored(q)


def test_an_integer_past_64_bits_is_refused_by_the_store(q):
    with pytest.raises(SerializationError):
        q.enqueue(tasks.echo, 2 ** 70)
    assert nothing_stored(q)


def test_arguments_come_back_as_json_gives_them(q):
    task_id = q.enqueue(tasks.echo, 1, (2, 3), "ü", None, flag=True, nested={"a": [1.5]})
    task = q.get_task(task_id)
    assert (task.func_path, task.args, task.kwargs) == (
        "omniq_test_tasks.echo", [1, [2, 3], "ü", None], {"flag": True, "nested": {"a": [1.5]}})
    q.worker().process_tasks()
    assert q.get_result(task_id).result == {"args": [1, [2, 3], "ü", None],
                                            "kwargs": {"flag": True, "nested": {"a": [1.5]}}}


def test_callables_are_named_by_module_and_qualname(q):
    for func, name in [(tasks.add, "omniq_test_tasks.add"),
                       (Holder.static, "test_enqueue.Holder.static"),
                       (Holder.klass, "test_enqueue.Holder.klass"),
                       ("any.module.name", "any.module.name")]:
        assert q.get_task(q.enqueue(func, 1)).func_path == name
    static_id = q.enqueue(Holder.static, 5)
    class_id = q.enqueue(Holder.klass, 6)
    q.worker().process_tasks()
    assert q.get_result(static_id).result == 5
    assert q.get_result(class_id).result == 6


@pytest.mark.parametrize("func", [lambda: 1, Holder().method, print.__call__, 42, ""])
def test_callables_a_worker_cannot_import_are_refused(q, func):
    def nested():
        pass
    for f in (func, nested):
        with pytest.raises((TypeError, ValueError)):
            q.enqueue(f)
    assert nothing_stored(q)


def test_naive_eta_is_refused_clearly(q):
    with pytest.raises(ValueError) as info:
        q.enqueue(tasks.add, 1, 2, eta=datetime.datetime(2030, 1, 1))
    assert "timezone-aware" in str(info.value)
    assert nothing_stored(q)


def test_eta_in_any_zone_is_stored_as_utc(q):
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    eta = datetime.datetime(2030, 1, 1, 9, 0, tzinfo=tokyo)
    task = q.get_task(q.enqueue(tasks.add, 1, 2, eta=eta))
    assert task.schedule["eta"] == datetime.datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    assert task.schedule["eta"].tzinfo == UTC


@pytest.mark.parametrize("options, error", [
    ({"interval": -1}, ValueError),
    ({"interval": "5"}, TypeError),
    ({"timeout": True}, TypeError),
    ({"max_retries": -1}, ValueError),
    ({"max_retries": 2.5}, ValueError),
    ({"eta": "tomorrow"}, TypeError),
])
def test_bad_options_are_refused(q, options, error):
    with pytest.raises(error):
        q.enqueue(tasks.add, 1, 2, **options)
    assert nothing_stored(q)


def test_options_are_stored(q):
    task = q.get_task(q.enqueue(tasks.add, 1, 2, interval=datetime.timedelta(minutes=2),
                                max_retries=5, timeout=1.5))
    assert task.schedule["interval"] == datetime.timedelta(minutes=2)
    assert (task.max_retries, task.timeout) == (5, 1.5)
    defaults = q.get_task(q.enqueue(tasks.add, 1, 2))
    assert (defaults.max_retries, defaults.timeout) == (q.settings.default_max_retries,
                                                        q.settings.default_timeout)
    assert defaults.schedule["interval"] is None


def test_enqueue_many_stores_all_or_none(q):
    with pytest.raises(SerializationError):
        q.enqueue_many([(tasks.add, (1, 2)), (tasks.echo, ({1},))])
    assert nothing_stored(q)
    ids = q.enqueue_many([(tasks.add, (1, 2)), (tasks.echo, (), {"k": "v"})], max_retries=1)
    assert len(set(ids)) == 2
    assert q.worker().process_tasks() == 2
    assert [q.get_result(i).result for i in ids] == [3, {"args": [], "kwargs": {"k": "v"}}]
    assert q.enqueue_many([]) == []


def test_lookups_of_unknown_ids_return_none(q):
    unknown = "01a2287e-72c4-7068-b385-3f836683446a"
    assert q.get_task(unknown) is None
    assert q.get_result(unknown) is None
    assert q.get_result(unknown, wait=True, timeout=0.01) is None
    with pytest.raises(omniq.TaskNotFoundError):
        q.cancel(unknown)


def test_result_and_task_read_as_dict_and_attributes(q):
    task_id = q.enqueue(tasks.add, 5, 3)
    q.worker().process_tasks()
    result = q.get_result(task_id)
    assert isinstance(result, dict)
    assert result["result"] == result.result == 8
    assert result.status == TaskStatus.SUCCESS and result.error is None
    assert result.finished_at.tzinfo == UTC
    with pytest.raises(AttributeError):
        result.no_such_key
