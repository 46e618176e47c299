"""Every use of faust, mode and aiokafka beyond their public API, in one place, each name listed in ``PRIVATE_API``.

What leadpipe changes inside faust, and why (details at each class):

- the consumer hands whole fetched batches of a batch-agent topic to their handler (``pipeline.agents.batching``)
  and commits only between batches (``BatchingConsumer``);
- aiokafka's ``fetch_max_wait_ms`` is lowered (faust hard-codes 1500 ms): while a busy partition still has records
  buffered, aiokafka fetches only the idle ones (table changelogs) and the broker holds that request for the full
  wait, stalling the busy partition behind it (``BatchingConsumerThread``);
- table recovery asks the broker for the end of each changelog instead of trusting a cached value that is unknown
  before the first fetch (``BatchingConsumerThread._highwaters``);
- a global table reads a compacted topic another process writes (``ExternalGlobalTable``);
- the processing agent's outputs go into the transaction of the input partition they came from, in whole record
  batches (``transaction_producer``, ``partition_for``; used by ``pipeline.agents.sender``);
- a stream agent takes batches that are acknowledged by the agent once their outputs are in the transaction, never
  by faust on the way out (``take_batches``: faust's ``take_events`` acks a batch in a ``finally``, so a batch cut
  short at shutdown was committed without its work);
- a fenced transactional producer is dropped and the worker rejoins its group instead of crashing
  (``FenceTolerantTransactionManager``, ``producer_fenced``), and the futures it leaves failed are retrieved, so
  asyncio logs no "Future exception was never retrieved" error for them (``retrieve_failures``);
- faust's stall warnings, which cannot see commits made by the batch agents and transactions, are off
  (``BatchingConsumerThread.verify_event_path``); the worker's own commit progress replaces them
  (``BatchingConsumer.partition_progress``, served as ``leadpipe_worker_uncommitted_records`` by
  ``pipeline.agents.metrics``).

``tests/unit/agents/test_faust_adapter_contract.py`` checks every name in ``PRIVATE_API`` against the installed
faust, mode and aiokafka (presence, kind, and the parameters this module passes or receives), and that this module
uses no private name it does not list; an upgrade that changes one fails there, naming it. Nothing else in
``pipeline/`` touches a private name of these libraries (checked by the same test).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, cast

import faust
from aiokafka.errors import ProducerFenced
from faust.transport.consumer import TopicPartitionGroup, TransactionManager
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from pipeline.agents.batching import BatchContext, BatchHandler, Fetched, HandledOffsets, RetryBatch, unhandled
from pipeline.logging import get_logger
from pipeline.sinks.base import OwnershipLostError, SinkBackpressureError

log = get_logger(__name__)

#: How long the broker may hold a fetch with nothing to return (faust's own value is 1500 ms).
FETCH_MAX_WAIT_MS = 50


@dataclass(frozen=True, slots=True)
class Reliance:
    """One name of faust, mode or aiokafka this module relies on beyond their public API."""

    owner: str
    """``module:Class`` (or ``module`` for a module-level name)."""
    name: str
    kind: Literal["method", "coroutine", "async_generator", "property", "attribute", "instance_attribute"]
    """``instance_attribute``: set by the owner's ``__init__`` (checked on an instance, not the class)."""
    params: tuple[str, ...] = ()
    """The leading parameters (after ``self``) as this module calls or overrides the method."""
    why: str = ""


_CONSUMER = "faust.transport.drivers.aiokafka:Consumer"
_THREAD = "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread"
_AIO_CONSUMER = "aiokafka.consumer.consumer:AIOKafkaConsumer"
_FAUST_PRODUCER = "faust.transport.drivers.aiokafka:Producer"
_AIO_PRODUCER = "aiokafka.producer.producer:AIOKafkaProducer"
_STREAM = "faust.streams:Stream"
_TXN_MANAGER = "aiokafka.producer.transaction_manager:TransactionManager"
_ACCUMULATOR = "aiokafka.producer.message_accumulator:MessageAccumulator"
_BATCH = "aiokafka.producer.message_accumulator:MessageBatch"

