"""Every answer of the DPO's, sales' and the review queue's routers says ``Cache-Control: no-store``, errors too."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from identity_helpers import key_for
from ingest_helpers import RecordingPublisher

from pipeline.api.app import ROUTERS, create_api
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.http.caching import NoStoreRoute
from pipeline.models.identity import Role
from pipeline.runtime import Runtime

PRIVATE = ("/v1/dpo", "/v1/crm", "/v1/review")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def client(settings: Settings) -> TestClient:
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    return TestClient(create_api(runtime, RecordingPublisher()))  # type: ignore[arg-type]


def test_every_route_under_the_private_prefixes_is_no_store() -> None:
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    private = [r for r in routes if r.path.startswith(PRIVATE)]
    assert len(private) >= 10
    assert [r.path for r in private if not isinstance(r, NoStoreRoute)] == []


@pytest.mark.parametrize(
    ("method", "path", "role", "body", "status"),
    [
        ("GET", "/v1/dpo/requests", Role.DPO, None, 200),
        ("GET", "/v1/dpo/requests", None, None, 401),
        ("GET", "/v1/dpo/requests/00000000-0000-0000-0000-000000000000", Role.DPO, None, 404),
        ("GET", "/v1/dpo/requests/00000000-0000-0000-0000-000000000000/export", Role.DPO, None, 404),
        ("POST", "/v1/dpo/requests", Role.DPO, {"kind": "erasure", "email": 7}, 422),
        ("GET", "/v1/crm/subjects?email=ana%40example.com", Role.SALES, None, 200),
        ("GET", "/v1/crm/subjects/sk_nobody", Role.SALES, None, 404),
        ("GET", "/v1/crm/subjects?limit=0&email=a%40b.example", Role.SALES, None, 422),
        ("GET", "/v1/crm/subjects?email=a%40b.example", None, None, 401),
        ("GET", "/v1/review/quarantine", None, None, 401),
    ],
)
def test_answers_are_no_store(
    client: TestClient, settings: Settings, method: str, path: str, role: Role | None, body: object, status: int
) -> None:
    headers = {"authorization": f"Bearer {key_for(settings, role)}"} if role else {}
    answer = client.request(method, path, headers=headers, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers.get("cache-control") == "no-store"


def test_the_other_routes_are_no_store_by_the_app_s_security_headers(client: TestClient) -> None:
    assert client.get("/healthz").headers["cache-control"] == "no-store"  # pipeline.http.app.SecurityHeaders
