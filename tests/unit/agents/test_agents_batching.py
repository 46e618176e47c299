"""The batch consumer's guard against handling a record twice within one assignment, and the offset a commit takes
(pure parts, and faust's bookkeeping on an unstarted consumer)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, cast

import pytest
from faust.types import TP

from pipeline.agents.app import LeadpipeApp
from pipeline.agents.batching import BatchHandler, HandledOffsets, RetryBatch, unhandled
from pipeline.agents.faust_adapter import (
    BatchingConsumer,
    BatchingConsumerThread,
    committable_end,
    current_batch,
    take_batches,
)
from pipeline.sinks.base import OwnershipLostError, SinkBackpressureError


@dataclass(frozen=True)
class Fetched:
    offset: int


def batch(first: int, last: int) -> list[Fetched]:
    return [Fetched(o) for o in range(first, last + 1)]


def handled(*spans: tuple[int, int]) -> HandledOffsets:
    offsets = HandledOffsets()
    for first, last in spans:
        offsets.add(first, last + 1)
    return offsets


def test_nothing_handled_yet_keeps_every_record() -> None:
    records = batch(224, 314)
    assert unhandled(records, None) is records
    assert unhandled(records, HandledOffsets()) is records


def test_a_batch_after_the_handled_records_is_kept_whole() -> None:
    records = batch(315, 664)
    assert unhandled(records, handled((224, 314))) is records


def test_a_batch_delivered_again_after_a_seek_back_is_skipped() -> None:
    """Recovery seeks to the committed offset (224) after 224..314 was handled: the same records come back."""
    assert unhandled(batch(224, 314), handled((224, 314))) == []


def test_a_batch_straddling_the_handled_records_keeps_only_the_new_records() -> None:
    kept = unhandled(batch(224, 664), handled((224, 314)))
    assert [r.offset for r in kept] == list(range(315, 665))


def test_records_below_a_stale_batch_were_never_handled_and_are_kept() -> None:
    """The fault suite's lost event: a batch fetched before the seek (offsets 8..12) was handled, then the seek
    delivered 0..12: a mark at 13 skipped 0..7, never handled; only 8..12 are the ones handled already."""
    kept = unhandled(batch(0, 12), handled((8, 12)))
    assert [r.offset for r in kept] == list(range(8))


def test_consecutive_and_overlapping_batches_merge_into_one_range() -> None:
    offsets = handled((8, 12), (0, 7), (13, 20), (15, 30))
    assert offsets.ranges == [(0, 31)]
    offsets.add(40, 45)
    assert offsets.ranges == [(0, 31), (40, 45)]
    assert 30 in offsets and 31 not in offsets and 44 in offsets


def test_a_retried_batch_is_no_longer_handled() -> None:
    offsets = handled((0, 20))
    offsets.remove(10, 21)  # RetryBatch: the records 10..20 come again
    assert offsets.ranges == [(0, 10)]
    offsets.add(10, 16)
    offsets.remove(12, 14)
    assert offsets.ranges == [(0, 12), (14, 16)]
    assert [r.offset for r in unhandled(batch(8, 17), offsets)] == [12, 13, 16, 17]


def test_an_empty_batch_stays_empty() -> None:
    assert unhandled([], handled((0, 10))) == []


# ---- the offset a commit may take ------------------------------------------------------------------------------


def test_the_commit_ends_after_the_first_run_of_consecutive_offsets() -> None:
    assert committable_end([7, 8, 9, 11], committed=7) == 10
    assert committable_end([], committed=7) is None


def test_a_duplicate_offset_does_not_end_the_run() -> None:
    # faust's own gap bookkeeping hands the first record after a gap over twice (gap and acknowledgement)
    assert committable_end([5, 6, 6, 7, 8, 9, 10], committed=5) == 11


def test_one_offset_above_the_committed_one_is_a_marker_and_more_is_unfinished_work() -> None:
    assert committable_end([6, 7], committed=5) == 8
    assert committable_end([7, 8], committed=5) is None
    assert committable_end([3, 4], committed=None) == 5


def test_offsets_below_the_committed_one_are_done_already() -> None:
    assert committable_end([2, 13, 14], committed=13) == 15


@pytest.fixture
def consumer() -> BatchingConsumer:
    """An unstarted app's consumer (no broker is contacted): faust's own ack and gap bookkeeping."""
    app = LeadpipeApp("offsets-probe", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    return app.batching_consumer


async def test_a_record_after_a_transaction_marker_is_committed_with_the_rest_of_its_batch(
    consumer: BatchingConsumer,
) -> None:
    """Measured in the fault suite: committed 5, a transaction marker at 5, records 6-10 handled as one batch and
    acknowledged: faust committed 7 (its gap [5, 6] plus the acknowledged 6 made 6 twice) while the transaction
    held the results of 6-10; a SIGKILL then had 7-10 handled and their results published again."""
    tp = TP("t.contacts.accepted", 1)
    consumer._committed_offset[tp] = 5
    await consumer._add_gap(tp, 5, 6)  # what faust's fetch loop records for record 6 read after offset 4
    for offset in range(6, 11):
        consumer._acked[tp].append(offset)
        consumer._acked_index[tp].add(offset)
    assert consumer._new_offset(tp) == 11
    assert consumer._acked[tp] == [] and not consumer._acked_index[tp] and not consumer._gap[tp]
    consumer._committed_offset[tp] = 11
    assert consumer._new_offset(tp) is None  # nothing left over to commit again


async def test_a_gap_above_the_acknowledged_records_waits_for_its_record(consumer: BatchingConsumer) -> None:
    tp = TP("t.contacts.accepted", 0)
    consumer._committed_offset[tp] = 3
    consumer._acked[tp].extend([3, 4])
    await consumer._add_gap(tp, 6, 7)  # record 7 read after 5 (a marker at 6), not acknowledged yet
    assert consumer._new_offset(tp) == 5
    assert list(consumer._gap[tp])  # kept for when record 7 is acknowledged


# ---- a revocation and the stream batches in flight -------------------------------------------------------------


async def test_a_revocation_waits_for_the_stream_batch_in_flight_which_may_still_acknowledge(
    consumer: BatchingConsumer,
) -> None:
    generation = consumer.app.consumer_generation_id
    consumer.stop_flow()  # as on_partitions_revoked does first
    assert not consumer.current(generation) and not consumer.fresh(generation)
    consumer.batch_started()
    seen: list[tuple[bool, bool]] = []

    async def finish() -> None:
        await asyncio.sleep(0.05)
        seen.append((consumer.current(generation), consumer.fresh(generation)))
        consumer.batch_finished()

    task = asyncio.create_task(finish())
    await consumer.finish_batches_in_flight()
    await task
    assert seen == [(True, False)]  # its results and acks go into the commit before revocation; nothing new starts
    assert not consumer.current(generation)  # after the wait, late work is left to the partition's next owner


async def test_a_revocation_waits_for_a_batch_in_flight_only_so_long(
    consumer: BatchingConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer, "DRAIN_SHARE", 0.1 / float(consumer.app.conf.broker_rebalance_timeout))
    consumer.stop_flow()
    consumer.batch_started()
    started = asyncio.get_running_loop().time()
    await consumer.finish_batches_in_flight()
    assert 0.09 < asyncio.get_running_loop().time() - started < 2.0
    assert not consumer.current(consumer.app.consumer_generation_id)


async def test_no_batch_in_flight_no_wait(consumer: BatchingConsumer) -> None:
    consumer.batch_started()
    consumer.batch_finished()
    await asyncio.wait_for(consumer.finish_batches_in_flight(), 0.05)


@dataclass(frozen=True)
class _Message:
    tp: TP
    offset: int
    generation_id: int


@dataclass(frozen=True)
class _Event:
    message: _Message


def test_a_stream_batch_hands_out_each_record_once_per_assignment_and_nothing_from_before_a_rebalance(
    consumer: BatchingConsumer,
) -> None:
    tp, other = TP("t.contacts.accepted", 2), TP("t.contacts.accepted", 3)
    now = consumer.app.consumer_generation_id

    def events(tp: TP, offsets: range, generation: int = now) -> list[_Event]:
        return [_Event(_Message(tp, o, generation)) for o in offsets]

    first = current_batch(consumer, events(tp, range(40, 45)) + events(other, range(7, 9)))
    assert [e.message.offset for e in first] == [40, 41, 42, 43, 44, 7, 8]
    # the same records again (a seek back to the committed offset), then new ones; and one from before a rebalance
    again = current_batch(consumer, events(tp, range(42, 47)) + events(other, range(9, 10), generation=now - 1))
    assert [e.message.offset for e in again] == [45, 46]
    # records below those handed out that were never handed out (fetched after others, around a seek) still go
    consumer.handed_out[tp] = {50, 51}
    assert [e.message.offset for e in current_batch(consumer, events(tp, range(47, 52)))] == [47, 48, 49]
    consumer.handed_out.pop(tp)  # a new assignment of the partition: everything from the committed offset again
    assert len(current_batch(consumer, events(tp, range(40, 42)))) == 2


# ---- transactions that hold outputs past their commit, and a stalled worker's hold on its partitions -----------


@pytest.fixture
def eos_consumer() -> BatchingConsumer:
    """An unstarted exactly-once app's consumer: its commits are transactions."""
    app = LeadpipeApp(
        "held-probe",
        broker="kafka://127.0.0.1:1",
        store="memory://",
        autodiscover=False,
        processing_guarantee="exactly_once",
    )
    app.in_worker = True  # as ``leadpipe worker`` runs it: faust uses transactions only in a worker
    app.assignor._topic_groups["t.contacts.accepted"] = 0  # what the assignor learns from the agents' topics
    return app.batching_consumer