#: Every private (or internal) name this module relies on. Keep in step with the code below.
PRIVATE_API: tuple[Reliance, ...] = (
    # the batch consumer (BatchingConsumer, BatchingConsumerThread, BatchingTransport, BatchingAppMixin)
    Reliance("faust.app.base:App", "_new_transport", "method", why="the app builds its transport here"),
    Reliance("faust.transport.drivers.aiokafka:Transport", "Consumer", "attribute", why="the consumer class used"),
    Reliance(_CONSUMER, "_new_consumer_thread", "method", why="the consumer builds its thread here"),
    Reliance(_THREAD, "_create_worker_consumer", "method", ("transport",), why="builds the aiokafka consumer"),
    Reliance(_THREAD, "on_start", "coroutine", why="starts the aiokafka consumer; its heartbeat is wrapped after"),
    Reliance(
        "aiokafka.consumer.group_coordinator:GroupCoordinator",
        "_do_heartbeat",
        "coroutine",
        why="wrapped: a successful heartbeat confirms the membership",
    ),
    Reliance(_THREAD, "_highwaters", "coroutine", ("partitions",), why="table recovery's changelog ends"),
    Reliance(_THREAD, "_ensure_consumer", "method", why="the aiokafka consumer of the thread"),
    Reliance(_THREAD, "verify_event_path", "method", ("now", "tp"), why="overridden: faust's stall warnings off"),
    Reliance(_AIO_CONSUMER, "_coordinator", "instance_attribute", why="asked to rejoin after a fence"),
    Reliance("aiokafka.consumer.group_coordinator:GroupCoordinator", "request_rejoin", "method"),
    Reliance(_AIO_CONSUMER, "_fetch_max_wait_ms", "instance_attribute", why="read when the fetcher starts"),
    Reliance(_AIO_CONSUMER, "_subscription", "instance_attribute", why="the fetch position of a partition"),
    Reliance("aiokafka.consumer.subscription_state:SubscriptionState", "subscription", "property"),
    Reliance("aiokafka.consumer.subscription_state:Subscription", "assignment", "property"),
    Reliance("aiokafka.consumer.subscription_state:Assignment", "state_value", "method", ("tp",)),
    Reliance("aiokafka.consumer.subscription_state:TopicPartitionState", "has_valid_position", "property"),
    Reliance("aiokafka.consumer.subscription_state:TopicPartitionState", "position", "property"),
    Reliance(_CONSUMER, "_thread", "instance_attribute"),
    Reliance(_CONSUMER, "_wait_next_records", "coroutine", ("timeout",), why="the fetch getmany is built on"),
    Reliance(_CONSUMER, "getmany", "async_generator", ("timeout",), why="overridden: batches to their handlers"),
    Reliance(_CONSUMER, "commit", "coroutine", ("topics", "start_new_transaction"), why="overridden: batch lock"),
    Reliance(_CONSUMER, "_commit_offsets", "coroutine", ("offsets", "start_new_transaction"), why="overridden"),
    Reliance(_CONSUMER, "on_partitions_revoked", "coroutine", ("revoked",), why="overridden: commit first"),
    Reliance(_CONSUMER, "on_partitions_assigned", "coroutine", ("assigned", "generation_id"), why="overridden"),
    Reliance(_CONSUMER, "perform_seek", "coroutine"),
    Reliance(_CONSUMER, "_to_message", "method", ("tp", "record")),
    Reliance(_CONSUMER, "_acked", "instance_attribute", why="ack bookkeeping faust's commit reads"),
    Reliance(_CONSUMER, "_acked_index", "instance_attribute"),
    Reliance(_CONSUMER, "_n_acked", "attribute"),
    Reliance(_CONSUMER, "_committed_offset", "instance_attribute"),
    Reliance(_CONSUMER, "_waiting_for_ack", "attribute"),
    Reliance(_CONSUMER, "_read_offset", "instance_attribute"),
    Reliance(_CONSUMER, "_add_gap", "coroutine", ("tp", "offset_from", "offset_to"), why="faust skips a gap after 0"),
    Reliance(_CONSUMER, "_new_offset", "method", ("tp",), why="overridden: a run of offsets split by a duplicate"),
    Reliance(_CONSUMER, "_gap", "instance_attribute", why="the offsets faust skips (markers, aborted records)"),
    Reliance(_CONSUMER, "_filter_committable_offsets", "method", ("tps",), why="overridden: held transactions"),
    Reliance(_CONSUMER, "_paused_partitions", "instance_attribute"),
    Reliance(_CONSUMER, "_buffered_partitions", "instance_attribute"),
    Reliance("faust.transport.drivers.aiokafka:Transport", "TransactionManager", "attribute", why="replaced"),
    Reliance("faust.transport.consumer:TransactionManager", "commit", "coroutine", ("offsets",), why="overridden"),
    Reliance(_FAUST_PRODUCER, "commit_transactions", "coroutine", ("tid_to_offset_map", "group_id")),
    # sink batches (take_batches)
    Reliance(_STREAM, "_enable_passive", "method", ("channel",), why="the stream fills the batch in the background"),
    Reliance(_STREAM, "_processors", "instance_attribute", why="the processor that fills the batch is removed"),
    Reliance("faust.types.tuples", "ack_lock", "attribute", why="the lock faust's ack takes"),
    Reliance("mode.utils.futures", "notify", "attribute", why="wakes faust's wait for acks"),
    # tables (ExternalGlobalTable, table_dict)
    Reliance("faust.tables.globaltable:GlobalTable", "_changelog_topic_name", "method", why="overridden"),
    Reliance("faust.stores.memory:Store", "data", "instance_attribute", why="the dict inside a memory store"),
    # the transactional sender (transactional_id, transaction_producer, partition_for)
    Reliance("faust.transport.consumer:TransactionManager", "transactional_id_format", "attribute"),
    Reliance("faust.transport.consumer:TopicPartitionGroup", "__new__", "method", ("topic", "partition", "group")),
    Reliance(_FAUST_PRODUCER, "_ensure_producer", "method"),
    Reliance(_FAUST_PRODUCER, "_transaction_producers", "instance_attribute", why="one per input partition"),
    Reliance(_FAUST_PRODUCER, "_trn_locks", "instance_attribute", why="the lock of each transaction"),
    Reliance(_AIO_PRODUCER, "_partition", "method", ("topic", "partition", "key", "value", "serialized_key")),
    # a fenced producer's failed futures, retrieved when it is dropped (retrieve_failures)
    Reliance(_AIO_PRODUCER, "_txn_manager", "instance_attribute", why="holds the transaction's waiter"),
    Reliance(_AIO_PRODUCER, "_message_accumulator", "instance_attribute", why="holds the undelivered batches"),
    Reliance(_TXN_MANAGER, "_transaction_waiter", "instance_attribute", why="failed with the fence"),
    Reliance(_ACCUMULATOR, "_batches", "instance_attribute", why="the queued batches, failed with the fence"),
    Reliance(_ACCUMULATOR, "_pending_batches", "instance_attribute", why="the batches being sent"),
    Reliance(_BATCH, "_drain_waiter", "instance_attribute", why="failed with its batch"),
    Reliance("aiokafka.client:AIOKafkaClient", "_wait_on_metadata", "coroutine", ("topic",)),
)


