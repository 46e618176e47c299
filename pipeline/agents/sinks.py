"""Sink agents: ``contacts.accepted`` -> the CRM and HubSpot, with a result per event and dead letters for failures.

One agent per sink (``settings.sink_agents``), each with its own stream and its own batches, so a paused HubSpot
does not hold the CRM's batches. (All agents of one faust app share the app's consumer group: when a paused sink's
stream buffer fills, faust stops fetching for the whole worker. For hard isolation run the HubSpot sink in a worker
of its own: another ``app_id`` with ``LEADPIPE_SINK_AGENTS='["hubspot"]'``.)

Per batch (``stream.take_events``: ``take`` plus each record's partition and offset for the dead letters):
1. open each sealed ``AcceptedRecord``. A destroyed key means the subject was erased since: ``not_applicable``,
   nothing written. An unreadable record is dead-lettered;
2. right before every write (retries too), the chain's suppression rule again, on the subject's state of that
   moment (``SuppressionScreen``): a right exercised while the event waited wins. An event the chain would now
   drop is ``not_applicable`` with the drop reason; an objection or withdrawal removes the purposes it stopped;
3. ``sink.write`` in a thread. ``SinkBackpressureError`` -> sleep ``retry_after`` and offer the same events again;
   retryable per-record failures are offered again after a backoff; nothing is dropped;
4. one ``SinkResult`` per event on ``sinks.results``, a ``DeadLetter`` (payload = the record, sealed with the
   subject's key) per failure on ``sinks.dlq``, sent through faust topics and awaited until the broker confirmed;
5. return: only then does faust ack the batch's offsets (``take_events`` acks after the loop body).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from pipeline import tracing
from pipeline.agents.app import LeadpipeApp, policy_for
from pipeline.agents.metrics import WorkerMetrics, worker_metrics
from pipeline.crypto.codec import RecordCodec
from pipeline.crypto.keystore import SqlKeyStore
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.logging import get_logger
from pipeline.models.processing import DropReason
from pipeline.models.records import AcceptedRecord, DeadLetter
from pipeline.models.rights import SinkResult, SinkStatus, SuppressionRecord
from pipeline.models.tagged import TaggedEvent
from pipeline.policy.model import Policy
from pipeline.processors.suppression import suppress_accepted
from pipeline.rights.history import RightsHistory
from pipeline.runtime import Runtime
from pipeline.sinks.base import (
    BatchingSink,
    RecordResult,
    SinkBackpressureError,
    WriteOutcome,
    backoff_delay,
    check_complete,
)
from pipeline.sinks.crm.sink import CrmSink
from pipeline.sinks.crm.writer import CrmWriter
from pipeline.sinks.hubspot.sink import HubSpotSink
from pipeline.topics import ACCEPTED_TOPIC, SINK_RESULTS_TOPIC, SINKS_DLQ_TOPIC

log = get_logger(__name__)

RECORD_CONTENT_TYPE = "application/vnd.leadpipe.accepted-record+json"
#: How often an unexpected error (a bug, not backpressure) is retried before the batch is dead-lettered.
UNEXPECTED_ATTEMPTS = 5
#: Pause when the subjects' suppression states cannot be read: never write without having checked them.
SCREEN_RETRY_AFTER_S = 5.0


@dataclass(frozen=True)
class Incoming:
    """One record as consumed: the raw value and where it came from."""

    value: bytes
    partition: int | None = None
    offset: int | None = None
    trace: bytes | None = None
    """The ``traceparent`` header it came with (``pipeline.tracing``): the sink's span joins that trace."""


@dataclass(frozen=True)
class Message:
    """One record to publish: logical topic, key, pydantic value."""

    topic: str
    key: str | None
    value: SinkResult | DeadLetter


Publish = Callable[[Sequence[Message]], Awaitable[None]]


class SuppressionStates(Protocol):
    """Where the subjects' current suppression states come from (``pipeline.rights.history.RightsHistory``)."""

    def states(self, subject_keys: Collection[str]) -> dict[str, SuppressionRecord]: ...


