"""The sink agent: ``contacts.accepted`` -> the CRM and HubSpot, with a result per event and dead letters for failures.

One agent per worker runs every configured sink (``settings.sink_agents``) over each batch, side by side. Per batch
(``take_batches``: up to ``batch_size`` events or what came within ``batch_timeout_s``):
1. each sink's ``SinkRunner.handle``: open each sealed ``AcceptedRecord`` (a destroyed key means the subject was
   erased since: ``not_applicable``, nothing written; an unreadable record is dead-lettered); right before every
   write (retries too) apply the chain's suppression rule again, on the subject's state of that moment
   (``SuppressionScreen``), so a right exercised while the event waited wins; ``sink.write`` in a thread, pausing
   on ``SinkBackpressureError`` or a database outage and offering the same events again; nothing is dropped;
2. ``SinkCommitter``: one ``SinkResult`` per event and sink on ``sinks.results`` and a ``DeadLetter`` per failure on
   ``sinks.dlq``, sent in the transaction of the ``contacts.accepted`` partition the event came from, then the
   events are acknowledged, all under the commit lock: a transaction holds a batch's results with its offsets or
   neither. A batch cut short (shutdown, crash) is not acknowledged and is delivered again; one whose partition
   was revoked meanwhile is left to the partition's new owner.

Why one agent for all sinks: agents of one app that read the same topic share its offsets, so a record's offset
is committed once every agent acknowledged it. With an agent per sink, the CRM's results of a record went into a
transaction whose offsets did not include the record yet (HubSpot had not acknowledged it): committed with the next
transaction, then written again after a restart (measured: 49 of 120 events had two CRM results after one SIGTERM).
The sinks of one batch therefore wait for each other; for a HubSpot that cannot hold the CRM back, run it in a
worker of its own (another ``LEADPIPE_APP_ID`` with ``LEADPIPE_SINK_AGENTS='["hubspot"]'``).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from pipeline import tracing
from pipeline.agents.app import LeadpipeApp, policy_for, topic_partitions
from pipeline.agents.faust_adapter import take_batches
from pipeline.agents.health import Pauses, worker_health
from pipeline.agents.metrics import WorkerMetrics, worker_metrics
from pipeline.agents.sender import Out, TransactionalSender
from pipeline.crypto.codec import RecordCodec
from pipeline.crypto.keystore import SqlKeyStore
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.kafka.producer import Outgoing
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
    OwnershipLostError,
    RecordResult,
    SinkBackpressureError,
    WriteOutcome,
    backoff_delay,
    check_complete,
    confirm_ownership,
    owning,
)
from pipeline.sinks.crm.sink import CrmSink
from pipeline.sinks.crm.writer import CrmWriter
from pipeline.sinks.hubspot.sink import HubSpotSink
from pipeline.sinks.ledger import DeliveryLedger
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


Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]


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


@dataclass(frozen=True, slots=True)
class Opening:
    """What opening one incoming record gave, whichever sink asks: the event, or why there is none."""

    incoming: Incoming
    record: AcceptedRecord | None
    tagged: TaggedEvent | None = None
    erased: bool = False
    """The subject's key was destroyed since the event was accepted."""
    error: str | None = None
    """Why the record is unreadable (not an ``AcceptedRecord``, or its sealed body does not open)."""


