"""What a sink agent does with one batch (``SinkRunner``), without faust: the same code the agents run.

A scripted sink plays the destination; the records are really sealed and opened with the key store (SQLite).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes.contacts import make_tagged
from sqlalchemy.exc import DBAPIError

from pipeline.agents.metrics import WorkerMetrics
from pipeline.agents.sinks import BatchOpener, Incoming, SinkRunner, SuppressionScreen
from pipeline.config import Settings
from pipeline.crypto.sealing import KeyDestroyedError, subject_scope
from pipeline.db import ensure_schema
from pipeline.kafka.producer import Outgoing
from pipeline.models.common import Purpose
from pipeline.models.records import AcceptedRecord, DeadLetter
from pipeline.models.rights import SinkResult, SinkStatus, SuppressionRecord
from pipeline.models.tagged import TaggedEvent
from pipeline.policy.model import load_policy
from pipeline.rights.history import RightsHistory
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime
from pipeline.sinks.base import (
    BatchingSink,
    OwnershipLostError,
    RecordResult,
    SinkBackpressureError,
    confirm_ownership,
    owning,
)
from pipeline.topics import SINK_RESULTS_TOPIC, SINKS_DLQ_TOPIC


class ScriptedSink(BatchingSink):
    """Answers from a script: a list of callables, one per write call (then writes everything)."""

    name = "scripted"

    def __init__(self, script: list[object] | None = None) -> None:
        self.script = list(script or [])
        self.calls: list[list[uuid.UUID]] = []
        self.batches: list[list[TaggedEvent]] = []

    def write(self, batch: Sequence[TaggedEvent]) -> list[RecordResult]:
        self.calls.append([t.event.event_id for t in batch])
        self.batches.append(list(batch))
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(batch)  # type: ignore[no-any-return]
        return [RecordResult.written(t.event.event_id, external_id="x") for t in batch]


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    return runtime


class Collector:
    def __init__(self) -> None:
        self.messages: list[Outgoing] = []

    async def __call__(self, messages: Sequence[Outgoing]) -> None:
        self.messages.extend(messages)

    def results(self) -> list[SinkResult]:
        return [m.value for m in self.messages if m.topic == SINK_RESULTS_TOPIC and isinstance(m.value, SinkResult)]

    def dead(self) -> list[DeadLetter]:
        return [m.value for m in self.messages if m.topic == SINKS_DLQ_TOPIC and isinstance(m.value, DeadLetter)]


async def no_sleep(_seconds: float) -> None:
    return None


def sealed(runtime: Runtime, tagged: TaggedEvent, offset: int) -> Incoming:
    return Incoming(runtime.codec.seal_accepted(tagged).model_dump_json().encode(), partition=0, offset=offset)


def refusing(bad: TaggedEvent) -> Callable[[Sequence[TaggedEvent]], list[RecordResult]]:
    """A sink's answer that refuses ``bad`` as HubSpot refuses an invalid contact and writes the rest."""

    def answer(batch: Sequence[TaggedEvent]) -> list[RecordResult]:
        return [
            RecordResult.failed(t.event.event_id, "hubspot_validation", "HubSpot VALIDATION_ERROR: [email] invalid")
            if t.event.event_id == bad.event.event_id
            else RecordResult.written(t.event.event_id)
            for t in batch
        ]

    return answer


async def test_backpressure_retries_the_same_batch_and_loses_nothing(runtime: Runtime) -> None:
    events = [make_tagged(f"p{i}@example.com") for i in range(5)]
    sink = ScriptedSink([SinkBackpressureError(0.01, "429"), SinkBackpressureError(0.01, "502")])
    out = Collector()
    runner = SinkRunner(sink, runtime.codec, out, sleep=no_sleep)
    await runner.process([sealed(runtime, t, n) for n, t in enumerate(events)])
    assert len(sink.calls) == 3
    assert sink.calls[0] == sink.calls[2]
    assert sorted(r.event_id for r in out.results()) == sorted(t.event.event_id for t in events)
    assert {r.status for r in out.results()} == {SinkStatus.DONE}
    assert out.dead() == []


