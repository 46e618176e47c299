"""Group commit for the HTTP API: concurrent requests share one confirmed publish instead of queueing for the lock.

Each confirmed publish costs a broker round trip (acks=all) whatever its size. While one is in flight, records of
newer requests wait here; the next publish carries all of them, and each request is answered only when the batch
holding its records was confirmed (or told it failed: then none of its records count as accepted, and a retry is
safe because event ids are deterministic).
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from pipeline.kafka.producer import ConfirmingPublisher, Outgoing


class CoalescingPublisher:
    """``await publish(records)`` returns once the broker confirmed them; concurrent calls share one batch."""

    def __init__(self, publisher: ConfirmingPublisher, max_records: int = 5000) -> None:
        self._publisher = publisher
        self._max_records = max_records
        self._pending: list[tuple[list[Outgoing], asyncio.Future[None]]] = []
        self._flushing = False

    async def publish(self, records: list[Outgoing]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((records, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch: list[tuple[list[Outgoing], asyncio.Future[None]]] = []
                size = 0
                while self._pending and (not batch or size + len(self._pending[0][0]) <= self._max_records):
                    records, future = self._pending.pop(0)
                    batch.append((records, future))
                    size += len(records)
                flat = [record for records, _future in batch for record in records]
                try:
                    await run_in_threadpool(self._publisher.publish, flat)
                except Exception as exc:  # every request of the batch learns it was not confirmed
                    for _records, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _records, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._flushing = False
