"""Group commit for the HTTP API: concurrent requests share one key-store commit and one confirmed publish.

A new person's data key costs a database commit and each confirmed publish a broker round trip (acks=all),
whatever the batch size. So requests hand over their parsed, still unsealed submissions; the requests waiting
together form a batch whose keys are warmed at once, then sealed and published together, in the thread pool. Two
batches are in flight at most: while one waits for the broker, the next is being sealed (the publisher sends one
batch at a time). Each request is answered only when the batch holding its records was confirmed, or told it
failed (then none of its records count as accepted, and a retry is safe: event ids are deterministic).
"""

from __future__ import annotations

import asyncio
import collections

from starlette.concurrency import run_in_threadpool

from pipeline.ingest.service import IngestService, Parsed, SubmitResult
from pipeline.kafka.producer import Outgoing


class CoalescingPublisher:
    """``await publish(parsed)`` seals and publishes with whatever else is waiting; returns once confirmed."""

    def __init__(self, service: IngestService, max_records: int = 5000) -> None:
        self._service = service
        self._max_records = max_records
        self._pending: collections.deque[tuple[Parsed, asyncio.Future[SubmitResult]]] = collections.deque()
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, parsed: Parsed) -> SubmitResult:
        """The submission's result once the broker confirmed its records; raises ``PublishError`` otherwise."""
        future: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        self._pending.append((parsed, future))
        if self._flusher is None or self._flusher.done():  # done: its event loop ended before it could reset
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    def _take_batch(self) -> list[tuple[Parsed, asyncio.Future[SubmitResult]]]:
        batch: list[tuple[Parsed, asyncio.Future[SubmitResult]]] = []
        size = 0
        while self._pending and (not batch or size + self._pending[0][0].record_count <= self._max_records):
            parsed, future = self._pending.popleft()
            batch.append((parsed, future))
            size += parsed.record_count
        return batch

    @staticmethod
    def _fail(batch: list[tuple[Parsed, asyncio.Future[SubmitResult]]], exc: BaseException) -> None:
        for _parsed, future in batch:
            if not future.done():
                future.set_exception(exc)

    async def _publish(self, batch: list[tuple[Parsed, asyncio.Future[SubmitResult]]], records: list[Outgoing]) -> None:
        try:
            results = await run_in_threadpool(self._service.publish_sealed, [p for p, _f in batch], records)
        except Exception as exc:  # every request of the batch learns it was not confirmed
            self._fail(batch, exc)
        else:
            for (_parsed, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _flush(self) -> None:
        in_flight: asyncio.Task[None] | None = None
        try:
            while self._pending or in_flight is not None:
                if not self._pending:
                    assert in_flight is not None
                    await in_flight
                    in_flight = None
                    continue
                batch = self._take_batch()
                try:
                    records = await run_in_threadpool(self._service.seal, [p for p, _f in batch])
                except Exception as exc:
                    self._fail(batch, exc)
                    continue
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.get_running_loop().create_task(self._publish(batch, records))
        finally:
            self._flusher = None