async def test_failures_are_dead_lettered_with_reason_and_a_sealed_copy(runtime: Runtime) -> None:
    good, bad = make_tagged("good@example.com"), make_tagged("bad@example.com")

    out = Collector()
    runner = SinkRunner(ScriptedSink([refusing(bad)]), runtime.codec, out, sleep=no_sleep)
    incoming = [sealed(runtime, good, 7), sealed(runtime, bad, 8)]
    await runner.process(incoming)
    [dead] = out.dead()
    assert dead.stage == "sink:scripted"
    assert dead.reason == "hubspot_validation"
    assert dead.event_id == bad.event.event_id
    assert dead.subject_key == bad.event.subject_key
    assert (dead.source_topic, dead.source_partition, dead.source_offset) == ("contacts.accepted", 0, 8)
    assert dead.payload is not None and dead.payload.key_id.startswith(f"record:{dead.dead_letter_id}#")
    replay = AcceptedRecord.model_validate_json(runtime.codec.sealer.open(dead.payload))
    assert runtime.codec.open_tagged(replay) == bad
    statuses = {r.event_id: r.status for r in out.results()}
    assert statuses == {good.event.event_id: SinkStatus.DONE, bad.event.event_id: SinkStatus.FAILED}
    runtime.keystore.destroy(subject_scope(bad.event.subject_key), "erasure")  # its own key dies with the subject
    with pytest.raises(KeyDestroyedError):
        runtime.codec.sealer.open(dead.payload)


async def test_retryable_failures_are_offered_again(runtime: Runtime) -> None:
    events = [make_tagged(f"p{i}@example.com") for i in range(3)]
    flaky = events[1].event.event_id

    def one_flaky(batch: Sequence[TaggedEvent]) -> list[RecordResult]:
        return [
            RecordResult.failed(t.event.event_id, "x", "try later", retryable=True)
            if t.event.event_id == flaky
            else RecordResult.written(t.event.event_id)
            for t in batch
        ]

    sink = ScriptedSink([one_flaky, one_flaky])
    out = Collector()
    await SinkRunner(sink, runtime.codec, out, sleep=no_sleep).process(
        [sealed(runtime, t, n) for n, t in enumerate(events)]
    )
    assert sink.calls[1:] == [[flaky], [flaky]]
    assert {r.status for r in out.results()} == {SinkStatus.DONE}
    assert len(out.results()) == 3


async def test_erased_subject_is_not_applicable_and_not_written(runtime: Runtime) -> None:
    kept, erased = make_tagged("kept@example.com"), make_tagged("erased@example.com")
    incoming = [sealed(runtime, kept, 1), sealed(runtime, erased, 2)]
    runtime.keystore.destroy(subject_scope(erased.event.subject_key), "erasure")
    sink = ScriptedSink()
    out = Collector()
    await SinkRunner(sink, runtime.codec, out, keystore=runtime.keystore, sleep=no_sleep).process(incoming)
    assert sink.calls == [[kept.event.event_id]]
    by_id = {r.event_id: r for r in out.results()}
    assert by_id[erased.event.event_id].status is SinkStatus.NOT_APPLICABLE
    assert "subject_erased" in (by_id[erased.event.event_id].detail or "")
    assert out.dead() == []


async def test_unreadable_record_is_dead_lettered(runtime: Runtime) -> None:
    out = Collector()
    await SinkRunner(ScriptedSink(), runtime.codec, out, sleep=no_sleep).process([Incoming(b"{not json", 0, 3)])
    [dead] = out.dead()
    assert dead.reason == "unreadable_record"
    assert dead.event_id is None
    assert runtime.codec.sealer.open(dead.payload) == b"{not json"  # type: ignore[arg-type]


async def test_redelivered_event_in_one_batch_is_written_once(runtime: Runtime) -> None:
    tagged = make_tagged()
    sink = ScriptedSink()
    out = Collector()
    await SinkRunner(sink, runtime.codec, out, sleep=no_sleep).process(
        [sealed(runtime, tagged, 1), sealed(runtime, tagged, 2)]
    )
    assert sink.calls == [[tagged.event.event_id]]
    assert len(out.results()) == 1


async def test_a_sink_bug_is_retried_then_dead_lettered_never_dropped(runtime: Runtime) -> None:
    tagged = make_tagged()
    sink = ScriptedSink([RuntimeError("boom")] * 10)
    out = Collector()
    await SinkRunner(sink, runtime.codec, out, sleep=no_sleep).process([sealed(runtime, tagged, 1)])
    assert len(sink.calls) == 5
    [dead] = out.dead()
    assert dead.reason == "sink_error"
    assert out.results()[0].status is SinkStatus.FAILED


