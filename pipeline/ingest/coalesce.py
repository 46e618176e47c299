"""Group commit for the HTTP API: concurrent requests share one key-store trip; nothing waits longer than it must.

A new person's data key costs a database commit, and the key store confirms every key it hands out with a query
(``SqlKeyStore.warm``): one trip per batch, whatever its size. So a request hands over its parsed, still unsealed
submission; whatever waits when the sealer is free forms the next batch, which is sealed and encoded in ONE thread
hop (the database must not block the event loop), then each request's records are produced from the event loop
and its answer waits for its own delivery reports only. The sealer does not wait for the broker: while one batch
waits for its acknowledgements the next is sealed, so the database trip, not the broker's round trip, sets the
pace. Trips start at least ``trip_gap_s`` apart: a trip's fixed CPU (~0.9 ms) paid every ~4.5 requests was ~40 %
of the door's CPU at 1,000 requests/s, so under load the requests of the gap share one; an idle door's request is
sealed the moment it arrives (no linger).

The same database trip checks the batch's signed requests against the replay store (``pipeline.ingest.replay``)
and stores the signatures accepted since the previous trip, so replay protection across processes costs no hop.

Bounded in time: a request that has not reached the producer within ``timeout_s`` (key store slow or hung) is
answered ``IngestTimeout`` and its records are never produced; once produced, its answer is librdkafka's report,
which comes within the publisher's ``delivery_timeout_s``. While the key store or the brokers are known to be
unavailable, requests are refused at once (``Availability``), one per second going through as a probe.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from pipeline.crypto.keystore import Warmed
from pipeline.db import KeptConnection
from pipeline.ingest.replay import FLUSH_INTERVAL_S, Answered, Outcome, Rejection, ReplayGuard, ReplayKey
from pipeline.ingest.service import IngestService, KeyStoreUnavailable, Parsed, Ready, SubmitResult, log_outcome
from pipeline.kafka.producer import Availability, PublishError

Found = dict[tuple[str, str], Outcome]


class BrokerUnavailable(PublishError):
    """The brokers are known to be unreachable (fast failure): nothing was produced."""


class IngestTimeout(PublishError):
    """The request did not reach the producer within the ingest timeout: nothing was produced."""


@dataclass(eq=False)
class _Entry:
    parsed: Parsed
    future: asyncio.Future[SubmitResult]
    replay: ReplayKey | None = None
    timer: asyncio.TimerHandle | None = None
    committed: bool = field(default=False)
    """Its records were handed to the producer: from then on its answer is the broker's."""


