# SPDX-License-Identifier: MIT
"""OmniQ for Python: the OmniQ v1 API on the OmniQ C library.

    from omniq import OmniQ, Settings

    q = OmniQ(Settings(base_dir="./omniq-data"))
    task_id = q.enqueue(mymodule.add, 5, 3)
    with q.worker(concurrency=2) as workers:
        workers.start()
        print(q.get_result(task_id, wait=True, timeout=10)["result"])  # 8

Tasks name their function "module.qualname"; a worker imports it. Arguments
and results travel as JSON, so a C program can serve or enqueue the same
tasks. See docs/python.md.
"""

from ._dispatch import is_cancelled
from ._lib import path as library_path
from .config import BackendType, Settings
from .core import AsyncOmniQ, OmniQ
from .errors import (ClosedError, ConfigError, DuplicateTaskError, InvalidArgumentError,
                     InvalidTransitionError, NonRetryableError, NotSupportedError, OmniQError,
                     RetryableError, SerializationError, StorageError, TaskNotFoundError)
from .models import QueueStats, Task, TaskError, TaskPage, TaskResult, TaskStatus
from .worker import AsyncWorkerPool, WorkerPool

__version__ = "0.2.0"

__all__ = [
    "AsyncOmniQ", "AsyncWorkerPool", "BackendType", "ClosedError", "ConfigError",
    "DuplicateTaskError", "InvalidArgumentError", "InvalidTransitionError", "NonRetryableError",
    "NotSupportedError", "OmniQ", "OmniQError", "QueueStats", "RetryableError",
    "SerializationError", "Settings", "StorageError", "Task", "TaskError", "TaskNotFoundError",
    "TaskPage", "TaskResult", "TaskStatus", "WorkerPool", "is_cancelled", "library_path",
]
