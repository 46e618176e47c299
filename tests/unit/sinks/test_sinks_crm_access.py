"""Sales' read access to the CRM: ``leadpipe crm search|show`` and ``GET /v1/crm/...`` behind the sales token."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fakes.contacts import BASE_TIME, make_tagged
from fastapi.testclient import TestClient
from ingest_helpers import RecordingPublisher
from typer.testing import CliRunner

from pipeline.api.app import create_api
from pipeline.cli import app as cli_app
from pipeline.config import Settings, get_settings
from pipeline.crm.read import CrmReadModel
from pipeline.db import ensure_schema
from pipeline.models import Channel
from pipeline.rights.effects.crm import CrmRights
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter

SALES = "sales-secret"


@pytest.fixture
def runtime(make_settings: Callable[..., Settings]) -> Runtime:
    built = Runtime(make_settings(sales_token=SALES, dpo_token="dpo-secret"))
    ensure_schema(built.engine)
    CrmWriter(built.engine).write_events(
        [
            make_tagged("jane.doe@example.com", phone="+4930123456", consent=True),
            make_tagged("jane.doe@example.com", channel=Channel.CHATBOT, occurred_at=BASE_TIME + timedelta(hours=1)),
            make_tagged("john.smith@example.org", first_name="John", last_name="Smith"),
        ]
    )
    return built


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_api(runtime, RecordingPublisher()))  # type: ignore[arg-type]  # nothing here publishes


def auth(token: str = SALES) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_search_and_show_over_http(client: TestClient) -> None:
    found = client.get("/v1/crm/subjects", params={"email": "Jane.Doe@example.com"}, headers=auth())
    assert found.status_code == 200
    [hit] = found.json()
    assert hit["interactions"] == 2 and hit["status"] == "active"
    assert found.headers["cache-control"] == "no-store"
    shown = client.get(f"/v1/crm/subjects/{hit['subject_key']}", headers=auth())
    assert shown.status_code == 200
    body = shown.json()
    assert [i["channel"] for i in body["interactions_detail"]] == ["web_form", "chatbot"]
    purposes = {p["purpose"]: p["legal_basis"] for p in body["interactions_detail"][0]["purposes"]}
    assert purposes["further_contact"] == "consent"
    assert body["interactions_detail"][0]["retention_expires_at"].startswith("2033-03-01")
    assert client.get("/v1/crm/subjects", params={"name": "smith"}, headers=auth()).json()[0]["last_name"] == "Smith"
    assert client.get("/v1/crm/subjects/sk_nobody", headers=auth()).status_code == 404
    assert client.get("/v1/crm/subjects", headers=auth()).status_code == 422


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer dpo-secret"}])
def test_only_the_sales_token_reads(client: TestClient, headers: dict[str, str]) -> None:
    assert client.get("/v1/crm/subjects", params={"name": "jane"}, headers=headers).status_code == 401
    assert client.get("/v1/crm/subjects/sk_x", headers=headers).status_code == 401


def test_the_router_writes_nothing(client: TestClient) -> None:
    methods = {m for r in client.app.routes if getattr(r, "path", "").startswith("/v1/crm") for m in r.methods}  # type: ignore[attr-defined]
    assert methods <= {"GET", "HEAD"}


@pytest.fixture
def cli_env(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LEADPIPE_HOME", str(runtime.settings.home))
    monkeypatch.setenv("LEADPIPE_DATABASE_URL", runtime.settings.resolved_database_url)
    monkeypatch.setenv("LEADPIPE_LOG_FORMAT", "console")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _restrict(runtime: Runtime, email: str) -> str:
    crm = CrmRights(runtime.engine)
    key = crm.read.subject_key_for(email=email)
    assert key is not None
    assert crm.set_restriction(key, uuid.uuid4(), restricted=True).changed
    return key


RESTRICTED_DATA = ("john.smith", "Smith", "John", "+49", "Please call")


def test_a_restricted_subject_is_withheld_from_sales_over_http(client: TestClient, runtime: Runtime) -> None:
    """Policy 9.4: kept, identifiable as blocked, not processed further (sales reading it would be)."""
    key = _restrict(runtime, "john.smith@example.org")
    by_name = client.get("/v1/crm/subjects", params={"name": "smith"}, headers=auth())
    assert by_name.json() == []  # a name would rebuild what is withheld: only the key or the exact e-mail finds it
    found = client.get("/v1/crm/subjects", params={"email": "john.smith@example.org"}, headers=auth())
    [hit] = found.json()
    assert (hit["subject_key"], hit["status"], hit["withheld"], hit["interactions"]) == (key, "restricted", True, 1)
    shown = client.get(f"/v1/crm/subjects/{key}", headers=auth()).json()
    assert shown["withheld"] is True and shown["restricted_at"] is not None
    assert shown["interactions_detail"] == [] and shown["identities"] == [] and shown["email"] is None
    for text in RESTRICTED_DATA:
        assert text not in found.text and text not in json.dumps(shown)
    other = client.get("/v1/crm/subjects", params={"email": "jane.doe@example.com"}, headers=auth()).json()
    assert other[0]["withheld"] is False and other[0]["email"] == "jane.doe@example.com"
    # the data itself is kept: the DPO's access export reads it through the read model
    stored = CrmReadModel(runtime.engine).show(key)
    assert stored is not None and stored.email == "john.smith@example.org" and stored.interactions_detail


def test_a_restricted_subject_is_withheld_from_sales_in_the_cli(cli_env: None, runtime: Runtime) -> None:
    key = _restrict(runtime, "john.smith@example.org")
    runner = CliRunner()
    table = runner.invoke(cli_app, ["crm", "search", "--email", "john.smith@example.org"])
    assert key in table.stdout and "withheld" in table.stdout
    shown = runner.invoke(cli_app, ["crm", "show", key])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["withheld"] is True
    for text in RESTRICTED_DATA:
        assert text not in table.stdout and text not in shown.stdout


def test_cli_search_and_show(cli_env: None) -> None:
    runner = CliRunner()
    found = runner.invoke(cli_app, ["crm", "search", "--email", "jane.doe@example.com", "--json"])
    assert found.exit_code == 0, found.output
    hit = json.loads(found.stdout.splitlines()[0])
    assert hit["email"] == "jane.doe@example.com"
    by_email = runner.invoke(cli_app, ["crm", "show", "JANE.DOE@example.com"])
    by_key = runner.invoke(cli_app, ["crm", "show", hit["subject_key"]])
    by_phone = runner.invoke(cli_app, ["crm", "show", "+4930123456"])
    assert by_email.exit_code == by_key.exit_code == by_phone.exit_code == 0
    assert json.loads(by_email.stdout) == json.loads(by_key.stdout) == json.loads(by_phone.stdout)
    assert runner.invoke(cli_app, ["crm", "show", "nobody@example.com"]).exit_code == 2
    assert runner.invoke(cli_app, ["crm", "search", "--name", "nobody"]).exit_code == 2
    table = runner.invoke(cli_app, ["crm", "search", "--email", "john.smith@example.org"])
    assert "john.smith@example.org" in table.stdout


def test_cli_db_upgrade_and_current(cli_env: None) -> None:
    runner = CliRunner()
    current = runner.invoke(cli_app, ["db", "current"])
    assert current.exit_code == 0, current.output
    assert "head:" in current.stdout
    upgraded = runner.invoke(cli_app, ["db", "upgrade"])
    assert upgraded.exit_code == 0 and "database at revision" in upgraded.stdout