class BatchOpener:
    """Opens a batch's sealed records once for every sink of an agent.

    Each sink used to parse, confirm the keys of and decrypt the whole batch itself (30-80 ms per batch each in the
    speed-to-lead diagnosis), on the same worker's CPU. The sinks of a batch run in parallel threads: the first to ask
    opens it, the others wait for and share that opening (the last batch's is kept, by identity)."""

    def __init__(self, codec: RecordCodec, keystore: SqlKeyStore | None = None) -> None:
        self.codec = codec
        self.keystore = keystore
        self._lock = threading.Lock()
        self._last: tuple[Sequence[Incoming], list[Opening]] | None = None

    def open(self, batch: Sequence[Incoming]) -> list[Opening]:
        """Parse the batch, confirm its keys with one query (``preload``: a key destroyed by an erasure in another
        process opens nothing from this batch on), then open each record. Raises ``DBAPIError`` when the key store's
        database does not answer (nothing is kept: the next ask opens again)."""
        with self._lock:
            last = self._last
            if last is not None and last[0] is batch:
                return last[1]
            opened = self._open(batch)
            self._last = (batch, opened)
            return opened

    def _open(self, batch: Sequence[Incoming]) -> list[Opening]:
        out: list[Opening] = []
        parsed: list[tuple[Incoming, AcceptedRecord]] = []
        for incoming in batch:
            try:
                parsed.append((incoming, AcceptedRecord.model_validate_json(incoming.value)))
            except ValidationError as exc:
                out.append(Opening(incoming, None, error=f"not an AcceptedRecord: {exc.error_count()} errors"))
        if self.keystore is not None:
            self.keystore.preload(record.sealed.key_id for _, record in parsed)
        for incoming, record in parsed:
            try:
                out.append(Opening(incoming, record, self.codec.open_tagged(record)))
            except KeyDestroyedError:
                out.append(Opening(incoming, record, erased=True))
            except Exception as exc:  # tampered or corrupt ciphertext, a body that no longer validates
                out.append(Opening(incoming, record, error=f"cannot open the sealed body: {type(exc).__name__}"))
        return out


