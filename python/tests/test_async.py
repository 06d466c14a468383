# SPDX-License-Identifier: MIT
"""AsyncOmniQ and AsyncWorkerPool: the same operations, awaited."""

import asyncio

import omniq
import omniq_test_tasks as tasks
from omniq import TaskStatus

W = tasks.WAIT


def test_async_api_enqueues_runs_and_reads(settings):
    async def main():
        async with omniq.AsyncOmniQ(settings) as q:
            sum_id = await q.enqueue(tasks.add, 5, 3)
            product_id = await q.enqueue(tasks.multiply, 4, 7)
            async with q.worker(concurrency=2) as pool:
                await pool.start()
                assert pool.running
                total = await q.get_result(sum_id, wait=True, timeout=W)
                product = await q.get_result(product_id, wait=True, timeout=W)
            assert not pool.running
            assert (await q.get_task(sum_id)).status == TaskStatus.SUCCESS
            ids = await q.enqueue_many([(tasks.add, (1, 1))])
            assert await q.worker().process_tasks() == 1
            assert (await q.get_result(ids[0])).result == 2
            assert (await q.count_by_status())[TaskStatus.SUCCESS] == 3
            return total.result, product.result

    assert asyncio.run(main()) == (8, 28)


def test_async_run_stops_gracefully_when_cancelled(settings):
    async def main():
        async with omniq.AsyncOmniQ(settings) as q:
            task_id = await q.enqueue(tasks.hold, "h")
            pool = q.worker()
            runner = asyncio.create_task(pool.run())
            await asyncio.to_thread(tasks.started("h").wait, W)
            tasks.release("h")
            assert (await q.get_result(task_id, wait=True, timeout=W)).result == "h"
            runner.cancel()  # as asyncio.run does on Ctrl-C
            try:
                await runner
            except asyncio.CancelledError:
                pass
            return pool.running

    assert asyncio.run(main()) is False


def test_async_cancel_and_purge(settings, clock):
    async def main():
        async with omniq.AsyncOmniQ(settings) as q:
            task_id = await q.enqueue(tasks.add, 1, 2)
            await q.cancel(task_id)
            clock.advance(1)
            purged = await q.purge(older_than=0)
            return (await q.get_task(task_id)).status, purged

    assert asyncio.run(main()) == (TaskStatus.CANCELLED, 1)


def test_an_abandoned_async_wait_gives_up(settings):
    async def main():
        async with omniq.AsyncOmniQ(settings) as q:
            task_id = await q.enqueue(tasks.add, 1, 2)
            try:
                await asyncio.wait_for(q.get_result(task_id, wait=True), 0.05)
            except asyncio.TimeoutError:
                return "timed out"

    # Closing the handle waits for calls in progress: it returns because
    # the abandoned wait ends at its next slice.
    assert asyncio.run(main()) == "timed out"


def test_many_async_waits_do_not_hold_up_other_calls(settings):
    async def main():
        async with omniq.AsyncOmniQ(settings) as q:
            first = await q.enqueue(tasks.add, 0, 0)
            # More waits than the loop's default executor has threads.
            waits = [asyncio.create_task(q.get_result(first, wait=True, timeout=W))
                     for _ in range(32)]
            await asyncio.sleep(0)
            ids = [await q.enqueue(tasks.add, i, i) for i in range(3)]  # not held up
            async with q.worker(concurrency=2) as pool:
                await pool.start()
                results = await asyncio.gather(*waits)
                last = await q.get_result(ids[-1], wait=True, timeout=W)
            return {r.result for r in results}, last.result

    assert asyncio.run(main()) == ({0}, 4)
