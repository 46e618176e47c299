"""How the processing agent hands a batch's outputs to its transaction: closed record batches (no linger), in parts
while the next part is worked out, one wait at the end; and what a failure in the middle of a batch does.

A fake aiokafka producer stands in for the transactional one (it keeps the real ``BatchBuilder``s it is given);
faust's app is real, no broker is contacted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder, MessageBatch
from aiokafka.structs import TopicPartition
from faust.types import TP
from sqlalchemy.exc import OperationalError

from pipeline.agents import processing
from pipeline.agents import sender as sender_module
from pipeline.agents.app import LeadpipeApp, policy_for
from pipeline.agents.batching import BatchContext, RetryBatch
from pipeline.agents.processing import BatchResult, Consumed, ProcessingStep, SharedProcessing, batch_handler
from pipeline.agents.sender import Out, TransactionalSender
from pipeline.agents.views import ProcessingState
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.models.common import Channel, InteractionKind
from pipeline.models.contact import ContactEvent, Interaction, Person, Provenance
from pipeline.runtime import Runtime

SOURCE = "t.contacts.normalized"


class _Exited(Exception):
    pass


class FakeProducer:
    """What ``TransactionalSender`` uses of aiokafka's producer; each handed-over batch waits for ``ack``."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.batches: list[tuple[BatchBuilder, str, int]] = []
        self.futures: list[asyncio.Future[None]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16_384, 0, is_transactional=1)

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[None]:
        if self.refuse:
            raise RuntimeError("broker says no")
        self.batches.append((builder, topic, partition))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def ack(self) -> None:
        for future in self.futures:
            if not future.done():
                future.set_result(None)


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> None:
    def exited(event: str, exc: BaseException, **_fields: object) -> None:
        raise _Exited(event)

    monkeypatch.setattr(sender_module, "fatal", exited)
    monkeypatch.setattr(processing, "fatal", exited)


