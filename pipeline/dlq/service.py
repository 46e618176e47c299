"""Dead letters for the operator: list them, read one, and replay the ones whose cause is fixed.

Every stage that cannot handle a record writes a ``DeadLetter`` (stage, reason, an error without personal data, the
payload sealed) instead of dropping it: ``contacts.dlq.ingest`` (a payload the source adapter refused),
``contacts.dlq`` (a record the processing chain could not read or a rule raised on) and ``sinks.dlq`` (a record a
sink refused). Replaying publishes the sealed payload, opened, back onto the topic it was consumed from
(``source_topic``), where the stage reads it again like any record: the processing chain and the sinks are
idempotent per event id. Each replay is audited with the principal who asked for it. An ingest dead letter has no
topic to go back to: its source has to send it again (or it is exported with ``show --payload`` and loaded with
``leadpipe import``).

A dead letter whose subject was erased since has no key left: nothing to show or replay, by design.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError

from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.ingest.service import IngestService, Parsed, Submission, UnsupportedContentType
from pipeline.kafka.consumer import Record, read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.logging import get_logger
from pipeline.models.identity import Principal
from pipeline.models.records import DeadLetter
from pipeline.models.rights import AuditRecord
from pipeline.runtime import Runtime
from pipeline.topics import AUDIT_TOPIC, DLQ_TOPICS, raw_topic

log = get_logger(__name__)

ReplayOutcome = Literal["replayed", "would_replay", "erased", "not_replayable", "no_payload"]


@dataclass(frozen=True)
class Found:
    """A dead letter and the topic it was read from."""

    topic: str
    letter: DeadLetter
    times: int = 1
    """How many records of the topic carry this dead letter (the same bad file imported twice: one id, two records)."""


@dataclass(frozen=True)
class Listing:
    """Dead letters matching a filter, oldest first, and how many records of the topics were not dead letters."""

    letters: list[Found]
    unreadable: int

    def summary(self) -> Counter[tuple[str, str, str]]:
        """(topic, stage, reason) -> count."""
        return Counter((f.topic, f.letter.stage, f.letter.reason) for f in self.letters)


@dataclass(frozen=True)
class Replay:
    """What a replay did (or would do) with one dead letter."""

    dead_letter_id: uuid.UUID
    outcome: ReplayOutcome
    to_topic: str | None
    detail: str


class DeadLetterService:
    """Reads the dead-letter topics to the end at each call (they are small unless something is badly wrong)."""

    def __init__(self, runtime: Runtime, publisher: ConfirmingPublisher | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.publisher = publisher
        """Made on the first replay when not given: listing and reading need no producer."""
        self._own_publisher = publisher is None

    def close(self) -> None:
        """Close the publisher this service made itself (a given one is its giver's to close)."""
        if self._own_publisher and self.publisher is not None:
            self.publisher.close()
            self.publisher = None

    def find(
        self,
        topics: Sequence[str] = DLQ_TOPICS,
        *,
        stage: str | None = None,
        reason: str | None = None,
        ids: Iterable[uuid.UUID] = (),
    ) -> Listing:
        """The dead letters of ``topics``, filtered by stage, reason and ids (all given filters must hold)."""
        unknown = sorted(set(topics) - set(DLQ_TOPICS))
        if unknown:
            raise ValueError(f"not a dead-letter topic: {', '.join(unknown)} (known: {', '.join(DLQ_TOPICS)})")
        return select_letters(read_to_end(self.settings, topics), stage=stage, reason=reason, ids=ids)

    def get(self, dead_letter_id: uuid.UUID) -> Found:
        """One dead letter by id; KeyError when no dead-letter topic holds it (unknown, or past retention)."""
        letters = self.find(ids=[dead_letter_id]).letters
        if not letters:
            raise KeyError(f"no dead letter {dead_letter_id} (unknown, or past the topic's retention)")
        return letters[-1]

    def payload(self, letter: DeadLetter) -> bytes | None:
        """The payload opened (personal data: for the operator's eyes, never logged); None when there is none.

        Raises ``KeyDestroyedError`` when the subject was erased since."""
        if letter.payload is None:
            return None
        return self.runtime.codec.sealer.open(letter.payload)

    def replay(self, letters: Sequence[Found], *, by: Principal, dry_run: bool = False) -> list[Replay]:
        """Publish each dead letter's payload back onto its source topic, with one audit record per replay; an
        ingest dead letter (no topic to go back to) is read again by its channel's adapter and published as the
        contacts it now reads as (``_reingest``), or said why not.

        All replays of one call are published together and confirmed by the broker before this returns."""
        now = datetime.now(UTC)
        again = [f for f in letters if _reingestable(f.letter)]
        results, outgoing = plan_replays(
            [f for f in letters if not _reingestable(f.letter)], self.payload, by=by, now=now, dry_run=dry_run
        )
        results += self._reingest(again, by=by, now=now, dry_run=dry_run)
        if outgoing:
            self._publisher().publish(outgoing)
            log.info("dlq_replayed", records=len(outgoing) // 2, principal_id=by.principal_id)
        order = {f.letter.dead_letter_id: i for i, f in enumerate(letters)}
        return sorted(results, key=lambda r: order.get(r.dead_letter_id, len(order)))

    def _publisher(self) -> ConfirmingPublisher:
        if self.publisher is None:
            self.publisher = ConfirmingPublisher(self.settings)
        return self.publisher

    def _reingest(self, letters: Sequence[Found], *, by: Principal, now: datetime, dry_run: bool) -> list[Replay]:
        """Ingest dead letters read again by their channel's adapter, as it reads now (a source fixed since, an
        adapter that learned the format): what reads as contacts is sealed and published like any submission
        (source id ``REINGEST_SOURCE``; the same letter replayed twice gets the same event ids) with an audit record
        each; what is still refused is said with its reason and publishes nothing (its dead letter is the one
        listed)."""
        if not letters:
            return []
        service = IngestService(self.runtime, self._publisher() if not dry_run else None)  # type: ignore[arg-type]
        results: list[Replay] = []
        ready: list[tuple[Found, Parsed]] = []
        for found in letters:
            letter = found.letter
            assert letter.channel is not None
            target = raw_topic(letter.channel)
            try:
                payload = self.payload(letter)
            except KeyDestroyedError:
                results.append(Replay(letter.dead_letter_id, "erased", target, "the subject was erased since"))
                continue
            if payload is None:
                results.append(
                    Replay(letter.dead_letter_id, "no_payload", target, "the dead letter carries no payload")
                )
                continue
            try:
                parsed = service.parse(Submission(REINGEST_SOURCE, letter.channel, payload, letter.content_type))
            except UnsupportedContentType as exc:
                results.append(Replay(letter.dead_letter_id, "not_replayable", None, f"{exc}"))
                continue
            if (why := _still_refused(parsed)) is not None:
                results.append(Replay(letter.dead_letter_id, "not_replayable", None, why))
            elif dry_run:
                results.append(
                    Replay(
                        letter.dead_letter_id, "would_replay", target, f"reads now as {len(parsed.events)} contact(s)"
                    )
                )
            else:
                ready.append((found, parsed))
        if not ready:
            return results
        submitted = service.seal_and_publish([parsed for _, parsed in ready])
        audits: list[Outgoing] = []
        for (found, parsed), result in zip(ready, submitted, strict=True):
            letter = found.letter
            target = raw_topic(parsed.submission.channel)
            if not result.accepted:  # sealed too large for its topic since: nothing of it was published
                detail = "; ".join(p.message for p in result.problems) or (result.reason or "not accepted")
                results.append(Replay(letter.dead_letter_id, "not_replayable", None, detail))
                continue
            subject = result.subject_keys[0] if result.subject_keys else letter.subject_key
            audit = _audit(letter, found.topic, by, now, to_topic=target, subject_key=subject)
            audits.append(Outgoing(AUDIT_TOPIC, subject, audit))
            results.append(Replay(letter.dead_letter_id, "replayed", target, f"{len(result.event_ids)} event(s)"))
        if audits:
            self._publisher().publish(audits)
            log.info("dlq_reingested", letters=len(audits), principal_id=by.principal_id)
        return results


def select_letters(
    records: Iterable[Record],
    *,
    stage: str | None = None,
    reason: str | None = None,
    ids: Iterable[uuid.UUID] = (),
) -> Listing:
    """The dead letters among ``records`` that every given filter admits, oldest first, each once (a dead letter's id
    is its payload's and failure's: the same bad input sent again is the same letter, listed with ``times`` and its
    latest record); tombstones are skipped and records that are not dead letters counted (and logged by position,
    never by content)."""
    wanted = set(ids)
    found: dict[tuple[str, uuid.UUID], Found] = {}
    unreadable = 0
    for record in records:
        if record.value is None:
            continue
        try:
            letter = DeadLetter.model_validate_json(record.value)
        except ValidationError:
            unreadable += 1
            log.warning("dlq_unreadable_record", topic=record.topic, partition=record.partition, offset=record.offset)
            continue
        if stage is not None and letter.stage != stage:
            continue
        if reason is not None and letter.reason != reason:
            continue
        if wanted and letter.dead_letter_id not in wanted:
            continue
        earlier = found.get((record.topic, letter.dead_letter_id))
        times = 1 if earlier is None else earlier.times + 1
        latest = letter if earlier is None or letter.failed_at >= earlier.letter.failed_at else earlier.letter
        found[(record.topic, letter.dead_letter_id)] = Found(record.topic, latest, times)
    return Listing(sorted(found.values(), key=lambda f: f.letter.failed_at), unreadable)


def plan_replays(
    letters: Sequence[Found],
    open_payload: Callable[[DeadLetter], bytes | None],
    *,
    by: Principal,
    now: datetime,
    dry_run: bool = False,
) -> tuple[list[Replay], list[Outgoing]]:
    """What replaying ``letters`` does with each, and the records to publish for it: every payload back onto its
    source topic, each followed by its audit record. ``open_payload`` raises ``KeyDestroyedError`` when the
    subject was erased since (``DeadLetterService.payload``)."""
    results: list[Replay] = []
    outgoing: list[Outgoing] = []
    for found in letters:
        letter = found.letter
        target = letter.source_topic
        if target is None:
            results.append(
                Replay(
                    letter.dead_letter_id,
                    "not_replayable",
                    None,
                    "refused at ingest: its source has to send it again (or export it with `leadpipe dlq show "
                    "--payload` and load it with `leadpipe import`)",
                )
            )
            continue
        try:
            payload = open_payload(letter)
        except KeyDestroyedError:
            results.append(Replay(letter.dead_letter_id, "erased", target, "the subject was erased since"))
            continue
        if payload is None:
            results.append(Replay(letter.dead_letter_id, "no_payload", target, "the dead letter carries no payload"))
            continue
        if dry_run:
            results.append(Replay(letter.dead_letter_id, "would_replay", target, f"{len(payload)} bytes"))
            continue
        outgoing.append(Outgoing(target, letter.subject_key, payload))
        outgoing.append(Outgoing(AUDIT_TOPIC, letter.subject_key, _audit(letter, found.topic, by, now)))
        results.append(Replay(letter.dead_letter_id, "replayed", target, f"{len(payload)} bytes"))
    return results, outgoing


def _audit(
    letter: DeadLetter,
    topic: str,
    by: Principal,
    now: datetime,
    *,
    to_topic: str | None = None,
    subject_key: str | None = None,
) -> AuditRecord:
    return AuditRecord.new(
        by.actor,
        "dead_letter_replayed",
        at=now,
        principal=by,
        subject_key=subject_key or letter.subject_key,
        event_id=letter.event_id,
        detail={
            "dead_letter_id": str(letter.dead_letter_id),
            "dead_letter_topic": topic,
            "stage": letter.stage,
            "reason": letter.reason,
            "to_topic": to_topic or letter.source_topic,
        },
    )


#: The source id an ingest dead letter is read again under: the letter keeps its channel and content type, not the
#: id of the source that sent it.
REINGEST_SOURCE = "dlq-replay"


def _reingestable(letter: DeadLetter) -> bool:
    """An ingest dead letter (refused by its adapter: no topic to go back to) whose channel is known."""
    return letter.source_topic is None and letter.stage == "ingest" and letter.channel is not None


def _still_refused(parsed: Parsed) -> str | None:
    """Why a dead letter read again is still not taken (the reasons and fields, never values), or None."""
    if parsed.ignored is not None:
        return f"reads now as {parsed.ignored}: it names no contact, there is nothing to publish"
    if parsed.accepted:
        return None
    problems = "; ".join(f"{p.field or 'payload'}: {p.message}" for p in parsed.problems)
    return (
        f"still refused at ingest ({parsed.problems[0].reason}: {problems[:300]}): fix the source (or the payload: "
        "`leadpipe dlq show --payload`, corrected, sent again or loaded with `leadpipe import`) and replay it"
    )
