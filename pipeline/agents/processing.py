"""The processing agent: ``contacts.normalized`` -> chain -> accepted / quarantine / drops / dead letters, audited.

Two layers. ``ProcessingStep`` turns a batch of consumed records into the records to produce and applies the state
updates the chain returns; it knows no faust, so it is exercised directly in tests. ``register`` is the faust
glue: a batch agent (``pipeline.agents.batching``: one fetched batch of one partition at a time, never split by a
transaction commit), one ``ProcessingStep.process`` call, and the sends through ``TransactionalSender`` into that
partition's transaction. The agent decides no policy: every decision comes out of ``pipeline.processors.run_chain``.

Nothing is dropped silently: a record that cannot be parsed or opened, or a rule that raised, becomes a
``DeadLetter`` on ``contacts.dlq`` (stage, reason, error, the record sealed); a record whose key was destroyed is
a counted drop (its subject was erased). An exception while handling one record never stops the stream.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from opentelemetry.trace import Span
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from pipeline import tracing
from pipeline.agents.app import LeadpipeApp, policy_for, topic_partitions
from pipeline.agents.batching import BatchContext, BatchHandler, Fetched, RetryBatch
from pipeline.agents.metrics import WorkerMetrics, worker_metrics
from pipeline.agents.sender import Out, TransactionalSender, fatal
from pipeline.agents.spam import AgentSpam
from pipeline.agents.tables import ProcessingTables
from pipeline.agents.views import ProcessingState
from pipeline.crypto.codec import RecordCodec
from pipeline.crypto.keystore import SqlKeyStore
from pipeline.crypto.sealing import KeyDestroyedError, subject_scope
from pipeline.logging import get_logger, scrub_text
from pipeline.models.contact import ContactEvent
from pipeline.models.identity import Principal, system_principal
from pipeline.models.processing import DropReason, DropRecord
from pipeline.models.records import AcceptedRecord, ContactRecord, DeadLetter, QuarantineRecord, Sealed
from pipeline.models.rights import AuditRecord, RightKind, SuppressionRecord
from pipeline.models.spam import ClassifierVerdict, EngineResult
from pipeline.models.tagged import SpamVerdict, tags_json
from pipeline.normalize import subject_key
from pipeline.processors import (
    ChainContext,
    ChainResult,
    CompiledPolicy,
    Dropped,
    Failed,
    Passed,
    Quarantined,
    run_chain,
)
from pipeline.processors import rates as rate_windows
from pipeline.processors.suppression import with_linked
from pipeline.rights.commands import build_command
from pipeline.runtime import Runtime
from pipeline.sinks.base import backoff_delay
from pipeline.topics import (
    ACCEPTED_TOPIC,
    AUDIT_TOPIC,
    DROPS_TOPIC,
    NORMALIZED_TOPIC,
    PROCESSING_DLQ_TOPIC,
    QUARANTINE_TOPIC,
    RATE_WINDOWS_TOPIC,
    RETENTION_CLOCK_TOPIC,
    RIGHTS_COMMANDS_TOPIC,
)

log = get_logger(__name__)

RECORD_CONTENT_TYPE = "application/vnd.leadpipe.contact-record+json"
ACTOR = "processing"

#: Erasure request ids of children's subjects are derived from the event that revealed the age.
_CHILD_ERASURE_NAMESPACE = uuid.UUID("5b0f3a8e-2c47-4d8e-8f0e-6a1d3c9b7e22")
#: Who issues the erasures the children's rule asks for: the product itself, named like a person would be.
CHILDREN_ACTOR = system_principal("children-rule")
#: Longest pause between attempts at a batch while the key store's database is unreachable.
STORE_RETRY_MAX_S = 10.0
#: Events per part of a batch whose outputs are handed to the producer together: the broker takes one part while the
#: chain works on the next, so a batch waits at its end for its last part's acknowledgement, not for all of it.
FINISH_PART = 128


@dataclass(frozen=True, slots=True)
class Consumed:
    """One consumed record, as the step needs it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    trace: bytes | None = None
    """The ``traceparent`` of this record's processing span; every record it leads to carries it on."""


