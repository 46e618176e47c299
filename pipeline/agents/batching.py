"""Batch agents: whole fetched batches of a topic handed to one handler, atomic with the transaction commit.

Why not ``@app.agent`` with ``stream.take``: measured on this project's 2-core machine, faust moves a record from
the fetch to a stream in about 150-300 us (two tasks and an ``asyncio.wait`` per record in ``_drain_messages``,
queue hand-offs, per-record acks), more than the processing chain itself costs. And under exactly_once faust
commits each partition's transaction on a timer, concurrently with the agents: a batch whose outputs were already
sent but whose offsets were not yet acknowledged can be committed half-way (outputs without offsets), and a crash
right after makes the restarted worker produce those outputs a second time.

A batch agent fixes both. ``BatchingConsumer.getmany`` gives every fetched batch of a batch-agent topic to its
handler in one call (records of other topics take faust's usual path), and ``commit`` takes the same lock as a
batch: a transaction commits only between batches, with every output of a batch and its offsets, or with none.
The handler acknowledges the records it finished (``BatchContext.ack``); faust's commit machinery, group
membership, transactional producers, tables and recovery are used unchanged. Within one assignment of a partition
no record is handled twice (``BatchingConsumer.handled``): table recovery's seek to the committed offsets would
otherwise hand a batch handled before the seek over again, into the same open transaction.

The aiokafka consumer's ``fetch_max_wait_ms`` is lowered too (faust hard-codes 1500 ms): while a busy partition
still has records buffered, aiokafka fetches only the idle ones (table changelogs) and the broker holds that
request for the full wait, stalling the busy partition behind it. And table recovery asks the broker for the end
of each changelog instead of trusting a cached value that is unknown before the first fetch (``_highwaters``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from pipeline.logging import get_logger

log = get_logger(__name__)

#: How long the broker may hold a fetch with nothing to return (faust's own value is 1500 ms).
FETCH_MAX_WAIT_MS = 50


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What a batch handler gets besides the records: the partition and how to acknowledge."""

    tp: TP
    consumer: BatchingConsumer

    def ack(self, records: Sequence[Fetched]) -> None:
        """Mark records done: their offsets go into the next commit (the partition's transaction)."""
        self.consumer.ack_offsets(self.tp, [record.offset for record in records])

    def still_assigned(self) -> bool:
        return self.tp in self.consumer.assignment()


