"""The HubSpot sink's delivery ledger: a batch delivered again after a crash reaches HubSpot once (real client, fake).

The ledger lives in the one database (both backends, migrated to head); the sink is the one the worker builds.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fakes.contacts import make_tagged
from fakes.hubspot import FakeHubSpot
from sinks_helpers import sink_for
from sqlalchemy import Engine

from pipeline.config import Settings
from pipeline.sinks.base import WriteOutcome
from pipeline.sinks.hubspot.sink import HubSpotSink
from pipeline.sinks.ledger import DELIVERED, SENDING, DeliveryLedger

pytestmark = pytest.mark.integration

UPSERT = "/crm/v3/objects/contacts/batch/upsert"
READ = "/crm/v3/objects/contacts/batch/read"


def ledger_sink(settings: Settings, engine: Engine) -> tuple[HubSpotSink, DeliveryLedger]:
    _, gateway = sink_for(settings)
    ledger = DeliveryLedger(engine, HubSpotSink.name)
    return HubSpotSink.from_settings(settings, gateway, ledger=ledger), ledger


def test_a_redelivered_batch_is_answered_from_the_ledger(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings], crm_engine: Engine
) -> None:
    sink, ledger = ledger_sink(hubspot_settings(), crm_engine)
    batch = [make_tagged("ann@example.com"), make_tagged("bob@example.com")]
    first = {r.event_id: r for r in sink.write(batch)}
    assert {r.outcome for r in first.values()} == {WriteOutcome.WRITTEN}
    assert {d.state for d in ledger.lookup(first).values()} == {DELIVERED}
    upserts = len(fake.calls("POST", UPSERT))

    again = {r.event_id: r for r in sink.write(batch)}  # the same batch after a crash: its results were never committed

    assert len(fake.calls("POST", UPSERT)) == upserts  # nothing sent twice
    assert {e: (r.outcome, r.external_id) for e, r in again.items()} == {
        e: (r.outcome, r.external_id) for e, r in first.items()
    }


def test_an_upsert_in_flight_when_the_process_died_is_read_back_before_sending(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings], crm_engine: Engine
) -> None:
    """``sending`` rows without ``delivered``: the process died during the call. The one that landed is not sent
    again (HubSpot's ``leadpipe_source_event_id`` says so); the one that did not land is sent."""
    settings = hubspot_settings()
    landed, lost = make_tagged("ann@example.com"), make_tagged("bob@example.com")
    plain, _ = sink_for(settings)  # the call that reached HubSpot before the crash (no ledger row moved on)
    [done] = plain.write([landed])
    assert done.outcome is WriteOutcome.WRITTEN
    sink, ledger = ledger_sink(settings, crm_engine)
    ledger.sending([landed.event.event_id, lost.event.event_id])
    assert {d.state for d in ledger.lookup([landed.event.event_id]).values()} == {SENDING}
    upserts = len(fake.calls("POST", UPSERT))

    results = {r.event_id: r for r in sink.write([landed, lost])}

    assert {r.outcome for r in results.values()} == {WriteOutcome.WRITTEN}
    assert len(fake.calls("POST", READ)) == 1
    [call] = fake.calls("POST", UPSERT)[upserts:]
    assert [i["id"] for i in call.body["inputs"]] == ["bob@example.com"]
    assert results[landed.event.event_id].external_id == done.external_id
    states = ledger.lookup(results)
    assert {d.state for d in states.values()} == {DELIVERED}