class SuppressionScreen:
    """The chain's suppression rule applied again, right before a write, to the subjects' states of that moment."""

    def __init__(self, states: SuppressionStates, policy: Policy) -> None:
        self.source = states
        self.policy = policy

    def __call__(self, batch: Sequence[TaggedEvent]) -> tuple[list[TaggedEvent], list[RecordResult]]:
        """The events to write (restated where a right changed their purposes) and the results of the others."""
        try:
            states = self.source.states({t.event.subject_key for t in batch})
        except DBAPIError as exc:
            log.warning("sink_screen_unavailable", error=type(exc.orig).__name__)
            raise SinkBackpressureError(SCREEN_RETRY_AFTER_S, f"suppression states: {type(exc.orig).__name__}") from exc
        if not states:
            return list(batch), []
        keep: list[TaggedEvent] = []
        skipped: list[RecordResult] = []
        restated = 0
        for tagged in batch:
            outcome = suppress_accepted(tagged, states.get(tagged.event.subject_key), self.policy)
            if isinstance(outcome, DropReason):
                skipped.append(
                    RecordResult.not_applicable(
                        tagged.event.event_id, outcome.value, _SCREENED.get(outcome, "suppressed since accepted")
                    )
                )
                continue
            restated += outcome is not tagged
            keep.append(outcome)
        if skipped or restated:
            log.info("sink_screened", skipped=len(skipped), restated=restated)
        return keep, skipped


#: Why the screen stopped an event, for ``sinks.results`` (the reason code is the chain's drop reason).
_SCREENED = {
    DropReason.SUBJECT_ERASED: "the subject was erased after this event was accepted",
    DropReason.SUBJECT_RESTRICTED: "the subject's processing was restricted after this event was accepted",
    DropReason.NO_LAWFUL_PURPOSE: "objections or withdrawals since this event was accepted left it no purpose",
}


@dataclass
class _Opened:
    incoming: Incoming
    record: AcceptedRecord
    tagged: TaggedEvent


