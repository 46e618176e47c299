"""From an Authorization header to a principal: API keys, legacy role tokens behind their flag, failure limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from clock_helpers import Clock
from sqlalchemy import Engine

from pipeline.config import Settings, explicit_settings
from pipeline.db import ensure_schema, make_engine
from pipeline.identity import AuthenticationFailed, Authenticator, TokenError
from pipeline.identity.oidc import OidcConfig, ProviderMetadata, TokenVerifier
from pipeline.models.identity import Principal, PrincipalKind, Role

pytestmark = pytest.mark.integration

OPERATOR = Principal(principal_id="op", display_name="Operator", kind=PrincipalKind.PERSON, auth="local")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    ensure_schema(engine)
    yield engine
    engine.dispose()


def build(engine: Engine, tmp_path: Path, clock: Clock, **overrides: Any) -> Authenticator:
    values: dict[str, Any] = {
        "environment": "test",
        "home": tmp_path,
        "api_key_pepper": "pepper",
        "auth_failure_limit": 3,
        "auth_failure_limit_principal": 5,
        "auth_failure_window_s": 60,
        "auth_lockout_s": 120,
        **overrides,
    }
    settings: Settings = explicit_settings(**values)
    made = Authenticator.for_engine(settings, engine)
    made._clock = clock  # time is passed in: the limiter's windows are tested without waiting
    return made


def refusal(authenticator: Authenticator, header: str | None, address: str = "10.0.0.1") -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as caught:
        authenticator.authenticate(header, address)
    return caught.value


def test_api_keys(engine: Engine, tmp_path: Path) -> None:
    auth = build(engine, tmp_path, Clock(100.0))
    auth.store.add_principal("ana", display_name="Ana Garcia", kind=PrincipalKind.PERSON, roles=[Role.DPO], by=OPERATOR)
    key = auth.store.create_key("ana", by=OPERATOR)
    ana = auth.authenticate(f"Bearer {key.secret}", "10.0.0.1")
    assert (ana.display_name, ana.roles, ana.auth) == ("Ana Garcia", {Role.DPO}, "api_key")
    assert auth.authenticate(f"bearer   {key.secret} ", None) == ana
    assert refusal(auth, None).reason == "missing_credentials"
    assert refusal(auth, f"Basic {key.secret}").reason == "missing_credentials"
    assert refusal(auth, "Bearer something-else").reason == "unknown_credential"
    assert refusal(auth, "Bearer a.b.c").reason == "unknown_credential"  # no OIDC configured


def test_legacy_role_tokens_only_behind_the_flag(engine: Engine, tmp_path: Path) -> None:
    tokens = {"dpo_token": "old-dpo-token", "sales_token": "old-sales-token"}
    off = build(engine, tmp_path, Clock(100.0), **tokens)
    assert refusal(off, "Bearer old-dpo-token").reason == "unknown_credential"
    with structlog.testing.capture_logs() as logged:
        on = build(engine, tmp_path, Clock(100.0), legacy_role_tokens=True, **tokens)
        dpo = on.authenticate("Bearer old-dpo-token", "10.0.0.1")
        assert on.authenticate("Bearer old-sales-token", "10.0.0.1").roles == {Role.SALES}
        assert refusal(on, "Bearer old-reviewer-token").reason == "unknown_credential"  # not configured
    assert dpo.roles == {Role.DPO} and dpo.auth == "legacy_token" and dpo.principal_id == "legacy-dpo-token"
    events = [(e["event"], e.get("role") or e.get("roles")) for e in logged]
    assert ("legacy_role_tokens_enabled", ["dpo", "sales"]) in events
    assert ("legacy_role_token_used", "dpo") in events and ("legacy_role_token_used", "sales") in events
    assert "old-dpo-token" not in repr(logged)


def test_failures_lock_the_address_even_for_a_correct_key(engine: Engine, tmp_path: Path) -> None:
    clock = Clock(100.0)
    auth = build(engine, tmp_path, clock)
    auth.store.add_principal("sam", display_name="Sam", kind=PrincipalKind.PERSON, roles=[Role.SALES], by=OPERATOR)
    key = auth.store.create_key("sam", by=OPERATOR)
    for _ in range(2):
        assert refusal(auth, "Bearer guess", "10.0.0.9").retry_after is None
    assert refusal(auth, "Bearer guess", "10.0.0.9").retry_after == 120
    locked = refusal(auth, f"Bearer {key.secret}", "10.0.0.9")
    assert locked.reason == "rate_limited" and locked.retry_after == 120
    assert auth.authenticate(f"Bearer {key.secret}", "10.0.0.10").roles == {Role.SALES}  # other addresses work
    clock.now += 121
    assert auth.authenticate(f"Bearer {key.secret}", "10.0.0.9")


def test_failures_against_one_key_lock_that_key_from_anywhere(engine: Engine, tmp_path: Path) -> None:
    clock = Clock(100.0)
    auth = build(engine, tmp_path, clock)
    auth.store.add_principal("sam", display_name="Sam", kind=PrincipalKind.PERSON, roles=[Role.SALES], by=OPERATOR)
    key = auth.store.create_key("sam", by=OPERATOR)
    wrong = key.secret[:-6] + ("AAAAAA" if not key.secret.endswith("AAAAAA") else "BBBBBB")
    for i in range(5):
        assert refusal(auth, f"Bearer {wrong}", f"10.0.1.{i}").reason == "wrong_key"
    assert refusal(auth, f"Bearer {key.secret}", "10.0.2.1").reason == "rate_limited"


def test_an_unreachable_provider_is_not_the_callers_fault(engine: Engine, tmp_path: Path) -> None:
    def unreachable(config: OidcConfig) -> tuple[TokenVerifier, ProviderMetadata]:
        raise TokenError("provider_unavailable", "connection refused")

    clock = Clock(100.0)
    auth = build(
        engine,
        tmp_path,
        clock,
        oidc_issuer="https://id.example.test",
        oidc_client_id="console",
        oidc_audience="leadpipe-api",
    )
    auth._provider_factory = unreachable
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    for _ in range(5):  # not counted as failures: no lockout
        assert refusal(auth, f"Bearer {token}").reason == "provider_unavailable"
    assert auth.limiter.retry_after(["addr:10.0.0.1"], clock.now) is None
