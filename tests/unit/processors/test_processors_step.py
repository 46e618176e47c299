"""The processing step without faust: records in, records out, state updated, nothing dropped silently."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from processor_events import NOW, build_event

from pipeline.agents.processing import CHILDREN_ACTOR, Consumed, ProcessingStep
from pipeline.agents.sender import Out
from pipeline.agents.views import ProcessingState
from pipeline.config import explicit_settings
from pipeline.crypto.sealing import subject_scope
from pipeline.db import ensure_schema
from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.models.processing import DropRecord
from pipeline.models.records import AcceptedRecord, ContactRecord, DeadLetter, QuarantineRecord
from pipeline.models.rights import AuditRecord, RightKind, RightsCommand, SuppressionRecord
from pipeline.policy.model import load_policy
from pipeline.processors import compile_policy
from pipeline.runtime import Runtime
from pipeline.topics import (
    ACCEPTED_TOPIC,
    AUDIT_TOPIC,
    DROPS_TOPIC,
    PROCESSING_DLQ_TOPIC,
    QUARANTINE_TOPIC,
    RATE_WINDOWS_TOPIC,
    RETENTION_CLOCK_TOPIC,
    RIGHTS_COMMANDS_TOPIC,
)

PERSONAL = ("ann@example.com", "Ann", "203.0.113.7", "ACME")


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = explicit_settings(
        environment="test",
        home=tmp_path,
        subject_key_pepper="pepper",
        key_encryption_key=base64.urlsafe_b64encode(b"k" * 32).decode(),
    )
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def step(runtime: Runtime) -> ProcessingStep:
    return ProcessingStep.from_runtime(runtime, compile_policy(load_policy()))


def _consumed(runtime: Runtime, event: ContactEvent, offset: int = 0) -> Consumed:
    record = runtime.codec.seal_contact(event)
    return Consumed(0, offset, event.subject_key.encode(), record.model_dump_json().encode())


def _by_topic(outs: list[Out]) -> dict[str, list[Out]]:
    grouped: dict[str, list[Out]] = {}
    for out in outs:
        grouped.setdefault(out.topic, []).append(out)
    return grouped


def _run(step: ProcessingStep, items: list[Consumed], state: ProcessingState | None = None) -> dict[str, list[Out]]:
    result = step.process(items, state or ProcessingState.in_memory(), now=NOW)
    return _by_topic([o for outs in result.outgoing.values() for o in outs])


SEALED_FIELD = re.compile(rb'"(?:ciphertext|nonce)":"[^"]*"')


def _no_personal_data(*values: bytes | None) -> None:
    """Nothing personal outside the seal (base64 ciphertext may spell "Ann" by chance, so it is left out)."""
    for value in values:
        assert value is not None
        outside = SEALED_FIELD.sub(b"", value)
        for text in PERSONAL:
            assert text.encode() not in outside, text


def test_an_accepted_record_keeps_the_sealed_body_and_carries_the_tags(step: ProcessingStep, runtime: Runtime) -> None:
    event = build_event()
    item = _consumed(runtime, event)
    outs = _run(step, [item])
    assert set(outs) == {ACCEPTED_TOPIC}  # nothing else for an ordinary first-time event (see rate changelog)
    accepted = AcceptedRecord.model_validate_json(outs[ACCEPTED_TOPIC][0].value or b"")
    assert outs[ACCEPTED_TOPIC][0].key == event.subject_key.encode()
    assert accepted.event_id == event.event_id
    assert accepted.sealed.model_dump() == _sealed_of(item).model_dump()
    assert runtime.codec.open_tagged(accepted).event == event
    assert accepted.tags.retention_expires_at == NOW.replace(year=NOW.year + 8)
    _no_personal_data(outs[ACCEPTED_TOPIC][0].value)


def _sealed_of(item: Consumed) -> Any:
    return ContactRecord.model_validate_json(item.value or b"").sealed


def test_spam_is_quarantined_and_audited_with_reasons_only(step: ProcessingStep, runtime: Runtime) -> None:
    event = build_event(interaction={"message": "Guaranteed returns, claim your prize", "honeypot": "x"})
    outs = _run(step, [_consumed(runtime, event)])
    assert set(outs) == {QUARANTINE_TOPIC, AUDIT_TOPIC}
    quarantined = QuarantineRecord.model_validate_json(outs[QUARANTINE_TOPIC][0].value or b"")
    assert quarantined.tags.spam.is_spam and quarantined.quarantined_at == NOW
    audit = AuditRecord.model_validate_json(outs[AUDIT_TOPIC][0].value or b"")
    assert audit.action == "quarantined" and audit.event_id == event.event_id
    assert {r["code"] for r in audit.detail["reasons"]} == {"honeypot", "misleading_phrase"}
    _no_personal_data(outs[QUARANTINE_TOPIC][0].value, outs[AUDIT_TOPIC][0].value)


def test_a_child_is_dropped_with_a_counter_and_nothing_personal(step: ProcessingStep, runtime: Runtime) -> None:
    event = build_event(person={"stated_age": 13})
    outs = _run(step, [_consumed(runtime, event)])
    assert set(outs) == {DROPS_TOPIC, AUDIT_TOPIC, RIGHTS_COMMANDS_TOPIC}
    drop = DropRecord.model_validate_json(outs[DROPS_TOPIC][0].value or b"")
    assert (drop.event_id, drop.reason.value, drop.stage) == (event.event_id, "child", "children")
    audit = AuditRecord.model_validate_json(outs[AUDIT_TOPIC][0].value or b"")
    assert audit.subject_key is None and audit.detail == {
        "reason": "child",
        "stage": "children",
        "evidence": "stated_age",
    }
    assert outs[DROPS_TOPIC][0].key == b"child"
    for out in (*outs[DROPS_TOPIC], *outs[AUDIT_TOPIC]):
        assert event.subject_key.encode() not in (out.value or b"")
        _no_personal_data(out.value)


def test_a_child_s_subject_is_erased_everywhere_by_a_request_issued_like_the_dpo_s(
    step: ProcessingStep, runtime: Runtime
) -> None:
    """Section 12: what is already held on the subject goes too; a batch redone after a crash asks only once."""
    event = build_event(person={"stated_age": 13})
    [first] = _run(step, [_consumed(runtime, event)])[RIGHTS_COMMANDS_TOPIC]
    command = RightsCommand.model_validate_json(first.value or b"")
    assert first.key == event.subject_key.encode()
    assert (command.kind, command.subject_key, command.issued_by, command.issuer) == (
        RightKind.ERASURE,
        event.subject_key,
        "client:children-rule",
        CHILDREN_ACTOR,
    )
    assert CHILDREN_ACTOR.auth == "system"
    assert command.issued_at == NOW and command.due_at > NOW and command.sealed is None
    [again] = _run(step, [_consumed(runtime, event, offset=1)])[RIGHTS_COMMANDS_TOPIC]
    assert RightsCommand.model_validate_json(again.value or b"").request_id == command.request_id
    _no_personal_data(first.value)

    other = build_event(person={"stated_age": 12}, subject_key="sk_another_child_0000000")
    [theirs] = _run(step, [_consumed(runtime, other)])[RIGHTS_COMMANDS_TOPIC]
    assert RightsCommand.model_validate_json(theirs.value or b"").request_id != command.request_id


def test_a_policy_may_keep_a_child_s_erasure_to_the_dropped_event(runtime: Runtime) -> None:
    policy = load_policy()
    only_drop = policy.model_copy(update={"children": policy.children.model_copy(update={"erase_subject": False})})
    step = ProcessingStep.from_runtime(runtime, compile_policy(only_drop))
    outs = _run(step, [_consumed(runtime, build_event(person={"stated_age": 13}))])
    assert set(outs) == {DROPS_TOPIC, AUDIT_TOPIC}


def test_an_unreadable_record_is_dead_lettered_with_a_stable_id(step: ProcessingStep, runtime: Runtime) -> None:
    item = Consumed(2, 41, b"k", b'{"not": "a record", "email": "ann@example.com"}')
    first = _run(step, [item])
    second = _run(step, [item])
    assert set(first) == {PROCESSING_DLQ_TOPIC}
    dead = DeadLetter.model_validate_json(first[PROCESSING_DLQ_TOPIC][0].value or b"")
    assert dead.stage == "process:parse" and dead.reason == "invalid_record"
    assert (dead.source_partition, dead.source_offset) == (2, 41)
    assert dead.payload is not None and runtime.codec.sealer.open(dead.payload) == item.value
    again = DeadLetter.model_validate_json(second[PROCESSING_DLQ_TOPIC][0].value or b"")
    assert dead.dead_letter_id == again.dead_letter_id
    _no_personal_data(first[PROCESSING_DLQ_TOPIC][0].value)


def test_a_destroyed_key_is_a_counted_drop(step: ProcessingStep, runtime: Runtime) -> None:
    event = build_event()
    item = _consumed(runtime, event)
    runtime.keystore.destroy(subject_scope(event.subject_key), "erasure")
    outs = _run(step, [item])
    drop = DropRecord.model_validate_json(outs[DROPS_TOPIC][0].value or b"")
    assert (drop.reason.value, drop.stage) == ("key_destroyed", "open")


def test_a_tampered_body_is_dead_lettered(step: ProcessingStep, runtime: Runtime) -> None:
    event = build_event()
    item = _consumed(runtime, event)
    other = _consumed(runtime, build_event(subject_key="sk_other_subject_0001"))
    record = ContactRecord.model_validate_json(item.value or b"")
    forged = record.model_copy(update={"sealed": ContactRecord.model_validate_json(other.value or b"").sealed})
    outs = _run(step, [Consumed(0, 7, item.key, forged.model_dump_json().encode())])
    dead = DeadLetter.model_validate_json(outs[PROCESSING_DLQ_TOPIC][0].value or b"")
    assert dead.stage == "process:open" and dead.reason == "subject_mismatch"
    # a body that is not valid ciphertext under its own key fails to open
    garbled = record.model_copy(update={"sealed": record.sealed.model_copy(update={"ciphertext": "AAAA"})})
    outs = _run(step, [Consumed(0, 8, item.key, garbled.model_dump_json().encode())])
    dead = DeadLetter.model_validate_json(outs[PROCESSING_DLQ_TOPIC][0].value or b"")
    assert dead.stage == "process:open" and dead.reason == "open_failed"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"erased": True, "erased_at": NOW + timedelta(hours=1)}, "subject_erased"),
        ({"restricted": True}, "subject_restricted"),
    ],
)
def test_suppression_state_from_the_table_drops(
    flags: dict[str, Any], reason: str, step: ProcessingStep, runtime: Runtime
) -> None:
    event = build_event()
    state = SuppressionRecord(subject_key=event.subject_key, updated_at=NOW, request_id=uuid.uuid4(), **flags)
    tables = ProcessingState(
        suppression={event.subject_key.encode(): state.model_dump_json().encode()}, blocklist={}, anchors={}, rates={}
    )
    outs = _run(step, [_consumed(runtime, event)], tables)
    assert DropRecord.model_validate_json(outs[DROPS_TOPIC][0].value or b"").reason.value == reason


def test_a_restriction_made_under_the_phone_key_drops_the_persons_form_with_their_email(
    step: ProcessingStep, runtime: Runtime
) -> None:
    """The person was restricted while known only by their number (a caller); their form now names their e-mail and
    that number: it is theirs, under the e-mail's key, and must not be processed (9.4). It was accepted."""
    from pipeline.normalize import subject_key

    event = build_event(person={"email": "ann@example.com", "phone": "+442079460000"})
    phone_key = subject_key(runtime.settings.subject_key_pepper.get_secret_value().encode(), phone="+442079460000")
    state = SuppressionRecord(subject_key=phone_key, restricted=True, updated_at=NOW, request_id=uuid.uuid4())
    tables = ProcessingState(
        suppression={phone_key.encode(): state.model_dump_json().encode()}, blocklist={}, anchors={}, rates={}
    )
    outs = _run(step, [_consumed(runtime, event)], tables)
    assert DropRecord.model_validate_json(outs[DROPS_TOPIC][0].value or b"").reason.value == "subject_restricted"
    alone = build_event(person={"email": "ann@example.com"})  # no number: the phone's state is not the person's
    assert ACCEPTED_TOPIC in _run(step, [_consumed(runtime, alone)], tables)


