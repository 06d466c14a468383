# SPDX-License-Identifier: MIT
"""Task functions the examples enqueue. Workers import them by name
("tasks.sync_add"), so they live at the top level of a module."""

import asyncio
import collections
import threading
import time

_calls = collections.Counter()
ticks = []
three_ticks = threading.Event()


def sync_add(a, b):
    return a + b


async def async_multiply(a, b):
    await asyncio.sleep(0.001)  # stands for real I/O
    return a * b


def flaky_task(value, fail_before=2):
    """Fails its first `fail_before` calls for value, then succeeds."""
    _calls[value] += 1
    if _calls[value] <= fail_before:
        raise RuntimeError("simulated failure %d of %d" % (_calls[value], fail_before))
    return "Success: %s" % value


def echo_task(value):
    return "Echo: %s" % value


def process_item(item_id, data):
    return {"item_id": item_id, "status": "processed", "data": data}


def tick():
    """Notes when it ran; the third run sets three_ticks."""
    ticks.append(time.monotonic())
    if len(ticks) == 3:
        three_ticks.set()
    return len(ticks)