async def test_a_batch_preloads_its_keys_so_another_process_erasure_counts_at_once(runtime: Runtime) -> None:
    """The runner's own key cache still holds the key; the batch's preload asks the database and finds it gone."""
    from pipeline.crypto.keystore import SqlKeyStore

    erased, kept = make_tagged("erased@example.com"), make_tagged("kept@example.com")
    incoming = [sealed(runtime, erased, 1), sealed(runtime, kept, 2)]
    runtime.codec.open_tagged(AcceptedRecord.model_validate_json(incoming[0].value))  # cached in this process
    SqlKeyStore(runtime.engine, runtime.settings.kek_bytes()).destroy(
        subject_scope(erased.event.subject_key), "erasure"
    )  # the rights worker, another process

    out = Collector()
    sink = ScriptedSink()
    await SinkRunner(sink, runtime.codec, out, keystore=runtime.keystore, sleep=no_sleep).process(incoming)
    assert sink.calls == [[kept.event.event_id]]
    status = {r.event_id: r.status for r in out.results()}
    assert status == {erased.event.event_id: SinkStatus.NOT_APPLICABLE, kept.event.event_id: SinkStatus.DONE}


async def test_metrics_count_what_was_published_and_each_pause(runtime: Runtime) -> None:
    good, bad = make_tagged("good@example.com"), make_tagged("bad@example.com")

    metrics = WorkerMetrics()
    sink = ScriptedSink([SinkBackpressureError(0.01, "429"), refusing(bad)])
    runner = SinkRunner(sink, runtime.codec, Collector(), sleep=no_sleep, metrics=metrics)
    await runner.process([sealed(runtime, good, 1), sealed(runtime, bad, 2), Incoming(b"{not json", 0, 3)])

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert value("leadpipe_sink_results_total", sink="scripted", status="done") == 1
    assert value("leadpipe_sink_results_total", sink="scripted", status="failed") == 1
    assert value("leadpipe_sink_dead_letters_total", sink="scripted", reason="hubspot_validation") == 1
    assert value("leadpipe_sink_dead_letters_total", sink="scripted", reason="unreadable_record") == 1
    assert value("leadpipe_sink_pauses_total", sink="scripted") == 1


# ---- rights exercised while an event waited (SuppressionScreen) ------------------------------------------------


NOW = datetime.now(UTC)


def _save_state(runtime: Runtime, tagged: TaggedEvent, **flags: Any) -> None:
    """What the rights worker records first when it takes a request (before any sink effect runs)."""
    RequestTracker(runtime.engine).save_state(
        SuppressionRecord(subject_key=tagged.event.subject_key, updated_at=NOW, request_id=uuid.uuid4(), **flags)
    )


def _screen(runtime: Runtime) -> SuppressionScreen:
    return SuppressionScreen(RightsHistory(runtime.engine), load_policy())


def _purposes(tagged: TaggedEvent) -> set[Purpose]:
    return {t.purpose for t in tagged.tags.purposes}


async def test_rights_exercised_while_an_event_waited_win_at_the_write(runtime: Runtime) -> None:
    """Accepted before the requests, written after them: the sink gets what the chain would give it now."""
    objected, restricted, erased = make_tagged("o@example.com"), make_tagged("r@example.com"), make_tagged("e@x.com")
    withdrew, untouched = make_tagged("w@example.com", consent=True), make_tagged("u@example.com", consent=True)
    assert Purpose.FURTHER_CONTACT in _purposes(withdrew)
    _save_state(runtime, objected, marketing_objected=True)
    _save_state(runtime, restricted, restricted=True)
    _save_state(runtime, erased, erased=True, erased_at=NOW)  # after the event was received
    _save_state(runtime, withdrew, consent_withdrawn=(Purpose.FURTHER_CONTACT,))
    events = [objected, restricted, erased, withdrew, untouched]

    sink, out = ScriptedSink(), Collector()
    runner = SinkRunner(sink, runtime.codec, out, sleep=no_sleep, screen=_screen(runtime))
    await runner.process([sealed(runtime, t, n) for n, t in enumerate(events)])

    [batch] = sink.batches
    written = {t.event.event_id: t for t in batch}
    assert set(written) == {objected.event.event_id, withdrew.event.event_id, untouched.event.event_id}
    assert _purposes(written[objected.event.event_id]) == {Purpose.CONTRACT_REQUEST}
    assert written[objected.event.event_id].tags.marketing_allowed is False
    assert _purposes(written[withdrew.event.event_id]) == {Purpose.CONTRACT_REQUEST, Purpose.INFORMATION_OF_INTEREST}
    assert written[withdrew.event.event_id].tags.marketing_allowed is True
    assert written[untouched.event.event_id] == untouched
    results = {r.event_id: r for r in out.results()}
    assert results[restricted.event.event_id].status is SinkStatus.NOT_APPLICABLE
    assert (results[restricted.event.event_id].detail or "").startswith("subject_restricted: ")
    assert (results[erased.event.event_id].detail or "").startswith("subject_erased: ")
    assert {results[t.event.event_id].status for t in (objected, withdrew, untouched)} == {SinkStatus.DONE}
    assert out.dead() == []