def test_state_updates_reach_the_table_and_the_changelog(step: ProcessingStep, runtime: Runtime) -> None:
    state = ProcessingState.in_memory()
    delivered = datetime(2024, 5, 1, tzinfo=UTC)
    first = build_event(Channel.CUSTOMER, interaction={"last_service_delivery_at": delivered})
    second = build_event(Channel.CUSTOMER, interaction={"last_service_delivery_at": delivered - timedelta(days=30)})
    outs = _run(step, [_consumed(runtime, first, 0), _consumed(runtime, second, 1)], state)
    anchor_key = f"last_service_delivery:{first.subject_key}".encode()
    assert state.anchors_data[anchor_key] == delivered.isoformat().encode()
    assert [o.key for o in outs[RETENTION_CLOCK_TOPIC]] == [anchor_key]  # the older delivery moved nothing
    # the second submission of the same subject and IP is the first rate window worth writing down
    assert {o.key for o in outs[RATE_WINDOWS_TOPIC]} == {
        f"subject:{first.subject_key}".encode(),
        *[k for k in state.rates_data if k.startswith(b"ip:")],
    }
    accepted = [AcceptedRecord.model_validate_json(o.value or b"") for o in outs[ACCEPTED_TOPIC]]
    assert [a.tags.retention_anchor_at for a in accepted] == [delivered, delivered]