# ---- the batch consumer ---------------------------------------------------------------------------------------


class BatchingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    #: When a heartbeat last confirmed this member of the group (``time.monotonic()``; 0.0: never).
    membership_confirmed_at: float = 0.0

    async def on_start(self) -> None:
        """faust's start, then each successful group heartbeat is remembered (``BatchingConsumer.owns``)."""
        await super().on_start()
        coordinator = self._ensure_consumer()._coordinator
        if coordinator is None:
            return
        heartbeat = coordinator._do_heartbeat

        async def remembered_heartbeat() -> bool:
            ok = bool(await heartbeat())
            if ok:
                self.membership_confirmed_at = time.monotonic()
            return ok

        coordinator._do_heartbeat = remembered_heartbeat

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

    def verify_event_path(self, now: float, tp: TP) -> None:
        """faust's stall warnings, off: they cannot see what the worker does.

        faust decides a partition is stalled from its per-record stream path (``stream_inbound_time``) and from
        commits made outside transactions (``tp_last_committed_at``). The batch agents bypass the first and every
        exactly_once commit is a transaction, so a healthy worker committing every offset logged "Has not committed
        ... at all since worker start" and "Stream has not started processing" hundreds of times a minute
        (measured: 637 lines in 2 minutes at 200 events/s). The worker's metrics serve the committed offsets
        against the log end instead (``partition_progress``), which is what an alert on a stall should read.
        """
        return None

    def request_rejoin(self) -> None:
        """Ask the group coordinator for a rebalance: the assignment is read again and each assigned partition gets
        a fresh transactional producer and a seek to its committed offset."""
        consumer = self._ensure_consumer()
        if consumer._coordinator is not None:
            consumer._coordinator.request_rejoin()


class BatchingConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, plus batch agents and commits that never split a batch."""

    _batch_lock: asyncio.Lock | None = None
    _handled: dict[TP, HandledOffsets] | None = None
    _seeked_generation: int | None = None
    _handed_out: dict[TP, set[int]] | None = None
    _in_flight: int = 0
    _idle: asyncio.Event | None = None
    _draining: bool = False
    #: The share of the rebalance timeout a revocation waits for the stream batches in flight.
    DRAIN_SHARE = 0.5
    #: The share of the session timeout within which a heartbeat (or the assignment) must have confirmed this
    #: member before a batch may have an effect outside Kafka; the rest is the margin against the coordinator.
    LEASE_SHARE = 0.5
    #: How long a sink waits before asking again while its membership is unconfirmed.
    LEASE_RETRY_S = 0.2
    #: A transaction held (``held_transactions``) for this many commit intervals (at least ``HOLD_MIN_S``) makes
    #: the worker rejoin its group (``_heal_holes``).
    HOLD_MAX_COMMITS = 10
    HOLD_MIN_S = 5.0
    _rejoin_for_holes: bool = False

    @property
    def _held_since(self) -> dict[str, float]:
        """Per held transaction, when it was first seen held (``time.monotonic()``)."""
        if self._held is None:
            self._held = {}
        return self._held

    _held: dict[str, float] | None = None
    _retrying: dict[TP, tuple[str, float]] | None = None
    fenced_at: float | None = None
    """When (``time.monotonic``) a transactional producer was last fenced and the worker asked to rejoin."""
    assigned_at: float | None = None
    """When partitions were last assigned. Both are read by the worker's readiness (``pipeline.agents.health``)."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return BatchingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def batch_lock(self) -> asyncio.Lock:
        if self._batch_lock is None:
            self._batch_lock = asyncio.Lock()
        return self._batch_lock

    @property
    def handled(self) -> dict[TP, HandledOffsets]:
        """Per partition of a batch-agent topic, the offsets handled since it was assigned.

        They are in the open transaction or committed: a record delivered again (table recovery seeks to the
        committed offsets while the fetcher runs, so a batch fetched before that seek comes back after it; measured:
        whole batches handled twice and committed twice) is skipped, never handled again. Only an assignment or a
        revocation resets them: then the open transaction is the new owner's to abort or complete.
        """
        if self._handled is None:
            self._handled = {}
        return self._handled

    @property
    def handed_out(self) -> dict[TP, set[int]]:
        """Per partition of a stream agent's topic, the offsets ``take_batches`` handed out since it was assigned
        and not committed yet (``current_batch``). A set, not a mark: after a rebalance a record fetched before the
        seek can arrive before the records the seek delivers again below it, which must still be handed out."""
        if self._handed_out is None:
            self._handed_out = {}
        return self._handed_out

    @property
    def retrying(self) -> dict[TP, tuple[str, float]]:
        """Per partition whose last batch raised ``RetryBatch`` (the database is down): the reason and since when
        (``time.monotonic``) it has been retried; gone once a batch of it goes through or it is revoked."""
        if self._retrying is None:
            self._retrying = {}
        return self._retrying

    def fenced(self) -> None:
        """A producer of this worker was fenced; it asked to rejoin (``producer_fenced``)."""
        self.fenced_at = time.monotonic()

    @property
    def rejoining_after_fence(self) -> bool:
        """A producer was fenced and dropped since the last assignment: until the worker has rejoined, its
        partitions are still assigned here but have no producer, and their batches are redone after the rejoin."""
        return self.fenced_at is not None and (self.assigned_at is None or self.fenced_at >= self.assigned_at)

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

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit for ``tp``: past the run of consecutive offsets done since the committed one (each
        acknowledged, or a gap faust recorded: a transaction marker, a record read_committed skipped).

        faust's own computation counted the first record after a gap twice: the gap it records runs up to and
        including that record's offset, which is acknowledged too, and the duplicate in the sorted offsets ended the
        run there. The commit then stopped at that record while the transaction it committed already held the
        outputs of the records after it (a sink batch's results, sent before the acknowledgement); they were
        committed with the next transaction, and a crash in between had them done and published again (measured:
        two to six events with two sink results after a SIGKILL, at each record right after a transaction marker).
        """
        acked = self._acked[tp]
        end = self._commit_end(tp)
        if end is None:
            return None
        acked[:] = [offset for offset in acked if offset >= end]
        self._acked_index[tp].difference_update([offset for offset in self._acked_index[tp] if offset < end])
        gaps = self._gap[tp]
        if gaps:
            gaps.chop(0, end)
        return end

    def _commit_end(self, tp: TP) -> int | None:
        """The offset a commit of ``tp`` can reach now (``committable_end`` of the acknowledged offsets and the gaps
        faust recorded below the highest of them); None: nothing acknowledged, or nothing committable."""
        acked = self._acked[tp]
        if not acked:
            return None
        done = set(acked)
        gaps = self._gap[tp]
        if gaps:
            for interval in gaps.overlap(0, max(done)):  # the gaps below the highest acknowledged offset, as faust
                done.update(range(interval.begin, interval.end))
        return committable_end(done, self._committed_offset[tp])

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        async with self.batch_lock:
            done: bool = await super().commit(topics, start_new_transaction=start_new_transaction)
            return done

    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """faust's, except that a transaction holding outputs of records past what it would commit is not committed.

        A partition's transaction gets the outputs of a record when the record is done, but its commit carries
        offsets only up to the first record not done yet. Records done past such a hole (one fetched before a
        rebalance and read again later, say) had their outputs committed while their offsets were not; done again
        after the next rebalance, in the same transaction kept open across it, they came out twice (measured: six
        events with two sink results each, two workers, one stalled past its session). Such a transaction stays
        open until the hole is filled, or is aborted when its partitions are revoked (``on_partitions_revoked``),
        which a hole that stays too long asks for (``_heal_holes``).
        """
        held = self.held_transactions()
        self._heal_holes(held)
        if not held:
            return super()._filter_committable_offsets(tps)
        log.debug("transactions_held", transactions=sorted(held))
        free = [tp for tp in tps if transactional_id(cast(faust.App, self.app), tp.topic, tp.partition) not in held]
        return super()._filter_committable_offsets(free)

    def _heal_holes(self, held: set[str]) -> None:
        """A transaction held longer than ``HOLD_MAX_COMMITS`` commit intervals waits for a record that will not come
        again within this assignment (it was handed out in a batch that was given up, say): rejoin, so the held
        transactions are aborted at revocation and their partitions start again from their committed offsets."""
        now = time.monotonic()
        since = self._held_since
        for tid in list(since):
            if tid not in held:
                del since[tid]
        for tid in held:
            since.setdefault(tid, now)
        bound = max(self.HOLD_MIN_S, float(self.app.conf.broker_commit_interval) * self.HOLD_MAX_COMMITS)
        stuck = sorted(tid for tid, first in since.items() if now - first > bound)
        if stuck and not self._rejoin_for_holes:
            self._rejoin_for_holes = True
            log.warning("held_transactions_rejoining", transactions=stuck, held_s=round(bound, 1))
            self.request_rejoin()

    def held_transactions(self) -> set[str]:
        """The transactions holding outputs of records acknowledged past the offset their commit could reach."""
        app = cast(faust.App, self.app)
        if not app.in_transaction:
            return set()
        held = set()
        for tp, acked in self._acked.items():
            if not acked:
                continue
            end = self._commit_end(tp)
            if end is None or max(acked) >= end:
                try:
                    tid = transactional_id(app, tp.topic, tp.partition)
                except KeyError:  # not a topic of the assignor's groups: faust keeps no transaction for it
                    continue
                if tid is not None:
                    held.add(tid)
        return held

    async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
        done: bool = await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)
        log.debug(
            "offsets_committed", done=done, offsets={f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()}
        )
        return done

    def partition_progress(self) -> dict[TP, PartitionProgress]:
        """Per assigned partition an agent consumes (not a table's changelog, which the worker writes and never
        commits): committed offset, offset after the last record handed to an agent, log end."""
        out = {}
        changelogs = self.app.tables.changelog_topics
        for tp in self.assignment():
            if tp.topic in changelogs or not self.app.topics.acks_enabled_for(tp.topic):
                continue
            committed = self._committed_offset.get(tp)
            read = self._read_offset.get(tp)
            try:
                highwater = self.highwater(tp)
            except Exception:  # not fetched yet
                highwater = None
            out[tp] = PartitionProgress(
                committed=committed,
                consumed=None if read is None else read + 1,
                end=highwater if isinstance(highwater, int) and highwater >= 0 else None,
            )
        return out

    def request_rejoin(self) -> None:
        cast(BatchingConsumerThread, self._thread).request_rejoin()

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
        if self.membership_confirmed():
            await self.finish_batches_in_flight()
        elif revoked:  # dropped from the group: the partitions are another's already; their batches must not finish
            log.warning("partitions_lost", partitions=len(revoked), batches_in_flight=self._in_flight)
        try:
            await self.commit()
        except Exception as exc:  # a fenced producer: the partition moved already; its new owner redoes the work
            self.log.warning("commit before revocation failed: %r", exc)
        for tid in sorted(self.held_transactions()):  # their records are done again, so their outputs must go
            await abort_transaction(cast(faust.App, self.app), tid)
        await super().on_partitions_revoked(revoked)
        for tp in revoked:
            self.handled.pop(tp, None)
            self.handed_out.pop(tp, None)
            self.retrying.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        for tp in assigned:
            self.handled.pop(tp, None)  # a new assignment starts from the committed offset
            self.handed_out.pop(tp, None)
        self.assigned_at = time.monotonic()  # rejoined: whatever was fenced gets new producers now
        self._held_since.clear()  # a new assignment starts from the committed offsets: nothing is held
        self._rejoin_for_holes = False
        await super().on_partitions_assigned(assigned, generation_id)

    async def perform_seek(self) -> None:
        """faust's seek of every assigned partition to its committed offset, remembered per consumer generation:
        batches fetched before it are not handed out (``getmany``)."""
        generation = self.app.consumer_generation_id
        await super().perform_seek()
        self._seeked_generation = generation

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109 (faust API)
        """faust's ``Consumer.getmany``, with batch-agent topics handed over whole instead of yielded."""
        handlers: dict[str, BatchHandler] = cast(Any, self.app).batch_handlers  # a LeadpipeApp's (BatchingAppMixin)
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            # faust drops what was fetched while the flow is stopped and seeks back to the committed offsets; a
            # partition without one (a new group or partition) is left where it is, past the dropped records
            # (measured: 67 events never processed, a partition's first records fetched between recovery's resume
            # and its seek). Rewound too: never forward, so a partition the seek moved back stays there.
            try:
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
            if self.app.consumer_generation_id == generation_id:  # else a new assignment placed them afresh
                for tp, batch in records.items():
                    self._rewind(tp, batch[0].offset, "fetched while the flow was stopped")
            return
        seeked = self._seeked_generation == generation_id
        assigned_at = self.assigned_at
        if not seeked and assigned_at and time.monotonic() - assigned_at > float(self.app.conf.broker_request_timeout):
            # Recovery seeks right after each assignment; one that gave up must not stop the partitions for good.
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning("seek to the committed offsets failed: %r", exc)
            return
        changelogs = set() if seeked else self.app.tables.changelog_topics  # read by table recovery before the seek
        others = {}
        jobs: list[tuple[BatchHandler, TP, Sequence[Fetched]]] = []
        for tp, batch in records.items():
            handler = handlers.get(tp.topic)
            if (
                not seeked
                and tp.topic not in changelogs
                and (handler is not None or self.app.topics.acks_enabled_for(tp.topic))
            ):
                # Fetched before this assignment's seek to the committed offsets (faust resumes the partitions, then
                # awaits the seek): handled now, a stale batch above the committed offset would be committed while
                # faust knows no committed offset to find the hole below it (measured: 13 records skipped, one
                # event lost). The seek, or this rewind when there is no committed offset, delivers them again.
                self._rewind(tp, batch[0].offset, "fetched before the seek to the committed offsets")
                continue
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
                jobs.append((handler, tp, fresh))
        if jobs:
            await self._run_batches(jobs)
        if not others:
            return
        to_message = self._to_message
        for tp, record in self.scheduler.iterate(others):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                if self._read_offset.get(tp) == 0 and record.offset > 1 and self.app.topics.acks_enabled_for(tp.topic):
                    # faust records a gap in the offsets (a transaction marker of a transactionally written topic)
                    # only after a read offset that is truthy: the marker after a partition's first record (offset
                    # 0) stayed a hole below every later acknowledgement, so the committed offset stopped at 1 while
                    # the transactions carried the later records' outputs; after a restart those records were
                    # handled again (measured: 12 results written twice after a SIGKILL).
                    await self._add_gap(tp, 1, record.offset - 1)
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)

    def current(self, generation: int) -> bool:
        """Whether work fetched in consumer group ``generation`` may still be acknowledged: no rebalance began since
        (or one began and waits for this work, ``finish_batches_in_flight``).

        A rebalance stops the flow and commits before the partitions go (``on_partitions_revoked``); work that
        takes the commit lock after that commit must not send or acknowledge anything: faust forgets acknowledged
        offsets of revoked partitions, and the outputs would stay in an open transaction that commits later
        together with the same work done again."""
        return (self.flow_active or self._draining) and self.app.consumer_generation_id == generation

    def membership_confirmed(self) -> bool:
        """Whether the group confirmed this member (a heartbeat, or the assignment) within the lease.

        A member not heard from for its session timeout is dropped by the coordinator and its partitions go to
        others; a worker stalled that long learns it only from its next heartbeat, after it resumed. Until a
        heartbeat confirms it, it must assume it lost them."""
        thread = cast(BatchingConsumerThread, self._thread)
        confirmed = max(thread.membership_confirmed_at, self.assigned_at or 0.0)
        lease = float(self.app.conf.broker_session_timeout) * self.LEASE_SHARE
        return time.monotonic() - confirmed < lease

    def confirm_ownership(self, generation: int) -> None:
        """The guard of a sink batch fetched in ``generation`` (``pipeline.sinks.base.owning``): its effects outside
        Kafka wait while the membership is unconfirmed and are given up once a rebalance began."""
        if not self.current(generation):
            raise OwnershipLostError(f"a rebalance began since generation {generation}")
        if not self.membership_confirmed():
            raise SinkBackpressureError(self.LEASE_RETRY_S, "group membership unconfirmed (no recent heartbeat)")

    def fresh(self, generation: int) -> bool:
        """Whether work fetched in ``generation`` may start: the flow runs and no rebalance began since."""
        return self.flow_active and self.app.consumer_generation_id == generation

    @property
    def idle(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            self._idle.set()
        return self._idle

    def batch_started(self) -> None:
        """A stream agent handed out a batch (``take_batches``); a revocation waits for it."""
        self._in_flight += 1
        self.idle.clear()

    def batch_finished(self) -> None:
        self._in_flight -= 1
        if self._in_flight <= 0:
            self._in_flight = 0
            self.idle.set()

    async def finish_batches_in_flight(self) -> None:
        """Let the stream batches in flight finish and acknowledge their work before the partitions go.

        A sink batch whose partition was revoked under it was left to the partition's new owner, who wrote the
        same events while the old owner's HubSpot call was still in flight: the delivery ledger read HubSpot back
        before that call landed and upserted them again (measured: 7 events upserted twice by a rebalance during
        3 s HubSpot calls). Waiting is bounded by a share of the rebalance timeout, so this worker stays in the
        group; a batch still running after that is left to the new owner as before.
        """
        if self.idle.is_set():
            return
        self._draining = True
        bound = float(self.app.conf.broker_rebalance_timeout) * self.DRAIN_SHARE
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.idle.wait(), bound)
            log.info("rebalance_waited_for_batches", waited_s=round(time.monotonic() - started, 3))
        except TimeoutError:
            log.warning("rebalance_left_batches_in_flight", batches=self._in_flight, waited_s=bound)
        finally:
            self._draining = False

    def _rewind(self, tp: TP, offset: int, why: str = "fetched while paused") -> None:
        """Move the fetch position of ``tp`` back to ``offset``; never forward (a seek to committed wins)."""
        consumer = self._thread._ensure_consumer()
        assignment = consumer._subscription.subscription.assignment if consumer._subscription.subscription else None
        state = assignment.state_value(tp) if assignment is not None else None
        if state is None or not state.has_valid_position or state.position <= offset:
            return
        consumer.seek(tp, offset)
        self._read_offset[tp] = offset
        self.log.info("rewound %s to offset %s: %s", tp, offset, why)

    async def _run_batches(self, jobs: Sequence[tuple[BatchHandler, TP, Sequence[Fetched]]]) -> None:
        """The batches of one fetch (one per partition), side by side under the commit lock taken once; shielded, so
        a stop or rebalance waits for them instead of cutting them.

        faust's stop and commit take the same lock, so they wait for the batches: no per-record tracking needed. Side
        by side because each batch's time is mostly waits (the key store's preload, the spam engine, its delivery
        with acks=all, ~10-25 ms whatever its size): handled one after another, six partitions made a ~150 ms cycle
        that every lead waited in (issue 20, speed to lead). Each partition has its own transaction, so their sends
        do not meet; what a handler does without awaiting (the chain, the table updates) still runs one at a time.
        """

        generation = self.app.consumer_generation_id

        async def run() -> list[BaseException | None]:
            async with self.batch_lock:
                if not self.current(generation):
                    return [None] * len(jobs)  # a rebalance began while waiting for the lock: the owners redo them
                outcomes = await asyncio.gather(
                    *(handler(BatchContext(tp, self), records) for handler, tp, records in jobs), return_exceptions=True
                )
                return [o if isinstance(o, BaseException) else None for o in outcomes]

        for _, tp, records in jobs:  # before the handlers: a cancelled wait must not reopen them
            self.handled.setdefault(tp, HandledOffsets()).add(records[0].offset, records[-1].offset + 1)
        outcomes = await asyncio.shield(run())
        pause = 0.0
        failure: BaseException | None = None
        for (_, tp, records), outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, RetryBatch):
                # Not handled: the same records come again, from the first (the fetcher's buffer beyond them is
                # dropped by the seek), once the pause is over. The pause holds this fetch loop, not the commit lock.
                self.handled[tp].remove(records[0].offset, records[-1].offset + 1)
                self._rewind(tp, records[0].offset)
                self.retrying.setdefault(tp, (outcome.reason, time.monotonic()))
                pause = max(pause, outcome.retry_after)
                continue
            if outcome is not None:
                failure = failure or outcome
                continue
            self.retrying.pop(tp, None)
            self._read_offset[tp] = records[-1].offset
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        if failure is not None:
            raise failure
        if pause:
            await asyncio.sleep(pause)


