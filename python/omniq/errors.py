# SPDX-License-Identifier: MIT
"""Exceptions: what OmniQ raises, and what a task handler raises to say
whether its failure is worth another run.

Errors from the C library carry its status code: `code` is the number,
`code_name` its name ("OMNIQ_ESTATE"), and the message is the library's
detailed one for the call that failed. Each maps to the class that says what
went wrong, which also derives from the built-in exception a Python caller
would expect (ValueError for bad input, LookupError for an unknown task).
"""


class OmniQError(Exception):
    """An OmniQ call failed. `code`/`code_name` give the C status, if any."""

    def __init__(self, message, code=None, code_name=None):
        super().__init__(message)
        self.code = code
        self.code_name = code_name


class InvalidArgumentError(OmniQError, ValueError):
    """A bad argument: a malformed task id, a negative interval, ..."""


class ConfigError(OmniQError, ValueError):
    """A bad setting, or a bad OMNIQ_* variable (named in the message)."""


class SerializationError(OmniQError, ValueError):
    """A value JSON cannot carry. Raised at enqueue before anything is stored;
    a handler's result that cannot be encoded fails its run with this type."""


class TaskNotFoundError(OmniQError, LookupError):
    """No task has this id."""


class InvalidTransitionError(OmniQError):
    """The task's status does not allow this (cancelling a finished task)."""


class DuplicateTaskError(OmniQError):
    """The unique key is held by another task of the queue (enqueue, or a
    retry of a task whose key was taken meanwhile); nothing was stored.
    `task_id` is the id of the task that holds the key, when known."""

    def __init__(self, message, code=None, code_name=None, task_id=None):
        super().__init__(message, code, code_name)
        self.task_id = task_id


class NotSupportedError(OmniQError, NotImplementedError):
    """The store's backend does not offer this operation (a backend written
    for an older storage interface)."""


class StorageError(OmniQError):
    """The store failed: locked past the busy timeout, corrupt, full, I/O."""


class ClosedError(OmniQError):
    """The handle is closed or shutting down."""


# C status names (omniq.h's OMNIQ_ERRNO_MAP) to the class raised for them.
_BY_NAME = {
    "OMNIQ_EINVAL": InvalidArgumentError,
    "OMNIQ_ECONFIG": ConfigError,
    "OMNIQ_ESERIALIZE": SerializationError,
    "OMNIQ_ENOTFOUND": TaskNotFoundError,
    "OMNIQ_ESTATE": InvalidTransitionError,
    "OMNIQ_ESTORAGE": StorageError,
    "OMNIQ_EBUSY": StorageError,
    "OMNIQ_ECORRUPT": StorageError,
    "OMNIQ_EIO": StorageError,
    "OMNIQ_ENOSPC": StorageError,
    "OMNIQ_ECLOSED": ClosedError,
    "OMNIQ_EEXISTS": DuplicateTaskError,
    "OMNIQ_ENOTSUP": NotSupportedError,
}


def from_code(code, code_name, message):
    """The exception for a C status code."""
    if code_name == "OMNIQ_ENOMEM":
        return MemoryError(message)
    return _BY_NAME.get(code_name, OmniQError)(message, code, code_name)


class RetryableError(Exception):
    """Raise it (or a subclass) from a handler to fail the run and ask for
    another, within the task's max_retries. Any exception a handler raises is
    retryable unless it derives from NonRetryableError; this class names the
    intent."""

    retryable = True


class NonRetryableError(Exception):
    """Raise it (or a subclass) from a handler to fail the task for good:
    no further run, whatever budget is left. The stored error's type is the
    class name, so subclass it to name the failure (class BadInput(...))."""

    retryable = False