async def test_a_right_exercised_during_a_pause_is_checked_before_the_retry(runtime: Runtime) -> None:
    tagged = make_tagged("paused@example.com")

    async def rights_worker_meanwhile(_seconds: float) -> None:
        _save_state(runtime, tagged, restricted=True)

    sink, out = ScriptedSink([SinkBackpressureError(1.0, "429")]), Collector()
    runner = SinkRunner(sink, runtime.codec, out, sleep=rights_worker_meanwhile, screen=_screen(runtime))
    await runner.process([sealed(runtime, tagged, 1)])
    assert sink.calls == [[tagged.event.event_id]]  # the refused first attempt only
    [result] = out.results()
    assert result.status is SinkStatus.NOT_APPLICABLE and (result.detail or "").startswith("subject_restricted")


async def test_unreadable_suppression_states_pause_the_sink_never_write_unchecked(runtime: Runtime) -> None:
    tagged = make_tagged()

    class Flaky:
        calls = 0

        def states(self, subject_keys: Collection[str]) -> dict[str, SuppressionRecord]:
            self.calls += 1
            if self.calls == 1:
                raise DBAPIError("SELECT", {}, ConnectionError("database restarting"))
            return {}

    pauses: list[float] = []

    async def record(seconds: float) -> None:
        pauses.append(seconds)

    source, sink = Flaky(), ScriptedSink()
    screen = SuppressionScreen(source, load_policy())
    await SinkRunner(sink, runtime.codec, Collector(), sleep=record, screen=screen).process(
        [sealed(runtime, tagged, 1)]
    )
    assert source.calls == 2 and len(pauses) == 1
    assert sink.calls == [[tagged.event.event_id]]  # written only after the states could be read


class Ownership:
    """A worker's hold on a batch's partitions, as ``BatchingConsumer.confirm_ownership`` answers it: unconfirmed
    for ``unconfirmed`` checks (a stalled worker waiting for its next heartbeat), then confirmed or lost."""

    def __init__(self, unconfirmed: int, then_lost: bool) -> None:
        self.unconfirmed = unconfirmed
        self.then_lost = then_lost
        self.checks = 0

    def __call__(self) -> None:
        self.checks += 1
        if self.checks <= self.unconfirmed:
            raise SinkBackpressureError(0.01, "group membership unconfirmed")
        if self.then_lost:
            raise OwnershipLostError("a rebalance began")


async def test_a_batch_waits_while_its_ownership_is_unconfirmed_and_writes_once_confirmed(runtime: Runtime) -> None:
    events = [make_tagged(f"own{i}@example.com") for i in range(3)]
    sink = ScriptedSink()
    out = Collector()
    runner = SinkRunner(sink, runtime.codec, out, sleep=no_sleep)
    guard = Ownership(unconfirmed=2, then_lost=False)
    with owning(guard):
        await runner.process([sealed(runtime, t, n) for n, t in enumerate(events)])
    assert guard.checks == 3
    assert len(sink.calls) == 1  # nothing reached the sink before the ownership was confirmed
    assert {r.status for r in out.results()} == {SinkStatus.DONE}


