"""The permission matrix as a test: every route of the leadpipe API and every ``leadpipe`` command declares its
access, the declarations are the ones reviewed here, and every (route x role) pair is asked over HTTP, with an API
key and with a browser session, and every (command x role) pair through the command's own wrapper.

What each role reaches is written here a second time, from the issue's words rather than from
``ROLE_PERMISSIONS``: sales reads the CRM, reviewers the spam queue (and score, teach and rebuild the spam filter),
the DPO rights, exports and the CRM, admin principals and sources; a producer credential reaches no operator route
(only ingest, which checks it itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import typer
import typer.main
from fastapi.testclient import TestClient
from identity_helpers import key_for
from ingest_helpers import RecordingPublisher

from pipeline import cli as leadpipe_cli
from pipeline.api.app import create_api
from pipeline.cli import WITHOUT_OPERATOR
from pipeline.cli import app as cli_app
from pipeline.config import Settings, get_settings
from pipeline.db import ensure_schema
from pipeline.http.auth import Access, Public, SignedIn, route_accesses, session_cookie_name
from pipeline.identity.operator import API_KEY_ENV, NoOperator, access_of, identity_store, principal_for
from pipeline.identity.permissions import Permission, permissions_of
from pipeline.models.identity import Role
from pipeline.runtime import Runtime

P = Permission
PUBLIC = Public("")  # the reason is free text; only its presence is checked

#: Every route of the API port (with ``api_public_docs``, so its documentation routes too) and the one access it
#: declares. A new route fails the test until it is added here.
ROUTES: dict[tuple[str, str], Access] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("GET", "/auth/callback"): PUBLIC,
    ("POST", "/v1/sources/{source_id}"): PUBLIC,
    ("GET", "/v1/sources/{source_id}"): PUBLIC,  # a sender's check of the URL: Meta's verify_token, or nothing recorded
    ("POST", "/logout"): SignedIn(session_only=True),
    ("GET", "/v1/me"): SignedIn(),
    ("POST", "/v1/dpo/requests"): P.RIGHTS_ISSUE,
    ("GET", "/v1/dpo/requests"): P.RIGHTS_READ,
    ("GET", "/v1/dpo/requests/{request_id}"): P.RIGHTS_READ,
    ("POST", "/v1/dpo/requests/{request_id}/extend"): P.RIGHTS_ISSUE,
    ("POST", "/v1/dpo/requests/{request_id}/notice-sent"): P.RIGHTS_ISSUE,
    ("POST", "/v1/dpo/requests/{request_id}/contacts-reviewed"): P.RIGHTS_ISSUE,
    ("POST", "/v1/dpo/requests/{request_id}/sinks/{sink}/close"): P.RIGHTS_ISSUE,
    ("GET", "/v1/dpo/requests/{request_id}/audit"): P.RIGHTS_READ,
    ("GET", "/v1/dpo/requests/{request_id}/export"): P.RIGHTS_EXPORT,
    ("GET", "/v1/crm/subjects"): P.CRM_READ,
    ("GET", "/v1/crm/subjects/{subject_key}"): P.CRM_READ,
    ("GET", "/v1/review/quarantine"): P.REVIEW_READ,
    ("GET", "/v1/review/quarantine/{event_id}"): P.REVIEW_READ,
    ("POST", "/v1/review/quarantine/{event_id}/release"): P.REVIEW_DECIDE,
    ("POST", "/v1/review/quarantine/{event_id}/confirm"): P.REVIEW_DECIDE,
    ("GET", "/v1/admin/users"): P.PRINCIPALS_READ,
    ("POST", "/v1/admin/users"): P.PRINCIPALS_MANAGE,
    ("GET", "/v1/admin/users/{name}"): P.PRINCIPALS_READ,
    ("POST", "/v1/admin/users/{name}/disable"): P.PRINCIPALS_MANAGE,
    ("POST", "/v1/admin/users/{name}/enable"): P.PRINCIPALS_MANAGE,
    ("POST", "/v1/admin/users/{name}/roles"): P.PRINCIPALS_MANAGE,
    ("DELETE", "/v1/admin/users/{name}/roles/{role}"): P.PRINCIPALS_MANAGE,
    ("PUT", "/v1/admin/users/{name}/sources/{source_id}"): P.SOURCES_MANAGE,
    ("DELETE", "/v1/admin/users/{name}/sources/{source_id}"): P.SOURCES_MANAGE,
    ("GET", "/v1/admin/keys"): P.PRINCIPALS_READ,
    ("POST", "/v1/admin/users/{name}/keys"): P.PRINCIPALS_MANAGE,
    ("DELETE", "/v1/admin/keys/{key_id}"): P.PRINCIPALS_MANAGE,
    ("GET", "/v1/admin/sources"): P.SOURCES_MANAGE,
    # the console's pages: a browser session only (an API key is refused as no session), each with its permission
    ("GET", "/"): SignedIn(session_only=True),
    ("GET", "/charts"): SignedIn(session_only=True),
    ("GET", "/leads"): P.CRM_READ,
    ("GET", "/leads/stream"): P.CRM_READ,
    ("GET", "/contacts/{subject_key}"): P.CRM_READ,
    ("GET", "/export/leads.csv"): P.CRM_EXPORT_LEADS,
    ("GET", "/review"): P.REVIEW_READ,
    ("GET", "/review/{event_id}"): P.REVIEW_READ,
    ("POST", "/review/decide"): P.REVIEW_DECIDE,
    ("GET", "/dpo"): P.RIGHTS_READ,
    ("GET", "/dpo/requests/{request_id}"): P.RIGHTS_READ,
    ("POST", "/dpo/requests/{request_id}/extend"): P.RIGHTS_ISSUE,
    ("POST", "/dpo/requests/{request_id}/contacts-reviewed"): P.RIGHTS_ISSUE,
    ("POST", "/dpo/requests/{request_id}/close-step"): P.RIGHTS_ISSUE,
    ("GET", "/dpo/retention"): P.RETENTION_RUN,
    ("GET", "/dpo/new"): P.RIGHTS_ISSUE,
    ("POST", "/dpo/new"): P.RIGHTS_ISSUE,
    ("GET", "/dpo/rectify"): P.RIGHTS_ISSUE,
    ("POST", "/dpo/rectify"): P.RIGHTS_ISSUE,
}

#: The console's pages (``pipeline/console/``): only a browser session opens them.
CONSOLE_PAGES = frozenset(
    path for (_, path), access in ROUTES.items() if not path.startswith("/v1/") and not isinstance(access, Public)
) - {"/logout"}

#: Every route of the admin port (``pipeline.http.server``: bound to ``admin_host``, not the internet's side) and
#: its access: all public there, none hands out personal data.
ADMIN_ROUTES: dict[tuple[str, str], Access] = {
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
}

#: Which operator routes each role reaches (by path prefix), in the issue's words.
REACHES: dict[Role, tuple[str, ...]] = {
    Role.SALES: ("/v1/crm/", "/leads", "/contacts/", "/export/"),
    Role.REVIEWER: ("/v1/review/", "/review"),
    Role.DPO: ("/v1/dpo/", "/v1/crm/", "/leads", "/contacts/", "/dpo"),
    Role.ADMIN: ("/v1/admin/",),
    Role.PRODUCER: (),
}


def reaches(role: Role, path: str, access: Access) -> bool:
    if isinstance(access, SignedIn):
        return role is not Role.PRODUCER
    return path.startswith(REACHES[role])


def test_the_matrix_says_what_the_issue_says() -> None:
    for (_, path), access in ROUTES.items():
        if isinstance(access, Permission):
            for role in Role:
                assert reaches(role, path, access) == (access in permissions_of({role})), (role, path)
    for name, permission in COMMANDS.items():
        for role in Role:
            assert name.startswith(REACHES_CLI[role]) == (permission in permissions_of({role})), (role, name)


# ---- HTTP ------------------------------------------------------------------------------------------------------


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(
        oidc_issuer="https://id.example.test",
        oidc_client_id="console",
        oidc_audience="leadpipe-api",
        session_cookie_secure=False,
        public_url="http://leadpipe.test",
        api_public_docs=True,
    )
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    app = create_api(runtime, RecordingPublisher())  # type: ignore[arg-type]  # no request below gets as far as publishing
    with TestClient(app, base_url="http://leadpipe.test") as client:
        yield client, settings
    runtime.engine.dispose()


def _served(app: Any) -> dict[tuple[str, str], Access]:
    served: dict[tuple[str, str], Access] = {}
    for route in route_accesses(app):
        assert len(route.declared) == 1, f"{route.path} declares {route.declared or 'nothing'}"
        (declared,) = route.declared
        if isinstance(declared, Public):
            assert len(declared.reason) > 10, f"{route.path}: say why it is public"
            declared = PUBLIC
        for method in route.methods - {"HEAD"}:
            served[(method, route.path)] = declared
    return served


def test_every_route_declares_exactly_the_reviewed_access(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    assert _served(client.app) == ROUTES
    assert _served(client.app.state.admin) == ADMIN_ROUTES  # type: ignore[attr-defined]


#: Path parameters that make an admitted request stop short of doing anything (404, or 422 for a typed one).
PLACEHOLDERS = {"request_id": "not-a-uuid", "event_id": "not-a-uuid", "role": "not-a-role"}


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS.get(m.group(1), "nobody"), path)


def _operator_routes() -> list[tuple[str, str, Access]]:
    return [(m, p, a) for (m, p), a in ROUTES.items() if not isinstance(a, Public)]


def _ask(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    # limit=x: a route with a limit refuses it (422) after the access check instead of reading the queue
    # not following redirects: /logout's answer is its 303, not the page it sends the (now signed-out) browser to
    return client.request(method, _url(path), params={"limit": "x"}, headers=headers, follow_redirects=False)


def test_without_credentials_every_operator_route_is_401(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    for method, path, _access in _operator_routes():
        answer = _ask(client, method, path, {})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["detail"]["reason"] == "missing_credentials"


@pytest.mark.parametrize("role", list(Role))
def test_every_route_with_an_api_key_of_each_role(api: tuple[TestClient, Settings], role: Role) -> None:
    client, settings = api
    headers = {"Authorization": f"Bearer {key_for(settings, role)}"}
    for method, path, access in _operator_routes():
        answer = _ask(client, method, path, headers)
        if isinstance(access, SignedIn) and access.session_only:
            assert answer.status_code == 401, (role, method, path, answer.text)  # a key is not a browser session
        elif path in CONSOLE_PAGES and reaches(role, path, access):
            assert answer.status_code == 401, (role, method, path, answer.text)  # nor for a page the role may see
        elif reaches(role, path, access):
            assert answer.status_code not in (401, 403, 429), (role, method, path, answer.text)
        else:
            assert answer.status_code == 403, (role, method, path, answer.text)
            assert answer.json()["detail"]["reason"] == "forbidden"


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.PRODUCER])  # a producer is a client: no sign-in
def test_every_route_with_a_browser_session_of_each_role(api: tuple[TestClient, Settings], role: Role) -> None:
    client, settings = api
    key_for(settings, role, "signed-in")
    authenticator = client.app.state.authenticator  # type: ignore[attr-defined]
    principal = authenticator.store.get("signed-in").principal("oidc")
    for method, path, access in _operator_routes():
        session = authenticator.sessions.create(principal, frozenset())  # /logout ends one: a new one each time
        client.cookies.set(session_cookie_name(settings), session.cookie)
        origin = {"Origin": "http://leadpipe.test"}
        if method != "GET":  # without the session's CSRF token a change is refused, whoever asks
            refused = _ask(client, method, path, origin)
            assert refused.status_code == 403, (role, method, path, refused.text)
            assert refused.json()["detail"]["reason"] in ("csrf_failed", "forbidden")
        answer = _ask(client, method, path, {**origin, "X-CSRF-Token": session.csrf_token})
        if reaches(role, path, access):
            assert answer.status_code not in (401, 403, 429), (role, method, path, answer.text)
        else:
            assert answer.status_code == 403, (role, method, path, answer.text)
            assert answer.json()["detail"]["reason"] == "forbidden"
    client.cookies.clear()


# ---- the command line --------------------------------------------------------------------------------------------

#: Every ``leadpipe`` command that acts for an operator, and the permission it needs.
COMMANDS: dict[str, Permission] = {
    "dpo erase": P.RIGHTS_ISSUE,
    "dpo object": P.RIGHTS_ISSUE,
    "dpo lift-objection": P.RIGHTS_ISSUE,
    "dpo restrict": P.RIGHTS_ISSUE,
    "dpo unrestrict": P.RIGHTS_ISSUE,
    "dpo rectify": P.RIGHTS_ISSUE,
    "dpo withdraw-consent": P.RIGHTS_ISSUE,
    "dpo export": P.RIGHTS_ISSUE,
    "dpo access": P.RIGHTS_ISSUE,
    "dpo status": P.RIGHTS_READ,
    "dpo show": P.RIGHTS_READ,
    "dpo extend": P.RIGHTS_ISSUE,
    "dpo notice-sent": P.RIGHTS_ISSUE,
    "dpo contacts-reviewed": P.RIGHTS_ISSUE,
    "dpo close-step": P.RIGHTS_ISSUE,
    "retention sweep": P.RETENTION_RUN,
    "crm search": P.CRM_READ,
    "crm show": P.CRM_READ,
    "spam review list": P.REVIEW_READ,
    "spam review show": P.REVIEW_READ,
    "spam review release": P.REVIEW_DECIDE,
    "spam review confirm": P.REVIEW_DECIDE,
    "spam score": P.REVIEW_READ,
    "spam learn": P.REVIEW_DECIDE,
    "spam rebuild": P.REVIEW_DECIDE,
    "dlq list": P.DLQ_READ,
    "dlq show": P.DLQ_READ,
    "dlq replay": P.DLQ_REPLAY,
    "users add": P.PRINCIPALS_MANAGE,
    "users list": P.PRINCIPALS_READ,
    "users disable": P.PRINCIPALS_MANAGE,
    "users enable": P.PRINCIPALS_MANAGE,
    "users grant": P.PRINCIPALS_MANAGE,
    "users revoke": P.PRINCIPALS_MANAGE,
    "users bind": P.SOURCES_MANAGE,
    "users unbind": P.SOURCES_MANAGE,
    "keys create": P.PRINCIPALS_MANAGE,
    "keys list": P.PRINCIPALS_READ,
    "keys revoke": P.PRINCIPALS_MANAGE,
}

#: Commands that act for nobody, declared on the command itself rather than by their group.
COMMANDS_WITHOUT_OPERATOR = {
    "users bootstrap",
    "spam engine up",
    "spam engine down",
    "spam engine config",
    "spam engine status",
}


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


def _commands() -> dict[str, Any]:
    return {" ".join(path): command for path, command in _leaves(typer.main.get_command(cli_app))}


def test_every_command_declares_exactly_the_reviewed_access() -> None:
    declared: dict[str, Permission] = {}
    without: set[str] = set()
    for name, command in _commands().items():
        access = access_of(command.callback)
        if isinstance(access, Permission):
            declared[name] = access
        elif isinstance(access, NoOperator):
            without.add(name)
        else:
            assert name.split()[0] in WITHOUT_OPERATOR, f"leadpipe {name} declares no access"
            assert len(WITHOUT_OPERATOR[name.split()[0]]) > 10
    assert declared == COMMANDS
    assert without == COMMANDS_WITHOUT_OPERATOR
    assert not {name.split()[0] for name in COMMANDS} & set(WITHOUT_OPERATOR)


@pytest.fixture
def cli_settings(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A deployment with its own database: no embedded-default admin, every command needs a key."""
    settings = make_settings()
    url = f"sqlite:///{settings.home / 'crm.sqlite3'}"
    settings.home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("LEADPIPE_HOME", str(settings.home))
    monkeypatch.setenv("LEADPIPE_DATABASE_URL", url)
    monkeypatch.setenv("LEADPIPE_API_KEY_PEPPER", "matrix-pepper")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.mark.parametrize("role", list(Role))
