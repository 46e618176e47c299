"""Single sign-on against a real OpenID Connect provider (Ory Hydra, started by the suite; tests/oidc_provider.py).

A person signs in through the provider's login form with authorization code + PKCE; the tokens it issues are
verified by our verifier; wrong audiences, expired tokens and a key rotation are the provider's own doing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from oidc_provider import (
    API_AUDIENCE,
    CONSOLE_CLIENT,
    CONSOLE_SECRET,
    GROUP_ROLES,
    OTHER_AUDIENCE,
    Browser,
    Hydra,
)

from pipeline.config import explicit_settings
from pipeline.db import ensure_schema, make_engine
from pipeline.identity import AuthenticationFailed, Authenticator, Permission, allowed
from pipeline.identity.oidc import AuthorizationCodeFlow, OidcConfig, TokenError, TokenVerifier, roles_from_claims
from pipeline.models.identity import PrincipalKind, Role

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def config(oidc_provider: Hydra) -> OidcConfig:
    return OidcConfig(
        issuer=oidc_provider.issuer,
        client_id=CONSOLE_CLIENT,
        audience=API_AUDIENCE,
        client_secret=CONSOLE_SECRET,
        group_roles={group: frozenset(Role(r) for r in roles) for group, roles in GROUP_ROLES.items()},
        leeway_s=0,
        jwks_min_refetch_s=0,  # the rotation test needs the refetch now; the bound itself is unit-tested
    )


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


def sign_in(
    oidc_provider: Hydra, config: OidcConfig, browser: Browser, user: str
) -> tuple[AuthorizationCodeFlow, object]:
    verifier, metadata = TokenVerifier.discover(config)
    flow = AuthorizationCodeFlow(config, metadata, verifier)
    started = flow.start(oidc_provider.redirect_uri)
    callback = browser.sign_in(started.url, oidc_provider.redirect_uri, user, f"{user}-password")
    result = flow.finish(started, state=callback.get("state"), code=callback.get("code"), error=callback.get("error"))
    return flow, result


def test_sign_in_with_code_and_pkce(oidc_provider: Hydra, config: OidcConfig, browser: Browser) -> None:
    verifier, metadata = TokenVerifier.discover(config)
    flow = AuthorizationCodeFlow(config, metadata, verifier)
    started = flow.start(oidc_provider.redirect_uri)
    callback = browser.sign_in(started.url, oidc_provider.redirect_uri, "ana", "ana-password")
    assert oidc_provider.login_app.logins[-1] == "ana"
    result = flow.finish(started, state=callback["state"], code=callback["code"], error=None)

    assert result.id_claims["sub"] == "user-ana" and result.id_claims["name"] == "Ana Garcia"
    assert result.id_claims["aud"] == [CONSOLE_CLIENT] and result.id_claims["nonce"] == started.nonce
    claims = verifier.verify_access_token(result.access_token)
    assert claims["sub"] == "user-ana" and API_AUDIENCE in claims["aud"]
    assert roles_from_claims(claims, config) == {Role.DPO}
    assert roles_from_claims(result.id_claims, config) == {Role.DPO}

    with pytest.raises(TokenError) as as_access:  # an ID token is not an access token for the API
        verifier.verify_access_token(result.id_token)
    assert as_access.value.reason == "wrong_audience"
    with pytest.raises(TokenError) as replayed:  # a code is good once
        flow.finish(started, state=callback["state"], code=callback["code"], error=None)
    assert replayed.value.reason == "token_request_refused"


def test_the_provider_enforces_pkce(oidc_provider: Hydra, config: OidcConfig, browser: Browser) -> None:
    verifier, metadata = TokenVerifier.discover(config)
    flow = AuthorizationCodeFlow(config, metadata, verifier)
    started = flow.start(oidc_provider.redirect_uri)
    callback = browser.sign_in(started.url, oidc_provider.redirect_uri, "sam", "sam-password")
    stolen = dataclasses.replace(started, code_verifier="x" * 64)  # an intercepted code without the verifier
    with pytest.raises(TokenError) as caught:
        flow.finish(stolen, state=callback["state"], code=callback["code"], error=None)
    assert caught.value.reason == "token_request_refused"


def test_a_wrong_password_gets_no_code(oidc_provider: Hydra, config: OidcConfig, browser: Browser) -> None:
    verifier, metadata = TokenVerifier.discover(config)
    started = AuthorizationCodeFlow(config, metadata, verifier).start(oidc_provider.redirect_uri)
    with pytest.raises(AssertionError, match="refused the credentials"):
        browser.sign_in(started.url, oidc_provider.redirect_uri, "ana", "guess")


def test_a_token_for_another_audience_is_refused(oidc_provider: Hydra, config: OidcConfig) -> None:
    verifier, _ = TokenVerifier.discover(config)
    assert verifier.verify_access_token(oidc_provider.client_credentials_token(API_AUDIENCE))
    with pytest.raises(TokenError) as caught:
        verifier.verify_access_token(oidc_provider.client_credentials_token(OTHER_AUDIENCE))
    assert caught.value.reason == "wrong_audience"


def test_an_expired_token_is_refused(oidc_provider: Hydra, config: OidcConfig) -> None:
    verifier, _ = TokenVerifier.discover(config)
    oidc_provider.set_machine_token_lifespan("1s")
    try:
        token = oidc_provider.client_credentials_token()
    finally:
        oidc_provider.set_machine_token_lifespan("1h")
    time.sleep(2.1)
    with pytest.raises(TokenError) as caught:
        verifier.verify_access_token(token)
    assert caught.value.reason == "expired"


def test_key_rotation(oidc_provider: Hydra, config: OidcConfig) -> None:
    verifier, _ = TokenVerifier.discover(config)
    before = oidc_provider.client_credentials_token()
    assert verifier.verify_access_token(before)
    new_kid = oidc_provider.rotate_keys()
    after = oidc_provider.client_credentials_token()
    assert jwt.get_unverified_header(after)["kid"] == new_kid != jwt.get_unverified_header(before)["kid"]
    assert verifier.verify_access_token(after)["sub"]  # unknown kid -> the cache refetched the provider's keys
    assert verifier.verify_access_token(before)  # the old key is still published: tokens signed before still pass


def test_the_authenticator_links_the_person_and_maps_groups(
    oidc_provider: Hydra, config: OidcConfig, browser: Browser, tmp_path: Path
) -> None:
    settings = explicit_settings(
        environment="test",
        home=tmp_path,
        api_key_pepper="pepper",
        oidc_issuer=oidc_provider.issuer,
        oidc_client_id=CONSOLE_CLIENT,
        oidc_client_secret=CONSOLE_SECRET,
        oidc_audience=API_AUDIENCE,
        oidc_group_roles=GROUP_ROLES,
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    ensure_schema(engine)
    authenticator = Authenticator.for_engine(settings, engine)
    _, result = sign_in(oidc_provider, config, browser, "sam")
    token = result.access_token  # type: ignore[attr-defined]

    sam = authenticator.authenticate(f"Bearer {token}", "127.0.0.1")
    assert (sam.display_name, sam.kind, sam.roles, sam.auth) == (
        "Sam Sales",
        PrincipalKind.PERSON,
        {Role.SALES},
        "oidc",
    )
    assert allowed(sam, Permission.CRM_READ) and not allowed(sam, Permission.RIGHTS_ISSUE)
    info = authenticator.store.get(sam.principal_id)
    assert info is not None and info.name == "sam" and info.issuer == oidc_provider.issuer
    assert authenticator.authenticate(f"Bearer {token}", "127.0.0.1").principal_id == sam.principal_id

    machine = authenticator.authenticate(f"Bearer {oidc_provider.client_credentials_token()}", "127.0.0.1")
    assert machine.kind is PrincipalKind.CLIENT and machine.roles == frozenset()

    authenticator.store.set_disabled(sam.principal_id, True, by=machine)
    with pytest.raises(AuthenticationFailed) as caught:
        authenticator.authenticate(f"Bearer {token}", "127.0.0.1")
    assert caught.value.reason == "disabled"
    engine.dispose()
