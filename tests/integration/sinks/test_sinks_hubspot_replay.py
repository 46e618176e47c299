"""Replaying contacts.accepted into HubSpot after an erasure or a rectification: the real client against the fake.

The rights machinery records what it did in the request tracker (the suppression state with its ``erased_at``,
the requests with their receipt time) before it touches HubSpot; these tests record it the same way, change the
contact in the fake as the rights effect would, then offer the old events to the sink again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fakes.contacts import make_tagged
from fakes.hubspot import FakeHubSpot
from identity_helpers import person
from sinks_helpers import sink_for
from sqlalchemy import Engine

from pipeline.config import Settings
from pipeline.db import make_engine
from pipeline.models.rights import RightKind, RightsCommand
from pipeline.rights.history import RightsHistory
from pipeline.rights.state import next_state
from pipeline.rights.tracker import RequestTracker
from pipeline.sinks.base import WriteOutcome
from pipeline.sinks.hubspot.sink import SUBJECT_ERASED, HubSpotSink

pytestmark = pytest.mark.integration

UPSERT = "/crm/v3/objects/contacts/batch/upsert"
EMAIL = "jane.doe@example.com"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


DPO = person("dpo-test")


def command(kind: RightKind, subject_key: str, at: datetime) -> RightsCommand:
    return RightsCommand(
        request_id=uuid.uuid4(),
        kind=kind,
        subject_key=subject_key,
        issued_at=at,
        issued_by=DPO.actor,
        issuer=DPO,
        due_at=at + timedelta(days=30),
    )


def erase(engine: Engine, subject_key: str, at: datetime) -> None:
    """What the erasure's suppression effect records before any sink erases anything."""
    tracker = RequestTracker(engine)
    request = command(RightKind.ERASURE, subject_key, at)
    tracker.record(request, ["suppression", "kafka", "crm", "hubspot"])
    state = next_state(tracker.state(subject_key), request, at)
    assert state is not None
    tracker.save_state(state)


def test_replay_after_erasure_does_not_recreate_the_contact(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings], engine: Engine
) -> None:
    sink, gateway = sink_for(hubspot_settings(), engine=engine)
    old = make_tagged(EMAIL, first_name="Jane")
    other = make_tagged("someone.else@example.com")
    assert {r.outcome for r in sink.write([old, other])} == {WriteOutcome.WRITTEN}
    erased_at = datetime.now(UTC)
    erase(engine, old.event.subject_key, erased_at)
    assert gateway.purge_contact(EMAIL)  # the rights effect: GDPR delete
    assert fake.contact(EMAIL) is None
    upserts = len(fake.calls("POST", UPSERT))

    results = {r.event_id: r for r in sink.write([old, other])}  # the topic replayed from the start

    assert fake.contact(EMAIL) is None
    replayed = results[old.event.event_id]
    assert (replayed.outcome, replayed.reason) == (WriteOutcome.NOT_APPLICABLE, SUBJECT_ERASED)
    assert results[other.event.event_id].outcome is WriteOutcome.WRITTEN  # other subjects are not held back
    [call] = fake.calls("POST", UPSERT)[upserts:]
    assert [i["id"] for i in call.body["inputs"]] == ["someone.else@example.com"]

    # the person comes back after the erasure: a new collection, written
    later = make_tagged(EMAIL, first_name="Jane", occurred_at=erased_at + timedelta(seconds=5))
    [result] = sink.write([later])
    assert result.outcome is WriteOutcome.WRITTEN
    contact = fake.contact(EMAIL)
    assert contact is not None and contact["properties"]["leadpipe_source_event_id"] == str(later.event.event_id)


def test_an_erasure_during_a_backoff_wins_over_the_retry(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings], engine: Engine
) -> None:
    """The sink checks again right before every call: an erasure while it waits is not undone by the retry."""
    _, gateway = sink_for(hubspot_settings())
    tagged = make_tagged(EMAIL)
    fake.transient_emails[EMAIL] = 1  # the first answer is a 207 with a retryable error for this input

    def erased_while_waiting(_seconds: float) -> None:
        erase(engine, tagged.event.subject_key, datetime.now(UTC))

    sink = HubSpotSink(gateway, sleep=erased_while_waiting, guard=RightsHistory(engine))
    [result] = sink.write([tagged])

    assert (result.outcome, result.reason) == (WriteOutcome.NOT_APPLICABLE, SUBJECT_ERASED)
    assert len(fake.calls("POST", UPSERT)) == 1  # no retry was sent
    assert fake.contact(EMAIL) is None


def test_replay_after_rectification_does_not_undo_it(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings], engine: Engine
) -> None:
    sink, gateway = sink_for(hubspot_settings(), engine=engine)
    old = make_tagged(EMAIL, first_name="Jnae", last_name="Doe", position="CTO")
    [first] = sink.write([old])
    assert first.outcome is WriteOutcome.WRITTEN
    rectified_at = datetime.now(UTC)
    RequestTracker(engine).record(command(RightKind.RECTIFICATION, old.event.subject_key, rectified_at), ["hubspot"])
    gateway.update_contact(EMAIL, {"firstname": "Jane"})  # the rights effect writes the corrected value

    [replayed] = sink.write([old])

    assert replayed.outcome is WriteOutcome.WRITTEN and replayed.message is not None
    props = (fake.contact(EMAIL) or {})["properties"]
    assert props["firstname"] == "Jane"  # the correction stands
    assert props["jobtitle"] == "CTO"
    assert props["leadpipe_source_event_id"] == str(old.event.event_id)  # the event's own properties are written

    # what the person says after the rectification is new data and is written
    later = make_tagged(EMAIL, first_name="Janine", occurred_at=rectified_at + timedelta(seconds=5))
    [result] = sink.write([later])
    assert result.outcome is WriteOutcome.WRITTEN and result.message is None
    assert (fake.contact(EMAIL) or {})["properties"]["firstname"] == "Janine"


def test_the_worker_wires_the_guard_into_its_hubspot_sink(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings], db_url: str
) -> None:
    """``build_sink`` (what the sink agent runs) reads the rights tracker: a replay after erasure is refused."""
    from pipeline.agents.sinks import build_sink
    from pipeline.runtime import Runtime

    runtime = Runtime(hubspot_settings(database_url=db_url))
    try:
        sink = build_sink("hubspot", runtime)
        sink.setup()
        old = make_tagged(EMAIL)
        erase(runtime.engine, old.event.subject_key, datetime.now(UTC))
        [result] = sink.write([old])
        assert (result.outcome, result.reason) == (WriteOutcome.NOT_APPLICABLE, SUBJECT_ERASED)
        assert fake.contact(EMAIL) is None and fake.calls("POST", UPSERT) == []
    finally:
        runtime.engine.dispose()