class SinkRunner:
    """Everything an agent does with one batch, without faust (so it can be exercised directly)."""

    def __init__(
        self,
        sink: BatchingSink,
        codec: RecordCodec,
        publish: Publish,
        *,
        source_topic: str = ACCEPTED_TOPIC,
        keystore: SqlKeyStore | None = None,
        max_pause_s: float = 60.0,
        backoff_base_s: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: WorkerMetrics | None = None,
        screen: SuppressionScreen | None = None,
        trace_names: tuple[str, str] | None = None,
    ) -> None:
        """``trace_names``: the topic as the broker names it and the consumer group, for the traces' spans."""
        self.sink = sink
        self.trace_names = trace_names or (source_topic, "")
        self.screen = screen
        self.codec = codec
        self.publish = publish
        self.source_topic = source_topic
        self.keystore = keystore
        self.max_pause_s = max_pause_s
        self.backoff_base_s = backoff_base_s
        self._sleep = sleep
        self._ready = False
        self.metrics = metrics

    async def start(self) -> None:
        """``sink.setup`` (schema, HubSpot properties), retried under backpressure until it succeeds."""
        attempt = 0
        while not self._ready:
            try:
                await asyncio.to_thread(self.sink.setup)
                self._ready = True
            except SinkBackpressureError as exc:
                await self._pause(exc.retry_after, exc.reason)
            except Exception as exc:
                delay = backoff_delay(attempt, self.backoff_base_s, self.max_pause_s)
                attempt += 1
                log.exception("sink_setup_failed", sink=self.sink.name, error=type(exc).__name__, retry_in_s=delay)
                await self._sleep(delay)

    async def process(self, batch: Sequence[Incoming]) -> list[Message]:
        """Write one batch; returns (and has published) the results and dead letters."""
        await self.start()
        started_ns = time.time_ns()
        opened, messages = await asyncio.to_thread(self._open_all, batch)
        unique: dict[uuid.UUID, _Opened] = {}
        for item in opened:
            unique.setdefault(item.tagged.event.event_id, item)
        results = await self._write_until_final(list(unique.values()))
        if any(r.outcome is WriteOutcome.FAILED for r in results):
            messages += await asyncio.to_thread(self._dead_letters, unique, results)
        messages += [self._result_message(unique[r.event_id].record, r) for r in results]
        if messages:
            await self.publish(messages)
        if tracing.enabled():
            self._trace(unique, results, started_ns)
        if self.metrics is not None:
            self.metrics.observe_sink(
                self.sink.name,
                (m.value.status.value for m in messages if isinstance(m.value, SinkResult)),
                (m.value.reason for m in messages if isinstance(m.value, DeadLetter)),
            )
        written = sum(r.outcome is WriteOutcome.WRITTEN for r in results)
        log.info("sink_batch", sink=self.sink.name, records=len(batch), written=written, messages=len(messages))
        return messages

    def _trace(self, items: dict[uuid.UUID, _Opened], results: Sequence[RecordResult], started_ns: int) -> None:
        """One ``process`` span per event, from the batch's start to its results' confirmation, in the event's trace."""
        topic, group = self.trace_names
        for result in results:
            incoming = items[result.event_id].incoming
            span = tracing.start_process(
                topic,
                incoming.trace,
                partition=incoming.partition,
                offset=incoming.offset,
                group=group,
                start_time=started_ns,
                sink=self.sink.name,
            )
            failed = result.reason or "failed" if result.outcome is WriteOutcome.FAILED else None
            tracing.end(span, failed=failed, outcome=result.outcome.value)

    # ---- steps -----------------------------------------------------------------------------------------------------

    def _open_all(self, batch: Sequence[Incoming]) -> tuple[list[_Opened], list[Message]]:
        """Parse the batch, confirm its keys with one query (``preload``: a key destroyed by an erasure in another
        process opens nothing from this batch on), then open each record."""
        opened: list[_Opened] = []
        messages: list[Message] = []
        now = datetime.now(UTC)
        parsed: list[tuple[Incoming, AcceptedRecord]] = []
        for incoming in batch:
            try:
                parsed.append((incoming, AcceptedRecord.model_validate_json(incoming.value)))
            except ValidationError as exc:
                messages.append(self._unreadable(incoming, None, f"not an AcceptedRecord: {exc.error_count()} errors"))
        if self.keystore is not None:
            self.keystore.preload(record.sealed.key_id for _, record in parsed)
        for incoming, record in parsed:
            try:
                tagged = self.codec.open_tagged(record)
            except KeyDestroyedError:
                log.info("sink_subject_erased", sink=self.sink.name, event_id=str(record.event_id))
                result = SinkResult(
                    event_id=record.event_id,
                    subject_key=record.subject_key,
                    sink=self.sink.name,
                    status=SinkStatus.NOT_APPLICABLE,
                    at=now,
                    detail="subject_erased: the subject's data key was destroyed after this event was accepted",
                )
                messages.append(Message(SINK_RESULTS_TOPIC, record.subject_key, result))
                continue
            except Exception as exc:  # tampered or corrupt ciphertext, a body that no longer validates
                messages.append(
                    self._unreadable(incoming, record, f"cannot open the sealed body: {type(exc).__name__}")
                )
                continue
            opened.append(_Opened(incoming, record, tagged))
        return opened, messages

    async def _write_until_final(self, items: list[_Opened]) -> list[RecordResult]:
        """Offer events to the sink until each has a final result; pauses on backpressure, never drops."""
        final: dict[uuid.UUID, RecordResult] = {}
        pending = [i.tagged for i in items]
        retry_round = 0
        unexpected = 0
        while pending:
            try:
                results = await asyncio.to_thread(self._screened_write, pending)
                check_complete(pending, results)
            except SinkBackpressureError as exc:
                await self._pause(exc.retry_after, exc.reason)
                continue
            except Exception as exc:
                unexpected += 1
                log.exception("sink_write_error", sink=self.sink.name, attempt=unexpected, error=type(exc).__name__)
                if unexpected >= UNEXPECTED_ATTEMPTS:
                    reason = f"sink error after {unexpected} attempts: {type(exc).__name__}"
                    for tagged in pending:
                        final[tagged.event.event_id] = RecordResult.failed(tagged.event.event_id, "sink_error", reason)
                    break
                await self._sleep(backoff_delay(unexpected, self.backoff_base_s, self.max_pause_s))
                continue
            retry_ids = set()
            for result in results:
                if result.outcome is WriteOutcome.FAILED and result.retryable:
                    retry_ids.add(result.event_id)
                else:
                    final[result.event_id] = result
            pending = [t for t in pending if t.event.event_id in retry_ids]
            if pending:
                retry_round += 1
                await self._pause(
                    backoff_delay(retry_round, self.backoff_base_s, self.max_pause_s), "retryable records"
                )
        return [final[i.tagged.event.event_id] for i in items]

    def _screened_write(self, pending: list[TaggedEvent]) -> list[RecordResult]:
        """``sink.write`` of what the suppression screen lets through, plus the screen's own results."""
        if self.screen is None:
            return self.sink.write(pending)
        keep, skipped = self.screen(pending)
        return skipped + (self.sink.write(keep) if keep else [])

    async def _pause(self, seconds: float, reason: str) -> None:
        delay = min(max(seconds, 0.05), self.max_pause_s)
        if self.metrics is not None:
            self.metrics.sink_pauses.labels(self.sink.name).inc()
        log.warning("sink_paused", sink=self.sink.name, pause_s=round(delay, 3), reason=reason)
        await self._sleep(delay)

    def _result_message(self, record: AcceptedRecord, result: RecordResult) -> Message:
        detail = None
        if result.outcome is not WriteOutcome.WRITTEN or result.message:
            detail = ": ".join(p for p in (result.reason, result.message) if p)[:2000] or None
        value = SinkResult(
            event_id=record.event_id,
            subject_key=record.subject_key,
            sink=self.sink.name,
            status=result.outcome.sink_status,
            at=datetime.now(UTC),
            external_id=result.external_id,
            detail=detail,
        )
        return Message(SINK_RESULTS_TOPIC, record.subject_key, value)

    def _dead_letters(self, items: dict[uuid.UUID, _Opened], results: Sequence[RecordResult]) -> list[Message]:
        out = []
        for result in results:
            if result.outcome is not WriteOutcome.FAILED:
                continue
            item = items[result.event_id]
            out.append(
                self._dead_letter(
                    item.incoming, item.record, result.reason or "sink_failed", result.message or "no detail"
                )
            )
        return out

    def _unreadable(self, incoming: Incoming, record: AcceptedRecord | None, error: str) -> Message:
        log.warning("sink_unreadable_record", sink=self.sink.name, partition=incoming.partition, offset=incoming.offset)
        return self._dead_letter(incoming, record, "unreadable_record", error)

    def _dead_letter(self, incoming: Incoming, record: AcceptedRecord | None, reason: str, error: str) -> Message:
        subject_key = record.subject_key if record else None
        dead = DeadLetter.build(
            stage=self.sink.stage,
            reason=reason,
            error=error,
            failed_at=datetime.now(UTC),
            seal=lambda letter_id: self.codec.seal_payload(
                incoming.value, subject_key=subject_key, record_id=letter_id, own_key=True
            ),
            channel=record.channel if record else None,
            event_id=record.event_id if record else None,
            subject_key=subject_key,
            source_topic=self.source_topic,
            source_partition=incoming.partition,
            source_offset=incoming.offset,
            content_type=RECORD_CONTENT_TYPE,
        )
        return Message(SINKS_DLQ_TOPIC, subject_key, dead)


