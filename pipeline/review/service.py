"""What ``leadpipe spam review`` and the review API share: reading the queue and publishing decisions.

The queue is ``contacts.quarantine`` minus every event a decision already names (``contacts.review.decisions``),
read to the end (read_committed) at each call: quarantine is short-lived and small (section 8 review queue).
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.logging import get_logger
from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.models.identity import Principal
from pipeline.models.records import QuarantineRecord
from pipeline.models.review import BlockTarget, ReviewDecision
from pipeline.models.spam import ClassifierVerdict, EngineResult
from pipeline.policy.model import load_policy
from pipeline.processors.text import person_text
from pipeline.runtime import Runtime
from pipeline.spam.classifier import explain_tokens
from pipeline.spam.signals import SpamSignals
from pipeline.spam.store import ClassifierStore
from pipeline.topics import QUARANTINE_TOPIC, REVIEW_DECISIONS_TOPIC

log = get_logger(__name__)


class ReviewError(ValueError):
    """The event is not in the queue (unknown, expired or already decided); ``code`` says which."""

    def __init__(self, code: Literal["not_found", "already_decided"], message: str) -> None:
        super().__init__(message)
        self.code = code


class QueueItem(BaseModel):
    """One quarantined event as a reviewer first sees it: ids, channel, times and the reasons; no personal data."""

    event_id: uuid.UUID
    subject_key: str
    channel: str
    received_at: datetime
    quarantined_at: datetime
    score: float
    threshold: float
    reasons: list[dict[str, Any]]
    policy_version: str
    engine: EngineResult | None = None
    """The spam engine's verdict at scoring, every symbol with the engine's weight (or why there was none)."""
    classifier: ClassifierVerdict | None = None


class QueueItemContent(QueueItem):
    """A queue item with what the person sent, for the reviewer to judge (personal data: shown, never logged)."""

    sender: dict[str, Any] | None
    interaction: dict[str, Any] | None
    source: dict[str, Any] | None
    readable: bool
    words: list[dict[str, Any]] = []
    """The message's words that weighed most in the classifier's verdict, with their log-likelihood ratios (from
    the message itself: shown to the reviewer, never logged or stored)."""


#: The orders ``ReviewService.page`` lists the queue in: by when quarantined, or the clearest spam first (the score's
#: margin over its channel's threshold).
QueueSort = Literal["oldest", "newest", "score"]


@dataclass
class QueuePage:
    """One page of the waiting events, and the counts of the whole queue."""

    items: list[QueueItem]
    matching: int
    """Waiting events of the channel and reason asked for (all waiting events when none was)."""
    waiting: int
    by_channel: collections.Counter[str]
    by_reason: collections.Counter[str]
    """Waiting events per spam reason code (an event with several reasons counts under each)."""


class _ReasonHead(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: str
    weight: float
    detail: str | None = None


class _VerdictHead(BaseModel):
    model_config = ConfigDict(extra="ignore")

    score: float
    threshold: float
    reasons: list[_ReasonHead] = []


class _SpamHead(BaseModel):
    model_config = ConfigDict(extra="ignore")

    policy_version: str
    spam: _VerdictHead


class _QueuedHead(BaseModel):
    """What the queue is sorted, filtered and counted by: a quarantined record without its sealed payload and its
    engine's and classifier's verdicts (every symbol of 18,000 records parsed took ~320 MB and 3.5 s of CPU; these
    heads a third of it). A page's items are then read whole."""

    model_config = ConfigDict(extra="ignore")

    event_id: uuid.UUID
    subject_key: str
    channel: Channel
    received_at: datetime
    quarantined_at: datetime
    tags: _SpamHead


@dataclass
class _Queue:
    waiting: dict[uuid.UUID, bytes]
    """Each waiting event's latest quarantine record, as read (parsed when it is listed or decided)."""
    decided: dict[uuid.UUID, str]

    @property
    def pending(self) -> _Pending:
        return _Pending(self.waiting)


@dataclass
class _Pending:
    """The waiting records by event id, each parsed when asked for."""

    raw: dict[uuid.UUID, bytes]

    def get(self, event_id: uuid.UUID) -> QuarantineRecord | None:
        found = self.raw.get(event_id)
        return None if found is None else QuarantineRecord.model_validate_json(found)

    def heads(self) -> list[_QueuedHead]:
        return [_QueuedHead.model_validate_json(raw) for raw in self.raw.values()]