class GroupCommit:
    """``await submit(parsed)``: sealed with whatever else waits, published, answered once confirmed."""

    def __init__(
        self,
        service: IngestService,
        replays: ReplayGuard | None = None,
        *,
        timeout_s: float = 5.0,
        max_records: int = 5000,
        trip_gap_s: float = 0.0,
    ) -> None:
        self._service = service
        self.replays = replays or ReplayGuard(None)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._timeout_s = timeout_s
        self._max_records = max_records
        self._trip_gap_s = trip_gap_s
        self._last_trip = -trip_gap_s
        self._pending: collections.deque[_Entry] = collections.deque()
        self._sealer: asyncio.Task[None] | None = None
        # one thread: batches are sealed one after another (the next batch gathers meanwhile)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-seal")
        self.keystore = Availability("key_store")
        # the sealer's own connection, kept from trip to trip (a pooled one cost a checkout, a ping and a reset)
        self._db = KeptConnection(service.runtime.engine)

    @property
    def broker(self) -> Availability:
        return self._service.publisher.health

    async def submit(self, parsed: Parsed, replay: ReplayKey | None = None) -> SubmitResult:
        """The submission's result once the broker confirmed its records; ``PublishError`` (one of its subclasses
        ``KeyStoreUnavailable``, ``BrokerUnavailable``, ``IngestTimeout``) when they were not."""
        if not self.keystore.admit():
            raise KeyStoreUnavailable(f"the data-key store is unavailable ({self.keystore.reason})")
        if not self.broker.admit():
            raise BrokerUnavailable(f"the brokers are unreachable ({self.broker.reason})")
        loop = asyncio.get_running_loop()
        entry = _Entry(parsed, loop.create_future(), replay)
        entry.timer = loop.call_later(self._timeout_s, self._expire, entry)
        self._pending.append(entry)
        self._start()
        return await entry.future

    def _start(self) -> None:
        if self._sealer is None or self._sealer.done():  # done: its event loop ended before it could reset
            self._sealer = asyncio.get_running_loop().create_task(self._seal_forever())

    def flush_soon(self) -> None:
        """Accepted signatures wait for the next database trip; make one within ``FLUSH_INTERVAL_S`` if none comes."""
        if self._flush_timer is None and self.replays.store is not None:
            self._flush_timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL_S, self._flush_due)

    def _flush_due(self) -> None:
        self._flush_timer = None
        if self.replays.has_unstored:
            self._start()

    def _expire(self, entry: _Entry) -> None:
        if not entry.committed and not entry.future.done():
            entry.future.set_exception(
                IngestTimeout(f"the key store did not answer within {self._timeout_s:g}s; nothing was published")
            )

    def _take_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        size = 0
        while self._pending and (not batch or size + self._pending[0].parsed.record_count <= self._max_records):
            entry = self._pending.popleft()
            if entry.future.done():  # expired while it waited
                continue
            batch.append(entry)
            size += entry.parsed.record_count
        return batch

    @staticmethod
    def _settle(entry: _Entry, result: SubmitResult | None = None, error: BaseException | None = None) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        if entry.future.done():
            return
        if error is not None:
            entry.future.set_exception(error)
        else:
            assert result is not None
            entry.future.set_result(result)
            log_outcome(entry.parsed.submission, result)

    def _trip(self, batch: list[_Entry]) -> tuple[list[Ready], Found]:
        """The batch's one database trip (in the sealer's thread), one transaction on the sealer's own connection:
        store the signatures accepted since the last trip, find the batch's replays, load or create the data keys
        of the rest; once that committed, seal them.

        One transaction, not one for the replays and one for the keys: each costs a commit, and at 1,000
        requests/s the two took ~9 and ~6.5 ms of a ~17 ms trip (the trip, which the next batch waits for, is
        most of a request's latency)."""
        store = self.replays.store
        unstored = self.replays.take_unstored() if store is not None else []
        stage = ["the key store could not be reached"]
        try:
            found, fresh, keys = self._db.run(lambda conn: self._exchange(conn, batch, unstored, stage))
        except SQLAlchemyError as exc:
            self.replays.give_back(unstored)
            raise KeyStoreUnavailable(f"{stage[-1]} ({type(exc).__name__})") from exc
        keys.activate()
        return self._service.encode(fresh), found

    def _exchange(
        self, conn: Connection, batch: list[_Entry], unstored: list[Answered], stage: list[str]
    ) -> tuple[Found, list[Parsed], Warmed]:
        stage[:] = ["the replay store could not be read"]
        found: Found = {}
        store = self.replays.store
        if store is not None:
            found = store.exchange(unstored, [e.replay for e in batch if e.replay is not None], time.time(), conn)
        stage.append("the data keys could not be loaded")
        fresh = [e.parsed for e in batch if e.replay is None or e.replay.ident not in found]
        keys = self._service.prepare_keys(conn, fresh)
        conn.commit()
        return found, fresh, keys

    async def _seal_forever(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending or self.replays.has_unstored:
                gap = self._last_trip + self._trip_gap_s - loop.time()
                if gap > 0:  # a trip started less than trip_gap_s ago: let this batch gather a moment longer
                    await asyncio.sleep(gap)
                self._last_trip = loop.time()
                batch = self._take_batch()
                try:
                    ready, found = await loop.run_in_executor(self._executor, self._trip, batch)
                except Exception as exc:  # every request of the batch learns nothing was published
                    if isinstance(exc, KeyStoreUnavailable):
                        self.keystore.down(str(exc))
                    for entry in batch:
                        self._settle(entry, error=exc)
                    if not self._pending:
                        break  # the unstored signatures wait for the next request or flush
                    continue
                self.keystore.up()
                sealed = iter(ready)
                for entry in batch:
                    if entry.replay is not None and entry.replay.ident in found:
                        self._settle(entry, _replayed(found[entry.replay.ident]))
                    else:
                        self._produce(entry, next(sealed))
        finally:
            self._sealer = None

    def _produce(self, entry: _Entry, item: Ready) -> None:
        if entry.future.done():  # expired while its batch was sealed: its records are not produced
            return
        if not item.records:  # too large for its topic
            self._settle(entry, item.result())
            return
        entry.committed = True
        try:
            sent = self._service.publisher.send(item.records)
        except PublishError as exc:
            self._settle(entry, error=exc)
            return
        sent.add_done_callback(functools.partial(self._delivered, entry, item))

    def _delivered(self, entry: _Entry, item: Ready, sent: asyncio.Future[int]) -> None:
        error = sent.exception()
        if error is not None:
            self._settle(entry, error=error)
        else:
            self._settle(entry, item.result())

    def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._executor.submit(self._db.close)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _replayed(outcome: Outcome) -> SubmitResult:
    """A replay's result: the original's event ids, or its rejection (nothing published or dead-lettered again)."""
    if isinstance(outcome, Rejection):
        return SubmitResult(status="rejected", replayed=True, rejection=outcome)
    return SubmitResult(status="accepted", event_ids=outcome, replayed=True)