async def test_a_transaction_with_outputs_past_a_hole_is_held_until_the_hole_is_filled(
    eos_consumer: BatchingConsumer,
) -> None:
    """Records 8 and 9 are done (their outputs are in the partition's transaction) but 7 is not: committing now
    would publish 8's and 9's outputs with offset 7, and after a rebalance they are done again."""
    consumer = eos_consumer
    tp = TP("t.contacts.accepted", 4)
    consumer._committed_offset[tp] = 5
    consumer._acked[tp].extend([5, 6, 8, 9])  # what ``ack_offsets`` records
    assert len(consumer.held_transactions()) == 1
    assert consumer._filter_committable_offsets([tp]) == {}
    assert sorted(consumer._acked[tp]) == [5, 6, 8, 9]  # nothing forgotten while held
    consumer._acked[tp].append(7)
    assert consumer.held_transactions() == set()
    assert consumer._filter_committable_offsets([tp]) == {tp: 10}


async def test_an_at_least_once_consumer_holds_nothing(consumer: BatchingConsumer) -> None:
    tp = TP("t.contacts.accepted", 4)
    consumer._committed_offset[tp] = 5
    consumer._acked[tp].extend([5, 8])
    assert consumer.held_transactions() == set()


def test_membership_is_confirmed_by_the_assignment_or_a_heartbeat_within_the_lease(
    consumer: BatchingConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = float(consumer.app.conf.broker_session_timeout) * consumer.LEASE_SHARE
    now = time.monotonic()
    assert not consumer.membership_confirmed()  # never confirmed
    consumer.assigned_at = now
    assert consumer.membership_confirmed()
    consumer.assigned_at = now - lease - 1  # stalled past the lease: another worker may own the partitions now
    assert not consumer.membership_confirmed()
    thread = cast(BatchingConsumerThread, consumer._thread)
    thread.membership_confirmed_at = now  # a heartbeat got through: still a member
    assert consumer.membership_confirmed()


def test_a_sink_batch_waits_while_unconfirmed_and_is_given_up_after_a_rebalance(consumer: BatchingConsumer) -> None:
    generation = consumer.app.consumer_generation_id
    consumer.resume_flow()
    consumer.assigned_at = time.monotonic() - 3600
    with pytest.raises(SinkBackpressureError):
        consumer.confirm_ownership(generation)
    consumer.assigned_at = time.monotonic()
    consumer.confirm_ownership(generation)  # confirmed: the write goes ahead
    with pytest.raises(OwnershipLostError):
        consumer.confirm_ownership(generation - 1)  # fetched before a rebalance
    consumer.stop_flow()
    with pytest.raises(OwnershipLostError):
        consumer.confirm_ownership(generation)  # a rebalance began


def test_a_transaction_held_too_long_makes_the_worker_rejoin_once(
    eos_consumer: BatchingConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The missing record will not come again within this assignment: a rebalance aborts the held transaction and
    starts the partition again from its committed offset."""
    consumer = eos_consumer
    rejoins: list[bool] = []
    monkeypatch.setattr(consumer, "request_rejoin", lambda: rejoins.append(True))
    monkeypatch.setattr(consumer, "HOLD_MIN_S", 0.05)
    monkeypatch.setattr(consumer, "HOLD_MAX_COMMITS", 0)
    tp = TP("t.contacts.accepted", 2)
    consumer._committed_offset[tp] = 10
    consumer._acked[tp].extend([10, 12])
    assert consumer._filter_committable_offsets([tp]) == {}
    assert rejoins == []  # held, not for long yet
    time.sleep(0.1)
    consumer._filter_committable_offsets([tp])
    consumer._filter_committable_offsets([tp])
    assert rejoins == [True]  # once, until the next assignment


# ---- batches fetched before the assignment's seek to the committed offsets ------------------------------------


@dataclass(frozen=True)
class _Record:
    offset: int
    partition: int = 0
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


async def test_no_batch_is_handed_out_before_the_assignments_seek_and_records_below_a_stale_batch_still_are(
    consumer: BatchingConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault suite's lost event (rebalance during a sink batch): after an assignment faust resumes the
    partitions and then awaits the seek to the committed offsets; a batch fetched in between was handled while
    faust knew no committed offset, committed above a hole, and the records below it were skipped as handled."""
    tp = TP("t.contacts.normalized", 2)
    seen: list[list[int]] = []
    rewound: list[tuple[int, str]] = []

    async def handler(context: object, records: list[_Record]) -> None:
        seen.append([r.offset for r in records])

    app = consumer.app
    cast(LeadpipeApp, app).batch_handlers[tp.topic] = cast(BatchHandler, handler)
    delivered: list[dict[TP, list[_Record]]] = []

    async def wait_next_records(timeout: float) -> tuple[dict[TP, list[_Record]], None]:
        return delivered.pop(0), None

    monkeypatch.setattr(consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "assignment", lambda: {tp})
    monkeypatch.setattr(consumer, "_rewind", lambda tp, offset, why="": rewound.append((offset, why)))
    monkeypatch.setattr(consumer, "highwater", lambda tp: 100)
    consumer.resume_flow()

    async def fetch(first: int, last: int) -> None:
        delivered.append({tp: [_Record(o) for o in range(first, last + 1)]})
        async for _ in consumer.getmany(0.01):
            pass

    await fetch(8, 12)  # stale: fetched before the seek of this generation
    assert seen == [] and rewound == [(8, "fetched before the seek to the committed offsets")]
    consumer._seeked_generation = app.consumer_generation_id  # what perform_seek records
    await fetch(8, 12)  # say the seek left the position there (no committed offset): now handled
    await fetch(0, 14)  # a later seek back to the committed offset 0: 0..7 and 13..14 were never handled
    assert seen == [[8, 9, 10, 11, 12], [0, 1, 2, 3, 4, 5, 6, 7, 13, 14]]


async def test_a_seek_that_never_came_is_done_by_the_fetch_loop(
    consumer: BatchingConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery seeks after each assignment; if it gave up, the partitions must not stay stopped for good."""
    tp = TP("t.contacts.normalized", 0)
    seeks: list[int] = []

    async def perform_seek() -> None:
        seeks.append(consumer.app.consumer_generation_id)

    async def wait_next_records(timeout: float) -> tuple[dict[TP, list[_Record]], None]:
        return {tp: [_Record(5)]}, None

    cast(LeadpipeApp, consumer.app).batch_handlers[tp.topic] = cast(BatchHandler, lambda context, records: None)
    monkeypatch.setattr(consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "perform_seek", perform_seek)
    monkeypatch.setattr(consumer, "_rewind", lambda tp, offset, why="": None)
    consumer.resume_flow()
    consumer.assigned_at = time.monotonic()
    async for _ in consumer.getmany(0.01):
        pass
    assert seeks == []  # just assigned: recovery's own seek is on its way
    consumer.assigned_at = time.monotonic() - float(consumer.app.conf.broker_request_timeout) - 1
    async for _ in consumer.getmany(0.01):
        pass
    assert seeks == [consumer.app.consumer_generation_id]


async def test_table_recovery_reads_its_changelogs_before_the_seek(
    consumer: BatchingConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seek to the committed offsets comes after table recovery, which reads the changelogs through this loop
    (measured when the gate held them back too: recovery took 33 s, rewinding the changelog 1,557 times)."""
    changelog = TP("t.contacts.rate-windows", 0)
    rewound: list[int] = []

    async def wait_next_records(timeout: float) -> tuple[dict[TP, list[_Record]], None]:
        return {changelog: [_Record(0), _Record(1)]}, None

    monkeypatch.setattr(consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "_rewind", lambda tp, offset, why="": rewound.append(offset))
    monkeypatch.setattr(consumer, "_to_message", lambda tp, record: record)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 2)
    monkeypatch.setattr(consumer.app.topics, "acks_enabled_for", lambda topic: True)
    consumer.app.tables._changelogs[changelog.topic] = cast(Any, object())
    consumer.resume_flow()
    consumer.assigned_at = time.monotonic()
    yielded = [message async for _, message in consumer.getmany(0.01)]
    assert rewound == [] and [m.offset for m in yielded] == [0, 1]


async def test_records_fetched_while_the_flow_is_stopped_are_read_again_without_a_committed_offset(
    consumer: BatchingConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust drops them and seeks back to the committed offsets, which leaves a partition without one (a new group,
    a new partition) past them: measured, a partition's first 67 records fetched between recovery's resume of the
    partitions and its seek were never processed. They are rewound to (the seek still wins where it moved back)."""
    tp = TP("t.contacts.normalized", 4)
    seeks: list[int] = []
    rewound: list[tuple[TP, int]] = []

    async def perform_seek() -> None:
        seeks.append(consumer.app.consumer_generation_id)

    async def wait_next_records(timeout: float) -> tuple[dict[TP, list[_Record]], None]:
        return {tp: [_Record(0), _Record(1)]}, None

    monkeypatch.setattr(consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "perform_seek", perform_seek)
    monkeypatch.setattr(consumer, "_rewind", lambda tp, offset, why="": rewound.append((tp, offset)))
    consumer.stop_flow()
    assert [m async for m in consumer.getmany(0.01)] == []
    assert seeks == [consumer.app.consumer_generation_id] and rewound == [(tp, 0)]


# ---- the batches of one fetch, side by side -------------------------------------------------------------------


async def test_the_batches_of_one_fetch_run_side_by_side_and_a_retried_one_does_not_hold_the_others(
    consumer: BatchingConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Speed to lead: each partition's batch is mostly waits (key store, delivery with acks=all); one after another,
    six partitions made a ~150 ms cycle every lead waited in. Here partition 0's batch can only end once partition
    1's has started: one after another, it never would."""
    first, second, third = (
        TP("t.contacts.normalized", 0),
        TP("t.contacts.normalized", 1),
        TP("t.contacts.normalized", 2),
    )
    started = asyncio.Event()
    done: list[int] = []
    rewound: list[tuple[TP, int]] = []

    async def handler(context: Any, records: list[_Record]) -> None:
        tp = context.tp
        if tp == first:
            await started.wait()
        elif tp == second:
            started.set()
        else:
            raise RetryBatch(0.01, "key store: OperationalError")
        done.append(tp.partition)

    cast(LeadpipeApp, consumer.app).batch_handlers[first.topic] = cast(BatchHandler, handler)

    async def wait_next_records(timeout: float) -> tuple[dict[TP, list[_Record]], None]:
        return {first: [_Record(3, 0)], second: [_Record(7, 1)], third: [_Record(9, 2)]}, None

    monkeypatch.setattr(consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "assignment", lambda: {first, second, third})
    monkeypatch.setattr(consumer, "_rewind", lambda tp, offset, why="": rewound.append((tp, offset)))
    monkeypatch.setattr(consumer, "highwater", lambda tp: 100)
    consumer.resume_flow()
    consumer._seeked_generation = consumer.app.consumer_generation_id

    async def fetch() -> None:
        async for _ in consumer.getmany(0.01):
            pass

    await asyncio.wait_for(fetch(), 2.0)
    assert sorted(done) == [0, 1]
    assert consumer._read_offset[first] == 3 and consumer._read_offset[second] == 7
    assert rewound == [(third, 9)] and third in consumer.retrying  # done again from its first record
    assert 9 not in consumer.handled[third] and 3 in consumer.handled[first]


# ---- a sink batch's linger --------------------------------------------------------------------------------------


class _NoEvents:
    def __aiter__(self) -> _NoEvents:
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


class _Stream:
    """What ``take_batches`` uses of a faust stream; ``arrive`` plays the stream's passive processing of one event."""

    def __init__(self, consumer: BatchingConsumer) -> None:
        self.app = consumer.app
        self.enable_acks = True
        self.should_stop = False
        self.current_event: Any = None
        self.channel = _NoEvents()
        self._processors: list[Any] = []

    def add_processor(self, processor: Any) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: Any) -> None:
        pass

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.should_stop

    async def arrive(self, offset: int) -> None:
        generation = self.app.consumer_generation_id
        self.current_event = _Event(_Message(TP("t.contacts.accepted", 0), offset, generation))
        await self._processors[0](offset)


async def test_a_sink_batch_closes_once_its_burst_is_in_and_a_trickle_at_the_linger_from_its_first_event(
    consumer: BatchingConsumer,
) -> None:
    """The sink's input is transactional: it comes in bursts, one per commit of the processing worker. Lingering
    on after a burst made every lead of it wait the whole linger (``LEADPIPE_BATCH_TIMEOUT_S``)."""
    consumer.resume_flow()
    stream = _Stream(consumer)
    batches = take_batches(stream, 1000, within=1.0, quiet=0.2)  # wide: a loaded machine's late wake-up is no quiet
    loop = asyncio.get_running_loop()

    async def burst() -> None:
        await asyncio.sleep(0.05)
        for offset in range(3):
            await stream.arrive(offset)

    task = asyncio.create_task(burst())
    begun = loop.time()
    first = await asyncio.wait_for(anext(batches), 2.0)
    waited = loop.time() - begun - 0.05
    await task
    assert [e.message.offset for e in first] == [0, 1, 2]
    assert waited < 0.5  # the quiet after the burst closed it, not the 1 s linger

    async def trickle() -> None:
        for offset in range(3, 1000):
            await stream.arrive(offset)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(trickle())
    begun = loop.time()
    second = await asyncio.wait_for(anext(batches), 3.0)
    task.cancel()
    assert 0.9 < loop.time() - begun < 2.5  # events kept coming: closed at the linger from its first event
    assert len(second) > 3
    stream.should_stop = True
