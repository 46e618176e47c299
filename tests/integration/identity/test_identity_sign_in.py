"""A browser signs in to leadpipe through the real identity provider (Ory Hydra, tests/oidc_provider.py):
``/login`` -> the provider's login form -> ``/auth/callback`` -> a session cookie -> ``/v1/me``; changes need the
session's CSRF token; the DPO's erasure issued from the browser is audited under her name; ``/logout`` ends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from oidc_provider import API_AUDIENCE, CONSOLE_CLIENT, CONSOLE_SECRET, GROUP_ROLES, Browser, Hydra

from pipeline.api.app import create_api
from pipeline.api.identity import LOGIN_COOKIE
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.http.auth import CSRF_HEADER, session_cookie_name
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.rights import AuditRecord, RightsCommand
from pipeline.runtime import Runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(oidc_provider: Hydra, kafka_settings: Settings, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix,
        oidc_issuer=oidc_provider.issuer,
        oidc_client_id=CONSOLE_CLIENT,
        oidc_client_secret=CONSOLE_SECRET,
        oidc_audience=API_AUDIENCE,
        oidc_group_roles=GROUP_ROLES,
        public_url=oidc_provider.redirect_uri.removesuffix("/auth/callback"),
        session_cookie_secure=False,  # the test's site is http://127.0.0.1
    )


@pytest.fixture
def site(settings: Settings) -> Iterator[TestClient]:
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    publisher = ConfirmingPublisher(settings)
    with TestClient(create_api(runtime, publisher), base_url=settings.public_url or "") as client:
        yield client
    publisher.close()
    runtime.engine.dispose()


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


def _set_cookie(answer: Any, name: str) -> Any:
    for header in answer.headers.get_list("set-cookie"):
        cookie = SimpleCookie(header)
        if name in cookie:
            return cookie[name]
    raise AssertionError(f"no {name} cookie set")


def sign_in(site: TestClient, browser: Browser, hydra: Hydra, user: str, next_path: str = "/v1/me") -> dict[str, str]:
    """The whole sign-in; the query the provider sent back to the callback."""
    started = site.get("/login", params={"next": next_path}, follow_redirects=False)
    assert started.status_code == 302, started.text
    provider_url = started.headers["location"]
    query = parse_qs(urlsplit(provider_url).query)
    assert provider_url.startswith(f"{hydra.issuer}/oauth2/auth")
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [hydra.redirect_uri]
    login_cookie = _set_cookie(started, LOGIN_COOKIE)
    assert login_cookie["httponly"] and login_cookie["path"] == "/auth/callback"
    return browser.sign_in(provider_url, hydra.redirect_uri, user, f"{user}-password")


def test_a_dpo_signs_in_issues_an_erasure_under_her_name_and_signs_out(
    site: TestClient, browser: Browser, oidc_provider: Hydra, settings: Settings
) -> None:
    callback = sign_in(site, browser, oidc_provider, "ana")
    landed = site.get("/auth/callback", params=callback, follow_redirects=False)
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == "/v1/me"
    session_cookie = _set_cookie(landed, session_cookie_name(settings))
    assert session_cookie["httponly"] and session_cookie["samesite"].lower() == "lax" and session_cookie["path"] == "/"
    assert "ana@" not in session_cookie.value and "Ana" not in session_cookie.value  # sealed, names a session only

    me = site.get("/v1/me").json()
    assert me["principal"]["display_name"] == "Ana Garcia" and me["principal"]["roles"] == ["dpo"]
    assert me["principal"]["auth"] == "oidc" and "rights:issue" in me["permissions"]
    csrf = me["session"]["csrf_token"]

    erasure = {"kind": "erasure", "email": "someone@example.com"}
    assert site.post("/v1/dpo/requests", json=erasure).status_code == 403  # no CSRF token
    evil = site.post("/v1/dpo/requests", json=erasure, headers={CSRF_HEADER: csrf, "Origin": "https://evil.example"})
    assert evil.status_code == 403
    issued = site.post("/v1/dpo/requests", json=erasure, headers={CSRF_HEADER: csrf, "Origin": settings.public_url})
    assert issued.status_code == 202, issued.text
    request_id = issued.json()["request_id"]
    [command] = [RightsCommand.model_validate_json(m.value) for m in read_to_end(settings, ["rights.commands"])]
    assert command.issuer is not None and command.issuer.display_name == "Ana Garcia"
    audit = [AuditRecord.model_validate_json(m.value) for m in read_to_end(settings, ["audit"])]
    [received] = [a for a in audit if a.action == "rights.request_received"]
    assert str(received.request_id) == request_id
    assert received.principal is not None and received.principal.display_name == "Ana Garcia"
    assert received.principal.auth == "oidc" and received.actor == command.issuer.actor
    assert site.get("/v1/admin/users").status_code == 403  # a DPO manages no accounts

    # the same callback again: its code is spent and the login cookie gone
    assert site.get("/auth/callback", params=callback, follow_redirects=False).status_code == 401

    copied = site.cookies.get(session_cookie_name(settings))
    assert site.post("/logout").status_code == 403  # signing out is a change: CSRF token too
    out = site.post("/logout", headers={CSRF_HEADER: csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert site.get("/v1/me").status_code == 401
    site.cookies.set(session_cookie_name(settings), copied or "")
    assert site.get("/v1/me").status_code == 401  # a copy of the cookie died with the session


def test_an_admin_signs_in_and_a_change_names_them(site: TestClient, browser: Browser, oidc_provider: Hydra) -> None:
    callback = sign_in(site, browser, oidc_provider, "adam", next_path="/v1/admin/users")
    landed = site.get("/auth/callback", params=callback, follow_redirects=False)
    assert landed.headers["location"] == "/v1/admin/users"
    csrf = site.get("/v1/me").json()["session"]["csrf_token"]
    added = site.post(
        "/v1/admin/users", json={"name": "bea", "display_name": "Bea", "roles": ["sales"]}, headers={CSRF_HEADER: csrf}
    )
    assert added.status_code == 201, added.text
    assert added.json()["created_by"].startswith("person:")
    store = site.app.state.authenticator.store  # type: ignore[attr-defined]
    bea = store.get("bea")
    [record] = [r for r in store.unpublished_audit() if r.detail.get("target_principal_id") == bea.principal_id]
    assert record.action == "identity.principal_added"
    assert record.principal is not None and record.principal.display_name == "Adam Admin"
    assert record.principal.auth == "oidc"


def test_a_tampered_or_foreign_callback_opens_no_session(
    site: TestClient, browser: Browser, oidc_provider: Hydra, settings: Settings
) -> None:
    callback = sign_in(site, browser, oidc_provider, "sam")
    forged = site.get("/auth/callback", params={**callback, "state": "forged"}, follow_redirects=False)
    assert forged.status_code == 401 and forged.json()["detail"]["reason"] == "sign_in_failed"
    assert session_cookie_name(settings) not in site.cookies
    site.cookies.clear()  # another browser: the provider's answer without this browser's login cookie
    stolen = site.get("/auth/callback", params=callback, follow_redirects=False)
    assert stolen.status_code == 401 and session_cookie_name(settings) not in site.cookies
    assert site.get("/v1/me").status_code == 401
    # a sign-in that started with a link to another site lands on this one
    again = sign_in(site, browser, oidc_provider, "sam", next_path="//evil.example/")
    assert site.get("/auth/callback", params=again, follow_redirects=False).headers["location"] == "/"
