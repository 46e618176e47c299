"""The DPO's tools: the HTTP router behind the DPO token (refusals logged and audited) and the ``leadpipe dpo`` /
``leadpipe retention`` commands. Requests are recorded in the tracker and published to the real broker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.contacts import make_tagged
from fastapi.testclient import TestClient
from rights_helpers import invoke_cli

from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.rights import RightKind, RightsCommand
from pipeline.normalize import subject_key
from pipeline.rights.tracker import RequestState, RequestTracker
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter

pytestmark = pytest.mark.integration

TOKEN = "dpo-secret-token-0123456789"


@pytest.fixture
def settings(kafka_settings: Settings, make_settings: Callable[..., Settings], tmp_path: Any) -> Settings:
    return make_settings(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix,
        database_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}",
        dpo_token=TOKEN,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    publisher = ConfirmingPublisher(settings)
    with TestClient(create_api(runtime, publisher)) as http:
        yield http, runtime
    publisher.close()
    runtime.engine.dispose()


def commands(settings: Settings) -> list[RightsCommand]:
    return [RightsCommand.model_validate_json(m.value) for m in read_to_end(settings, ["rights.commands"])]


def test_requests_without_a_valid_token_are_refused_logged_and_audited(
    client: tuple[TestClient, Runtime], settings: Settings
) -> None:
    http, runtime = client
    body = {"kind": "erasure", "email": "refused.person@example.com"}
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = http.post("/v1/dpo/requests", json=body, headers=headers)
        assert answer.status_code == 401
        assert "refused.person" not in answer.text
    assert http.get("/v1/dpo/requests").status_code == 401
    trail = RequestTracker(runtime.engine).audit_trail()
    refusals = [a for a in trail if a.action == "rights.api_refused"]
    assert [a.detail["reason"] for a in refusals] == [
        "dpo_token_missing_token",
        "dpo_token_wrong_token",
        "dpo_token_missing_token",
        "dpo_token_missing_token",
    ]
    assert all("refused.person" not in json.dumps(a.detail) and TOKEN not in json.dumps(a.detail) for a in refusals)
    assert commands(settings) == []  # nothing was published


def test_dpo_api_records_publishes_and_reports_requests(client: tuple[TestClient, Runtime], settings: Settings) -> None:
    http, runtime = client
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = http.post(
        "/v1/dpo/requests", json={"kind": "objection", "email": "Ola.Nordmann@Example.com"}, headers=auth
    )
    assert answer.status_code == 202, answer.text
    out = answer.json()
    assert out["subject_key"] == subject_key(runtime.pepper, email="Ola.Nordmann@example.com")
    assert "example.com" not in answer.text.lower().replace(out["subject_key"], "")
    (published,) = commands(settings)
    assert str(published.request_id) == out["request_id"] and published.kind is RightKind.OBJECTION

    bad = http.post("/v1/dpo/requests", json={"kind": "erasure", "email": "not an address"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "email"
    both = http.post(
        "/v1/dpo/requests", json={"kind": "erasure", "email": "a@b.co", "phone": "+4721929300"}, headers=auth
    )
    assert both.status_code == 422

    listed = http.get("/v1/dpo/requests", headers=auth).json()
    assert [r["request_id"] for r in listed] == [out["request_id"]]
    assert listed[0]["state"] == "open" and listed[0]["sinks"][0]["status"] == "pending"

    extended = http.post(
        f"/v1/dpo/requests/{out['request_id']}/extend",
        json={"months": 2, "reason": "Numerous related requests from this person"},
        headers=auth,
    )
    assert extended.status_code == 200
    due = datetime.fromisoformat(extended.json()["effective_due_at"])
    assert due - datetime.fromisoformat(out["due_at"]) > timedelta(days=55)
    assert http.get(f"/v1/dpo/requests/{out['request_id']}/export", headers=auth).status_code == 409
    assert http.post(f"/v1/dpo/requests/{out['request_id']}/notice-sent", headers=auth).status_code == 422

    access = http.post("/v1/dpo/requests", json={"kind": "access", "phone": "+47 21 92 93 00"}, headers=auth).json()
    assert len(access["password"]) >= 16
    assert access["password"] not in json.dumps([c.model_dump(mode="json") for c in commands(settings)])


def test_dpo_cli_issues_requests_and_lists_open_and_overdue(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke_cli(settings, monkeypatch, "dpo", "erase", "--email", "cli.person@example.com", stdin="n\n")
    assert result.exit_code != 0 and commands(settings) == []  # the DPO said no

    result = invoke_cli(settings, monkeypatch, "dpo", "erase", "--email", "cli.person@example.com", "--yes")
    assert result.exit_code == 0, result.output
    assert "cli.person" not in result.output
    result = invoke_cli(settings, monkeypatch, "dpo", "rectify", "--phone", "+4721929300", "--set", "last_name=Berg")
    assert result.exit_code == 0, result.output
    result = invoke_cli(
        settings, monkeypatch, "dpo", "withdraw-consent", "--email", "c@example.com", "--purpose", "further_contact"
    )
    assert result.exit_code == 0, result.output
    result = invoke_cli(
        settings, monkeypatch, "dpo", "withdraw-consent", "--email", "c@example.com", "--purpose", "contract_request"
    )
    assert result.exit_code == 2 and "this purpose does not rest on consent" in result.output
    result = invoke_cli(settings, monkeypatch, "dpo", "rectify", "--email", "c@example.com", "--set", "email=x@y")
    assert result.exit_code == 2 and "email" in result.output  # not a valid address: refused before anything
    result = invoke_cli(settings, monkeypatch, "dpo", "object", "--email", "not-an-address")
    assert result.exit_code == 2

    kinds = [c.kind for c in commands(settings)]
    assert kinds == [RightKind.ERASURE, RightKind.RECTIFICATION, RightKind.CONSENT_WITHDRAWAL]

    engine = Runtime(settings).engine
    tracker = RequestTracker(engine)
    erasure = tracker.requests(kinds=[RightKind.ERASURE])[0]
    from sqlalchemy import update

    from pipeline.rights.tracker import RightsRequest

    with engine.begin() as conn:  # make one request overdue: received six weeks ago
        conn.execute(
            update(RightsRequest)
            .where(RightsRequest.request_id == erasure.request_id)
            .values(due_at=datetime.now(UTC) - timedelta(days=10))
        )
    result = invoke_cli(settings, monkeypatch, "dpo", "status")
    assert result.exit_code == 0 and "3 open request(s), 1 overdue" in result.output and "OVERDUE" in result.output
    result = invoke_cli(settings, monkeypatch, "dpo", "status", "--overdue", "--json")
    listed = json.loads(result.output[result.output.index("[") :])
    assert [r["request_id"] for r in listed] == [erasure.request_id] and listed[0]["overdue"] is True
    result = invoke_cli(
        settings, monkeypatch, "dpo", "extend", erasure.request_id, "--reason", "Complex request, two systems"
    )
    assert result.exit_code == 0, result.output
    result = invoke_cli(settings, monkeypatch, "dpo", "status", "--overdue")
    assert "0 overdue" in result.output
    assert tracker.get(erasure.request_id).state is RequestState.OPEN  # type: ignore[union-attr]
    engine.dispose()


def test_retention_sweep_cli_dry_run_lists_and_changes_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    old = make_tagged(
        "old@example.com",
        first_name="Old",
        last_name="Lead",
        occurred_at=datetime.now(UTC),
        pepper=runtime.pepper,
        expires_in=timedelta(days=30),
    )
    CrmWriter(runtime.engine).write_events([old])
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()

    result = invoke_cli(settings, monkeypatch, "retention", "sweep", "--dry-run", "--now", later)
    assert result.exit_code == 0, result.output
    assert "would delete 1 interaction(s) of 1 subject(s)" in result.output
    assert "nothing left: subject erased entirely" in result.output and "old@example.com" not in result.output
    assert commands(settings) == [] and RequestTracker(runtime.engine).requests() == []

    result = invoke_cli(settings, monkeypatch, "retention", "sweep", "--now", "2020-01-01T00:00:00")
    assert result.exit_code == 2 and "time zone" in result.output
    result = invoke_cli(settings, monkeypatch, "retention", "sweep", "--now", later)
    assert result.exit_code == 0 and "1 new request(s) published" in result.output
    (command,) = commands(settings)
    assert command.kind is RightKind.RETENTION_EXPIRY and command.event_ids == (old.event.event_id,)
    runtime.engine.dispose()
