"""The worker's transaction commit (``FenceTolerantTransactionManager.commit``): every partition's transaction at
once, a fence dropping only its own producer, any other failure raised after the rest committed. No broker: a
recording producer stands in for faust's (the commits' broker side is in the processing and sink integration tests
and ``tests/faults``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import ProducerFenced
from faust.types import TP

from pipeline.agents.faust_adapter import FenceTolerantTransactionManager
from pipeline.agents.sinks import SinkCommitter
from pipeline.kafka.producer import Outgoing


class RecordingProducer:
    """faust's producer as the manager calls it: one ``commit_transactions`` per transaction, each taking a while."""

    def __init__(self, fail: Mapping[str, BaseException] | None = None) -> None:
        self.fail = dict(fail or {})
        self.committed: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._transaction_producers: dict[str, Any] = {}

    async def commit_transactions(
        self, tid_to_offset_map: Mapping[str, Mapping[TP, int]], group_id: str, start_new_transaction: bool = True
    ) -> None:
        (tid,) = tid_to_offset_map
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)  # the broker round trips
            if tid in self.fail:
                raise self.fail[tid]
            self.committed.append(tid)
        finally:
            self.in_flight -= 1


class RecordingConsumer:
    def __init__(self) -> None:
        self.rejoins = 0
        self.fences = 0

    def fenced(self) -> None:
        self.fences += 1

    def request_rejoin(self) -> None:
        self.rejoins += 1


def manager(producer: RecordingProducer) -> tuple[FenceTolerantTransactionManager, RecordingConsumer]:
    consumer = RecordingConsumer()
    app = SimpleNamespace(
        conf=SimpleNamespace(id="lp"),
        assignor=SimpleNamespace(group_for_topic=lambda topic: 0),
        producer=producer,
        consumer=consumer,
    )
    tm = object.__new__(FenceTolerantTransactionManager)  # no faust service machinery: only ``commit`` is exercised
    tm.__dict__.update(app=app, producer=producer)
    return tm, consumer


OFFSETS = {TP("lp-contacts.normalized", p): 10 + p for p in range(6)}


def tid(partition: int) -> str:
    return f"lp-0-{partition}"


async def test_every_transaction_commits_at_once() -> None:
    producer = RecordingProducer()
    tm, consumer = manager(producer)
    assert await tm.commit(OFFSETS) is True
    assert sorted(producer.committed) == sorted(tid(p) for p in range(6))
    assert producer.most_in_flight == 6  # one after another they held the batch lock six times as long
    assert consumer.rejoins == 0


async def test_a_fence_drops_its_producer_only() -> None:
    producer = RecordingProducer({tid(2): ProducerFenced()})
    tm, consumer = manager(producer)
    assert await tm.commit(OFFSETS) is False
    assert sorted(producer.committed) == sorted(tid(p) for p in range(6) if p != 2)
    assert (consumer.fences, consumer.rejoins) == (1, 1)


async def test_another_failure_is_raised_after_the_others_committed() -> None:
    producer = RecordingProducer({tid(4): RuntimeError("broker gone")})
    tm, consumer = manager(producer)
    with pytest.raises(RuntimeError, match="broker gone"):
        await tm.commit(OFFSETS)
    assert sorted(producer.committed) == sorted(tid(p) for p in range(6) if p != 4)
    assert consumer.rejoins == 0


# ---- the sink worker's results, into each partition's transaction (``SinkCommitter.commit``) ----------------------


class RecordingSender:
    """``TransactionalSender.deliver`` as the committer calls it: a broker round trip per partition."""

    def __init__(self, refused: set[int]) -> None:
        self.refused = refused
        self.in_flight = 0
        self.most_in_flight = 0
        self.delivered: dict[int, int] = {}

    async def deliver(self, source_topic: str, partition: int, records: list[Any]) -> bool:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        if partition in self.refused:
            return False
        self.delivered[partition] = len(records)
        return True


class AckingStream:
    def __init__(self) -> None:
        self.acked: list[tuple[int, int]] = []

    async def ack(self, event: Any) -> None:
        self.acked.append((event.message.partition, event.message.offset))


def sink_event(partition: int, offset: int) -> Any:
    tp = TP("lp-contacts.accepted", partition)
    return SimpleNamespace(message=SimpleNamespace(tp=tp, partition=partition, offset=offset, generation_id=1))


async def test_sink_results_go_into_every_partitions_transaction_at_once() -> None:
    events = [sink_event(p, o) for p in range(3) for o in range(2)]
    consumer = SimpleNamespace(
        batch_lock=asyncio.Lock(),
        assignment=lambda: {e.message.tp for e in events},
        current=lambda generation: generation == 1,
    )
    committer = object.__new__(SinkCommitter)
    sender = RecordingSender(refused={1})  # partition 1 revoked while sending: its events are not acknowledged
    committer.__dict__.update(
        app=SimpleNamespace(batching_consumer=consumer), source_name="lp-contacts.accepted", sender=sender
    )
    messages = [Outgoing("sink.results", f"k{p}", b"r", partition=p) for p in range(3)]
    stream = AckingStream()
    assert await committer.commit(stream, events, messages) == 4
    assert sender.most_in_flight == 3
    assert sorted(stream.acked) == [(0, 0), (0, 1), (2, 0), (2, 1)]
    assert sender.delivered == {0: 1, 2: 1}


class FailingSender(RecordingSender):
    """Partition 0's delivery fails at once; the others are still on their way to the broker."""

    async def deliver(self, source_topic: str, partition: int, records: list[Any]) -> bool:
        if partition == 0:
            raise RuntimeError("broker refused")
        return await super().deliver(source_topic, partition, records)


async def test_a_failed_delivery_is_raised_after_the_others_ended_under_the_lock() -> None:
    """An acknowledgement after the lock is released could fall after a commit that took the outputs without them."""
    events = [sink_event(p, 0) for p in range(3)]
    lock = asyncio.Lock()
    consumer = SimpleNamespace(
        batch_lock=lock, assignment=lambda: {e.message.tp for e in events}, current=lambda generation: True
    )
    committer = object.__new__(SinkCommitter)
    committer.__dict__.update(
        app=SimpleNamespace(batching_consumer=consumer), source_name="lp-contacts.accepted", sender=FailingSender(set())
    )
    stream = AckingStream()
    with pytest.raises(RuntimeError, match="broker refused"):
        await committer.commit(stream, events, [Outgoing("sink.results", "k", b"r", partition=p) for p in range(3)])
    assert sorted(stream.acked) == [(1, 0), (2, 0)]  # both ended before the failure surfaced
    assert not lock.locked()
