"""The DPO's tools: the HTTP router behind a DPO's API key (refusals logged and audited) and the ``leadpipe dpo`` /
``leadpipe retention`` commands, each run by a named DPO. Requests are recorded in the tracker with the person who
issued them and published to the real broker, the audit record naming that person."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.contacts import make_tagged
from fastapi.testclient import TestClient
from identity_helpers import key_for
from rights_helpers import invoke_cli

from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.identity import Role
from pipeline.models.rights import AuditRecord, RightKind, RightsCommand
from pipeline.normalize import subject_key
from pipeline.rights.tracker import RequestState, RequestTracker
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(kafka_settings: Settings, make_settings: Callable[..., Settings], tmp_path: Any) -> Settings:
    return make_settings(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix,
        database_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}",
    )


@pytest.fixture
def dpo_key(settings: Settings) -> str:
    return key_for(settings, Role.DPO, "dana", display_name="Dana Privacy")


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


def test_requests_without_a_valid_key_are_refused_logged_and_audited(
    client: tuple[TestClient, Runtime], settings: Settings, dpo_key: str
) -> None:
    http, runtime = client
    sales_key = key_for(settings, Role.SALES, "sam", display_name="Sam Sales")
    body = {"kind": "erasure", "email": "refused.person@example.com"}
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer wrong-token"}, 401),
        ({"Authorization": f"Basic {dpo_key}"}, 401),
        ({"Authorization": f"Bearer {sales_key}"}, 403),
    ):
        answer = http.post("/v1/dpo/requests", json=body, headers=headers)
        assert answer.status_code == status
        assert "refused.person" not in answer.text
    assert http.get("/v1/dpo/requests").status_code == 401
    trail = RequestTracker(runtime.engine).audit_trail()
    refusals = [a for a in trail if a.action == "rights.api_refused"]
    assert [a.detail["reason"] for a in refusals] == [
        "missing_credentials",
        "invalid_credentials",
        "missing_credentials",
        "forbidden",
        "missing_credentials",
    ]
    assert [a.principal.display_name if a.principal else None for a in refusals] == [
        None,
        None,
        None,
        "Sam Sales",
        None,
    ]
    for refusal in refusals:
        assert "refused.person" not in refusal.model_dump_json()
        assert dpo_key not in refusal.model_dump_json() and sales_key not in refusal.model_dump_json()
    assert commands(settings) == []  # nothing was published


def test_dpo_api_records_publishes_and_reports_requests(
    client: tuple[TestClient, Runtime], settings: Settings, dpo_key: str
) -> None:
    http, runtime = client
    auth = {"Authorization": f"Bearer {dpo_key}"}
    answer = http.post(
        "/v1/dpo/requests", json={"kind": "objection", "email": "Ola.Nordmann@Example.com"}, headers=auth
    )
    assert answer.status_code == 202, answer.text
    out = answer.json()
    assert out["subject_key"] == subject_key(runtime.pepper, email="Ola.Nordmann@example.com")
    assert "example.com" not in answer.text.lower().replace(out["subject_key"], "")
    (published,) = commands(settings)
    assert str(published.request_id) == out["request_id"] and published.kind is RightKind.OBJECTION
    # the person who issued it is named in the command, the tracker and the audit topic
    assert published.issuer is not None and published.issuer.display_name == "Dana Privacy"
    assert published.issuer.auth == "api_key" and published.issued_by == published.issuer.actor
    view = RequestTracker(runtime.engine).get(out["request_id"])
    assert view is not None and view.issuer == published.issuer
    audited = [AuditRecord.model_validate_json(m.value) for m in read_to_end(settings, ["audit"])]
    [received] = [a for a in audited if a.action == "rights.request_received"]
    assert str(received.request_id) == out["request_id"] and received.principal == published.issuer

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
    assert extended.json()["extended_by"]["display_name"] == "Dana Privacy"
    due = datetime.fromisoformat(extended.json()["effective_due_at"])
    assert due - datetime.fromisoformat(out["due_at"]) > timedelta(days=55)
    no_export = http.get(f"/v1/dpo/requests/{out['request_id']}/export", headers=auth)  # an objection has none
    assert (no_export.status_code, no_export.json()["detail"]["reason"]) == (404, "no_export")
    assert http.post(f"/v1/dpo/requests/{out['request_id']}/notice-sent", headers=auth).status_code == 422

    access = http.post("/v1/dpo/requests", json={"kind": "access", "phone": "+47 21 92 93 00"}, headers=auth).json()
    assert len(access["password"]) >= 16
    assert access["password"] not in json.dumps([c.model_dump(mode="json") for c in commands(settings)])


def test_dpo_cli_issues_requests_and_lists_open_and_overdue(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, dpo_key: str
) -> None:
    keyless = invoke_cli(settings, monkeypatch, "dpo", "erase", "--email", "cli.person@example.com", "--yes")
    assert keyless.exit_code == 2 and "LEADPIPE_API_KEY" in keyless.output  # a deployment's database: a key or nothing
    sales = key_for(settings, Role.SALES, "sam", display_name="Sam Sales")
    refused = invoke_cli(settings, monkeypatch, "dpo", "erase", "--email", "cli.person@example.com", "--yes", key=sales)
    assert refused.exit_code == 2 and "Sam Sales lacks the permission rights:issue" in refused.output
    result = invoke_cli(
        settings, monkeypatch, "dpo", "erase", "--email", "cli.person@example.com", stdin="n\n", key=dpo_key
    )
    assert result.exit_code != 0 and commands(settings) == []  # the DPO said no

    result = invoke_cli(
        settings, monkeypatch, "dpo", "erase", "--email", "cli.person@example.com", "--yes", key=dpo_key
    )
    assert result.exit_code == 0, result.output
    assert "cli.person" not in result.output
    result = invoke_cli(
        settings, monkeypatch, "dpo", "rectify", "--phone", "+4721929300", "--set", "last_name=Berg", key=dpo_key
    )
    assert result.exit_code == 0, result.output
    result = invoke_cli(
        settings,
        monkeypatch,
        "dpo",
        "withdraw-consent",
        "--email",
        "c@example.com",
        "--purpose",
        "further_contact",
        key=dpo_key,
    )
    assert result.exit_code == 0, result.output
    result = invoke_cli(
        settings,
        monkeypatch,
        "dpo",
        "withdraw-consent",
        "--email",
        "c@example.com",
        "--purpose",
        "contract_request",
        key=dpo_key,
    )
    assert result.exit_code == 2 and "this purpose does not rest on consent" in result.output
    result = invoke_cli(
        settings, monkeypatch, "dpo", "rectify", "--email", "c@example.com", "--set", "email=x@y", key=dpo_key
    )
    assert result.exit_code == 2 and "email" in result.output  # not a valid address: refused before anything
    result = invoke_cli(settings, monkeypatch, "dpo", "object", "--email", "not-an-address", key=dpo_key)
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
    result = invoke_cli(settings, monkeypatch, "dpo", "status", key=dpo_key)
    assert result.exit_code == 0 and "3 open request(s), 1 overdue" in result.output and "OVERDUE" in result.output
    assert result.output.count("issued by Dana Privacy (person:") == 3  # who issued each request
    result = invoke_cli(settings, monkeypatch, "dpo", "status", "--overdue", "--json", key=dpo_key)
    listed = json.loads(result.stdout[result.stdout.index("[") :])
    assert [r["request_id"] for r in listed] == [erasure.request_id] and listed[0]["overdue"] is True
    result = invoke_cli(
        settings,
        monkeypatch,
        "dpo",
        "extend",
        erasure.request_id,
        "--reason",
        "Complex request, two systems",
        key=dpo_key,
    )
    assert result.exit_code == 0, result.output
    result = invoke_cli(settings, monkeypatch, "dpo", "status", "--overdue", key=dpo_key)
    assert "0 overdue" in result.output
    result = invoke_cli(settings, monkeypatch, "dpo", "status", key=dpo_key)
    assert "extended by Dana Privacy" in result.output
    assert tracker.get(erasure.request_id).state is RequestState.OPEN  # type: ignore[union-attr]
    engine.dispose()


def test_retention_sweep_cli_dry_run_lists_and_changes_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, dpo_key: str
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

    result = invoke_cli(settings, monkeypatch, "retention", "sweep", "--dry-run", "--now", later, key=dpo_key)
    assert result.exit_code == 0, result.output
    assert "would delete 1 interaction(s) of 1 subject(s)" in result.output
    assert "nothing left: subject erased entirely" in result.output and "old@example.com" not in result.output
    assert commands(settings) == [] and RequestTracker(runtime.engine).requests() == []

    result = invoke_cli(settings, monkeypatch, "retention", "sweep", "--now", "2020-01-01T00:00:00", key=dpo_key)
    assert result.exit_code == 2 and "time zone" in result.output
    result = invoke_cli(settings, monkeypatch, "retention", "sweep", "--now", later, key=dpo_key)
    assert result.exit_code == 0 and "1 new request(s) published" in result.output
    (command,) = commands(settings)
    assert command.kind is RightKind.RETENTION_EXPIRY and command.event_ids == (old.event.event_id,)
    runtime.engine.dispose()
