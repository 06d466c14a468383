# SPDX-License-Identifier: MIT
"""Scheduling: a task held until its eta, and an interval task that runs
again and again under one id until it is cancelled."""

import datetime
import tempfile
import time

from omniq import OmniQ
from omniq.config import Settings

import tasks

UTC = datetime.timezone.utc


def main():
    with tempfile.TemporaryDirectory() as store:
        settings = Settings.from_env()
        settings.base_dir = store
        settings.log_level = "WARNING"
        with OmniQ(settings) as omniq:
            enqueued = time.monotonic()
            eta = datetime.datetime.now(UTC) + datetime.timedelta(seconds=0.5)
            later_id = omniq.enqueue(tasks.echo_task, "delayed", eta=eta)
            tick_id = omniq.enqueue(tasks.tick, interval=datetime.timedelta(seconds=0.2))

            # A short poll interval: the pool looks for due tasks 20 times a second.
            with omniq.worker(concurrency=2, poll_interval=0.05) as workers:
                workers.start()
                later = omniq.get_result(later_id, wait=True, timeout=10)
                waited = time.monotonic() - enqueued
                tasks.three_ticks.wait(10)
                omniq.cancel(tick_id)
            tick_status = omniq.get_task(tick_id)["status"]

    # Times are kept in milliseconds: allow for the rounding.
    print(f"eta task: {later['result']}, after its eta: {waited >= 0.49}")
    gaps = [b - a for a, b in zip(tasks.ticks, tasks.ticks[1:3])]
    print(f"interval task: ran 3 times, 0.2 s or more apart: {all(g >= 0.19 for g in gaps)}")
    print(f"interval task once cancelled: {tick_status.value}")


if __name__ == "__main__":
    main()
