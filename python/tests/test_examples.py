# SPDX-License-Identifier: MIT
"""The programs in python/examples run and print what they promise."""

import os
import pathlib
import subprocess
import sys

import pytest

import omniq

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "01_quickstart_async.py": ["sync_add(5, 3) = 8", "async_multiply(4, 7) = 28"],
    "02_scheduling_eta_and_interval.py": [
        "eta task: Echo: delayed, after its eta: True",
        "interval task: ran 3 times, 0.2 s or more apart: True",
        "interval task once cancelled: CANCELLED"],
    "03_retries_and_task_errors.py": [
        "flaky task: SUCCESS after 3 runs: Success: payment-42",
        "doomed task: FAILED after 2 runs",
        "  error_type=RuntimeError message='simulated failure 2 of 5'",
        "  retry_count=2 is_retryable=True",
        "  traceback ends: RuntimeError: simulated failure 2 of 5"],
    "04_sync_api_and_env.py": [
        "processed 2 tasks",
        "  {'item_id': 1, 'status': 'processed', 'data': 'data-1'}",
        "  {'item_id': 2, 'status': 'processed', 'data': 'data-2'}"],
}


def test_every_example_is_checked():
    assert sorted(p.name for p in EXAMPLES.glob("0*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_prints_its_results(backend, tmp_path, example):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")
           or k == "OMNIQ_LIBRARY"}
    env["OMNIQ_BACKEND"] = backend
    package_dir = str(pathlib.Path(omniq.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_dir] + env.get("PYTHONPATH", "").split(os.pathsep))
    done = subprocess.run([sys.executable, str(EXAMPLES / example)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for line in EXPECTED[example]:
        assert line in lines, "%s printed:\n%s" % (example, done.stdout)
