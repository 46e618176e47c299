"""Policy 9.4: a restricted person's data is stored but not processed further, so the chain sets aside what they send
next. It used to vanish without a word: nobody learned that the person wrote (perhaps to ask for the restriction to be
lifted). The chain's drop line now names the subject, the rights worker files it under the restriction that stood,
and the DPO sees it on the request and in the open list until they record having reviewed it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from identity_helpers import person
from ingest_helpers import RecordingPublisher
from sqlalchemy import update

from pipeline.agents.rights import RightsWorker
from pipeline.models.identity import system_principal
from pipeline.models.rights import AuditRecord, RightKind
from pipeline.rights.commands import build_command
from pipeline.rights.dpo import DpoTools
from pipeline.rights.tracker import CONTACT_WHILE_RESTRICTED, RequestState, RequestTracker, RightsRequest
from pipeline.runtime import Runtime

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
SUBJECT = "sk_" + "7" * 40
PROCESSING = system_principal("processing")


def dropped(at: datetime, subject_key: str | None = SUBJECT, reason: str = "subject_restricted") -> AuditRecord:
    """The chain's audit line for a dropped event (``ProcessingStep.drop``)."""
    return AuditRecord.new(
        "processing",
        "dropped",
        at=at,
        principal=PROCESSING,
        subject_key=subject_key,
        event_id=uuid.uuid4(),
        detail={
            "reason": reason,
            "stage": "suppression",
            "channel": "web_form",
            "received_at": (at - timedelta(seconds=1)).isoformat(),
        },
    )


def restrict(tracker: RequestTracker, at: datetime, kind: RightKind = RightKind.RESTRICTION) -> str:
    command = build_command(kind, SUBJECT, issued_by=person("dpo"), now=at)
    tracker.record(command, ["suppression"])
    return str(command.request_id)


def test_a_contact_is_filed_under_the_restriction_that_stood_when_it_came(runtime: Runtime) -> None:
    tracker = RequestTracker(runtime.engine)
    first = restrict(tracker, NOW)
    later = restrict(tracker, NOW + timedelta(days=10))
    line = dropped(NOW + timedelta(days=1))
    filed = tracker.file_contact_while_restricted(line)
    assert filed is not None and str(filed.request_id) == first and filed.subject_key == SUBJECT
    assert tracker.file_contact_while_restricted(line) == filed  # the same line again: filed once
    tracker.file_contact_while_restricted(dropped(NOW + timedelta(days=11)))
    view = tracker.get(first)
    assert view is not None and view.contacts_unreviewed == 1
    [contact] = view.contacts_while_restricted
    assert (contact.event_id, contact.channel, contact.dropped_at) == (line.event_id, "web_form", line.at)
    assert contact.received_at == line.at - timedelta(seconds=1)
    assert [len(v.contacts_while_restricted) for v in tracker.requests()] == [1, 1]
    assert tracker.get(later).contacts_unreviewed == 1  # type: ignore[union-attr]
    trail = tracker.audit_trail(request_id=first)
    assert [a.action for a in trail].count(CONTACT_WHILE_RESTRICTED) == 1  # ``leadpipe dpo show`` lists it
    # other drop lines are not contacts of a restricted person (a child's carries no key at all)
    assert tracker.file_contact_while_restricted(dropped(NOW, subject_key=None, reason="child")) is None
    assert tracker.file_contact_while_restricted(dropped(NOW, reason="subject_erased")) is None


