"""Sales' read access to the CRM: ``leadpipe crm search|show`` and ``GET /v1/crm/...`` with ``crm:read``; a
restricted subject's data only with ``crm:read_restricted`` (the DPO)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fakes.contacts import BASE_TIME, make_tagged
from fastapi.testclient import TestClient
from identity_helpers import key_for
from ingest_helpers import RecordingPublisher
from typer.testing import CliRunner

from pipeline.api.app import create_api
from pipeline.cli import app as cli_app
from pipeline.config import Settings, get_settings
from pipeline.crm.read import CrmReadModel
from pipeline.db import ensure_schema
from pipeline.http.auth import route_accesses
from pipeline.models import Channel
from pipeline.models.identity import Role
from pipeline.rights.effects.crm import CrmRights
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter


@pytest.fixture
def runtime(make_settings: Callable[..., Settings]) -> Runtime:
    built = Runtime(make_settings())
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
def keys(runtime: Runtime) -> dict[Role, str]:
    return {role: key_for(runtime.settings, role) for role in (Role.SALES, Role.DPO, Role.REVIEWER)}


@pytest.fixture
def client(runtime: Runtime, keys: dict[Role, str]) -> TestClient:
    made = TestClient(create_api(runtime, RecordingPublisher()))  # type: ignore[arg-type]  # nothing here publishes
    made.headers["Authorization"] = f"Bearer {keys[Role.SALES]}"
    return made


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_search_and_show_over_http(client: TestClient) -> None:
    found = client.get("/v1/crm/subjects", params={"email": "Jane.Doe@example.com"})
    assert found.status_code == 200
    [hit] = found.json()
    assert hit["interactions"] == 2 and hit["status"] == "active"
    assert found.headers["cache-control"] == "no-store"
    shown = client.get(f"/v1/crm/subjects/{hit['subject_key']}")
    assert shown.status_code == 200
    body = shown.json()
    assert [i["channel"] for i in body["interactions_detail"]] == ["web_form", "chatbot"]
    purposes = {p["purpose"]: p["legal_basis"] for p in body["interactions_detail"][0]["purposes"]}
    assert purposes["further_contact"] == "consent"
    assert body["interactions_detail"][0]["retention_expires_at"].startswith("2033-03-01")
    assert client.get("/v1/crm/subjects", params={"name": "smith"}).json()[0]["last_name"] == "Smith"
    assert client.get("/v1/crm/subjects/sk_nobody").status_code == 404
    assert client.get("/v1/crm/subjects").status_code == 422


@pytest.mark.parametrize(
    ("headers", "status"), [({"Authorization": ""}, 401), ({"Authorization": "Bearer wrong"}, 401)]
)
def test_only_a_crm_reader_reads(client: TestClient, headers: dict[str, str], status: int) -> None:
    assert client.get("/v1/crm/subjects", params={"name": "jane"}, headers=headers).status_code == status
    assert client.get("/v1/crm/subjects/sk_x", headers=headers).status_code == status


def test_a_reviewer_may_not_read_the_crm(client: TestClient, keys: dict[Role, str]) -> None:
    refused = client.get("/v1/crm/subjects", params={"name": "jane"}, headers=auth(keys[Role.REVIEWER]))
    assert refused.status_code == 403 and refused.json()["detail"]["reason"] == "forbidden"


def test_a_refused_search_names_the_field_and_quotes_nothing_searched_for(client: TestClient) -> None:
    """FastAPI's 422 quoted the address (or name) sent, one character too long."""
    address = "jane.doe." + "x" * 320 + "@example.com"
    refused = client.get("/v1/crm/subjects", params={"email": address})
    assert refused.status_code == 422 and refused.headers["cache-control"] == "no-store"
    [error] = refused.json()["detail"]
    assert error["loc"] == ["query", "email"] and "320" in error["msg"]
    assert "jane.doe" not in refused.text and "xxxx" not in refused.text
    name = client.get("/v1/crm/subjects", params={"name": "J"})
    assert name.status_code == 422 and '"J"' not in name.text


def test_the_router_writes_nothing(client: TestClient) -> None:
    crm = [r for r in route_accesses(client.app) if r.path.startswith("/v1/crm")]  # type: ignore[arg-type]
    assert len(crm) == 2 and set().union(*(r.methods for r in crm)) <= {"GET", "HEAD"}


@pytest.fixture
def cli_env(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LEADPIPE_HOME", str(runtime.settings.home))
    monkeypatch.setenv("LEADPIPE_DATABASE_URL", runtime.settings.resolved_database_url)
    monkeypatch.setenv("LEADPIPE_LOG_FORMAT", "console")
    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(runtime.settings, Role.SALES))
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
    by_name = client.get("/v1/crm/subjects", params={"name": "smith"})
    assert by_name.json() == []  # a name would rebuild what is withheld: only the key or the exact e-mail finds it
    found = client.get("/v1/crm/subjects", params={"email": "john.smith@example.org"})
    [hit] = found.json()
    assert (hit["subject_key"], hit["status"], hit["withheld"], hit["interactions"]) == (key, "restricted", True, 1)
    shown = client.get(f"/v1/crm/subjects/{key}").json()
    assert shown["withheld"] is True and shown["restricted_at"] is not None
    assert shown["interactions_detail"] == [] and shown["identities"] == [] and shown["email"] is None
    for text in RESTRICTED_DATA:
        assert text not in found.text and text not in json.dumps(shown)
    other = client.get("/v1/crm/subjects", params={"email": "jane.doe@example.com"}).json()
    assert other[0]["withheld"] is False and other[0]["email"] == "jane.doe@example.com"
    # the data itself is kept: the DPO's access export reads it through the read model
    stored = CrmReadModel(runtime.engine).show(key)
    assert stored is not None and stored.email == "john.smith@example.org" and stored.interactions_detail


def test_the_dpo_reads_a_restricted_subject_whole(client: TestClient, runtime: Runtime, keys: dict[Role, str]) -> None:
    key = _restrict(runtime, "john.smith@example.org")
    shown = client.get(f"/v1/crm/subjects/{key}", headers=auth(keys[Role.DPO])).json()
    assert shown["withheld"] is False and shown["email"] == "john.smith@example.org" and shown["interactions_detail"]
    # found like sales find it (by key or exact e-mail, never by name), but whole
    found = client.get("/v1/crm/subjects", params={"email": "john.smith@example.org"}, headers=auth(keys[Role.DPO]))
    [hit] = found.json()
    assert hit["last_name"] == "Smith" and hit["withheld"] is False


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