def _sender(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, producer: FakeProducer
) -> TransactionalSender:
    app = LeadpipeApp("delivery-probe", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    sender = TransactionalSender(app, make_settings(), {"contacts.accepted": 6})
    monkeypatch.setattr(sender_module, "transactional_id", lambda _app, _topic, _partition: "tid")
    monkeypatch.setattr(sender_module, "transaction_producer", lambda _app, _tid: (producer, asyncio.Lock()))
    monkeypatch.setattr(sender, "assigned", lambda _topic, _partition: True)
    return sender


def _outs(n: int, start: int = 0) -> list[Out]:
    return [Out("contacts.accepted", b"sk_%d" % i, b"{}") for i in range(start, start + n)]


async def test_a_batch_goes_to_the_producer_closed_so_it_does_not_linger(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open batch lingered ``producer_linger`` (5 ms) in aiokafka's accumulator for records that never came."""
    producer = FakeProducer()
    sender = _sender(make_settings, monkeypatch, producer)
    futures = await sender.send(SOURCE, 2, _outs(3))
    assert len(futures) == len(producer.batches) == 1
    builder, topic, partition = producer.batches[0]
    assert (topic, partition, builder.record_count()) == (sender._real("contacts.accepted"), 2, 3)
    assert builder.closed()
    assert MessageBatch(TopicPartition(topic, partition), builder, ttl=30, linger_time=0.005).remaining_linger() is None


async def test_parts_are_handed_over_as_they_come_and_waited_for_once(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = FakeProducer()
    delivery = _sender(make_settings, monkeypatch, producer).delivery(SOURCE, 2)
    await delivery.send(_outs(2))
    assert len(producer.batches) == 1  # with the producer before the next part exists
    await delivery.send([])
    await delivery.send(_outs(3, start=2))
    assert [b.record_count() for b, _, _ in producer.batches] == [2, 3]
    assert delivery.sent == 5
    settling = asyncio.ensure_future(delivery.settle())
    await asyncio.sleep(0.01)
    assert not settling.done()  # the broker has not acknowledged them yet
    producer.ack()
    assert await settling is True


async def test_after_a_refused_part_nothing_more_is_sent_and_the_worker_stops(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, exits: None
) -> None:
    producer = FakeProducer(refuse=True)
    sender = _sender(make_settings, monkeypatch, producer)
    delivery = sender.delivery(SOURCE, 2)
    await delivery.send(_outs(2))
    producer.refuse = False
    await delivery.send(_outs(2, start=2))
    assert producer.batches == [] and delivery.sent == 0
    with pytest.raises(_Exited, match="batch_send_failed"):  # still assigned: a restart redoes the batch
        await delivery.settle()
    monkeypatch.setattr(sender, "assigned", lambda _topic, _partition: False)
    assert await delivery.settle() is False  # revoked meanwhile: the new owner redoes it


# ---- the batch handler over parts -----------------------------------------------------------------------------------


class _Consumer:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack_offsets(self, tp: TP, offsets: Sequence[int]) -> None:
        self.acked.extend(offsets)

    def assignment(self) -> set[TP]:
        return {TP(SOURCE, 2)}


class _Recorder:
    def __init__(self) -> None:
        self.parts: list[list[Out]] = []
        self.settled = 0

    def delivery(self, source_topic: str, partition: int) -> _Recorder:
        return self

    async def send(self, records: Sequence[Out]) -> None:
        if records:
            self.parts.append(list(records))

    @property
    def sent(self) -> int:
        return sum(len(part) for part in self.parts)

    async def settle(self) -> bool:
        self.settled += 1
        return True


def _shared(recorder: _Recorder, observed: list[dict[str, int]]) -> SharedProcessing:
    def observe(agent: str, counts: dict[str, int], *_args: Any) -> None:
        observed.append(dict(counts))

    return cast(
        SharedProcessing,
        SimpleNamespace(
            sender=recorder,
            tables=SimpleNamespace(state=ProcessingState.in_memory),
            metrics=SimpleNamespace(observe_batch=observe),
            group="g",
        ),
    )


def _fetched(n: int) -> list[Any]:
    return [SimpleNamespace(partition=2, offset=10 + i, key=b"k", value=b"v", headers=[]) for i in range(n)]


def _part(n: int, start: int = 0) -> BatchResult:
    result = BatchResult()
    for out in _outs(n, start):
        result.add(2, [out], "accepted")
    return result


async def test_a_batch_in_parts_is_sent_part_by_part_acknowledged_once_and_counted_whole() -> None:
    recorder, consumer = _Recorder(), _Consumer()
    observed: list[dict[str, int]] = []

    async def process(batch: Sequence[Consumed], state: ProcessingState) -> AsyncIterator[BatchResult]:
        yield _part(2)
        assert len(recorder.parts) == 1  # the first part is with the producer before the second is worked out
        yield _part(1, start=2)

    handle = batch_handler(process, _shared(recorder, observed), SOURCE)
    await handle(BatchContext(TP(SOURCE, 2), consumer), _fetched(3))
    assert [len(part) for part in recorder.parts] == [2, 1]
    assert recorder.settled == 1
    assert consumer.acked == [10, 11, 12]
    assert observed == [{"accepted": 3}]


async def test_the_database_lost_before_any_part_was_sent_gives_the_batch_back() -> None:
    recorder, consumer = _Recorder(), _Consumer()

    async def process(batch: Sequence[Consumed], state: ProcessingState) -> AsyncIterator[BatchResult]:
        raise OperationalError("SELECT", {}, ConnectionRefusedError("down"))
        yield _part(1)  # pragma: no cover - an async generator that fails at once

    handle = batch_handler(process, _shared(recorder, []), SOURCE)
    with pytest.raises(RetryBatch):
        await handle(BatchContext(TP(SOURCE, 2), consumer), _fetched(3))
    assert recorder.parts == [] and consumer.acked == []


async def test_the_database_lost_after_a_part_was_sent_stops_the_worker_uncommitted(exits: None) -> None:
    """A part is in the open transaction already: giving the batch back would commit it with the batch done again."""
    recorder, consumer = _Recorder(), _Consumer()

    async def process(batch: Sequence[Consumed], state: ProcessingState) -> AsyncIterator[BatchResult]:
        yield _part(2)
        raise OperationalError("INSERT", {}, ConnectionRefusedError("down"))

    handle = batch_handler(process, _shared(recorder, []), SOURCE)
    with pytest.raises(_Exited, match="processing_failed_mid_batch"):
        await handle(BatchContext(TP(SOURCE, 2), consumer), _fetched(3))
    assert consumer.acked == []


async def test_any_failure_after_a_part_was_sent_stops_the_worker_uncommitted(exits: None) -> None:
    """Not only the database: whatever ends the step once a part is in the transaction must not let a commit (a
    rebalance's, a stop's) carry that part without the batch's offsets."""
    recorder, consumer = _Recorder(), _Consumer()

    async def process(batch: Sequence[Consumed], state: ProcessingState) -> AsyncIterator[BatchResult]:
        yield _part(2)
        raise RuntimeError("a bug in the step")

    handle = batch_handler(process, _shared(recorder, []), SOURCE)
    with pytest.raises(_Exited, match="processing_failed_mid_batch"):
        await handle(BatchContext(TP(SOURCE, 2), consumer), _fetched(3))
    assert consumer.acked == []


async def test_a_failure_before_any_part_was_sent_is_raised_as_it_was() -> None:
    recorder, consumer = _Recorder(), _Consumer()

    async def process(batch: Sequence[Consumed], state: ProcessingState) -> AsyncIterator[BatchResult]:
        raise RuntimeError("a bug in the step")
        yield _part(1)  # pragma: no cover - an async generator that fails at once

    handle = batch_handler(process, _shared(recorder, []), SOURCE)
    with pytest.raises(RuntimeError, match="a bug in the step"):
        await handle(BatchContext(TP(SOURCE, 2), consumer), _fetched(3))
    assert recorder.parts == [] and consumer.acked == []


# ---- the processing agent's parts -----------------------------------------------------------------------------------


def _event(i: int) -> ContactEvent:
    now = datetime.now(UTC)
    return ContactEvent(
        event_id=uuid.uuid4(),
        channel=Channel.WEB_FORM,
        occurred_at=now,
        received_at=now,
        subject_key=f"sk_parts_{i:06d}_0123456789",
        person=Person(first_name="Ann", email=f"ann{i}@example.com", company="ACME"),
        interaction=Interaction(kind=InteractionKind.CONTACT_US, message="Please call me back."),
        provenance=Provenance(source_id="test-source", ip=f"203.0.113.{i % 250}"),
    )


async def test_the_processing_agent_yields_its_batch_in_parts_with_the_outputs_of_the_whole(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processing, "FINISH_PART", 4)
    settings = make_settings()
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    step = ProcessingStep.from_runtime(runtime, policy_for(settings))
    batch = [
        Consumed(2, i, e.subject_key.encode(), runtime.codec.seal_contact(e).model_dump_json().encode())
        for i, e in enumerate(_event(i) for i in range(10))
    ]
    shared = SharedProcessing(
        step=step, tables=cast(Any, None), sender=cast(Any, None), partitions={}, metrics=cast(Any, None)
    )
    parts = [part async for part in shared.process(batch, ProcessingState.in_memory())]
    assert [part.counts for part in parts] == [{"accepted": 4}, {"accepted": 4}, {"accepted": 2}]
    whole = step.process(batch, ProcessingState.in_memory())
    merged = BatchResult()
    for part in parts:
        merged.merge(part)
    assert merged.counts == whole.counts
    assert [(o.topic, o.key) for o in merged.outgoing[2]] == [(o.topic, o.key) for o in whole.outgoing[2]]
