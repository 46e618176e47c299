"""Exports expire: the sweep deletes files past ``rights_export_max_age_h`` and the download refuses an export that
expired or whose person was erased after the request (issue 13: a portability export outlived an erasure)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from identity_helpers import person
from ingest_helpers import RecordingPublisher

from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.models.rights import AuditRecord, RightKind, RightsStatus, SinkStatus
from pipeline.rights.commands import build_command
from pipeline.rights.effects.export import expire_exports
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime

SUBJECT = "sk_" + "e" * 40


@pytest.fixture
def runtime(make_settings: Callable[..., Settings]) -> Runtime:
    built = Runtime(make_settings(rights_export_max_age_h=24))
    ensure_schema(built.engine)
    return built


def _portability(runtime: Runtime, received: datetime) -> tuple[str, Path]:
    """A completed portability request whose export file was written at ``received``."""
    tracker = RequestTracker(runtime.engine)
    command = build_command(RightKind.PORTABILITY, SUBJECT, issued_by=person("dpo"), now=received)
    tracker.record(command, ["export"])
    path = runtime.settings.resolved_exports_dir / SUBJECT / f"{command.request_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'{"personal": "data"}')
    os.utime(path, (received.timestamp(), received.timestamp()))
    tracker.set_sink(
        RightsStatus(
            request_id=command.request_id,
            subject_key=SUBJECT,
            sink="export",
            status=SinkStatus.DONE,
            at=received,
            evidence={"path": str(path)},
        )
    )
    return str(command.request_id), path


def test_a_fresh_export_is_served_and_its_download_audited(client: TestClient, runtime: Runtime) -> None:
    request_id, path = _portability(runtime, datetime.now(UTC) - timedelta(hours=1))
    answer = client.get(f"/v1/dpo/requests/{request_id}/export")
    assert answer.status_code == 200 and answer.content == b'{"personal": "data"}'
    # Who took the person's data, on the audit topic and in the request's trail.
    [sent] = [r for r in _publisher(client).records if r.topic == "audit"]
    record = sent.value
    assert isinstance(record, AuditRecord) and record.action == "rights.export_downloaded"
    assert record.principal is not None and record.principal.display_name == "Dora"
    assert (sent.key, record.subject_key, str(record.request_id)) == (SUBJECT, SUBJECT, request_id)
    assert record.detail == {"kind": "portability", "file": path.name}
    assert [a.action for a in RequestTracker(runtime.engine).audit_trail(request_id)] == ["rights.export_downloaded"]


def test_no_export_leaves_unless_its_download_is_audited(client: TestClient, runtime: Runtime) -> None:
    request_id, _path = _portability(runtime, datetime.now(UTC) - timedelta(hours=1))
    _publisher(client).fail = True  # the broker does not confirm
    answer = client.get(f"/v1/dpo/requests/{request_id}/export")
    assert (answer.status_code, answer.json()["detail"]["reason"]) == (503, "audit_not_published")
    assert b"personal" not in answer.content


def _publisher(client: TestClient) -> RecordingPublisher:
    publisher = client.app.state.publisher  # type: ignore[attr-defined]
    assert isinstance(publisher, RecordingPublisher)
    return publisher


def test_an_expired_export_is_refused_and_deleted(client: TestClient, runtime: Runtime) -> None:
    request_id, path = _portability(runtime, datetime.now(UTC) - timedelta(hours=25))
    answer = client.get(f"/v1/dpo/requests/{request_id}/export")
    assert (answer.status_code, answer.json()["detail"]["reason"]) == (410, "export_expired")
    assert not path.exists()


def test_an_export_of_a_person_erased_after_the_request_is_refused_and_deleted(
    client: TestClient, runtime: Runtime
) -> None:
    request_id, path = _portability(runtime, datetime.now(UTC) - timedelta(hours=1))
    RequestTracker(runtime.engine).record(build_command(RightKind.ERASURE, SUBJECT, issued_by=person("dpo")), ["crm"])
    answer = client.get(f"/v1/dpo/requests/{request_id}/export")
    assert (answer.status_code, answer.json()["detail"]["reason"]) == (410, "subject_erased")
    assert not path.exists()
    again = client.get(f"/v1/dpo/requests/{request_id}/export")  # the erasure's own effect deletes it first, as here
    assert (again.status_code, again.json()["detail"]["reason"]) == (410, "subject_erased")  # was export_gone


def test_an_erasure_before_the_request_does_not_refuse_a_new_collection(client: TestClient, runtime: Runtime) -> None:
    earlier = datetime.now(UTC) - timedelta(hours=3)
    RequestTracker(runtime.engine).record(
        build_command(RightKind.ERASURE, SUBJECT, issued_by=person("dpo"), now=earlier), ["crm"]
    )
    request_id, _path = _portability(runtime, datetime.now(UTC) - timedelta(hours=1))
    assert client.get(f"/v1/dpo/requests/{request_id}/export").status_code == 200


def test_the_sweep_deletes_only_exports_past_their_age(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    old = tmp_path / "sk_a" / f"{uuid4()}.pdf"
    new = tmp_path / "sk_b" / f"{uuid4()}.json"
    for path, age in ((old, timedelta(hours=30)), (new, timedelta(hours=2))):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        stamp = (now - age).timestamp()
        os.utime(path, (stamp, stamp))
    assert expire_exports(tmp_path, now, timedelta(hours=24)) == [old.name]
    assert not old.parent.exists() and new.exists()
    assert expire_exports(tmp_path / "missing", now, timedelta(hours=24)) == []


def test_a_request_without_an_export_says_so_instead_of_not_yet(client: TestClient, runtime: Runtime) -> None:
    """An erasure's export was answered 409 "not produced yet": a DPO would wait for a file that never comes."""
    command = build_command(RightKind.ERASURE, SUBJECT, issued_by=person("dpo"), now=datetime.now(UTC))
    RequestTracker(runtime.engine).record(command, ["crm"])
    answer = client.get(f"/v1/dpo/requests/{command.request_id}/export")
    assert (answer.status_code, answer.json()["detail"]["reason"]) == (404, "no_export")