async def test_a_batch_whose_partitions_were_lost_has_no_effect_and_no_results(runtime: Runtime) -> None:
    """A stalled worker resumed after its partitions went to another: the batch is the new owner's; this worker
    writes nothing and publishes nothing (its events are not acknowledged, the new owner's results count)."""
    events = [make_tagged(f"lost{i}@example.com") for i in range(3)]
    sink = ScriptedSink()
    out = Collector()
    runner = SinkRunner(sink, runtime.codec, out, sleep=no_sleep)
    with owning(Ownership(unconfirmed=1, then_lost=True)):
        messages = await runner.process([sealed(runtime, t, n) for n, t in enumerate(events)])
    assert sink.calls == []
    assert messages == [] and out.messages == []


async def test_without_a_guard_a_sink_writes_as_before(runtime: Runtime) -> None:
    sink = ScriptedSink()
    runner = SinkRunner(sink, runtime.codec, Collector(), sleep=no_sleep)
    confirm_ownership()  # nothing set: a sink used outside the worker is not guarded
    await runner.process([sealed(runtime, make_tagged("free@example.com"), 0)])
    assert len(sink.calls) == 1


async def test_the_sinks_of_an_agent_open_a_batch_once_and_each_answers_for_itself(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each sink used to parse, confirm the keys of and decrypt the whole batch itself, on the same worker's CPU."""
    kept, erased = make_tagged("kept@example.com"), make_tagged("erased@example.com")
    incoming = [sealed(runtime, kept, 1), sealed(runtime, erased, 2), Incoming(b"{not json", 0, 3)]
    runtime.keystore.destroy(subject_scope(erased.event.subject_key), "erasure")
    opened: list[uuid.UUID] = []
    open_tagged = runtime.codec.open_tagged

    def counting(record: AcceptedRecord) -> TaggedEvent:
        opened.append(record.event_id)
        return open_tagged(record)

    monkeypatch.setattr(runtime.codec, "open_tagged", counting)
    opener = BatchOpener(runtime.codec, runtime.keystore)

    class OtherSink(ScriptedSink):
        name = "other"

    sinks = [ScriptedSink(), OtherSink()]
    outs = [Collector(), Collector()]
    runners = [
        SinkRunner(sink, runtime.codec, out, keystore=runtime.keystore, sleep=no_sleep, opener=opener)
        for sink, out in zip(sinks, outs, strict=True)
    ]
    await asyncio.gather(*(runner.process(incoming) for runner in runners))
    assert sorted(opened) == sorted([kept.event.event_id, erased.event.event_id])  # once each, not once per sink
    for sink, out in zip(sinks, outs, strict=True):
        assert sink.calls == [[kept.event.event_id]]
        assert {(r.event_id, r.sink, r.status) for r in out.results()} == {
            (kept.event.event_id, sink.name, SinkStatus.DONE),
            (erased.event.event_id, sink.name, SinkStatus.NOT_APPLICABLE),
        }
        [dead] = out.dead()
        assert dead.reason == "unreadable_record" and dead.stage == sink.stage
    await runners[0].process(list(incoming))  # another batch (a new list): opened again
    assert len(opened) == 4


async def test_a_key_store_outage_while_a_shared_opening_is_made_pauses_each_sink_and_keeps_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database not answering while the batch is opened: each sink pauses and asks again, nothing of the failed
    opening is kept, and both sinks write every event once it answers (never acknowledged without a write)."""
    tagged = make_tagged()
    preload = runtime.keystore.preload
    calls: list[int] = []

    def flaky(key_ids: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise DBAPIError("SELECT", {}, ConnectionError("database restarting"))
        preload(key_ids)

    monkeypatch.setattr(runtime.keystore, "preload", flaky)
    pauses: list[float] = []

    async def record(seconds: float) -> None:
        pauses.append(seconds)

    class OtherSink(ScriptedSink):
        name = "other"

    opener = BatchOpener(runtime.codec, runtime.keystore)
    sinks = [ScriptedSink(), OtherSink()]
    outs = [Collector(), Collector()]
    batch = [sealed(runtime, tagged, 1)]
    await asyncio.gather(
        *(
            SinkRunner(sink, runtime.codec, out, sleep=record, opener=opener).process(batch)
            for sink, out in zip(sinks, outs, strict=True)
        )
    )
    assert len(pauses) >= 1 and len(calls) >= 2
    for sink, out in zip(sinks, outs, strict=True):
        assert sink.calls == [[tagged.event.event_id]]
        assert [r.status for r in out.results()] == [SinkStatus.DONE] and out.dead() == []