def test_the_dpo_sees_the_contact_in_the_open_list_until_it_is_reviewed(runtime: Runtime) -> None:
    tools = DpoTools(runtime, RecordingPublisher(), migrate=False)  # type: ignore[arg-type]
    request_id = restrict(tools.tracker, NOW)
    with runtime.engine.begin() as conn:  # carried out: the restriction stands, the request is completed
        conn.execute(
            update(RightsRequest).where(RightsRequest.request_id == request_id).values(state=RequestState.COMPLETED)
        )
    assert tools.open_requests() == []
    with pytest.raises(ValueError, match="made no contact"):
        tools.contacts_reviewed(request_id, by=person("dora"))
    tools.tracker.file_contact_while_restricted(dropped(NOW + timedelta(hours=1)))
    [listed] = tools.open_requests()
    assert listed.request_id == request_id and listed.contacts_unreviewed == 1
    reviewed = tools.contacts_reviewed(request_id, by=person("dora"))
    assert reviewed.contacts_unreviewed == 0 and len(reviewed.contacts_while_restricted) == 1
    assert tools.open_requests() == []
    assert [o.value.action for o in tools.publisher.records] == ["rights.contacts_reviewed"]  # type: ignore[attr-defined]
    tools.tracker.file_contact_while_restricted(dropped(NOW + timedelta(hours=2)))  # the person writes again
    assert [v.contacts_unreviewed for v in tools.open_requests()] == [1]
    objection = build_command(RightKind.OBJECTION, SUBJECT, issued_by=person("dpo"), now=NOW)
    tools.tracker.record(objection, ["suppression"])
    with pytest.raises(ValueError, match="restrictions only"):
        tools.contacts_reviewed(objection.request_id, by=person("dora"))


def test_the_rights_worker_files_only_a_restricted_subject_s_dropped_contact(runtime: Runtime) -> None:
    worker = RightsWorker(runtime, RecordingPublisher(), executor=None)  # type: ignore[arg-type]
    tracker = RequestTracker(runtime.engine)
    request_id = restrict(tracker, NOW)
    contact = dropped(NOW + timedelta(minutes=5))
    for value in (
        b"not json",
        AuditRecord.new("processing", "quarantined", subject_key=SUBJECT).model_dump_json().encode(),
        dropped(NOW, reason="child", subject_key=None).model_dump_json().encode(),
        contact.model_dump_json().encode(),
    ):
        asyncio.run(worker.restricted_contact(value))
    view = tracker.get(request_id)
    assert view is not None and [c.event_id for c in view.contacts_while_restricted] == [contact.event_id]


def test_the_api_shows_the_contacts_and_records_their_review(client: TestClient, runtime: Runtime) -> None:
    tracker = RequestTracker(runtime.engine)
    request_id = restrict(tracker, NOW)
    line = dropped(NOW + timedelta(hours=1))
    tracker.file_contact_while_restricted(line)
    shown = client.get(f"/v1/dpo/requests/{request_id}").json()
    assert shown["contacts_unreviewed"] == 1
    assert [c["event_id"] for c in shown["contacts_while_restricted"]] == [str(line.event_id)]
    assert [r["request_id"] for r in client.get("/v1/dpo/requests").json()] == [request_id]
    reviewed = client.post(f"/v1/dpo/requests/{request_id}/contacts-reviewed")
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["contacts_unreviewed"] == 0
    again = client.post(f"/v1/dpo/requests/{uuid.uuid4()}/contacts-reviewed")
    assert again.status_code == 404


def test_a_database_outage_is_waited_out_never_skipped(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The filing fails while the database is down: the worker retries the same line (its offset not yet done) until
    it is filed, so the DPO still learns of the contact."""
    worker = RightsWorker(runtime, RecordingPublisher(), executor=None)  # type: ignore[arg-type]
    request_id = restrict(worker.tracker, NOW)
    contact = dropped(NOW + timedelta(minutes=5))
    real, calls = worker.tracker.file_contact_while_restricted, []

    def down_twice(line: AuditRecord) -> AuditRecord | None:
        calls.append(line.event_id)
        if len(calls) <= 2:
            raise OSError("connection refused")  # what a database outage looks like to the driver
        return real(line)

    monkeypatch.setattr(worker.tracker, "file_contact_while_restricted", down_twice)
    monkeypatch.setattr("pipeline.agents.rights.backoff_delay", lambda *_: 0.0)
    asyncio.run(worker.restricted_contact(contact.model_dump_json().encode()))
    view = worker.tracker.get(request_id)
    assert len(calls) == 3 and view is not None
    assert [c.event_id for c in view.contacts_while_restricted] == [contact.event_id]