def committable_end(done: Iterable[int], committed: int | None) -> int | None:
    """The offset after the first run of consecutive offsets in ``done`` (None: nothing to commit).

    ``committed`` is the partition's committed offset (the next to read): a run that starts more than one offset
    above it leaves something below unfinished, so nothing is committed (faust's rule; one offset is tolerated,
    the transaction marker a committed offset can point at). Offsets below ``committed`` are committed already.
    """
    offsets = sorted({offset for offset in done if committed is None or offset >= committed})
    if not offsets or (committed and offsets[0] - committed > 1):
        return None
    end = offsets[0] + 1
    for offset in offsets[1:]:
        if offset != end:
            break
        end += 1
    return end


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """Where one assigned partition stands (offsets; None: not known yet)."""

    committed: int | None
    consumed: int | None
    end: int | None


class FenceTolerantTransactionManager(TransactionManager):
    """faust's transaction manager, but a fenced producer makes the worker rejoin its group instead of crashing it.

    faust commits every partition's transaction in one call and turns ``ProducerFenced`` into ``app.crash``: the
    worker exits, and everything stops until it is restarted (measured: two workers, one SIGKILLed; the survivor
    exited on ``ProducerFenced`` some 20 s later, during the rebalances). A fence means another producer took the
    transactional id: this worker's view of its partitions is stale. The transaction is aborted by the broker; the
    fenced producer is dropped; the worker rejoins, and the partitions it is given again start from their committed
    offsets with new producers. Each transaction is committed on its own, so one fence holds up no other, and all
    of them at once: each commit is a few broker round trips (the offsets into the transaction, the end of the
    transaction), and one after another under the batch lock they stopped every partition's processing for 90-120 ms
    per commit with six partitions at 100 events/s (measured; README's speed to lead).
    """

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        group_id = self.app.conf.id
        by_transaction: dict[str, dict[TP, int]] = defaultdict(dict)
        for tp, offset in offsets.items():
            group = TopicPartitionGroup(
                topic=tp.topic, partition=tp.partition, group=self.app.assignor.group_for_topic(tp.topic)
            )
            by_transaction[self.transactional_id_format.format(group_id=group_id, tpg=group)][tp] = offset
        outcomes = await asyncio.gather(
            *(
                self.producer.commit_transactions(
                    {tid: tid_offsets}, group_id, start_new_transaction=start_new_transaction
                )
                for tid, tid_offsets in by_transaction.items()
            ),
            return_exceptions=True,
        )
        committed = True
        failure: BaseException | None = None
        for tid, outcome in zip(by_transaction, outcomes, strict=True):
            if isinstance(outcome, ProducerFenced):
                committed = False
                await producer_fenced(cast(faust.App, self.app), tid)
            elif isinstance(outcome, BaseException) and failure is None:
                failure = outcome
        if failure is not None:
            raise failure
        return committed


