"""The review agent: carries out reviewers' decisions on quarantined events (policy section 8).

- release: the event continues through the pipeline. The chain runs again with the reviewer's decision in place
  of the spam score (suppression, children, purposes and retention are checked anew, since time has passed), and
  the accepted record says who released it and when (``tags.spam.review``).
- confirm: the event stays out. With ``block`` the sender (their subject key), their e-mail domain and/or their
  source IP are added to ``spam.blocklist`` as keyed hashes; the spam rule reads that list.

Every decision is audited with its reasons (the spam reason codes and the policy's words), the reviewer's operator
id and the decision id, never personal data. A decision that cannot be read is dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from pipeline.agents.app import LeadpipeApp
from pipeline.agents.processing import (
    BatchResult,
    Consumed,
    ProcessingStep,
    batch_handler,
    shared_processing,
)
from pipeline.agents.sender import Out
from pipeline.agents.spam import AgentSpam
from pipeline.agents.views import ProcessingState
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.logging import get_logger
from pipeline.models.processing import DropReason
from pipeline.models.records import ContactRecord
from pipeline.models.review import BlocklistEntry, BlockTarget, ReviewDecision
from pipeline.models.tagged import SpamReview
from pipeline.processors import run_chain
from pipeline.processors.spam import hashed_key, sender_key
from pipeline.processors.text import email_domain
from pipeline.runtime import Runtime
from pipeline.spam.engine import Label
from pipeline.topics import BLOCKLIST_TOPIC, REVIEW_DECISIONS_TOPIC

log = get_logger(__name__)

ACTOR = "spam-review"
#: Pauses before asking the spam engine again to learn a decision it did not take.
LEARN_RETRIES_S = (0.5, 2.0, 5.0)


def _json(model: Any) -> bytes:
    data: bytes = model.__pydantic_serializer__.to_json(model)
    return data


class ReviewStep:
    """Decisions -> records to produce; shares the processing step's routing, state and dead letters."""

    def __init__(self, step: ProcessingStep) -> None:
        self.step = step

    def learn(self, spam: AgentSpam, batch: Sequence[Consumed]) -> dict[uuid.UUID, dict[str, str]]:
        """Teach every decision of the batch to the spam filter (blocking: the agent runs it in a thread): a release
        is ham, a confirmation spam. Decision id -> {part: status}, for the decision's audit line. An engine that
        does not answer is asked again a few times; then the decision goes on unlearned (counted, and ``leadpipe
        spam rebuild`` teaches it later: learning is idempotent per event)."""
        out: dict[uuid.UUID, dict[str, str]] = {}
        for item in batch:
            try:
                decision = ReviewDecision.model_validate_json(item.value or b"")
                event = self.step.codec.open_contact(_contact(decision))
            except (ValidationError, KeyDestroyedError):
                continue  # dead-lettered by ``process``, or erased since: nothing to learn from
            except Exception as exc:
                log.warning("review_learn_unopened", error=type(exc).__name__)
                continue
            label: Label = "ham" if decision.decision == "release" else "spam"
            engine = decision.record.tags.spam.engine
            outcomes = spam.learn(item.partition, event, label, engine)
            for pause in LEARN_RETRIES_S:
                if not any(o is not None and o.status == "unavailable" for o in outcomes):
                    break
                time.sleep(pause)
                outcomes = spam.learn(item.partition, event, label, engine)
            parts = zip(("engine", "classifier"), outcomes, strict=True)
            out[decision.decision_id] = {part: o.status for part, o in parts if o is not None}
        return out

    def process(
        self,
        batch: Sequence[Consumed],
        state: ProcessingState,
        now: datetime | None = None,
        learned: Mapping[uuid.UUID, Mapping[str, str]] | None = None,
    ) -> BatchResult:
        """Carry out every decision; ``learned``: what teaching each decision to the spam filter did (audited)."""
        now = now or datetime.now(UTC)
        learned = learned or {}
        result = BatchResult()
        for item in batch:
            try:
                decision = ReviewDecision.model_validate_json(item.value or b"")
            except ValidationError as exc:
                fields = "; ".join(".".join(str(p) for p in e["loc"]) or "decision" for e in exc.errors()[:10])
                error = f"not a ReviewDecision: {exc.error_count()} error(s) at {fields}"
                result.add(item.partition, [self._dead_letter(item, "parse", "invalid_decision", error, now)], "dlq")
                continue
            try:
                outs = self.decide(item, decision, state, now, learned.get(decision.decision_id))
                result.add(item.partition, outs, decision.decision)
            except DBAPIError:
                raise  # the key store is unreachable: the batch is done again (``RetryBatch``), not dead-lettered
            except Exception as exc:
                log.exception("review_internal_error", decision_id=str(decision.decision_id))
                error = f"{type(exc).__name__} while carrying out the decision"
                result.add(item.partition, [self._dead_letter(item, "decide", "internal_error", error, now)], "dlq")
        return result

    def _dead_letter(self, item: Consumed, stage: str, reason: str, error: str, now: datetime) -> Out:
        return self.step.dead_letter(
            item,
            None,
            stage=f"review:{stage}",
            reason=reason,
            error=error,
            now=now,
            source_topic=REVIEW_DECISIONS_TOPIC,
            content_type="application/json",
        )

    def decide(
        self,
        item: Consumed,
        decision: ReviewDecision,
        state: ProcessingState,
        now: datetime,
        learned: Mapping[str, str] | None = None,
    ) -> list[Out]:
        record = decision.record
        if record.event_id != decision.event_id or record.subject_key != decision.subject_key:
            raise ValueError("the decision's event id or subject key does not match its record")
        verdict = record.tags.spam
        detail: dict[str, Any] = {
            "decision_id": str(decision.decision_id),
            "decision": decision.decision,
            "reviewer": decision.reviewer,
            "score": verdict.score,
            "threshold": verdict.threshold,
            "reasons": [{"code": r.code, "weight": r.weight, "detail": r.detail} for r in verdict.reasons],
            "policy_version": record.tags.policy_version,
        }
        if learned is not None:
            detail["learned"] = dict(learned)  # taught to the spam filter as ham (release) or spam (confirm)
        if decision.decision == "confirm":
            outs = self._block(decision, now) if decision.block else []
            detail["blocked"] = list(decision.block)
            outs.append(self._audit("review_confirmed", decision, detail, now))
            log.info("review_confirmed", decision_id=str(decision.decision_id), event_id=str(decision.event_id))
            return outs
        return self._release(item, decision, state, detail, now)

    def _release(
        self, item: Consumed, decision: ReviewDecision, state: ProcessingState, detail: dict[str, Any], now: datetime
    ) -> list[Out]:
        step = self.step
        record = decision.record
        contact = _contact(decision)
        try:
            event = step.codec.open_contact(contact)
        except KeyDestroyedError:
            detail["outcome"] = "subject_erased"
            outs = step.drop(contact, DropReason.KEY_DESTROYED, "open", None, now)
            return [*outs, self._audit("review_released", decision, detail, now)]
        review = SpamReview(
            decision_id=decision.decision_id,
            decision="released",
            reviewer=decision.reviewer,
            decided_at=decision.decided_at,
        )
        verdict = record.tags.spam.model_copy(update={"review": review})
        chain = run_chain(event, step.context(event, state, now, review=verdict))
        outs = step.route(item, contact, event, chain, now)
        outs.extend(step.apply_updates(chain, state))
        detail["outcome"] = chain.outcome.label
        outs.append(self._audit("review_released", decision, detail, now))
        log.info(
            "review_released",
            decision_id=str(decision.decision_id),
            event_id=str(decision.event_id),
            outcome=detail["outcome"],
        )
        return outs

    def _block(self, decision: ReviewDecision, now: datetime) -> list[Out]:
        """Blocklist entries for the confirmed sender: hashed keys only, never an address."""
        keys: list[tuple[BlockTarget, str]] = []
        if "sender" in decision.block:
            keys.append(("sender", sender_key(decision.subject_key)))
        if "domain" in decision.block or "ip" in decision.block:
            try:
                event = self.step.codec.open_contact(_contact(decision))
            except KeyDestroyedError:
                event = None
            if event is not None:
                domain = email_domain(event.person.email)
                if "domain" in decision.block and domain:
                    keys.append(("domain", hashed_key(self.step.pepper, "domain", domain)))
                if "ip" in decision.block and event.provenance.ip:
                    keys.append(("ip", hashed_key(self.step.pepper, "ip", event.provenance.ip)))
        outs = []
        for target, key in keys:
            entry = BlocklistEntry(
                key=key, target=target, added_at=now, decision_id=decision.decision_id, reviewer=decision.reviewer
            )
            outs.append(Out(BLOCKLIST_TOPIC, key.encode(), _json(entry)))
        return outs

    def _audit(self, action: str, decision: ReviewDecision, detail: dict[str, Any], now: datetime) -> Out:
        return self.step.audit(
            action,
            now,
            actor=f"{ACTOR}:{decision.reviewer}",
            principal=decision.principal,
            subject_key=decision.subject_key,
            event_id=decision.event_id,
            detail=detail,
        )


def _contact(decision: ReviewDecision) -> ContactRecord:
    """The decided event's ``ContactRecord`` (the quarantined record without its tags)."""
    record = decision.record
    return ContactRecord.model_construct(**{name: getattr(record, name) for name in ContactRecord.model_fields})


def register(app: LeadpipeApp, runtime: Runtime) -> None:
    """Add the review batch agent to the faust app (``REGISTRARS`` entry)."""
    settings = runtime.settings
    shared = shared_processing(app, runtime)
    step = ReviewStep(shared.step)
    spam = shared.spam

    async def process(batch: Sequence[Consumed], state: ProcessingState) -> BatchResult:
        learned = await asyncio.to_thread(step.learn, spam, batch) if spam is not None else None
        return step.process(batch, state, learned=learned)

    source_name = settings.topic(REVIEW_DECISIONS_TOPIC)
    source = app.topic(
        source_name, key_serializer="raw", value_serializer="raw", partitions=shared.partitions[REVIEW_DECISIONS_TOPIC]
    )
    app.batch_agent(source, batch_handler(process, shared, source_name, agent="review"))