class SinkRunner:
    """Everything an agent does with one batch, without faust (so it can be exercised directly)."""

    def __init__(
        self,
        sink: BatchingSink,
        codec: RecordCodec,
        publish: Publish | None = None,
        *,
        source_topic: str = ACCEPTED_TOPIC,
        keystore: SqlKeyStore | None = None,
        max_pause_s: float = 60.0,
        backoff_base_s: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: WorkerMetrics | None = None,
        screen: SuppressionScreen | None = None,
        trace_names: tuple[str, str] | None = None,
        pauses: Pauses | None = None,
        opener: BatchOpener | None = None,
    ) -> None:
        """``trace_names``: the topic as the broker names it and the consumer group, for the traces' spans;
        ``pauses``: where a pause episode is recorded until the batch goes through (the worker's readiness);
        ``opener``: the agent's, shared by its sinks (default: one of this runner's own)."""
        self.sink = sink
        self.opener = opener or BatchOpener(codec, keystore)
        self.pauses = pauses
        self.trace_names = trace_names or (source_topic, "")
        self.screen = screen
        self.codec = codec
        self.publish = publish
        self.source_topic = source_topic
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
                await self._pause(exc.retry_after, exc.reason, _kind(exc))
            except Exception as exc:
                delay = backoff_delay(attempt, self.backoff_base_s, self.max_pause_s)
                attempt += 1
                log.exception("sink_setup_failed", sink=self.sink.name, error=type(exc).__name__, retry_in_s=delay)
                await self._sleep(delay)

    async def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        """Write one batch; returns (and has published) the results and dead letters."""
        messages = await self.handle(batch)
        if messages and self.publish is not None:
            await self.publish(messages)
        return messages

    async def handle(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        """Write one batch; returns the results and dead letters to publish (the agent commits them with the batch).

        The database being unreachable while records are opened (the key store) is a pause, never a crash: the
        same batch is opened again when it answers."""
        await self.start()
        started_ns = time.time_ns()
        attempt = 0
        while True:
            try:
                opened, messages = await asyncio.to_thread(self._open_all, batch)
                break
            except DBAPIError as exc:
                await self._pause(
                    backoff_delay(attempt, self.backoff_base_s, self.max_pause_s),
                    f"key store: {type(exc.orig).__name__}",
                    "database",
                )
                attempt += 1
        unique: dict[uuid.UUID, _Opened] = {}
        for item in opened:
            unique.setdefault(item.tagged.event.event_id, item)
        try:
            results = await self._write_until_final(list(unique.values()))
        except OwnershipLostError:
            if self.pauses is not None:
                self.pauses.resumed(self._part)
            log.info("sink_batch_left_to_new_owner", sink=self.sink.name, records=len(batch))
            return []
        if any(r.outcome is WriteOutcome.FAILED for r in results):
            messages += await asyncio.to_thread(self._dead_letters, unique, results)
        messages += [self._result_message(unique[r.event_id], r) for r in results]
        if tracing.enabled():
            self._trace(unique, results, started_ns)
        if self.metrics is not None:
            self.metrics.observe_sink(
                self.sink.name,
                (m.value.status.value for m in messages if isinstance(m.value, SinkResult)),
                (m.value.reason for m in messages if isinstance(m.value, DeadLetter)),
            )
        if self.pauses is not None:
            self.pauses.resumed(self._part)
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

    def _open_all(self, batch: Sequence[Incoming]) -> tuple[list[_Opened], list[Outgoing]]:
        """The batch opened (``BatchOpener``), with this sink's results for the erased and dead letters for the
        unreadable."""
        opened: list[_Opened] = []
        messages: list[Outgoing] = []
        now = datetime.now(UTC)
        for item in self.opener.open(batch):
            incoming, record = item.incoming, item.record
            if item.tagged is not None and record is not None:
                opened.append(_Opened(incoming, record, item.tagged))
            elif item.erased and record is not None:
                log.info("sink_subject_erased", sink=self.sink.name, event_id=str(record.event_id))
                result = SinkResult(
                    event_id=record.event_id,
                    subject_key=record.subject_key,
                    sink=self.sink.name,
                    status=SinkStatus.NOT_APPLICABLE,
                    at=now,
                    detail="subject_erased: the subject's data key was destroyed after this event was accepted",
                )
                messages.append(Outgoing(SINK_RESULTS_TOPIC, record.subject_key, result, partition=incoming.partition))
            else:
                messages.append(self._unreadable(incoming, record, item.error or "unreadable"))
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
                await self._pause(exc.retry_after, exc.reason, _kind(exc))
                continue
            except OwnershipLostError:
                raise
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
        confirm_ownership()
        if self.screen is None:
            return self.sink.write(pending)
        keep, skipped = self.screen(pending)
        return skipped + (self.sink.write(keep) if keep else [])

    @property
    def _part(self) -> str:
        return f"sink:{self.sink.name}"

    async def _pause(self, seconds: float, reason: str, kind: str = "sink") -> None:
        """Wait ``seconds`` (capped); ``kind``: ``database`` (the database did not answer) or ``sink``."""
        delay = min(max(seconds, 0.05), self.max_pause_s)
        if self.pauses is not None:
            self.pauses.paused(self._part, kind)
        if self.metrics is not None:
            self.metrics.sink_pauses.labels(self.sink.name).inc()
        log.warning("sink_paused", sink=self.sink.name, pause_s=round(delay, 3), reason=reason)
        await self._sleep(delay)

    def _result_message(self, item: _Opened, result: RecordResult) -> Outgoing:
        record = item.record
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
        return Outgoing(SINK_RESULTS_TOPIC, record.subject_key, value, partition=item.incoming.partition)

    def _dead_letters(self, items: dict[uuid.UUID, _Opened], results: Sequence[RecordResult]) -> list[Outgoing]:
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

    def _unreadable(self, incoming: Incoming, record: AcceptedRecord | None, error: str) -> Outgoing:
        log.warning("sink_unreadable_record", sink=self.sink.name, partition=incoming.partition, offset=incoming.offset)
        return self._dead_letter(incoming, record, "unreadable_record", error)

    def _dead_letter(self, incoming: Incoming, record: AcceptedRecord | None, reason: str, error: str) -> Outgoing:
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
        return Outgoing(SINKS_DLQ_TOPIC, subject_key, dead, partition=incoming.partition)


def _kind(exc: SinkBackpressureError) -> str:
    """``database`` when the pause comes from the database not answering (key store, CRM, rights history)."""
    return "database" if isinstance(exc.__cause__, DBAPIError) else "sink"


def build_sink(name: str, runtime: Runtime) -> BatchingSink:
    """The sink called ``name`` wired from the runtime (CRM on the runtime's engine; HubSpot or its dry run)."""
    if name == "crm":
        return CrmSink(CrmWriter(runtime.engine))
    if name == "hubspot":
        return HubSpotSink.from_settings(
            runtime.settings,
            guard=RightsHistory(runtime.engine),
            ledger=DeliveryLedger(runtime.engine, HubSpotSink.name),
        )
    raise ValueError(f"unknown sink {name!r} (known: crm, hubspot)")


class SinkCommitter:
    """Publishes a batch's results in the transactions of the partitions its events came from, then acknowledges
    the events, under the commit lock (see the module's docstring)."""

    def __init__(self, app: LeadpipeApp, runtime: Runtime, source_name: str) -> None:
        self.app = app
        self.source_name = source_name
        self.sender = TransactionalSender(app, runtime.settings, topic_partitions(runtime.settings))

    async def commit(self, stream: Any, events: Sequence[Any], messages: Sequence[Outgoing]) -> int:
        """Returns how many events were acknowledged (the others are delivered again, to this worker or another)."""
        outs: dict[int | None, list[Out]] = {}
        for message in messages:
            key = message.key.encode() if message.key else None
            outs.setdefault(message.partition, []).append(Out(message.topic, key, message.payload))
        by_partition: dict[int, list[Any]] = {}
        for event in events:
            by_partition.setdefault(event.message.partition, []).append(event)
        consumer = self.app.batching_consumer

        async def deliver(partition: int, group: list[Any]) -> int:
            tp = group[0].message.tp
            if tp not in consumer.assignment() or not all(consumer.current(e.message.generation_id) for e in group):
                log.info("sink_batch_left_to_new_owner", partition=partition, records=len(group))
                return 0
            if not await self.sender.deliver(self.source_name, partition, outs.get(partition, [])):
                return 0  # revoked or fenced while sending: delivered again, here or to the new owner
            for event in group:
                await stream.ack(event)
            return len(group)

        async with consumer.batch_lock:  # each partition its own transaction: their broker round trips overlap
            outcomes = await asyncio.gather(
                *(deliver(p, group) for p, group in by_partition.items()), return_exceptions=True
            )  # every delivery ends (and acknowledges) under the lock, even when one of them failed
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return sum(cast(list[int], outcomes))


def register(app: LeadpipeApp, runtime: Runtime) -> None:
    """Add the sink agent for every configured sink (``REGISTRARS`` entry ``pipeline.agents.sinks:register``)."""
    settings = runtime.settings
    metrics = worker_metrics(app)
    pauses = worker_health(app, settings, runtime.engine).pauses
    screen = SuppressionScreen(RightsHistory(runtime.engine), policy_for(settings).policy)
    opener = BatchOpener(runtime.codec, runtime.keystore)
    runners = [
        SinkRunner(
            build_sink(name, runtime),
            runtime.codec,
            source_topic=ACCEPTED_TOPIC,
            keystore=runtime.keystore,
            max_pause_s=settings.sink_retry_max_s,
            metrics=metrics,
            screen=screen,
            trace_names=(settings.topic(ACCEPTED_TOPIC), settings.topic(settings.app_id)),
            pauses=pauses,
            opener=opener,
        )
        for name in settings.sink_agents
    ]
    source_name = settings.topic(ACCEPTED_TOPIC)
    topic = app.topic(source_name, key_serializer="raw", value_serializer="raw")
    committer = SinkCommitter(app, runtime, source_name)

    async def consume(stream: Any) -> None:
        for runner in runners:
            await runner.start()
        async for events in take_batches(stream, settings.batch_size, settings.batch_timeout_s, settings.batch_quiet_s):
            batch = [
                Incoming(e.value, e.message.partition, e.message.offset, tracing.header_value(e.message.headers))
                for e in events
            ]
            consumer = app.batching_consumer
            with owning(functools.partial(consumer.confirm_ownership, events[0].message.generation_id)):
                handled = await asyncio.gather(*(runner.handle(batch) for runner in runners))
            await committer.commit(stream, events, [m for messages in handled for m in messages])

    app.agent(topic, name=f"{settings.app_id}.sinks")(consume)