def test_an_internal_error_is_the_events_own_dead_letter(
    step: ProcessingStep, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> list[Out]:
        raise RuntimeError("bug while routing ann@example.com")

    monkeypatch.setattr(step, "route", broken)
    good, bad = build_event(), build_event(subject_key="sk_second_subject_01")
    outs = _run(step, [_consumed(runtime, good, 0), _consumed(runtime, bad, 1)])
    dead = [DeadLetter.model_validate_json(o.value or b"") for o in outs[PROCESSING_DLQ_TOPIC]]
    assert [d.event_id for d in dead] == [good.event_id, bad.event_id]
    assert all(d.stage == "process:internal" and "ann@example.com" not in d.error for d in dead)


def test_the_chain_reads_the_same_context_as_step_context_for_every_event(
    step: ProcessingStep, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``process`` builds the context of the unsuppressed once per batch; each event must still read exactly what
    ``context`` (the reference, used by the review agent too) gives for it, suppressed or not."""
    import pipeline.agents.processing as processing
    from pipeline.processors import ChainContext, run_chain

    plain, objected, other = build_event(), build_event(subject_key="sk_objected_subject"), build_event()
    objection = SuppressionRecord(
        subject_key=objected.subject_key, updated_at=NOW, request_id=uuid.uuid4(), marketing_objected=True
    )
    state = ProcessingState(
        suppression={objected.subject_key.encode(): objection.model_dump_json().encode()},
        blocklist={},
        anchors={},
        rates={},
    )
    seen: list[tuple[ContactEvent, ChainContext]] = []

    def recording(event: ContactEvent, ctx: ChainContext) -> Any:
        seen.append((event, ctx))
        return run_chain(event, ctx)

    monkeypatch.setattr(processing, "run_chain", recording)
    items = [_consumed(runtime, e, i) for i, e in enumerate([plain, objected, other])]
    step.process(items, state, now=NOW)
    assert [e.event_id for e, _ in seen] == [plain.event_id, objected.event_id, other.event_id]
    for event, ctx in seen:
        assert ctx == step.context(event, state, NOW)
    assert seen[1][1].suppression == objection and seen[0][1].suppression is None is seen[2][1].suppression


def test_each_record_s_trace_goes_on_with_every_record_it_leads_to_and_no_other(
    step: ProcessingStep, runtime: Runtime
) -> None:
    """The processing span's ``traceparent`` (``Consumed.trace``) is copied onto that input's outputs only."""
    child, adult = build_event(person={"stated_age": 13}), build_event(subject_key="sk_fedcba9876543210fedc")
    traced = [
        replace(_consumed(runtime, child, offset=0), trace=b"00-" + b"1" * 32 + b"-" + b"a" * 16 + b"-01"),
        replace(_consumed(runtime, adult, offset=1), trace=b"00-" + b"2" * 32 + b"-" + b"b" * 16 + b"-01"),
        Consumed(0, 2, b"k", b"not a record"),
    ]
    outs = [o for group in step.process(traced, ProcessingState.in_memory(), now=NOW).outgoing.values() for o in group]
    by_trace: dict[bytes | None, set[str]] = {}
    for out in outs:
        by_trace.setdefault(out.trace, set()).add(out.topic)
    assert by_trace == {
        traced[0].trace: {DROPS_TOPIC, AUDIT_TOPIC, RIGHTS_COMMANDS_TOPIC},
        traced[1].trace: {ACCEPTED_TOPIC},
        None: {PROCESSING_DLQ_TOPIC},
    }
