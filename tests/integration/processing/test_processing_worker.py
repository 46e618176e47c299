"""The processing worker end to end: real broker, ``leadpipe worker`` as a subprocess, exactly_once.

Events go in on ``contacts.normalized`` (sealed ``ContactRecord``s, as the ingest API publishes them); each must
come out exactly once on the topic its outcome names, with the audit lines, and suppression, children, spam and
review must behave as the policy says.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from identity_helpers import key_for, person
from processing_harness import (
    WorkerProcess,
    contact,
    publish,
    publish_events,
    publish_raw,
    read_outputs,
)
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.kafka.consumer import Record, read_to_end, read_until
from pipeline.kafka.launcher import free_port
from pipeline.models.common import Channel, InteractionKind
from pipeline.models.identity import Role
from pipeline.models.processing import DropRecord
from pipeline.models.records import AcceptedRecord, DeadLetter, QuarantineRecord
from pipeline.models.review import BlocklistEntry, ReviewDecision
from pipeline.models.rights import AuditRecord, SuppressionRecord
from pipeline.review.service import ReviewService
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def runtime(kafka_settings: Settings) -> Iterator[Runtime]:
    values: dict[str, Any] = kafka_settings.model_dump()
    values.update(batch_timeout_s=0.1, worker_commit_interval_s=0.2)
    runtime = Runtime(type(kafka_settings)(**values))
    ensure_schema(runtime.engine)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def worker(runtime: Runtime, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(runtime.settings, tmp_path / "worker.log", web_port=free_port())
    yield process
    process.stop()


def _event_id(record: Record) -> uuid.UUID | None:
    value = record.value or b""
    if record.topic == "contacts.accepted":
        return AcceptedRecord.model_validate_json(value).event_id
    if record.topic == "contacts.quarantine":
        return QuarantineRecord.model_validate_json(value).event_id
    if record.topic == "contacts.drops":
        return DropRecord.model_validate_json(value).event_id
    return DeadLetter.model_validate_json(value).event_id


def _suppression(subject_key: str, **flags: Any) -> tuple[str, SuppressionRecord]:
    record = SuppressionRecord(subject_key=subject_key, updated_at=datetime.now(UTC), request_id=uuid.uuid4(), **flags)
    return subject_key, record


def test_every_event_comes_out_once_on_the_topic_its_outcome_names(runtime: Runtime, worker: WorkerProcess) -> None:
    now = datetime.now(UTC)
    ordinary = [
        contact(i, channel=c, kind=k)
        for i, (c, k) in enumerate(
            [
                (Channel.WEB_FORM, InteractionKind.CONTACT_US),
                (Channel.WEB_FORM, InteractionKind.WHITE_PAPER),
                (Channel.CHATBOT, InteractionKind.CHAT),
                (Channel.EMAIL, InteractionKind.EMAIL),
                (Channel.MESSENGER, InteractionKind.CALL),
                (Channel.WEBSITE, InteractionKind.PAGE_VIEW),
                (Channel.EVENT, InteractionKind.REGISTRATION),
            ]
        )
    ]
    customer = contact(
        20,
        channel=Channel.CUSTOMER,
        kind=InteractionKind.CUSTOMER_RECORD,
        last_service_delivery_at=now - timedelta(days=10),
    )
    spam = [contact(30 + i, honeypot="bot", message="Guaranteed returns!") for i in range(3)]
    children = [contact(40, message="Hi, I am 14 years old"), contact(41, message="I'm 12 yo")]
    restricted = contact(50)
    erased_before = contact(51, received_at=now - timedelta(hours=2))
    erased_after = contact(52, subject_key=erased_before.subject_key, received_at=now)
    objected = contact(53)
    states = [
        _suppression(restricted.subject_key, restricted=True),
        _suppression(erased_before.subject_key, erased=True, erased_at=now - timedelta(hours=1)),
        _suppression(objected.subject_key, marketing_objected=True),
    ]
    publish(runtime, "suppression", states)
    tracker = RequestTracker(runtime.engine)  # as the rights worker keeps them; a worker refuses to start on states
    for _, state in states:  # the tracker lacks (a restored database: pipeline/rights/restore.py)
        tracker.save_state(state)
    events = [*ordinary, customer, *spam, *children, restricted, erased_before, erased_after, objected]
    publish_events(runtime, events)
    publish_raw(runtime, [b"not json at all", b'{"event_id": "x"}'])

    with worker:
        records = read_outputs(runtime.settings, until=len(events) + 2)
        scraped = httpx.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=10)
    by_id = Counter(_event_id(r) for r in records)
    assert len(records) == len(events) + 2, worker.log_tail()
    assert all(by_id[e.event_id] == 1 for e in events), by_id
    topic_of = {_event_id(r): r.topic for r in records}
    expected = {
        **{e.event_id: "contacts.accepted" for e in [*ordinary, customer, erased_after, objected]},
        **{e.event_id: "contacts.quarantine" for e in spam},
        **{e.event_id: "contacts.drops" for e in [*children, restricted, erased_before]},
    }
    assert {k: v for k, v in topic_of.items() if k is not None} == expected

    accepted = {
        a.event_id: a
        for a in (AcceptedRecord.model_validate_json(r.value or b"") for r in records if r.topic == "contacts.accepted")
    }
    for event in [*ordinary, customer]:
        assert runtime.codec.open_tagged(accepted[event.event_id]).event == event
        assert accepted[event.event_id].tags.marketing_allowed is (event.channel is not Channel.WEBSITE)
    assert accepted[objected.event_id].tags.marketing_allowed is False
    assert accepted[customer.event_id].tags.retention_clock == "last_service_delivery"

    drops = {
        d.event_id: d.reason.value
        for d in (DropRecord.model_validate_json(r.value or b"") for r in records if r.topic == "contacts.drops")
    }
    assert drops == {
        children[0].event_id: "child",
        children[1].event_id: "child",
        restricted.event_id: "subject_restricted",
        erased_before.event_id: "subject_erased",
    }
    dead = [DeadLetter.model_validate_json(r.value or b"") for r in records if r.topic == "contacts.dlq"]
    assert {(d.stage, d.reason) for d in dead} == {("process:parse", "invalid_record")}
    assert all(d.payload is not None and d.source_offset is not None for d in dead)

    audit = [AuditRecord.model_validate_json(r.value or b"") for r in read_to_end(runtime.settings, ["audit"])]
    assert Counter(a.action for a in audit) == {"quarantined": 3, "dropped": 4}
    for line in audit:
        text = line.model_dump_json()
        assert "ann." not in text and "example.com" not in text and "Tester" not in text

    # The worker's /metrics counted the same outcomes (at least: a batch redone after a rebalance counts again).
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    expected_counts = {
        ("leadpipe_processing_records_total", (("agent", "processing"), ("outcome", "accepted"))): 10,
        ("leadpipe_processing_records_total", (("agent", "processing"), ("outcome", "quarantined"))): 3,
        ("leadpipe_processing_records_total", (("agent", "processing"), ("outcome", "dropped"))): 4,
        ("leadpipe_processing_records_total", (("agent", "processing"), ("outcome", "dead_letter"))): 2,
        ("leadpipe_processing_drops_total", (("reason", "child"),)): 2,
        ("leadpipe_processing_drops_total", (("reason", "subject_restricted"),)): 1,
        ("leadpipe_processing_drops_total", (("reason", "subject_erased"),)): 1,
    }
    for sample, count in expected_counts.items():
        assert values.get(sample, 0) >= count, (sample, values.get(sample))
    assert values[("leadpipe_processing_batch_seconds_count", (("agent", "processing"),))] >= 1
    assert "ann." not in scraped.text and "sk_" not in scraped.text  # codes only: no address, no subject key


def test_suppression_published_while_the_worker_runs_is_applied(runtime: Runtime, worker: WorkerProcess) -> None:
    warm_up = contact(1)
    publish_events(runtime, [warm_up])
    worker.start()
    read_outputs(runtime.settings, until=1)

    subject = f"sk_live_{uuid.uuid4().hex[:20]}"
    erased_at = datetime.now(UTC)
    publish(runtime, "suppression", [_suppression(subject, erased=True, erased_at=erased_at)])
    # The table follows the compacted topic while the worker runs: a late event of the subject (received before the
    # erasure) is dropped once the update has arrived. Probe until it has, then check a new submission is accepted.
    deadline = time.monotonic() + 60
    seen: list[str] = []
    while time.monotonic() < deadline:
        probe = contact(2, subject_key=subject, received_at=erased_at - timedelta(seconds=5))
        publish_events(runtime, [probe])
        found = read_until(
            runtime.settings,
            ["contacts.accepted", "contacts.drops"],
            lambda rs, probe=probe: any(_event_id(r) == probe.event_id for r in rs),
            timeout_s=30,
        )
        outcome = next(r.topic for r in found if _event_id(r) == probe.event_id)
        seen.append(outcome)
        if outcome == "contacts.drops":
            break
        time.sleep(0.5)
    assert seen[-1] == "contacts.drops", seen
    comeback = contact(3, subject_key=subject, received_at=datetime.now(UTC) + timedelta(seconds=1))
    publish_events(runtime, [comeback])
    found = read_until(
        runtime.settings, ["contacts.accepted"], lambda rs: any(_event_id(r) == comeback.event_id for r in rs)
    )
    assert any(_event_id(r) == comeback.event_id for r in found)


def test_review_release_and_confirm_with_block(runtime: Runtime, worker: WorkerProcess) -> None:
    from fastapi.testclient import TestClient

    from pipeline.api.app import create_api
    from pipeline.kafka.producer import ConfirmingPublisher

    released, confirmed = contact(1, honeypot="bot"), contact(2, honeypot="bot")
    publish_events(runtime, [released, confirmed])
    worker.start()
    read_until(runtime.settings, ["contacts.quarantine"], lambda rs: len(rs) >= 2)

    publisher = ConfirmingPublisher(runtime.settings)
    client = TestClient(create_api(runtime, publisher))
    rita = key_for(runtime.settings, Role.REVIEWER, "rita", display_name="Rita Review")
    headers = {"Authorization": f"Bearer {rita}"}
    assert client.get("/v1/review/quarantine").status_code == 401
    queue = client.get("/v1/review/quarantine", headers=headers).json()
    assert {item["event_id"] for item in queue} == {str(released.event_id), str(confirmed.event_id)}
    assert all("honeypot" in {r["code"] for r in item["reasons"]} for item in queue)
    assert "ann." not in str(queue)
    # a queue of thousands is read a page at a time (it was the first `limit` only, with no count)
    pages = [
        client.get("/v1/review/quarantine", params={"limit": 1, "offset": n, "sort": "newest"}, headers=headers)
        for n in (0, 1, 2)
    ]
    assert all(page.status_code == 200 for page in pages), pages[0].text
    assert {(page.headers["X-Total-Count"], page.headers["X-Queue-Waiting"]) for page in pages} == {("2", "2")}
    assert [len(page.json()) for page in pages] == [1, 1, 0]
    assert {page.json()[0]["event_id"] for page in pages[:2]} == {item["event_id"] for item in queue}
    other = client.get("/v1/review/quarantine", params={"channel": "email", "reason": "honeypot"}, headers=headers)
    assert (other.json(), other.headers["X-Total-Count"], other.headers["X-Queue-Waiting"]) == ([], "0", "2")
    assert client.get("/v1/review/quarantine", params={"limit": 0}, headers=headers).status_code == 422
    assert client.get("/v1/review/quarantine", params={"sort": "random"}, headers=headers).status_code == 422
    shown = client.get(f"/v1/review/quarantine/{released.event_id}", headers=headers).json()
    assert shown["interaction"]["message"] == released.interaction.message

    answer = client.post(f"/v1/review/quarantine/{released.event_id}/release", headers=headers)
    assert answer.status_code == 202, answer.text
    again = client.post(f"/v1/review/quarantine/{released.event_id}/release", headers=headers)
    assert again.status_code == 409
    ReviewService(runtime, publisher).decide(
        confirmed.event_id, "confirm", person("rolf", None, Role.REVIEWER), ["sender", "domain"]
    )

    out = read_until(
        runtime.settings,
        ["contacts.accepted", "spam.blocklist"],
        lambda rs: {r.topic for r in rs} == {"contacts.accepted", "spam.blocklist"} and len(rs) >= 3,
    )
    accepted = [AcceptedRecord.model_validate_json(r.value or b"") for r in out if r.topic == "contacts.accepted"]
    assert [a.event_id for a in accepted] == [released.event_id]
    review = accepted[0].tags.spam.review
    rita_principal = client.get("/v1/me", headers=headers).json()["principal"]
    assert review is not None and (review.decision, review.reviewer) == (
        "released",
        f"person:{rita_principal['principal_id']}",
    )
    assert accepted[0].tags.spam.reasons[0].code == "honeypot" and not accepted[0].tags.spam.is_spam
    entries = [BlocklistEntry.model_validate_json(r.value or b"") for r in out if r.topic == "spam.blocklist"]
    assert {e.target for e in entries} == {"sender", "domain"}
    assert all("example.com" not in e.key for e in entries)

    # the confirmed sender writes again, without any spam signal: the reviewer blocklist quarantines it
    again_sender = contact(3, subject_key=confirmed.subject_key)
    deadline = time.monotonic() + 60
    while True:
        publish_events(runtime, [again_sender])
        found = read_until(
            runtime.settings,
            ["contacts.accepted", "contacts.quarantine"],
            lambda rs, e=again_sender: any(_event_id(r) == e.event_id for r in rs),
        )
        record = next(r for r in found if _event_id(r) == again_sender.event_id)
        if record.topic == "contacts.quarantine" or time.monotonic() > deadline:
            break
        again_sender = contact(3, subject_key=confirmed.subject_key)
    assert record.topic == "contacts.quarantine"
    reasons = QuarantineRecord.model_validate_json(record.value or b"").tags.spam.reasons
    assert "reviewer_blocklist" in {r.code for r in reasons}

    decisions = [
        ReviewDecision.model_validate_json(r.value or b"")
        for r in read_to_end(runtime.settings, ["contacts.review.decisions"])
    ]
    assert [d.decision for d in decisions] == ["release", "confirm"]
    audit = [AuditRecord.model_validate_json(r.value or b"") for r in read_to_end(runtime.settings, ["audit"])]
    reviewed = {a.action: a for a in audit if a.action.startswith("review_")}
    assert set(reviewed) == {"review_released", "review_confirmed"}
    assert reviewed["review_confirmed"].detail["blocked"] == ["sender", "domain"]
    assert reviewed["review_released"].detail["reasons"][0]["code"] == "honeypot"
    publisher.close()
