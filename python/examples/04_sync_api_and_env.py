# SPDX-License-Identifier: MIT
"""The blocking API configured from the environment: OmniQ.from_env(), and a
WorkerPool that drains the queue in the caller with process_tasks()."""

import os
import tempfile

from omniq import OmniQ, TaskStatus

from tasks import process_item


def main():
    with tempfile.TemporaryDirectory() as store:
        os.environ["OMNIQ_BASE_DIR"] = store  # or export OMNIQ_BASE_DIR=... in the shell
        os.environ.setdefault("OMNIQ_LOG_LEVEL", "WARNING")
        with OmniQ.from_env() as omniq:
            ids = [omniq.enqueue(process_item, n, f"data-{n}") for n in (1, 2)]
            done = omniq.worker(concurrency=2).process_tasks()
            results = [omniq.get_result(task_id) for task_id in ids]

    print(f"processed {done} tasks")
    for result in results:
        assert result["status"] == TaskStatus.SUCCESS
        print(f"  {result['result']}")


if __name__ == "__main__":
    main()
