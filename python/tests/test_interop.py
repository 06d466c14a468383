# SPDX-License-Identifier: MIT
"""One queue for C and Python: a C program (c_peer.c) serves a task Python
enqueued and reads a Python worker's result, and the other way round. Also:
the Python mirrors of the C structs match what the C compiler lays out."""

import ctypes
import os
import subprocess

import pytest

import omniq
import omniq_test_tasks as tasks
from omniq import _lib


def run_peer(peer, settings, *args):
    env = dict(os.environ, OMNIQ_BACKEND=settings.backend.value, OMNIQ_BASE_DIR=settings.base_dir,
               OMNIQ_LOG_LEVEL="ERROR", OMNIQ_FSYNC="0")
    done = subprocess.run([peer, *args], env=env, capture_output=True, text=True,
                          timeout=tasks.WAIT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_c_worker_serves_a_python_task_and_python_reads_its_result(real_settings, peer):
    with omniq.OmniQ(real_settings) as q:
        task_id = q.enqueue(tasks.add, 5, 3)
        # The C program registered the Python function's name.
        assert run_peer(peer, real_settings, "serve", "omniq_test_tasks.add", "1") == "1"
        result = q.get_result(task_id, wait=True, timeout=tasks.WAIT)
        assert (result.status, result.result) == (omniq.TaskStatus.SUCCESS, 8)
    assert tasks.runs == {}  # no Python handler ran


def test_a_python_worker_serves_a_c_task_and_c_reads_its_result(real_settings, peer):
    task_id = run_peer(peer, real_settings, "enqueue", "omniq_test_tasks.multiply", "[4, 7]")
    with omniq.OmniQ(real_settings) as q:
        assert q.worker().process_tasks() == 1
        assert q.get_result(task_id).result == 28
    assert run_peer(peer, real_settings, "result", task_id) == "SUCCESS 28"


def test_c_reads_a_python_failure(real_settings, peer):
    with omniq.OmniQ(real_settings) as q:
        task_id = q.enqueue(tasks.rejects, "x")
        q.worker().process_tasks()
    assert run_peer(peer, real_settings, "result", task_id) == "FAILED BadInput"


def test_a_queue_paused_from_python_stops_a_c_worker(real_settings, peer):
    with omniq.OmniQ(real_settings) as q:
        task_id = q.enqueue(tasks.add, 5, 3)
        q.pause()
        assert run_peer(peer, real_settings, "serve", "omniq_test_tasks.add", "1") == "0"
        assert q.get_task(task_id).status == omniq.TaskStatus.PENDING
        q.resume()
        assert run_peer(peer, real_settings, "serve", "omniq_test_tasks.add", "1") == "1"
        assert q.get_result(task_id).result == 8


def test_python_lists_and_retries_tasks_a_c_program_enqueued(real_settings, peer):
    made = [run_peer(peer, real_settings, "enqueue", "omniq_test_tasks.add", args)
            for args in ("[1, 2]", "[3, 4]", "[\"x\", 1]")]
    with omniq.OmniQ(real_settings) as q:
        listed = q.list_tasks(func=tasks.add)
        assert [t.id for t in listed] == made
        assert [t.args for t in listed] == [[1, 2], [3, 4], ["x", 1]]
    # The C worker fails the last one (not a number); Python sees it and retries it.
    assert run_peer(peer, real_settings, "serve", "omniq_test_tasks.add", "3") == "3"
    with omniq.OmniQ(real_settings) as q:
        assert [t.id for t in q.list_tasks(omniq.TaskStatus.FAILED)] == made[2:]
        assert q.retry_many() == 1
        assert q.get_task(made[2]).status == omniq.TaskStatus.PENDING


@pytest.mark.parametrize("mirror", [_lib.SettingsStruct, _lib.EnqueueOpts, _lib.EnqueueItem,
                                    _lib.WorkerOpts, _lib.ListOpts])
def test_struct_mirrors_match_the_c_layout(peer, mirror):
    layouts = {}
    for line in subprocess.run([peer, "layout"], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        name, size, *fields = line.split()
        layouts[name] = (int(size), {f: int(o) for f, o in (x.split("=") for x in fields)})
    size, offsets = layouts[{"SettingsStruct": "omniq_settings_t",
                             "EnqueueOpts": "omniq_enqueue_opts_t",
                             "EnqueueItem": "omniq_enqueue_item_t",
                             "WorkerOpts": "omniq_worker_opts_t",
                             "ListOpts": "omniq_list_opts_t"}[mirror.__name__]]
    fields = [f[0] for f in mirror._fields_ if f[0] != "_reserved"]
    assert fields == list(offsets)
    assert {f: getattr(mirror, f).offset for f in fields} == offsets
    if "_reserved" in dict(mirror._fields_):
        # Our fields end where C's do, but for trailing padding: a field
        # appended in C and not here fails this.
        assert 0 <= size - mirror._reserved.offset < ctypes.alignment(mirror)
    else:
        assert ctypes.sizeof(mirror) == size  # an array's stride