class Fetched(Protocol):
    """A fetched record as aiokafka hands it over (``ConsumerRecord``): what a batch handler reads."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


BatchHandler = Callable[[BatchContext, Sequence[Fetched]], Awaitable[None]]


def _handlers(app: Any) -> dict[str, BatchHandler]:
    handlers: dict[str, BatchHandler] | None = getattr(app, "_leadpipe_batch_handlers", None)
    if handlers is None:
        handlers = {}
        app._leadpipe_batch_handlers = handlers
    return handlers


def batch_agent(app: faust.App, topic: Any, handler: BatchHandler) -> None:
    """Consume ``topic`` (a faust topic) in whole fetched batches with ``handler``.

    The topic joins the app's subscriptions (with acks enabled) when the app starts; its records never reach a
    stream. (Not at once: touching ``app.topics`` before the event loop runs binds faust's conductor to the wrong
    loop when the app is later started on another one, as tests do.)
    """
    if not isinstance(app, LeadpipeApp):
        raise TypeError("batch agents need a LeadpipeApp (pipeline.agents.app.create_app builds one)")
    _handlers(app)[topic.get_topic_name()] = handler
    app.batch_topics.append(topic)


def unhandled(records: Sequence[Any], handled_upto: int | None) -> Sequence[Any]:
    """The records at or after ``handled_upto`` (fetched records carry ``offset``); all of them when it is None."""
    if handled_upto is None or not records or records[0].offset >= handled_upto:
        return records
    return [record for record in records if record.offset >= handled_upto]


class BatchingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the fetcher starts, after construction
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Any:
        """Ask the broker for the end of each changelog partition (ListOffsets, the consumer's isolation level).

        Under exactly_once faust answers from the last fetch response's last stable offset, which is unknown
        until a partition has been fetched once: table recovery then sees -1, treats a full changelog as empty
        and starts processing with empty tables (measured: suppression states ignored after a restart).
        """
        return await self._ensure_consumer().end_offsets(partitions)


class BatchingConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, plus batch agents and commits that never split a batch."""

    _batch_lock: asyncio.Lock | None = None
    _handled: dict[TP, int] | None = None

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return BatchingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def batch_lock(self) -> asyncio.Lock:
        if self._batch_lock is None:
            self._batch_lock = asyncio.Lock()
        return self._batch_lock

    @property
    def handled(self) -> dict[TP, int]:
        """Per partition of a batch-agent topic, the offset after the last record handled since it was assigned.

        Everything below it is in the open transaction or committed: a record delivered again below it (table
        recovery seeks to the committed offsets while the fetcher runs, so a batch fetched before that seek comes
        back after it; measured: whole batches handled twice and committed twice) is skipped, never handled again.
        Only a revocation resets it: then the open transaction is the new owner's to abort or complete.
        """
        if self._handled is None:
            self._handled = {}
        return self._handled

    def ack_offsets(self, tp: TP, offsets: Sequence[int]) -> None:
        """faust's ``ack`` for a whole batch of offsets at once, without a faust ``Message`` per record.

        The same bookkeeping (``_acked``, ``_acked_index``, ``_n_acked`` under ``ack_lock``) that faust's commit
        reads; building, tracking and acknowledging a ``Message`` per record cost more than the record's processing
        rules once those were made cheap.
        """
        if not offsets or not self.app.topics.acks_enabled_for(tp.topic):
            return
        with ack_lock:
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            fresh = [o for o in offsets if (committed is None or o >= committed) and o not in index]
            index.update(fresh)
            self._acked[tp].extend(fresh)
            self._n_acked += len(fresh)
            notify(self._waiting_for_ack)

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        async with self.batch_lock:
            done: bool = await super().commit(topics, start_new_transaction=start_new_transaction)
            return done

    async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
        done: bool = await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)
        log.debug(
            "offsets_committed", done=done, offsets={f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()}
        )
        return done

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Commit what is done before a rebalance takes the partitions away.

        faust forgets the acknowledged, not yet committed offsets of every revoked partition; with the eager
        rebalance protocol that is every partition, including those this worker gets straight back, whose open
        transactions still hold the outputs of that forgotten work. Committed later with offsets that no longer
        include it, and the records read again from the committed offset, those outputs would appear twice
        (measured: two workers, one killed at random: hundreds of duplicates). Committing first (after the batch
        in flight, which the commit lock waits for) leaves nothing to forget.
        """
        self.stop_flow()  # no new batch starts; faust resumes the flow after the assignment
        try:
            await self.commit()
        except Exception as exc:  # a fenced producer: the partition moved already; its new owner redoes the work
            self.log.warning("commit before revocation failed: %r", exc)
        await super().on_partitions_revoked(revoked)
        for tp in revoked:
            self.handled.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        for tp in assigned:
            self.handled.pop(tp, None)  # a new assignment starts from the committed offset
        await super().on_partitions_assigned(assigned, generation_id)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109 (faust API)
        """faust's ``Consumer.getmany``, with batch-agent topics handed over whole instead of yielded."""
        handlers = _handlers(self.app)
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            try:
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
            return
        others = {}
        for tp, batch in records.items():
            handler = handlers.get(tp.topic)
            if handler is None:
                others[tp] = batch
                continue
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break  # a rebalance began: faust seeks back to the committed offsets afterwards
            if tp in self._paused_partitions or tp not in self.assignment():
                # Fetched in the instant a partition was paused (table recovery) or revoked. faust's own path drops
                # such records, relying on a later seek; here they are read again unless someone already rewound.
                self._rewind(tp, batch[0].offset)
                continue
            fresh = unhandled(batch, self.handled.get(tp))
            if len(fresh) < len(batch):
                log.info(
                    "redelivered_records_skipped",
                    topic=tp.topic,
                    partition=tp.partition,
                    skipped=len(batch) - len(fresh),
                )
            if fresh:
                await self._run_batch(handler, tp, fresh)
        if not others:
            return
        to_message = self._to_message
        for tp, record in self.scheduler.iterate(others):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)

    def _rewind(self, tp: TP, offset: int) -> None:
        """Move the fetch position of ``tp`` back to ``offset``; never forward (a seek to committed wins)."""
        consumer = self._thread._ensure_consumer()
        assignment = consumer._subscription.subscription.assignment if consumer._subscription.subscription else None
        state = assignment.state_value(tp) if assignment is not None else None
        if state is None or not state.has_valid_position or state.position <= offset:
            return
        consumer.seek(tp, offset)
        self._read_offset[tp] = offset
        self.log.info("rewound %s to offset %s: fetched while paused", tp, offset)

    async def _run_batch(self, handler: BatchHandler, tp: TP, records: Sequence[Fetched]) -> None:
        """One batch under the commit lock; shielded, so a stop or rebalance waits for it instead of cutting it.

        (faust's stop and commit take the same lock, so they wait for the batch: no per-record tracking needed.)
        """

        async def run() -> None:
            async with self.batch_lock:
                await handler(BatchContext(tp, self), records)

        self.handled[tp] = records[-1].offset + 1  # before the handler runs: a cancelled wait must not reopen it
        await asyncio.shield(run())
        self._read_offset[tp] = records[-1].offset
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))


class BatchingTransport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer


class LeadpipeApp(faust.App):
    """faust.App whose consumer supports batch agents (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_topics: list[Any] = []

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)

    async def on_start(self) -> None:
        await super().on_start()
        for topic in self.batch_topics:  # before the conductor starts and subscribes
            self.topics.add(topic)

    @property
    def batching_consumer(self) -> BatchingConsumer:
        return cast(BatchingConsumer, self.consumer)
