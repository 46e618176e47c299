"""The shared HTTP plumbing on its own: the app factory, ``require(permission)``, refusals, health and metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from pipeline.config import Settings
from pipeline.http.app import create_app
from pipeline.http.auth import TOKEN_GRANTING, Permission, Principal, require
from pipeline.http.deps import get_metrics
from pipeline.http.errors import refuse
from pipeline.runtime import Runtime

TOKENS = {"dpo_token": "dpo-secret", "reviewer_token": "reviewer-secret"}  # no sales token: not configured

probe = APIRouter()


@probe.get("/v1/probe/rights")
async def rights_probe(actor: Annotated[Principal, Depends(require(Permission.MANAGE_RIGHTS))]) -> dict[str, object]:
    return {"name": actor.name, "permissions": sorted(actor.permissions)}


@probe.get("/v1/probe/crm")
async def crm_probe(actor: Annotated[Principal, Depends(require(Permission.READ_CRM))]) -> dict[str, str]:
    return {"name": actor.name}


@probe.get("/v1/probe/teapot")
async def teapot(request: Request) -> JSONResponse:
    return refuse(get_metrics(request), 418, "teapot", "short and stout", log_event="probe_refused")


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> TestClient:
    runtime = Runtime(make_settings(**TOKENS))
    return TestClient(create_app(runtime, object(), [probe]))  # type: ignore[arg-type]  # nothing here publishes


def admin(client: TestClient) -> TestClient:
    """A client of the app's admin port (metrics, OpenAPI, docs)."""
    return TestClient(client.app.state.admin)  # type: ignore[attr-defined]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_the_right_token_gives_the_principal_its_name_and_permissions(client: TestClient) -> None:
    answer = client.get("/v1/probe/rights", headers=bearer("dpo-secret"))
    assert answer.status_code == 200
    assert answer.json() == {"name": "dpo", "permissions": ["manage_rights"]}


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        ("/v1/probe/rights", {}, "dpo_token_missing_token"),
        ("/v1/probe/rights", bearer("reviewer-secret"), "dpo_token_wrong_token"),
        ("/v1/probe/rights", {"authorization": "Basic ZHBvLXNlY3JldA=="}, "dpo_token_missing_token"),
        ("/v1/probe/crm", bearer("anything"), "sales_token_not_configured"),
    ],
)
def test_refusals_are_401_with_a_reason_a_challenge_and_a_count(
    client: TestClient, path: str, headers: dict[str, str], reason: str
) -> None:
    answer = client.get(path, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    kind = reason.split("_token_", maxsplit=1)[0]
    assert answer.json() == {
        "detail": {"status": "refused", "reason": reason, "message": f"a valid {kind} token is required"}
    }
    assert f'leadpipe_ingest_refusals_total{{reason="{reason}"}} 1.0' in admin(client).get("/metrics").text


def test_every_permission_is_granted_by_one_operator_token() -> None:
    assert set(TOKEN_GRANTING) == set(Permission)
    assert set(TOKEN_GRANTING.values()) == {"dpo", "reviewer", "sales"}


def test_refuse_answers_the_refused_shape_at_top_level(client: TestClient) -> None:
    answer = client.get("/v1/probe/teapot")
    assert answer.status_code == 418 and "www-authenticate" not in answer.headers
    assert answer.json() == {"status": "refused", "reason": "teapot", "message": "short and stout"}
    assert 'leadpipe_ingest_refusals_total{reason="teapot"} 1.0' in admin(client).get("/metrics").text


def test_every_app_has_health_metrics_and_one_bearer_scheme(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert admin(client).get("/metrics").headers["content-type"].startswith("text/plain")
    document = admin(client).get("/openapi.json").json()
    assert list(document["components"]["securitySchemes"]) == ["HTTPBearer"]
    assert {"/healthz", "/readyz", "/v1/probe/rights"} <= set(document["paths"])
    assert "/metrics" not in document["paths"]


def test_metrics_and_the_api_reference_are_not_on_the_api_port_by_default(
    client: TestClient, make_settings: Callable[..., Settings]
) -> None:
    """Issue 13: /metrics, /openapi.json and /docs were open to anyone on the API port."""
    for path in ("/metrics", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 404, path
        assert admin(client).get(path).status_code == 200, path
    public = TestClient(create_app(Runtime(make_settings(api_public_docs=True)), object(), [probe]))  # type: ignore[arg-type]
    assert public.get("/openapi.json").status_code == 200 and public.get("/docs").status_code == 200
    assert public.get("/metrics").status_code == 404


def test_apps_do_not_share_metrics(make_settings: Callable[..., Settings]) -> None:
    runtime = Runtime(make_settings(**TOKENS))
    first = TestClient(create_app(runtime, object(), [probe]))  # type: ignore[arg-type]
    second = TestClient(create_app(runtime, object(), [probe]))  # type: ignore[arg-type]
    first.get("/v1/probe/teapot")
    assert 'reason="teapot"' not in admin(second).get("/metrics").text