def _item(record: QuarantineRecord) -> QueueItem:
    spam = record.tags.spam
    return QueueItem(
        event_id=record.event_id,
        subject_key=record.subject_key,
        channel=record.channel.value,
        received_at=record.received_at,
        quarantined_at=record.quarantined_at,
        score=spam.score,
        threshold=spam.threshold,
        reasons=[{"code": r.code, "weight": r.weight, "detail": r.detail} for r in spam.reasons],
        policy_version=record.tags.policy_version,
        engine=spam.engine,
        classifier=spam.classifier,
    )


class ReviewService:
    def __init__(self, runtime: Runtime, publisher: ConfirmingPublisher | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self._publisher = publisher
        self._own_publisher = publisher is None

    def close(self) -> None:
        """Close the publisher this service made itself (a given one is its giver's to close)."""
        if self._own_publisher and self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    @property
    def publisher(self) -> ConfirmingPublisher:
        if self._publisher is None:
            self._publisher = ConfirmingPublisher(self.settings)
        return self._publisher

    def _queue(self) -> _Queue:
        pending: dict[uuid.UUID, bytes] = {}
        decided: dict[uuid.UUID, str] = {}
        for record in read_to_end(self.settings, [QUARANTINE_TOPIC, REVIEW_DECISIONS_TOPIC]):
            if record.value is None:
                continue
            try:
                if record.topic == QUARANTINE_TOPIC:
                    quarantined = _QueuedHead.model_validate_json(record.value)
                    pending[quarantined.event_id] = record.value
                else:
                    decision = ReviewDecision.model_validate_json(record.value)
                    decided[decision.event_id] = decision.decision
            except ValidationError:
                log.warning("review_unreadable_record", topic=record.topic, offset=record.offset)
        for event_id in decided:
            pending.pop(event_id, None)
        return _Queue(pending, decided)

    def pending(self, limit: int | None = None) -> list[QueueItem]:
        """Quarantined events nobody decided yet, oldest first."""
        return self.page(limit).items

    def page(
        self,
        limit: int | None = None,
        offset: int = 0,
        *,
        sort: QueueSort = "oldest",
        channel: str | None = None,
        reason: str | None = None,
    ) -> QueuePage:
        """A page of the waiting events (``offset``, at most ``limit``; None: all) in ``sort`` order, of those of
        ``channel`` and with the spam reason ``reason`` when given; with how many match and how many wait in all, by
        channel and by reason code (a queue of thousands is read a page at a time, and counted whole)."""
        pending = self._queue().pending
        waiting = pending.heads()
        by_channel = collections.Counter(h.channel.value for h in waiting)
        by_reason = collections.Counter(c for h in waiting for c in dict.fromkeys(r.code for r in h.tags.spam.reasons))
        matching = [
            h
            for h in waiting
            if (channel is None or h.channel.value == channel)
            and (reason is None or any(r.code == reason for r in h.tags.spam.reasons))
        ]
        if sort == "score":
            matching.sort(key=lambda h: (h.tags.spam.threshold - h.tags.spam.score, h.quarantined_at))
        else:
            matching.sort(key=lambda h: h.quarantined_at, reverse=sort == "newest")
        shown = [pending.get(h.event_id) for h in matching[offset : offset + limit if limit else None]]
        items = [_item(record) for record in shown if record is not None]
        return QueuePage(items, len(matching), len(waiting), by_channel, by_reason)

    def _find(self, event_id: uuid.UUID) -> QuarantineRecord:
        queue = self._queue()
        if event_id in queue.decided:
            raise ReviewError("already_decided", f"event {event_id} was already decided ({queue.decided[event_id]})")
        record = queue.pending.get(event_id)
        if record is None:
            raise ReviewError("not_found", f"event {event_id} is not in the quarantine (unknown or expired)")
        return record

    def show(self, event_id: uuid.UUID) -> QueueItemContent:
        """One queued event with its content opened (the reviewer needs to read it to decide)."""
        record = self._find(event_id)
        base = _item(record).model_dump()
        try:
            event = self.runtime.codec.open_contact(record)
        except KeyDestroyedError:  # erased since: nothing left to read
            return QueueItemContent(**base, sender=None, interaction=None, source=None, readable=False)
        return QueueItemContent(
            **base,
            sender=event.person.model_dump(exclude_none=True, mode="json"),
            interaction=event.interaction.model_dump(exclude_none=True, exclude_defaults=True, mode="json"),
            source=event.provenance.model_dump(exclude_none=True, mode="json"),
            readable=True,
            words=self._words(event),
        )

    def _words(self, event: ContactEvent) -> list[dict[str, Any]]:
        """``explain_tokens`` for the message shown, from the classifier's counts (none when Redis is not there)."""
        if not self.settings.spam_engine_enabled:
            return []
        store = ClassifierStore.connect(self.settings.spam_engine_redis_host, self.settings.spam_engine_redis_port)
        try:
            model = store.load()
        except redis.RedisError:
            return []
        finally:
            store.client.close()
        learned = load_policy(self.settings.policy_file).spam.classifier  # the counts the worker judges with
        signals = SpamSignals(
            None, None, self.runtime.pepper, model=model, prior=learned.prior, smoothing=learned.smoothing
        )
        model = signals.classifier_model()
        words = explain_tokens(model, self.runtime.pepper, person_text(event))
        return [{"word": word, "log_likelihood_ratio": ratio} for word, ratio in words]

    def decide(
        self,
        event_id: uuid.UUID,
        decision: Literal["release", "confirm"],
        by: Principal,
        block: Iterable[BlockTarget] = (),
    ) -> ReviewDecision:
        """Publish ``by``'s decision (confirmed by the broker); the worker's review agent carries it out."""
        targets = tuple(dict.fromkeys(block))
        if targets and decision != "confirm":
            raise ValueError("only a confirmation can block the sender")
        made = _decision(self._find(event_id), decision, by, targets)
        self._publish([made])
        return made

    def decide_seen(
        self,
        seen: Mapping[uuid.UUID, datetime | None],
        decision: Literal["release", "confirm"],
        by: Principal,
        block: Iterable[BlockTarget] = (),
    ) -> dict[uuid.UUID, SeenOutcome]:
        """Decide the items a reviewer saw (event id -> the ``quarantined_at`` shown, None: not known), each re-read
        from the queue at this moment first. An item decided meanwhile (by someone else), gone from the quarantine or
        changed since it was shown (quarantined again, e.g. re-scored after a replay) is not decided: the reviewer
        judged another version of it, or nothing. What became of each item; the decisions go out in one batch.
        ``block``: what each confirmation blocks (``decide``)."""
        targets = tuple(dict.fromkeys(block))
        if targets and decision != "confirm":
            raise ValueError("only a confirmation can block the sender")
        queue = self._queue()
        outcomes: dict[uuid.UUID, SeenOutcome] = {}
        made: list[ReviewDecision] = []
        for event_id, shown in seen.items():
            record = queue.pending.get(event_id)
            if event_id in queue.decided:
                outcomes[event_id] = "already_decided"
            elif record is None:
                outcomes[event_id] = "not_found"
            elif shown is not None and record.quarantined_at != shown:
                outcomes[event_id] = "changed"
            else:
                made.append(_decision(record, decision, by, targets))
                outcomes[event_id] = "decided"
        if made:
            self._publish(made)
        return outcomes

    def _publish(self, made: Sequence[ReviewDecision]) -> None:
        """Publish decisions (confirmed by the broker), each logged with codes only."""
        self.publisher.publish([Outgoing(REVIEW_DECISIONS_TOPIC, m.subject_key, m) for m in made])
        for m in made:
            log.info(
                "review_decision_published",
                decision_id=str(m.decision_id),
                event_id=str(m.event_id),
                decision=m.decision,
                blocked=list(m.block),
                reviewer=m.reviewer,
                reasons=[r.code for r in m.record.tags.spam.reasons],
            )


#: What became of one item of ``decide_seen``.
SeenOutcome = Literal["decided", "already_decided", "not_found", "changed"]


def _decision(
    record: QuarantineRecord, decision: Literal["release", "confirm"], by: Principal, block: tuple[BlockTarget, ...]
) -> ReviewDecision:
    return ReviewDecision(
        decision_id=uuid.uuid4(),
        event_id=record.event_id,
        subject_key=record.subject_key,
        decision=decision,
        block=block,
        reviewer=by.actor,
        principal=by,
        decided_at=datetime.now(UTC),
        record=record,
    )
