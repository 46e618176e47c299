"""The processing step's hot path against the pure reference, on generated batches: the same records out.

``ProcessingStep.process`` takes every shortcut the hot path has (the ASCII prefilter instead of the spam scans, the
age patterns' digit gate and union, tags built without validation and written by ``tags_json``, the accepted record
written by appending the tags to the consumed bytes, one chain context per batch, records constructed without
validation). The reference here takes none of them: it parses the record and the opened body with pydantic, builds
the event with the validating constructor, runs ``run_chain`` under the policy with the prefilter, the digit gate
and the age union turned off (``scan_content`` and each age pattern on its own on every text), validates the tags
again and serialises every output with pydantic. Both see the same batch in the same order with the same table state
(suppression records, reviewer blocklist, rate windows and retention anchors that earlier events of the batch
update), and every output of every record must be the same: topic, key and value (values compared as JSON, audit ids
aside, which are random).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast
from unittest.mock import patch

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from processor_events import NOW

from pipeline.agents import processing
from pipeline.agents.processing import BatchResult, Consumed, ProcessingStep, SharedProcessing, _header
from pipeline.agents.sender import Out
from pipeline.agents.views import ProcessingState
from pipeline.config import explicit_settings
from pipeline.crypto.sealing import subject_scope
from pipeline.db import ensure_schema
from pipeline.models.common import Channel, InteractionKind, Purpose
from pipeline.models.contact import Consent, ContactEvent, Interaction, Person, Provenance, Utterance
from pipeline.models.records import AcceptedRecord, ContactBody, ContactRecord, QuarantineRecord
from pipeline.models.rights import SuppressionRecord
from pipeline.models.tagged import Tags
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, Passed, Quarantined, compile_policy, run_chain
from pipeline.processors.spam import sender_key
from pipeline.runtime import Runtime
from pipeline.topics import ACCEPTED_TOPIC, QUARANTINE_TOPIC

SUBJECTS = [f"sk_diff_{i:04d}_subject" for i in range(6)]
IPS = ["203.0.113.7", "198.51.100.23", "2001:db8::1", "10.0.0.1", None]
DOMAINS = ["example.com", "mailinator.com", "sub.example.org", "bigcorp.example.co.uk", "xn--bcher-kva.example"]
FRAGMENTS = [
    "Please send the white paper on pricing.",
    "Can we talk next week about Kubernetes?",
    "viagra",
    "Cheap CASINO bonus",
    "guaranteed returns",
    "act now",
    "crypto giveaway",
    "https://a.example/x",
    "www.b.example",
    "see http://c.example and https://d.example/y",
    "PLEASE CALL ME BACK IMMEDIATELY ABOUT OUR OFFER",
    "I am 14 years old",
    "I'm 40 years old",
    "Grüße aus München",
    "ÜBERALL GROSSBUCHSTABEN",
    "\u212aasino",
    "casino\u00a0bonus",
    "",
]
ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    """A moment around ``NOW`` (within ~3 years before, a minute after), in one of a few zones."""
    offset = draw(st.integers(min_value=-3 * 366 * 86400, max_value=60))
    return (NOW + timedelta(seconds=offset, microseconds=draw(st.integers(0, 999_999)))).astimezone(
        draw(st.sampled_from(ZONES))
    )


#: One fragment alone half the time (so each rule's own case comes often), else a few fragments and any text.
texts = st.sampled_from(FRAGMENTS) | st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=30), max_size=4).map(
    " ".join
)


@st.composite
def events(draw: st.DrawFn) -> ContactEvent:
    channel = draw(st.sampled_from(list(Channel)))
    occurred = draw(moments())
    interaction: dict[str, Any] = {
        "kind": draw(st.sampled_from(list(InteractionKind))),
        "message": draw(st.none() | texts),
        "subject": draw(st.none() | st.none() | texts),
        "honeypot": draw(st.sampled_from([None, None, None, "", "filled"])),
    }
    if draw(st.booleans()):
        interaction["transcript"] = tuple(
            Utterance(author=draw(st.sampled_from(["person", "agent", "bot", "quoted"])), text=draw(texts))
            for _ in range(draw(st.integers(1, 3)))
        )
    if channel is Channel.CUSTOMER and draw(st.booleans()):
        interaction["last_service_delivery_at"] = draw(moments())
    if channel is Channel.EVENT and draw(st.booleans()):
        interaction["event_date"] = draw(moments())
    message = interaction["message"]
    if message and draw(st.booleans()):
        interaction["list_footer_at"] = draw(st.integers(0, len(message)))
    if message and draw(st.booleans()):
        interaction["history_at"] = draw(st.integers(0, len(message)))
    person: dict[str, Any] = {
        "first_name": "Ann",
        "email": draw(st.none() | st.sampled_from(DOMAINS).map(lambda d: f"ann@{d}")),
        "phone": draw(st.sampled_from([None, "+442079460000"])),
        "stated_age": draw(st.sampled_from([None, None, 12, 15, 16, 40])),
    }
    if draw(st.integers(0, 9)) == 0:
        person["birth_date"] = (occurred - timedelta(days=draw(st.integers(10 * 365, 20 * 365)))).date()
    consents = tuple(
        Consent(
            purpose=draw(st.sampled_from(list(Purpose))),
            granted=draw(st.booleans()),
            given_at=draw(moments()),
            method=draw(st.sampled_from(["checkbox", "chat_answer", "email_reply", "verbal", "form_field", "import"])),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    return ContactEvent(
        event_id=uuid.uuid4(),
        channel=channel,
        occurred_at=occurred,
        received_at=draw(st.sampled_from([occurred, occurred + timedelta(seconds=5)])),
        subject_key=draw(st.sampled_from(SUBJECTS)),
        person=Person(**person),
        interaction=Interaction(**interaction),
        consents=consents,
        provenance=Provenance(source_id="diff", ip=draw(st.sampled_from(IPS))),
    )


@st.composite
def table_states(draw: st.DrawFn) -> dict[str, dict[bytes, bytes]]:
    """Suppression records and reviewer blocklist entries for some of the subjects."""
    suppression: dict[bytes, bytes] = {}
    for key in draw(st.lists(st.sampled_from(SUBJECTS), max_size=3, unique=True)):
        erased = draw(st.booleans())
        record = SuppressionRecord(
            subject_key=key,
            erased=erased,
            erased_at=draw(moments()) if erased else None,
            marketing_objected=draw(st.booleans()),
            restricted=draw(st.integers(0, 3)) == 0,
            consent_withdrawn=(
                withdrawn := tuple(draw(st.lists(st.sampled_from(list(Purpose)), max_size=2, unique=True)))
            ),
            consent_withdrawn_at={purpose: draw(moments()) for purpose in withdrawn},  # a consent may come after
            updated_at=NOW,
            request_id=uuid.uuid4(),
        )
        suppression[key.encode()] = record.model_dump_json().encode()
    blocked = draw(st.lists(st.sampled_from(SUBJECTS), max_size=2, unique=True))
    return {"suppression": suppression, "blocklist": {sender_key(k).encode(): b"{}" for k in blocked}}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    home: Path = tmp_path_factory.mktemp("differential")
    runtime = Runtime(
        explicit_settings(
            environment="test",
            home=home,
            subject_key_pepper="pepper",
            key_encryption_key=base64.urlsafe_b64encode(b"d" * 32).decode(),
        )
    )
    ensure_schema(runtime.engine)
    yield runtime
    runtime.engine.dispose()


def state_of(tables: dict[str, dict[bytes, bytes]]) -> ProcessingState:
    return ProcessingState(
        suppression=dict(tables["suppression"]), blocklist=dict(tables["blocklist"]), anchors={}, rates={}
    )


def reference_outputs(step: ProcessingStep, item: Consumed, state: ProcessingState, now: datetime) -> list[Out]:
    """One record the plain way: pydantic parses and validates everything, the chain scans everything."""
    record = ContactRecord.model_validate_json(item.value or b"")
    body = ContactBody.model_validate_json(step.codec.sealer.open(record.sealed))
    event = ContactEvent(**_header(record), **{name: getattr(body, name) for name in ContactBody.model_fields})
    plain = dataclasses.replace(step.policy, content_prefilter=None, age_union=None, age_needs_digit=False)
    ctx = ChainContext(
        policy=plain,
        now=now,
        pepper=step.pepper,
        suppression=state.suppression.get(event.subject_key),
        anchors=state.anchors,
        rates=state.rates,
        blocklist=state.blocklist,
    )
    chain = run_chain(event, ctx)
    outcome = chain.outcome
    key = record.subject_key.encode()
    if isinstance(outcome, Passed | Quarantined):
        tags = Tags(**{name: getattr(outcome.tagged.tags, name) for name in Tags.model_fields})
    if isinstance(outcome, Passed):
        accepted = AcceptedRecord(**_header(record), sealed=record.sealed, tags=tags)
        outs = [Out(ACCEPTED_TOPIC, key, accepted.model_dump_json().encode())]
    elif isinstance(outcome, Quarantined):
        quarantined = QuarantineRecord(**_header(record), sealed=record.sealed, tags=tags, quarantined_at=now)
        outs = [Out(QUARANTINE_TOPIC, key, quarantined.model_dump_json().encode())]
        outs.extend(step.route(item, record, event, chain, now)[1:])  # the audit entry: no shortcut in it
    else:
        outs = step.route(item, record, event, chain, now)
    outs.extend(step.apply_updates(chain, state))
    return outs


def comparable(out: Out) -> tuple[str, bytes | None, Any]:
    """Topic, key and value; a JSON value parsed, without its random audit id (a retention anchor is ISO text)."""
    if not out.value or not out.value.startswith(b"{"):
        return out.topic, out.key, out.value
    value = orjson.loads(out.value)
    value.pop("audit_id", None)
    return out.topic, out.key, value


def sealed_batch(runtime: Runtime, batch: list[ContactEvent]) -> tuple[ProcessingStep, list[Consumed]]:
    """A step under the shipped policy, and the batch as the records it consumes (partition 0, offsets in order)."""
    step = ProcessingStep.from_runtime(runtime, compile_policy(load_policy()))
    runtime.keystore.warm(subject_scope(e.subject_key) for e in batch)
    consumed = [
        Consumed(0, offset, e.subject_key.encode(), runtime.codec.seal_contact(e).model_dump_json().encode())
        for offset, e in enumerate(batch)
    ]
    return step, consumed


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(events(), min_size=1, max_size=25), tables=table_states())
def test_the_step_gives_the_reference_outputs(
    batch: list[ContactEvent], tables: dict[str, dict[bytes, bytes]], runtime: Runtime
) -> None:
    step, consumed = sealed_batch(runtime, batch)
    fast_state, reference_state = state_of(tables), state_of(tables)
    fast = step.process(consumed, fast_state, now=NOW).outgoing.get(0, [])
    reference = [out for item in consumed for out in reference_outputs(step, item, reference_state, NOW)]
    assert [comparable(o) for o in fast] == [comparable(o) for o in reference]
    assert fast_state.rates_data == reference_state.rates_data
    assert fast_state.anchors_data == reference_state.anchors_data
    accepted = [o.value for o in fast if o.topic == ACCEPTED_TOPIC]
    assert all(AcceptedRecord.model_validate_json(value or b"") for value in accepted)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(events(), min_size=1, max_size=25), tables=table_states(), part=st.integers(1, 7))
def test_the_agent_s_parts_give_the_outputs_and_state_of_the_whole_batch(
    batch: list[ContactEvent], tables: dict[str, dict[bytes, bytes]], part: int, runtime: Runtime
) -> None:
    """The processing agent runs the chain in parts (``FINISH_PART`` events, its outputs handed over part by part):
    later parts must see the earlier parts' rate windows and anchors exactly as one pass over the batch does."""
    step, consumed = sealed_batch(runtime, batch)
    whole_state, parts_state = state_of(tables), state_of(tables)
    whole = step.process(consumed, whole_state, now=NOW)
    shared = SharedProcessing(
        step=step, tables=cast(Any, None), sender=cast(Any, None), partitions={}, metrics=cast(Any, None)
    )

    async def in_parts() -> list[BatchResult]:
        return [result async for result in shared.process(consumed, parts_state, now=NOW)]

    with patch.object(processing, "FINISH_PART", part):
        parts = asyncio.run(in_parts())
    assert len(parts) == -(-len(consumed) // part)
    merged = BatchResult()
    for result in parts:
        merged.merge(result)
    assert [comparable(o) for o in merged.outgoing.get(0, [])] == [comparable(o) for o in whole.outgoing.get(0, [])]
    assert merged.counts == whole.counts and merged.by_channel == whole.by_channel
    assert parts_state.rates_data == whole_state.rates_data
    assert parts_state.anchors_data == whole_state.anchors_data
