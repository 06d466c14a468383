# SPDX-License-Identifier: MIT
"""Retries: a flaky task fails twice and succeeds on its third run, within
max_retries=3 (three runs in all); a task that always fails keeps its last
error as a TaskError."""

import tempfile

from omniq import OmniQ
from omniq.config import Settings

from tasks import flaky_task


def main():
    with tempfile.TemporaryDirectory() as store:
        settings = Settings.from_env()
        settings.base_dir = store
        settings.retry_base = 0.1  # first retry after about 0.1 s, then 0.2 s, ...
        with OmniQ(settings) as omniq:
            flaky_id = omniq.enqueue(flaky_task, "payment-42", fail_before=2, max_retries=3)
            doomed_id = omniq.enqueue(flaky_task, "payment-43", fail_before=5, max_retries=2)
            with omniq.worker(concurrency=2, poll_interval=0.05) as workers:
                workers.start()
                flaky = omniq.get_result(flaky_id, wait=True, timeout=10)
                doomed = omniq.get_result(doomed_id, wait=True, timeout=10)

    print(f"flaky task: {flaky['status'].value} after {flaky['attempts']} runs: {flaky['result']}")
    error = doomed["error"]
    print(f"doomed task: {doomed['status'].value} after {doomed['attempts']} runs")
    print(f"  error_type={error.error_type} message={error.message!r}")
    print(f"  retry_count={error.retry_count} is_retryable={error.is_retryable}")
    print(f"  traceback ends: {error.traceback.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
