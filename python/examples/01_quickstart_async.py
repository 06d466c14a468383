# SPDX-License-Identifier: MIT
"""Quick start: enqueue a plain and an async function, run a worker pool,
wait for both results.

    python3 01_quickstart_async.py     (OMNIQ_BACKEND=file for the file store)
"""

import asyncio
import tempfile

from omniq import AsyncOmniQ
from omniq.config import Settings

from tasks import async_multiply, sync_add


async def main():
    with tempfile.TemporaryDirectory() as store:
        settings = Settings.from_env()
        settings.base_dir = store
        settings.log_level = "WARNING"
        async with AsyncOmniQ(settings) as omniq:
            sum_id = await omniq.enqueue(sync_add, 5, 3)
            product_id = await omniq.enqueue(async_multiply, 4, 7)
            print(f"Enqueued sync_add(5, 3) and async_multiply(4, 7) on the "
                  f"{settings.backend.value} backend")

            async with omniq.worker(concurrency=2) as workers:
                await workers.start()  # returns at once; the pool works meanwhile
                total = await omniq.get_result(sum_id, wait=True, timeout=10)
                product = await omniq.get_result(product_id, wait=True, timeout=10)

    print(f"sync_add(5, 3) = {total['result']}")
    print(f"async_multiply(4, 7) = {product['result']}")


if __name__ == "__main__":
    asyncio.run(main())
