"""The one way in: adapter, sealing and confirmed publishing, shared by the HTTP API, the importer and the SDK.

For every accepted event two records go out, keyed by the subject key: the raw payload (``contacts.raw.<channel>``,
for audit and re-normalisation) and the normalised event (``contacts.normalized``), both sealed with the subject's
data key. A payload that cannot be normalised becomes one ``DeadLetter`` on ``contacts.dlq.ingest`` with the reason,
every bad field and the payload sealed. Nothing is reported accepted before the broker confirmed it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pipeline import normalize
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.logging import get_logger
from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.models.records import DeadLetter
from pipeline.runtime import Runtime
from pipeline.sources import CONTENT_TYPES, Problem, SourceContext, SourceError, parse
from pipeline.sources.base import decode_text, parse_content_type

log = get_logger(__name__)

NORMALIZED_TOPIC = "contacts.normalized"
DEAD_LETTER_TOPIC = "contacts.dlq.ingest"


def raw_topic(channel: Channel) -> str:
    return f"contacts.raw.{channel.value}"


class UnsupportedContentType(ValueError):
    """The channel's adapter does not read this media type (HTTP 415); nothing was dead-lettered."""

    def __init__(self, channel: Channel, content_type: str) -> None:
        self.channel = channel
        self.content_type = content_type
        self.accepted = sorted(CONTENT_TYPES[channel])
        super().__init__(f"{channel.value} does not read {content_type}; use one of: {', '.join(self.accepted)}")


@dataclass(frozen=True)
class Submission:
    """One payload from one source, exactly as received."""

    source_id: str
    channel: Channel
    raw: bytes
    content_type: str


