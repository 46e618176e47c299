"""Every answer of the DPO's, sales' and the review queue's routers says ``Cache-Control: no-store``, errors too."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from ingest_helpers import RecordingPublisher

from pipeline.api.app import ROUTERS, create_api
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.http.caching import NoStoreRoute
from pipeline.runtime import Runtime

TOKENS = {"dpo_token": "dpo-secret", "sales_token": "sales-secret", "reviewer_token": "reviewer-secret"}
PRIVATE = ("/v1/dpo", "/v1/crm", "/v1/review")


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> TestClient:
    runtime = Runtime(make_settings(**TOKENS))
    ensure_schema(runtime.engine)
    return TestClient(create_api(runtime, RecordingPublisher()))  # type: ignore[arg-type]


def test_every_route_under_the_private_prefixes_is_no_store() -> None:
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    private = [r for r in routes if r.path.startswith(PRIVATE)]
    assert len(private) >= 10
    assert [r.path for r in private if not isinstance(r, NoStoreRoute)] == []


@pytest.mark.parametrize(
    ("method", "path", "token", "body", "status"),
    [
        ("GET", "/v1/dpo/requests", "dpo-secret", None, 200),
        ("GET", "/v1/dpo/requests", None, None, 401),
        ("GET", "/v1/dpo/requests/00000000-0000-0000-0000-000000000000", "dpo-secret", None, 404),
        ("GET", "/v1/dpo/requests/00000000-0000-0000-0000-000000000000/export", "dpo-secret", None, 404),
        ("POST", "/v1/dpo/requests", "dpo-secret", {"kind": "erasure", "email": 7}, 422),
        ("GET", "/v1/crm/subjects?email=ana%40example.com", "sales-secret", None, 200),
        ("GET", "/v1/crm/subjects/sk_nobody", "sales-secret", None, 404),
        ("GET", "/v1/crm/subjects?limit=0&email=a%40b.example", "sales-secret", None, 422),
        ("GET", "/v1/crm/subjects?email=a%40b.example", "wrong", None, 401),
        ("GET", "/v1/review/quarantine", "wrong", None, 401),
    ],
)
def test_answers_are_no_store(
    client: TestClient, method: str, path: str, token: str | None, body: object, status: int
) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = client.request(method, path, headers=headers, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers.get("cache-control") == "no-store"


def test_ingest_and_health_are_not_touched(client: TestClient) -> None:
    assert "cache-control" not in client.get("/healthz").headers
