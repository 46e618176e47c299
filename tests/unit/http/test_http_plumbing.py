"""The shared HTTP plumbing on its own: the app factory, ``require(permission)`` with real API keys and sessions,
refusals (401, 403, 429), CSRF for cookie sessions, security headers, health and metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.http import errors
from pipeline.http.app import create_app
from pipeline.http.auth import (
    Caller,
    Permission,
    Principal,
    Public,
    SignedIn,
    require,
    require_session,
    require_signed_in,
    route_accesses,
    session_cookie_name,
)
from pipeline.http.deps import get_metrics
from pipeline.identity.sessions import SessionPrincipal
from pipeline.models.identity import PrincipalKind, Role, system_principal
from pipeline.runtime import Runtime

probe = APIRouter()


@probe.get("/v1/probe/rights")
async def rights_probe(actor: Annotated[Principal, Depends(require(Permission.RIGHTS_READ))]) -> dict[str, object]:
    return {"id": actor.principal_id, "name": actor.display_name, "roles": sorted(actor.roles)}


@probe.post("/v1/probe/rights")
async def rights_change(actor: Annotated[Principal, Depends(require(Permission.RIGHTS_ISSUE))]) -> dict[str, str]:
    return {"by": actor.principal_id}


@probe.get("/v1/probe/me")
async def me_probe(caller: Annotated[Caller, Depends(require_signed_in())]) -> dict[str, object]:
    return {"session": caller.session is not None}


@probe.post("/v1/probe/console")
async def console_probe(session: Annotated[SessionPrincipal, Depends(require_session())]) -> dict[str, str]:
    return {"by": session.principal.principal_id}


@probe.get("/v1/probe/teapot")
async def teapot(request: Request) -> JSONResponse:
    return errors.answer(
        errors.refusal(get_metrics(request), 418, "teapot", "short and stout", log_event="probe_refused")
    )


ADMIN = system_principal("test-setup")
SSO = {"oidc_issuer": "https://id.example.test", "oidc_client_id": "console", "oidc_audience": "leadpipe-api"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        auth_failure_limit=3, auth_lockout_s=60, session_cookie_secure=False, api_key_pepper="p", **SSO
    )


@pytest.fixture
def app_and_keys(settings: Settings) -> Iterator[tuple[Any, dict[str, str]]]:
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    app = create_app(runtime, object(), [probe])  # type: ignore[arg-type]  # nothing here publishes
    store = app.state.authenticator.store
    keys = {}
    for name, kind, role in (
        ("dee", PrincipalKind.PERSON, Role.DPO),
        ("sam", PrincipalKind.PERSON, Role.SALES),
        ("bot", PrincipalKind.CLIENT, Role.PRODUCER),
    ):
        store.add_principal(name, display_name=name.title(), kind=kind, roles=[role], by=ADMIN)
        keys[name] = store.create_key(name, by=ADMIN).secret
    yield app, keys
    runtime.engine.dispose()


@pytest.fixture
def client(app_and_keys: tuple[Any, dict[str, str]]) -> TestClient:
    return TestClient(app_and_keys[0])


@pytest.fixture
def keys(app_and_keys: tuple[Any, dict[str, str]]) -> dict[str, str]:
    return app_and_keys[1]


def admin(client: TestClient) -> TestClient:
    """A client of the app's admin port (metrics, OpenAPI, docs)."""
    return TestClient(client.app.state.admin)  # type: ignore[attr-defined]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_key_gives_its_principal_and_roles(client: TestClient, keys: dict[str, str]) -> None:
    answer = client.get("/v1/probe/rights", headers=bearer(keys["dee"]))
    assert answer.status_code == 200
    assert answer.json()["name"] == "Dee" and answer.json()["roles"] == ["dpo"]


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing_credentials"),
        ({"authorization": "Basic ZHBvLXNlY3JldA=="}, 401, "missing_credentials"),
        (bearer("not-a-key"), 401, "invalid_credentials"),
        (bearer("lpk_aaaaaaaaaaaa_" + "A" * 43), 401, "invalid_credentials"),
    ],
)
def test_refusals_have_a_reason_a_challenge_and_a_count(
    client: TestClient, headers: dict[str, str], status: int, reason: str
) -> None:
    answer = client.get("/v1/probe/rights", headers=headers)
    assert answer.status_code == status
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["detail"]["reason"] == reason and answer.json()["detail"]["status"] == "refused"
    assert f'leadpipe_ingest_refusals_total{{reason="{reason}"}} 1.0' in admin(client).get("/metrics").text


def test_authenticated_but_not_allowed_is_403(client: TestClient, keys: dict[str, str]) -> None:
    answer = client.get("/v1/probe/rights", headers=bearer(keys["sam"]))
    assert answer.status_code == 403 and "www-authenticate" not in answer.headers
    assert answer.json()["detail"] == {"status": "refused", "reason": "forbidden", "message": "this needs rights:read"}
    # a producer credential reaches ingest only: not even "who am I"
    assert client.get("/v1/probe/me", headers=bearer(keys["bot"])).status_code == 403
    assert client.get("/v1/probe/me", headers=bearer(keys["sam"])).json() == {"session": False}