@dataclass(frozen=True)
class SubmitResult:
    """What became of a submission: accepted with its event ids, or rejected and dead-lettered with the reasons."""

    status: Literal["accepted", "rejected"]
    event_ids: tuple[uuid.UUID, ...] = ()
    subject_keys: tuple[str, ...] = ()
    dead_letter_id: uuid.UUID | None = None
    reason: str | None = None
    problems: tuple[Problem, ...] = ()
    malformed: bool = False
    internal_error: bool = False
    events: tuple[ContactEvent, ...] = field(default=(), repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def _utcnow() -> datetime:
    return datetime.now(UTC)


_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_E164_IN_TEXT = re.compile(r"\+\d{8,15}\b")


def identity_hint(raw: bytes, pepper: bytes) -> str | None:
    """The subject key of the first e-mail (else E.164 phone) found anywhere in a payload that failed to parse.

    Sealing a dead letter under the subject's key means an erasure request reaches it too; with no identity it is
    sealed under a key of its own.
    """
    text = decode_text(raw[:262_144])
    for match in _EMAIL_IN_TEXT.finditer(text):
        try:
            return normalize.subject_key(pepper, email=normalize.canonical_email(match.group(0)))
        except normalize.NormalizationError:
            continue
    for match in _E164_IN_TEXT.finditer(text):
        try:
            return normalize.subject_key(pepper, phone=normalize.canonical_phone(match.group(0)))
        except normalize.NormalizationError:
            continue
    return None


class IngestService:
    """Turns submissions into confirmed records. Thread-safe: the publisher serialises its own batches."""

    def __init__(
        self, runtime: Runtime, publisher: ConfirmingPublisher, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.runtime = runtime
        self.publisher = publisher
        self._clock = clock

    def check_content_type(self, channel: Channel, content_type: str) -> str:
        """The media type when the channel reads it; ``UnsupportedContentType`` otherwise."""
        media_type, _params = parse_content_type(content_type)
        if media_type not in CONTENT_TYPES[channel]:
            raise UnsupportedContentType(channel, media_type)
        return media_type

    def prepare(self, submission: Submission) -> tuple[SubmitResult, list[Outgoing]]:
        """Parse and seal one submission: its result and the records to publish (not yet published)."""
        self.check_content_type(submission.channel, submission.content_type)
        received_at = self._clock()
        ctx = SourceContext.for_payload(
            submission.raw,
            source_id=submission.source_id,
            channel=submission.channel,
            content_type=submission.content_type,
            received_at=received_at,
            pepper=self.runtime.pepper,
        )
        try:
            events = parse(submission.channel, submission.raw, ctx)
        except SourceError as exc:
            return self._dead_letter(submission, ctx, exc.problems, malformed=exc.malformed)
        except Exception as exc:  # an adapter bug must not lose the payload: dead-letter it and say so
            log.exception("adapter_failed", source_id=submission.source_id, channel=submission.channel.value)
            problem = Problem(
                "adapter_error", None, f"internal error in the {ctx.channel.value} adapter ({type(exc).__name__})"
            )
            return self._dead_letter(submission, ctx, (problem,), internal=True)
        codec = self.runtime.codec
        outgoing: list[Outgoing] = []
        for event in events:
            raw_record = codec.seal_raw(
                submission.raw,
                event_id=event.event_id,
                channel=event.channel,
                source_id=submission.source_id,
                received_at=received_at,
                subject_key=event.subject_key,
                content_type=submission.content_type[:200],
            )
            outgoing.append(Outgoing(raw_topic(event.channel), event.subject_key, raw_record))
            outgoing.append(Outgoing(NORMALIZED_TOPIC, event.subject_key, codec.seal_contact(event)))
        result = SubmitResult(
            status="accepted",
            event_ids=tuple(e.event_id for e in events),
            subject_keys=tuple(e.subject_key for e in events),
            events=tuple(events),
        )
        return result, outgoing

    def _dead_letter(
        self,
        submission: Submission,
        ctx: SourceContext,
        problems: Sequence[Problem],
        *,
        malformed: bool = False,
        internal: bool = False,
    ) -> tuple[SubmitResult, list[Outgoing]]:
        dead_letter_id = ctx.dead_letter_id()
        subject = identity_hint(submission.raw, ctx.pepper)
        explanation = "; ".join(f"{p.field or 'payload'}: {p.message} ({p.reason})" for p in problems)
        record = DeadLetter(
            dead_letter_id=dead_letter_id,
            stage="ingest",
            reason=problems[0].reason,
            error=explanation[:4000],
            channel=submission.channel,
            subject_key=subject,
            source_topic=None,
            failed_at=ctx.received_at,
            content_type=submission.content_type[:200] or "application/octet-stream",
            payload=self.runtime.codec.seal_payload(submission.raw, subject_key=subject, record_id=dead_letter_id),
        )
        result = SubmitResult(
            status="rejected",
            dead_letter_id=dead_letter_id,
            reason=problems[0].reason,
            problems=tuple(problems),
            malformed=malformed,
            internal_error=internal,
        )
        return result, [Outgoing(DEAD_LETTER_TOPIC, subject or str(dead_letter_id), record)]

    def submit(self, source_id: str, channel: Channel, raw: bytes, content_type: str) -> SubmitResult:
        """Parse, seal, publish and wait for the broker; raises ``PublishError`` when it did not confirm."""
        return self.submit_many([Submission(source_id, channel, raw, content_type)])[0]

    def submit_many(self, submissions: Sequence[Submission]) -> list[SubmitResult]:
        """Many submissions in one confirmed batch (the importer's and the SDK's batch path)."""
        results: list[SubmitResult] = []
        outgoing: list[Outgoing] = []
        for submission in submissions:
            result, records = self.prepare(submission)
            results.append(result)
            outgoing.extend(records)
        if outgoing:
            self.publisher.publish(outgoing)
        for submission, result in zip(submissions, results, strict=True):
            log_outcome(submission, result)
        return results


def log_outcome(submission: Submission, result: SubmitResult) -> None:
    """One line per confirmed submission: ids, subject keys and field names, never values."""
    if result.accepted:
        log.info(
            "ingest_accepted",
            source_id=submission.source_id,
            channel=submission.channel.value,
            event_ids=[str(i) for i in result.event_ids],
            subject_keys=list(result.subject_keys),
        )
    else:
        log.warning(
            "ingest_rejected",
            source_id=submission.source_id,
            channel=submission.channel.value,
            reason=result.reason,
            fields=[p.field for p in result.problems][:20],
            dead_letter_id=str(result.dead_letter_id),
        )