def is_fenced(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says another producer took this one's transactional id."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ProducerFenced):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def producer_fenced(app: faust.App, tid: str | None) -> None:
    """Drop the fenced producer of ``tid`` and ask for a rebalance (see ``FenceTolerantTransactionManager``)."""
    producer: Any = app.producer
    fenced = producer._transaction_producers.pop(tid, None) if tid else None
    log.warning("producer_fenced_rejoining", transactional_id=tid)
    if fenced is not None:
        with contextlib.suppress(Exception):
            await fenced.stop()
        retrieve_failures(fenced, tid)
    consumer = cast(BatchingConsumer, app.consumer)
    consumer.fenced()
    consumer.request_rejoin()


def retrieve_failures(producer: Any, tid: str | None) -> None:
    """Retrieve the exceptions a dropped (fenced) aiokafka producer leaves in its futures.

    aiokafka fails the transaction's waiter and every undelivered batch (its result and its drain waiter) with the
    fence; nobody waits on those any more, and asyncio would log each as "Future exception was never retrieved" at
    ERROR, a false alarm (the worker recovers by rejoining). Each is retrieved once it fails; one that failed with
    anything but the fence is logged as a warning (the type only: messages may carry data).
    """
    accumulator = producer._message_accumulator
    batches = [*(batch for queue in accumulator._batches.values() for batch in queue), *accumulator._pending_batches]
    futures: list[asyncio.Future[Any]] = [future for batch in batches for future in (batch.future, batch._drain_waiter)]
    if producer._txn_manager is not None and producer._txn_manager._transaction_waiter is not None:
        futures.append(producer._txn_manager._transaction_waiter)

    def retrieve(future: asyncio.Future[Any]) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is not None and not is_fenced(exc):
            log.warning("dropped_producer_future_failed", transactional_id=tid, error=type(exc).__name__)

    for future in futures:
        future.add_done_callback(retrieve)
    log.info("fenced_producer_dropped", transactional_id=tid, futures=len(futures))


class BatchingTransport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer
    TransactionManager = FenceTolerantTransactionManager


class BatchingAppMixin:
    """For a ``faust.App`` subclass (``pipeline.agents.app.LeadpipeApp``): its consumer is the ``BatchingConsumer``.

    The app must have ``batch_handlers`` (topic name -> handler), which the consumer reads.
    """

    conf: Any

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)