class Opened(NamedTuple):
    """One consumed record after parsing and opening: an event for the chain, or (``done``) its outputs already.

    A named tuple: immutable, and a third of a frozen dataclass's cost to build (one per record)."""

    item: Consumed
    record: ContactRecord | None
    event: ContactEvent | None
    done: tuple[list[Out], str] | None = None


@dataclass
class BatchResult:
    """Records to produce, grouped by the input partition whose transaction they belong to, and counters."""

    outgoing: dict[int, list[Out]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    #: (channel, outcome) -> events, of the events the chain ran on (the console's spam share per channel)
    by_channel: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(
        self, partition: int, records: list[Out], outcome: str, trace: bytes | None = None, channel: str | None = None
    ) -> None:
        """``records`` came of one input record; ``trace`` (its span's ``traceparent``) goes on with each."""
        if trace is not None:
            records = [replace(record, trace=trace) for record in records]
        self.outgoing.setdefault(partition, []).extend(records)
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if channel is not None:
            self.by_channel[(channel, outcome)] = self.by_channel.get((channel, outcome), 0) + 1

    def merge(self, other: BatchResult) -> None:
        """Add ``other``'s records and counters (the parts of one batch, in order)."""
        for partition, records in other.outgoing.items():
            self.outgoing.setdefault(partition, []).extend(records)
        for name, n in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        for key, n in other.by_channel.items():
            self.by_channel[key] = self.by_channel.get(key, 0) + n


def _json(model: Any) -> bytes:
    data: bytes = model.__pydantic_serializer__.to_json(model)
    return data


class ProcessingStep:
    """One batch of ``contacts.normalized`` records through the chain; no faust, no network besides the key store."""

    def __init__(
        self,
        *,
        policy: CompiledPolicy,
        codec: RecordCodec,
        pepper: bytes,
        keystore: SqlKeyStore | None = None,
        source_topic: str = NORMALIZED_TOPIC,
    ) -> None:
        self.policy = policy
        self.codec = codec
        self.pepper = pepper
        self.keystore = keystore
        self.source_topic = source_topic

    @classmethod
    def from_runtime(cls, runtime: Runtime, policy: CompiledPolicy) -> ProcessingStep:
        return cls(policy=policy, codec=runtime.codec, pepper=runtime.pepper, keystore=runtime.keystore)

    # ---- the batch ------------------------------------------------------------------------------------------------

    def process(self, batch: Sequence[Consumed], state: ProcessingState, now: datetime | None = None) -> BatchResult:
        """Handle every record of the batch; applies table updates to ``state`` as it goes (later records see them).

        No spam engine here: ``open`` then ``finish`` with the engine's verdicts is what the agent does."""
        now = now or datetime.now(UTC)
        return self.finish(self.open(batch, now), state, now)

    def open(self, batch: Sequence[Consumed], now: datetime) -> list[Opened]:
        """Parse and open every record: each is an event for the chain, or already its outputs (a dead letter, a
        drop for a destroyed key)."""
        parsed: list[tuple[Consumed, ContactRecord | None, str | None]] = []
        for item in batch:
            record, error = self._parse(item)
            parsed.append((item, record, error))
        if self.keystore is not None:
            self.keystore.preload(r.sealed.key_id for _, r, _ in parsed if r is not None)
        opened: list[Opened] = []
        for item, record, error in parsed:
            try:
                if record is None:
                    letter = self.dead_letter(
                        item, None, stage="parse", reason="invalid_record", error=error or "unreadable", now=now
                    )
                    opened.append(Opened(item, None, None, ([letter], "dead_letter")))
                    continue
                event, done = self._open(item, record, now)
                opened.append(Opened(item, record, event, done))
            except DBAPIError:
                raise  # the database, not the event: the whole batch is done again (``RetryBatch``)
            except Exception as exc:  # a bug in the step itself: still the event's own dead letter, never a loss
                opened.append(Opened(item, record, None, ([self._internal(item, record, exc, now)], "dead_letter")))
        return opened

    def finish(
        self,
        opened: Sequence[Opened],
        state: ProcessingState,
        now: datetime,
        engine: Mapping[uuid.UUID, EngineResult] | None = None,
        classifier: Mapping[uuid.UUID, ClassifierVerdict] | None = None,
    ) -> BatchResult:
        """The chain for every opened event, with the spam engine's and the classifier's verdicts (event id ->)."""
        result = BatchResult()
        signals = (engine or {}, classifier or {})
        unsuppressed = self._context(state, now, None, None, signals)  # what every unsuppressed subject reads
        for each in opened:
            item, record, event = each.item, each.record, each.event
            try:
                if each.done is not None:
                    result.add(item.partition, *each.done, item.trace)
                    continue
                if record is None or event is None:
                    raise ValueError("an opened record with neither an event nor outputs")
                suppression = self._suppression_of(event, state)
                ctx = unsuppressed if suppression is None else self._context(state, now, suppression, None, signals)
                chain = run_chain(event, ctx)
                outs = self.route(item, record, event, chain, now, raw=item.value)
                outs.extend(self.apply_updates(chain, state))
                # ``_value_``: the member's value without the ``value`` property's descriptor call (~0.5 us an event)
                result.add(item.partition, outs, chain.outcome.label, item.trace, record.channel._value_)
            except DBAPIError:
                raise  # the database, not the event: the whole batch is done again (``RetryBatch``)
            except Exception as exc:  # a bug in the step itself: still the event's own dead letter, never a loss
                result.add(item.partition, [self._internal(item, record, exc, now)], "dead_letter", item.trace)
        return result

    def _internal(self, item: Consumed, record: ContactRecord | None, exc: Exception, now: datetime) -> Out:
        log.exception("processing_internal_error", partition=item.partition, offset=item.offset)
        text = scrub_text(f"{type(exc).__name__}: {exc}")
        return self.dead_letter(item, record, stage="internal", reason="internal_error", error=text, now=now)

    def _parse(self, item: Consumed) -> tuple[ContactRecord | None, str | None]:
        if item.value is None:
            return None, "empty record (tombstone) on an event topic"
        try:
            return ContactRecord.model_validate_json(item.value), None
        except ValidationError as exc:
            fields = "; ".join(".".join(str(p) for p in e["loc"]) or "record" for e in exc.errors()[:10])
            return None, f"not a ContactRecord: {exc.error_count()} error(s) at {fields}"

    def _open(
        self, item: Consumed, record: ContactRecord, now: datetime
    ) -> tuple[ContactEvent | None, tuple[list[Out], str] | None]:
        if record.sealed.key_id.rpartition("#")[0] != subject_scope(record.subject_key):
            error = "the sealed body belongs to another key than the record's subject key"
            letter = self.dead_letter(item, record, stage="open", reason="subject_mismatch", error=error, now=now)
            return None, ([letter], "dead_letter")
        try:
            return self.codec.open_contact(record), None
        except KeyDestroyedError:
            return None, (self.drop(record, DropReason.KEY_DESTROYED, "open", None, now), "dropped")
        except DBAPIError:
            raise  # the key store is unreachable: not this record's fault
        except Exception as exc:
            error = scrub_text(f"cannot open the sealed body: {type(exc).__name__}: {exc}")
            letter = self.dead_letter(item, record, stage="open", reason="open_failed", error=error, now=now)
            return None, ([letter], "dead_letter")

    def context(
        self, event: ContactEvent, state: ProcessingState, now: datetime, review: SpamVerdict | None = None
    ) -> ChainContext:
        """What the chain reads for ``event``: the policy and this batch's table state (``review``: a release)."""
        return self._context(state, now, self._suppression_of(event, state), review)

    def _suppression_of(self, event: ContactEvent, state: ProcessingState) -> SuppressionRecord | None:
        """The subject's suppression state, with what the person asked under the key their phone number alone gave
        (a caller or a messenger contact objected, restricted or withdrew before their e-mail was known: policy
        9.4, 9.6 and 9.8 hold for the person, ``with_linked``). Only an event naming both pays the extra key."""
        table = state.suppression
        own = table.get(event.subject_key)
        person = event.person
        if not table or person.email is None or person.phone is None:
            return own
        linked = table.get(subject_key(self.pepper, phone=person.phone))
        return own if linked is None else with_linked(own, linked, event.subject_key)

    def _context(
        self,
        state: ProcessingState,
        now: datetime,
        suppression: SuppressionRecord | None,
        review: SpamVerdict | None = None,
        signals: tuple[Mapping[uuid.UUID, EngineResult], Mapping[uuid.UUID, ClassifierVerdict]] = ({}, {}),
    ) -> ChainContext:
        """``context`` with the subject's suppression record given. Only that record differs between the events of
        a batch, so ``process`` builds the context of the unsuppressed once per batch (a frozen dataclass of eight
        fields costs ~2 us to build, measured, ~1% of the step). ``signals``: the batch's engine and classifier
        verdicts."""
        return ChainContext(
            engine=signals[0],
            classifier=signals[1],
            policy=self.policy,
            now=now,
            pepper=self.pepper,
            suppression=suppression,
            anchors=state.anchors,
            rates=state.rates,
            blocklist=state.blocklist,
            review=review,
        )

    # ---- outputs --------------------------------------------------------------------------------------------------

    def route(
        self,
        item: Consumed,
        record: ContactRecord,
        event: ContactEvent,
        chain: ChainResult,
        now: datetime,
        *,
        raw: bytes | None = None,
    ) -> list[Out]:
        """The records one chain outcome produces. The sealed body is passed on as it came, never re-sealed.

        ``raw`` is the consumed ``ContactRecord`` JSON: an accepted record is that object plus ``tags``, written by
        appending the field (it parsed as a ContactRecord, which forbids extra fields, so no ``tags`` is there yet)
        instead of serialising the ~1 KB of sealed body again.
        """
        outcome = chain.outcome
        key = record.subject_key.encode()
        if isinstance(outcome, Passed):
            tags = outcome.tagged.tags
            if raw is not None:
                return [Out(ACCEPTED_TOPIC, key, _with_field(raw, b"tags", tags_json(tags)))]
            accepted = AcceptedRecord.model_construct(**_header(record), sealed=record.sealed, tags=tags)
            return [Out(ACCEPTED_TOPIC, key, _json(accepted))]
        if isinstance(outcome, Quarantined):
            tags = outcome.tagged.tags
            quarantined = QuarantineRecord.model_construct(
                **_header(record), sealed=record.sealed, tags=tags, quarantined_at=now
            )
            audit = self.audit(
                "quarantined",
                now,
                event_id=record.event_id,
                subject_key=record.subject_key,
                detail=_spam_detail(tags.spam, tags.policy_version),
            )
            return [Out(QUARANTINE_TOPIC, key, _json(quarantined)), audit]
        if isinstance(outcome, Dropped):
            return self.drop(record, outcome.reason, outcome.stage, outcome.evidence, now)
        if isinstance(outcome, Failed):
            return [
                self.dead_letter(item, record, stage=outcome.stage, reason=outcome.reason, error=outcome.error, now=now)
            ]
        raise TypeError(f"unknown outcome {type(outcome).__name__}")

    def apply_updates(self, chain: ChainResult, state: ProcessingState) -> list[Out]:
        """Write the chain's state updates into the tables and return their changelog records.

        A rate window that holds a single submission is kept in memory but not written to the changelog: after a
        restart that key counts one submission less, which no rate limit above one can notice, while writing it
        would double the records produced for every ordinary event (most IPs and subjects are seen once).
        """
        outs: list[Out] = []
        rates_data = state.rates_data
        for key, window in chain.rate_updates.items():
            raw_key, value = key.encode(), rate_windows.encode(window)
            rates_data[raw_key] = value
            if (window[0][1] if len(window) == 1 else sum(count for _, count in window)) > 1:
                outs.append(Out(RATE_WINDOWS_TOPIC, raw_key, value))
        if chain.anchor_update is not None:
            key, anchor = chain.anchor_update
            raw_key, value = key.encode(), anchor.isoformat().encode()
            state.anchors_data[raw_key] = value
            outs.append(Out(RETENTION_CLOCK_TOPIC, raw_key, value))
        return outs

    def drop(
        self, record: ContactRecord, reason: DropReason, stage: str, evidence: str | None, now: datetime
    ) -> list[Out]:
        drop = DropRecord(
            event_id=record.event_id,
            reason=reason,
            stage=stage,
            channel=record.channel,
            policy_version=self.policy.policy.version,
            dropped_at=now,
        )
        detail: dict[str, Any] = {"reason": reason.value, "stage": stage}
        if evidence:
            detail["evidence"] = evidence
        # No subject key on a drop's audit line: for a child, only a counter and the reason may be kept (section 12).
        # A restricted subject's new contact is the exception: their data is kept, not processed (9.4), and the DPO
        # must learn that they wrote (the rights worker files this line under their restriction).
        subject_key = None
        if reason is DropReason.SUBJECT_RESTRICTED:
            subject_key = record.subject_key
            detail.update(channel=record.channel.value, received_at=record.received_at.isoformat())
        audit = self.audit("dropped", now, event_id=record.event_id, subject_key=subject_key, detail=detail)
        outs = [Out(DROPS_TOPIC, reason.value.encode(), _json(drop)), audit]
        if reason is DropReason.CHILD and self.policy.policy.children.erase_subject:
            outs.append(self.child_erasure(record, now))
        return outs

    def child_erasure(self, record: ContactRecord, now: datetime) -> Out:
        """An erasure of what is already held on a child's subject (section 12), issued like the DPO's.

        Its id is derived from the event, so a batch redone after a crash issues the same request again, which the
        rights worker carries out once. The erasure also destroys the keys of the dropped event's sealed copies.
        """
        command = build_command(
            RightKind.ERASURE,
            record.subject_key,
            issued_by=CHILDREN_ACTOR,
            now=now,
            request_id=uuid.uuid5(_CHILD_ERASURE_NAMESPACE, str(record.event_id)),
        )
        return Out(RIGHTS_COMMANDS_TOPIC, record.subject_key.encode(), _json(command))

    def dead_letter(
        self,
        item: Consumed,
        record: ContactRecord | None,
        *,
        stage: str,
        reason: str,
        error: str,
        now: datetime,
        source_topic: str | None = None,
        content_type: str = RECORD_CONTENT_TYPE,
    ) -> Out:
        """The event's dead letter: stage, reason, error and the consumed bytes sealed with the subject's key.

        ``source_topic``: where ``item`` was consumed from when that is not this step's topic (the review agent)."""
        subject_key = record.subject_key if record else None
        value = item.value

        def seal(dead_letter_id: uuid.UUID) -> Sealed | None:
            if value is None:
                return None
            return self.codec.seal_payload(value, subject_key=subject_key, record_id=dead_letter_id, own_key=True)

        dead = DeadLetter.build(
            stage=f"process:{stage}",
            reason=reason,
            error=error,
            failed_at=now,
            seal=seal,
            channel=record.channel if record else None,
            event_id=record.event_id if record else None,
            subject_key=subject_key,
            source_topic=source_topic or self.source_topic,
            source_partition=item.partition,
            source_offset=item.offset,
            content_type=content_type,
        )
        log.warning(
            "processing_dead_letter",
            stage=dead.stage,
            reason=reason,
            event_id=str(dead.event_id) if dead.event_id else None,
            partition=item.partition,
            offset=item.offset,
        )
        return Out(PROCESSING_DLQ_TOPIC, subject_key.encode() if subject_key else None, _json(dead))

    def audit(
        self,
        action: str,
        now: datetime,
        *,
        event_id: uuid.UUID | None,
        subject_key: str | None = None,
        detail: Mapping[str, Any],
        actor: str = ACTOR,
        principal: Principal | None = None,
    ) -> Out:
        audit = AuditRecord.new(
            actor, action, at=now, subject_key=subject_key, event_id=event_id, detail=detail, principal=principal
        )
        return Out(AUDIT_TOPIC, subject_key.encode() if subject_key else None, _json(audit))


def _with_field(raw: bytes, name: bytes, value: bytes) -> bytes:
    """A JSON object's bytes with one more field appended."""
    body = raw.rstrip()
    if not body.endswith(b"}"):
        raise ValueError("not a JSON object")
    return b'%s,"%s":%s}' % (body[:-1], name, value)


def _header(record: ContactRecord) -> dict[str, Any]:
    return {
        "schema_version": record.schema_version,
        "event_id": record.event_id,
        "channel": record.channel,
        "occurred_at": record.occurred_at,
        "received_at": record.received_at,
        "subject_key": record.subject_key,
    }


def _spam_detail(verdict: SpamVerdict, policy_version: str) -> dict[str, Any]:
    """The reasons of a spam decision without personal data: codes, weights and the policy's own words."""
    return {
        "score": verdict.score,
        "threshold": verdict.threshold,
        "reasons": [{"code": r.code, "weight": r.weight, "detail": r.detail} for r in verdict.reasons],
        "policy_version": policy_version,
    }


# ---- faust glue -------------------------------------------------------------------------------------------------


@dataclass
class SharedProcessing:
    """What the processing and review agents of one app share: the step, the tables, the sender and the spam
    engine's side (None: ``LEADPIPE_SPAM_ENGINE_ENABLED=false``, the policy's rules alone)."""

    step: ProcessingStep
    tables: ProcessingTables
    sender: TransactionalSender
    partitions: dict[str, int]
    metrics: WorkerMetrics
    group: str = ""
    """The app's consumer group, for the traces' spans."""
    spam: AgentSpam | None = None

    async def process(
        self, batch: Sequence[Consumed], state: ProcessingState, now: datetime | None = None
    ) -> AsyncIterator[BatchResult]:
        """The step with the spam engine's and the classifier's verdicts of the batch (asked off the event loop), in
        parts of ``FINISH_PART`` events: the handler hands each part's outputs over while the next is worked out.

        Every record is parsed and opened first (the key store's database is read there, so that the database being
        unreachable is met before anything of the batch was sent: ``RetryBatch``)."""
        step = self.step
        opened = step.open(batch, now or datetime.now(UTC))
        events = [o.event for o in opened if o.event is not None]
        engine, classifier = (
            await self.spam.verdicts(batch[0].partition, events) if self.spam is not None and events else (None, None)
        )
        now = now or datetime.now(UTC)
        for start in range(0, len(opened), FINISH_PART):
            yield step.finish(opened[start : start + FINISH_PART], state, now, engine, classifier)


def shared_processing(app: LeadpipeApp, runtime: Runtime) -> SharedProcessing:
    """The app's processing state, declared on first use (faust tables must be declared once per app)."""
    shared: SharedProcessing | None = app.shared.get("processing")
    if shared is None:
        settings = runtime.settings
        partitions = topic_partitions(settings)
        policy = policy_for(settings)
        metrics = worker_metrics(app)
        spam = None
        if settings.spam_engine_enabled:
            spam = AgentSpam.from_settings(settings, runtime.pepper, runtime.codec, policy.policy.spam, metrics)
        else:
            log.warning("spam_engine_off", detail="LEADPIPE_SPAM_ENGINE_ENABLED=false: the policy's rules alone")
        shared = SharedProcessing(
            step=ProcessingStep.from_runtime(runtime, policy),
            tables=ProcessingTables.declare(app, settings, partitions),
            sender=TransactionalSender(app, settings, partitions),
            partitions=partitions,
            metrics=metrics,
            spam=spam,
            group=settings.topic(settings.app_id),
        )
        app.shared["processing"] = shared
    return shared


def register(
    app: LeadpipeApp,
    runtime: Runtime,
    process: BatchProcess | None = None,
) -> None:
    """Add the processing batch agent and its tables to the faust app (``REGISTRARS`` entry).

    ``process`` replaces the step (``bench/_passthrough_agent.py`` measures the harness alone with it).
    """
    settings = runtime.settings
    shared = shared_processing(app, runtime)
    source_name = settings.topic(NORMALIZED_TOPIC)
    source = app.topic(
        source_name, key_serializer="raw", value_serializer="raw", partitions=shared.partitions[NORMALIZED_TOPIC]
    )
    app.batch_agent(source, batch_handler(process or shared.process, shared, source_name))


#: A batch step: plain (the review agent, benches), a coroutine, or the batch's results in parts (the processing
#: agent: it asks the spam engine, and its parts are handed over one by one).
BatchProcess = Callable[
    [Sequence[Consumed], ProcessingState], BatchResult | Awaitable[BatchResult] | AsyncIterator[BatchResult]
]


async def parts_of(
    outcome: BatchResult | Awaitable[BatchResult] | AsyncIterator[BatchResult],
) -> AsyncIterator[BatchResult]:
    """A step's outcome as parts: one, or each its async iterator yields."""
    if isinstance(outcome, BatchResult):
        yield outcome
    elif inspect.isawaitable(outcome):
        yield await outcome
    else:
        async for part in outcome:
            yield part


def batch_handler(
    process: BatchProcess,
    shared: SharedProcessing,
    source_name: str,
    agent: str = "processing",
) -> BatchHandler:
    """A batch agent handler: process, hand every output to the partition's transaction, wait, acknowledge.

    Delivery is awaited before the records are acknowledged (under at_least_once that is what makes the
    acknowledgement safe). A producer failure on a partition still assigned ends the process at once (``fatal``):
    a hard exit commits nothing, and the restarted worker redoes the batch from the last committed offset.
    If the partition was revoked meanwhile, or its producer fenced, nothing is acknowledged: the batch is done again
    from the committed offset. The database unreachable in either phase (``open``, ``finish``) is a ``RetryBatch``.
    ``agent`` names the handler in the metrics (``processing`` or ``review``).
    """

    failures: dict[int, int] = {}

    async def handle(ctx: BatchContext, messages: Sequence[Fetched]) -> None:
        spans = [process_span(source_name, m, shared.group, agent) for m in messages] if tracing.enabled() else []
        if spans:
            batch = [
                Consumed(m.partition, m.offset, m.key, m.value, tracing.traceparent(s))
                for m, s in zip(messages, spans, strict=True)
            ]
        else:
            batch = [Consumed(m.partition, m.offset, m.key, m.value) for m in messages]
        started = time.perf_counter()
        partition = ctx.tp.partition
        delivery = shared.sender.delivery(source_name, partition)
        result = BatchResult()
        try:
            async for part in parts_of(process(batch, shared.tables.state())):
                result.merge(part)
                await delivery.send(part.outgoing.get(partition, []))
        except Exception as exc:
            if delivery.sent:  # a part is in the transaction already: only an exit gives it back (nothing commits)
                fatal("processing_failed_mid_batch", exc, topic=source_name, partition=partition)
            if not isinstance(exc, DBAPIError):
                raise
            # the key store's database is unreachable: pause and redo, never crash or drop
            for span in spans:
                tracing.end(span, failed="database_unavailable")
            attempt = failures[ctx.tp.partition] = failures.get(ctx.tp.partition, 0) + 1
            delay = backoff_delay(attempt, 0.5, STORE_RETRY_MAX_S)
            log.warning("processing_paused", agent=agent, reason=type(exc.orig).__name__, retry_in_s=round(delay, 2))
            raise RetryBatch(delay, f"key store: {type(exc.orig).__name__}") from exc
        failures.pop(partition, None)
        records = result.outgoing.get(partition, [])
        shared.metrics.observe_batch(
            agent, result.counts, drop_reasons(records), time.perf_counter() - started, result.by_channel
        )
        if not await delivery.settle():
            for span in spans:
                tracing.end(span, failed="not_acknowledged")
            return  # revoked or fenced while sending: not acknowledged, done again from the committed offset
        for span in spans:
            tracing.end(span)
        ctx.ack(messages)
        log.debug(
            "batch_done",
            topic=source_name,
            partition=ctx.tp.partition,
            first=batch[0].offset,
            last=batch[-1].offset,
            **result.counts,
        )

    return handle


def process_span(topic: str, message: Fetched, group: str, agent: str) -> Span:
    """One record's ``process`` span, child of the trace its ``traceparent`` header carries (``pipeline.tracing``)."""
    parent = tracing.header_value(message.headers)
    return tracing.start_process(
        topic, parent, partition=message.partition, offset=message.offset, group=group, stage=agent
    )


def drop_reasons(records: Sequence[Out]) -> list[str]:
    """The reason of each drop among a batch's outputs: a drop record is keyed by its reason (``drop``)."""
    return [r.key.decode() for r in records if r.topic == DROPS_TOPIC and r.key]