def test_repeated_failures_are_429_with_retry_after_even_for_a_good_key(
    client: TestClient, keys: dict[str, str]
) -> None:
    for _ in range(3):
        assert client.get("/v1/probe/rights", headers=bearer("guess")).status_code == 401
    locked = client.get("/v1/probe/rights", headers=bearer(keys["dee"]))
    assert locked.status_code == 429 and locked.json()["detail"]["reason"] == "rate_limited"
    assert 50 <= int(locked.headers["retry-after"]) <= 60


def _session(app: Any, settings: Settings, name: str) -> tuple[str, str]:
    store = app.state.authenticator.store
    principal = store.get(name).principal("oidc")
    issued = app.state.authenticator.sessions.create(principal, frozenset())
    return issued.cookie, issued.csrf_token


def test_a_session_cookie_needs_its_csrf_token_and_this_origin_to_change_anything(
    app_and_keys: tuple[Any, dict[str, str]], settings: Settings
) -> None:
    app, _ = app_and_keys
    cookie, csrf = _session(app, settings, "dee")
    client = TestClient(app, base_url="http://leadpipe.test")
    client.cookies.set(session_cookie_name(settings), cookie)
    assert client.get("/v1/probe/rights").status_code == 200  # reading needs no token
    refused = client.post("/v1/probe/rights")
    assert refused.status_code == 403 and refused.json()["detail"]["reason"] == "csrf_failed"
    assert client.post("/v1/probe/rights", headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    cross = client.post("/v1/probe/rights", headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert cross.status_code == 403
    ok = client.post("/v1/probe/rights", headers={"X-CSRF-Token": csrf, "Origin": "http://leadpipe.test"})
    assert ok.status_code == 200
    form = client.post("/v1/probe/rights", data={"csrf_token": csrf})
    assert form.status_code == 200
    assert client.post("/v1/probe/console", headers={"X-CSRF-Token": csrf}).status_code == 200
    tampered = cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
    client.cookies.set(session_cookie_name(settings), tampered)
    assert client.get("/v1/probe/rights").status_code == 401


def test_a_bearer_request_needs_no_csrf_token_but_a_console_route_needs_a_session(
    client: TestClient, keys: dict[str, str]
) -> None:
    assert client.post("/v1/probe/rights", headers=bearer(keys["dee"])).status_code == 200
    answer = client.post("/v1/probe/console", headers=bearer(keys["dee"]))
    assert answer.status_code == 401


def test_every_response_carries_the_security_headers(client: TestClient, keys: dict[str, str]) -> None:
    for answer in (
        client.get("/healthz"),
        client.get("/v1/probe/rights"),
        client.get("/v1/probe/rights", headers=bearer(keys["dee"])),
        client.get("/nowhere"),
        client.get("/v1/probe/teapot"),
    ):
        headers = answer.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
    for answer in (admin(client).get("/metrics"), admin(client).get("/readyz")):
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"
    assert "cdn.jsdelivr.net" in admin(client).get("/docs").headers["content-security-policy"]
    assert "strict-transport-security" not in client.get("/healthz").headers


def test_hsts_when_the_public_address_is_https(make_settings: Callable[..., Settings]) -> None:
    runtime = Runtime(make_settings(public_url="https://leadpipe.example.com"))
    answer = TestClient(create_app(runtime, object(), [probe])).get("/healthz")  # type: ignore[arg-type]
    assert answer.headers["strict-transport-security"] == "max-age=31536000"


def test_routes_declare_their_access(app_and_keys: tuple[Any, dict[str, str]]) -> None:
    declared = {(r.path, m): r.declared for r in route_accesses(app_and_keys[0]) for m in r.methods}
    assert declared[("/v1/probe/rights", "GET")] == (Permission.RIGHTS_READ,)
    assert declared[("/v1/probe/rights", "POST")] == (Permission.RIGHTS_ISSUE,)
    assert declared[("/v1/probe/me", "GET")] == (SignedIn(),)
    assert declared[("/v1/probe/console", "POST")] == (SignedIn(session_only=True),)
    assert declared[("/healthz", "GET")] == (Public("liveness probe: says ok"),)
    assert declared[("/v1/probe/teapot", "GET")] == ()  # declares nothing: the matrix test would fail on it
    assert ("/openapi.json", "GET") not in declared  # on the admin port only (unless api_public_docs)
    on_admin = {(r.path, m): r.declared for r in route_accesses(app_and_keys[0].state.admin) for m in r.methods}
    assert on_admin[("/openapi.json", "GET")] == (Public("the API's description, admin port"),)


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
    runtime = Runtime(make_settings())
    first = TestClient(create_app(runtime, object(), [probe]))  # type: ignore[arg-type]
    second = TestClient(create_app(runtime, object(), [probe]))  # type: ignore[arg-type]
    first.get("/v1/probe/teapot")
    assert 'reason="teapot"' not in admin(second).get("/metrics").text