# ---- sink batches -----------------------------------------------------------------------------------------------


async def take_batches(stream: Any, max_: int, within: float, quiet: float) -> AsyncIterator[list[Any]]:
    """faust's ``Stream.take_events`` (up to ``max_`` events, or what came within ``within`` seconds), except that
    nothing is acknowledged here: the agent acknowledges a batch (``stream.ack``) once its outputs are committed.

    The batch closes ``within`` seconds after its first event came, when full, or once no event came for ``quiet``
    seconds (the burst of a commit is in), so under load a batch starts as soon as the last one is done.

    ``take_events`` acks every event of a batch in a ``finally`` when the loop asks for the next batch, and also when
    the generator is closed: an agent cancelled at shutdown in the middle of a batch (a sink pausing on HubSpot
    503s, say) had that batch acknowledged and committed without its work (measured: 4 and 6 contacts of 200 never
    reached HubSpot, no result, no dead letter). Unacknowledged events are delivered again after a restart or a
    rebalance (faust commits acknowledged offsets only up to the first gap).

    Events fetched before a rebalance that are still buffered when it ends (held behind the batch in flight) are
    dropped, not handed out (``current_batch``): the rebalance sought their partitions back to the committed
    offsets, so they come again (or go to the partition's new owner). Handed out with the events delivered again,
    they made the whole partition's share of the batch stale for the committer, which left it unacknowledged;
    nothing delivered them again, and the partition's commits stopped at that hole (measured: 26 of 120 events
    without sink results after a rebalance during a slow HubSpot batch). Records delivered twice within one
    assignment are handed out once (``current_batch``).
    """
    buffer: list[Any] = []
    full = asyncio.Event()
    arrived = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    first_at = 0.0

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming, first_at
        if consuming is not None:
            try:
                await consuming
            finally:
                consuming = None
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_batches found no current event")
        if not buffer:
            first_at = time.monotonic()
        arrived.set()
        buffer.append(event)
        if len(buffer) >= max_:
            full.set()
            consumed.clear()
            await stream.wait(consumed)
        return value

    consumer = cast(BatchingConsumer, stream.app.consumer)
    saved_acks = stream.enable_acks
    stream.enable_acks = False
    stream.add_processor(add_to_buffer)
    stream._enable_passive(cast(Any, aiter(stream.channel)))
    try:
        while not stream.should_stop:
            if not buffer:
                arrived.clear()
                await stream.wait_for_stopped(arrived, timeout=within)
                if not buffer:
                    continue
            # The linger counts from the batch's first event, not from the end of the last batch, and ends early once
            # the input went quiet: a transactional input (read_committed) arrives in bursts, one per commit, so
            # waiting on after a burst only made every lead of it wait the whole linger.
            while not full.is_set() and not stream.should_stop:
                left = within - (time.monotonic() - first_at)
                if left <= 0:
                    break
                arrived.clear()
                await stream.wait_for_stopped(arrived, timeout=min(left, quiet))
                if not arrived.is_set():
                    break
            if not buffer:
                continue
            batch = current_batch(consumer, buffer)
            buffer.clear()
            if not batch:
                full.clear()
                consumed.set()
                continue
            consuming = asyncio.get_running_loop().create_future()
            consumer.batch_started()
            try:
                yield batch
            finally:
                consumer.batch_finished()
                notify(consuming)
                full.clear()
                consumed.set()
    finally:
        stream.enable_acks = saved_acks
        with contextlib.suppress(ValueError):
            stream._processors.remove(add_to_buffer)


