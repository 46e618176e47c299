"""The sink agents end to end: real broker, real faust worker, CRM (SQLite) and the fake HubSpot misbehaving.

Accepted records go in on ``contacts.accepted``; every event must come out once per sink on ``sinks.results``,
refused ones on ``sinks.dlq`` with the reason; a redelivery of everything must add nothing anywhere. Rights exercised
after an event was accepted (objection, restriction) hold when it is written.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes.contacts import make_tagged, many_tagged
from fakes.hubspot import FakeHubSpot, Fault
from sinks_helpers import WorkerThread, sink_worker_app

from pipeline.config import Settings
from pipeline.crm.read import CrmReadModel
from pipeline.crypto.sealing import subject_scope
from pipeline.db import ensure_schema
from pipeline.kafka.consumer import Record, read_until
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.records import AcceptedRecord, DeadLetter
from pipeline.models.rights import SinkResult, SinkStatus, SuppressionRecord
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

UPSERT = "/crm/v3/objects/contacts/batch/upsert"


@pytest.fixture
def runtime(kafka_settings: Settings, fake: FakeHubSpot) -> Iterator[Runtime]:
    values: dict[str, Any] = kafka_settings.model_dump()
    values.update(
        app_id=f"lp-sinks-{uuid.uuid4().hex[:8]}",
        hubspot_access_token=fake.token,
        hubspot_base_url=fake.url,
        hubspot_timeout_s=10.0,
        hubspot_backoff_base_s=0.05,
        hubspot_backoff_max_s=0.3,
        batch_size=100,
        batch_timeout_s=0.2,
        sink_retry_max_s=1.0,
    )
    settings = type(kafka_settings)(**values)
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    yield runtime
    runtime.engine.dispose()


def publish_accepted(runtime: Runtime, records: list[AcceptedRecord]) -> None:
    publisher = ConfirmingPublisher(runtime.settings)
    publisher.publish(Outgoing("contacts.accepted", r.subject_key, r) for r in records)
    publisher.close()


def results_of(records: list[Record]) -> list[SinkResult]:
    return [SinkResult.model_validate_json(r.value) for r in records if r.value is not None]


def test_accepted_events_reach_both_sinks_once_through_faults_and_redelivery(
    runtime: Runtime, fake: FakeHubSpot
) -> None:
    events = many_tagged(120)
    phone_only = make_tagged(None, phone="+4930555000")
    refused = make_tagged("refused@example.com")
    erased = make_tagged("erased@example.com")
    objected, restricted = make_tagged("objected@example.com"), make_tagged("restricted@example.com")
    events += [phone_only, refused, erased, objected, restricted]
    records = [runtime.codec.seal_accepted(t) for t in events]
    runtime.keystore.destroy(subject_scope(erased.event.subject_key), "erasure")  # erased after acceptance
    tracker = RequestTracker(runtime.engine)  # the rights worker records these states before its sink effects
    for tagged, flags in ((objected, {"marketing_objected": True}), (restricted, {"restricted": True})):
        tracker.save_state(
            SuppressionRecord(
                subject_key=tagged.event.subject_key, updated_at=datetime.now(UTC), request_id=uuid.uuid4(), **flags
            )
        )
    fake.reject_emails["refused@example.com"] = "Email address refused@example.com is invalid"
    fake.inject(
        Fault.rate_limited(3, path_prefix=UPSERT),
        Fault.rate_limited(1, retry_after=0.3, path_prefix=UPSERT),
        Fault.server_error(2, status=503, path_prefix=UPSERT),
    )
    total = len(events)
    settings = runtime.settings

    def both_sinks_answered(times: int) -> Callable[[list[Record]], bool]:
        def done(records: list[Record]) -> bool:
            counts = Counter(r.sink for r in results_of(records))
            return counts["crm"] >= total * times and counts["hubspot"] >= total * times

        return done

    publish_accepted(runtime, records)
    with WorkerThread(sink_worker_app(runtime)).start():
        results = results_of(read_until(settings, ["sinks.results"], both_sinks_answered(1), timeout_s=150))
        by_sink: dict[str, dict[uuid.UUID, SinkResult]] = {"crm": {}, "hubspot": {}}
        for r in results:
            assert r.event_id not in by_sink[r.sink], f"{r.sink} answered {r.event_id} twice"
            by_sink[r.sink][r.event_id] = r
        crm, hub = by_sink["crm"], by_sink["hubspot"]
        assert {crm[t.event.event_id].status for t in events if t not in (erased, restricted)} == {SinkStatus.DONE}
        for sink in (crm, hub):
            assert sink[erased.event.event_id].status is SinkStatus.NOT_APPLICABLE
            assert sink[restricted.event.event_id].status is SinkStatus.NOT_APPLICABLE
            assert (sink[restricted.event.event_id].detail or "").startswith("subject_restricted")
        assert hub[phone_only.event.event_id].status is SinkStatus.NOT_APPLICABLE
        assert hub[refused.event.event_id].status is SinkStatus.FAILED
        written = [t for t in events if t not in (erased, phone_only, refused, restricted)]
        assert {hub[t.event.event_id].status for t in written} == {SinkStatus.DONE}

        [dead_record] = read_until(settings, ["sinks.dlq"], lambda r: len(r) >= 1, timeout_s=30)
        assert dead_record.value is not None
        dead = DeadLetter.model_validate_json(dead_record.value)
        assert (dead.stage, dead.reason, dead.event_id) == (
            "sink:hubspot",
            "hubspot_validation",
            refused.event.event_id,
        )
        assert "refused@example.com" not in dead.error and "[email]" in dead.error
        assert dead.payload is not None
        replay = AcceptedRecord.model_validate_json(runtime.codec.sealer.open(dead.payload))
        assert replay.event_id == refused.event.event_id

        crm = CrmReadModel(runtime.engine)
        assert crm.interaction_count() == total - 2
        assert len(fake.contacts) == len(written)
        # accepted before the objection, written after it: no direct marketing anywhere
        view = crm.show(objected.event.subject_key)
        assert view is not None and view.marketing_allowed is False
        [stored] = view.interactions_detail
        assert {p.purpose for p in stored.purposes} == {"contract_request"} and stored.marketing_allowed is False
        contact = fake.contact("objected@example.com")
        assert contact is not None and contact["properties"]["leadpipe_marketing_allowed"] == "false"
        assert contact["properties"]["leadpipe_purposes"] == "contract_request"
        assert crm.show(restricted.event.subject_key) is None and fake.contact("restricted@example.com") is None
        statuses = Counter(c.status for c in fake.calls("POST", UPSERT))
        assert statuses[429] == 4 and statuses[503] == 2

        # redelivery of everything: answers again, changes nothing
        publish_accepted(runtime, records)
        read_until(settings, ["sinks.results"], both_sinks_answered(2), timeout_s=120)
        assert crm.interaction_count() == total - 2
        assert len(fake.contacts) == len(written)
        assert fake.rate_limited == 0  # the fake's own budget was never exceeded