def build_sink(name: str, runtime: Runtime) -> BatchingSink:
    """The sink called ``name`` wired from the runtime (CRM on the runtime's engine; HubSpot or its dry run)."""
    if name == "crm":
        return CrmSink(CrmWriter(runtime.engine))
    if name == "hubspot":
        return HubSpotSink.from_settings(runtime.settings, guard=RightsHistory(runtime.engine))
    raise ValueError(f"unknown sink {name!r} (known: crm, hubspot)")


def faust_publisher(app: LeadpipeApp, runtime: Runtime) -> Publish:
    """Publish through faust topics and wait until the broker confirmed every record (before the batch is acked)."""
    settings = runtime.settings
    topics = {
        name: app.topic(settings.topic(name), key_serializer="raw", value_serializer="raw")
        for name in (SINK_RESULTS_TOPIC, SINKS_DLQ_TOPIC)
    }

    async def publish(messages: Sequence[Message]) -> None:
        pending = []
        for message in messages:
            key = message.key.encode() if message.key else None
            pending.append(await topics[message.topic].send(key=key, value=message.value.model_dump_json().encode()))
        await asyncio.gather(*pending)

    return publish


def register(app: LeadpipeApp, runtime: Runtime) -> None:
    """Add one agent per configured sink to the faust app (``REGISTRARS`` entry ``pipeline.agents.sinks:register``)."""
    settings = runtime.settings
    publish = faust_publisher(app, runtime)
    metrics = worker_metrics(app)
    screen = SuppressionScreen(RightsHistory(runtime.engine), policy_for(settings).policy)
    for name in settings.sink_agents:
        runner = SinkRunner(
            build_sink(name, runtime),
            runtime.codec,
            publish,
            source_topic=ACCEPTED_TOPIC,
            keystore=runtime.keystore,
            max_pause_s=settings.sink_retry_max_s,
            metrics=metrics,
            screen=screen,
            trace_names=(settings.topic(ACCEPTED_TOPIC), settings.topic(settings.app_id)),
        )
        topic = app.topic(settings.topic(ACCEPTED_TOPIC), key_serializer="raw", value_serializer="raw")

        async def consume(stream: Any, runner: SinkRunner = runner) -> None:
            await runner.start()
            async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout_s):
                batch = [
                    Incoming(e.value, e.message.partition, e.message.offset, tracing.header_value(e.message.headers))
                    for e in events
                ]
                await runner.process(batch)

        app.agent(topic, name=f"{settings.app_id}.sink.{name}")(consume)