def current_batch(consumer: BatchingConsumer, events: Sequence[Any]) -> list[Any]:
    """The events of a stream batch to hand out: fetched since the last rebalance, and not handed out before within
    this assignment (``BatchingConsumer.handed_out``: table recovery's seek to the committed offsets and the fetch
    loop's own seek while the flow is stopped each deliver the same records again; measured: five events with
    two sink results each, from two batches of one worker after one rebalance)."""
    batch = []
    stale = again = 0
    for event in events:
        message = event.message
        if not consumer.fresh(message.generation_id):
            stale += 1
            continue
        handed = consumer.handed_out.setdefault(message.tp, set())
        if message.offset in handed:
            again += 1
            continue
        committed = consumer._committed_offset.get(message.tp)
        if committed is not None and len(handed) > 1000:
            handed.difference_update([offset for offset in handed if offset < committed])
        handed.add(message.offset)
        batch.append(event)
    if stale or again:
        log.info("stream_events_not_handed_out", fetched_before_rebalance=stale, delivered_again=again)
    return batch


# ---- tables ---------------------------------------------------------------------------------------------------


class ExternalGlobalTable(faust.GlobalTable):
    """A global table over a compacted topic that another process writes (not ``<app>-<name>-changelog``).

    faust's assignor names a global table's changelog by ``_changelog_topic_name()`` (the default name) rather than
    by the topic the table was given; this override makes both agree.
    """

    def _changelog_topic_name(self) -> str:
        name: str = self.changelog_topic.get_topic_name()
        return name


def table_dict(table: Any) -> MutableMapping[bytes, bytes]:
    """The dict inside a memory store: its ``get`` answers misses without raising and catching a KeyError."""
    store = table.data
    inner = getattr(store, "data", None)
    return inner if isinstance(inner, dict) else store


# ---- the transactional producers --------------------------------------------------------------------------------


def transactional_id(app: faust.App, source_topic: str, partition: int) -> str | None:
    """The id of the transaction faust keeps for a partition of an input topic (None outside transactions)."""
    if not app.in_transaction:
        return None
    group = TopicPartitionGroup(
        topic=source_topic, partition=partition, group=app.assignor.group_for_topic(source_topic)
    )
    return TransactionManager.transactional_id_format.format(group_id=app.conf.id, tpg=group)


async def abort_transaction(app: faust.App, tid: str) -> None:
    """Abort the open transaction ``tid`` (its outputs are never seen) and begin the next one."""
    producer: Any = app.producer
    aio = producer._transaction_producers.get(tid)
    if aio is None:
        return
    try:
        async with producer._trn_locks[tid]:
            await aio.abort_transaction()
            await aio.begin_transaction()
    except Exception as exc:  # dropped instead: the next producer of ``tid`` aborts it when it registers
        log.warning("transaction_abort_failed", transactional_id=tid, error=type(exc).__name__)
        await producer_fenced(app, tid)
        return
    log.info("transaction_aborted", transactional_id=tid)


def transaction_producer(app: faust.App, transactional_id: str | None) -> tuple[Any, AbstractAsyncContextManager[Any]]:
    """The aiokafka producer of a transaction (faust's plain one for None) and the lock its sends take.

    Raises ``LookupError`` when faust has no producer for that transaction (the partition is no longer assigned).
    """
    producer: Any = app.producer
    if transactional_id is None:
        return producer._ensure_producer(), contextlib.nullcontext()
    txn_producer = producer._transaction_producers.get(transactional_id)
    if txn_producer is None:
        raise LookupError(f"no transactional producer for {transactional_id}")
    return txn_producer, producer._trn_locks[transactional_id]


async def partition_for(producer: Any, topic: str, key: bytes | None, value: bytes | None) -> int:
    """The partition aiokafka's partitioner gives a record (after the topic's metadata is known)."""
    await producer.client._wait_on_metadata(topic)
    partition: int = producer._partition(topic, None, None, None, key, value)
    return partition