def test_every_command_with_a_key_of_each_role(
    cli_settings: Settings, role: Role, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused command exits 2 in its wrapper before its body runs (called here with no arguments at all); an
    admitted role is resolved by the same function the wrapper calls."""
    monkeypatch.setenv(API_KEY_ENV, key_for(cli_settings, role, display_name="Role Holder"))
    # the broker and database checks run first (pipeline/cli.py); here the operator check is the question
    monkeypatch.setattr(leadpipe_cli, "check_kafka", lambda _settings: None)
    monkeypatch.setattr(leadpipe_cli, "check_database", lambda _url: None)
    commands = _commands()
    for name, permission in COMMANDS.items():
        if name.startswith(REACHES_CLI[role]):
            with identity_store(cli_settings) as store:
                assert principal_for(store, cli_settings, permission).roles == {role}
        else:
            with pytest.raises(typer.Exit) as refused:
                commands[name].callback()
            assert refused.value.exit_code == 2, name
            assert f"Role Holder lacks the permission {permission.value}" in capsys.readouterr().err, name


#: Which commands each role may run, in the issue's words (admin also runs the dead-letter tools).
REACHES_CLI: dict[Role, tuple[str, ...]] = {
    Role.SALES: ("crm ",),
    Role.REVIEWER: ("spam review ", "spam score", "spam learn", "spam rebuild"),
    Role.DPO: ("dpo ", "crm ", "retention "),
    Role.ADMIN: ("users ", "keys ", "dlq "),
    Role.PRODUCER: (),
}
