"""Token verification and the code + PKCE flow against locally generated keys (the real provider: integration).

Covers what a provider cannot easily be made to do on demand: forged, expired, future, foreign and downgraded
tokens, key ids that do not exist, a key set that cannot be fetched.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from clock_helpers import Clock
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.config import explicit_settings
from pipeline.identity.oidc import (
    AuthorizationCodeFlow,
    JwksCache,
    OidcConfig,
    ProviderMetadata,
    TokenError,
    TokenVerifier,
    pkce_challenge,
    roles_from_claims,
)
from pipeline.models.identity import Role

ISSUER = "https://id.example.test"
CONFIG = OidcConfig(
    issuer=ISSUER,
    client_id="console",
    audience="leadpipe-api",
    client_secret="s3cret",
    group_roles={"privacy": frozenset({Role.DPO}), "sales": frozenset({Role.SALES})},
    leeway_s=0,
    jwks_min_refetch_s=30,
)
METADATA = ProviderMetadata(ISSUER, f"{ISSUER}/auth", f"{ISSUER}/token", f"{ISSUER}/jwks")


@functools.cache
def _rsa_key(kid: str) -> rsa.RSAPrivateKey:
    """One key per kid for the whole module: generating 2048-bit keys per test costs seconds."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Provider:
    """Signing keys and a JWKS endpoint the verifier fetches through ``fetch``."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetched = 0
        self.down = False
        self.add_key("k1")

    def add_key(self, kid: str, publish: bool = True) -> None:
        self.keys[kid] = _rsa_key(kid)
        if publish:
            self.published.append(kid)

    def fetch(self, url: str) -> Mapping[str, Any]:
        assert url == METADATA.jwks_uri
        self.fetched += 1
        if self.down:
            raise TokenError("provider_unavailable", url)
        keys = []
        for kid in self.published:
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str = "k1", alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "sub": "user-1", "aud": "leadpipe-api", "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(provider: Provider, clock: Clock) -> TokenVerifier:
    jwks = JwksCache(METADATA.jwks_uri, provider.fetch, max_age_s=3600, min_refetch_s=30, clock=clock)
    return TokenVerifier(CONFIG, jwks)


def reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        verifier.verify_access_token(token)
    return caught.value.reason


def test_a_valid_access_token(provider: Provider, verifier: TokenVerifier) -> None:
    claims = verifier.verify_access_token(provider.token(groups=["sales"]))
    assert claims["sub"] == "user-1"
    assert roles_from_claims(claims, CONFIG) == {Role.SALES}


def test_refusals(provider: Provider, verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert reason(verifier, provider.token(aud="other-api")) == "wrong_audience"
    assert reason(verifier, provider.token(aud="console")) == "wrong_audience"  # an ID token is no access token
    assert reason(verifier, provider.token(iss="https://evil.test")) == "wrong_issuer"
    assert reason(verifier, provider.token(exp=now - 1)) == "expired"
    assert reason(verifier, provider.token(nbf=now + 120)) == "not_yet_valid"
    assert reason(verifier, provider.token(exp=None)) == "missing_claim"
    assert reason(verifier, provider.token(sub=None)) == "missing_claim"
    assert reason(verifier, "not.a.jwt") == "malformed"
    assert reason(verifier, "") == "malformed"
    forged = provider.token()
    head = forged.split(".")[0]
    other = provider.token(sub="admin").split(".")
    assert reason(verifier, f"{head}.{other[1]}.{forged.split('.')[2]}") == "bad_signature"


def test_algorithm_downgrades_are_refused(provider: Provider, verifier: TokenVerifier) -> None:
    unsigned = jwt.encode({"iss": ISSUER, "sub": "x", "aud": "leadpipe-api"}, None, algorithm="none")
    assert reason(verifier, unsigned) == "bad_algorithm"
    # HS256 keyed with the provider's public key (the classic confusion attack)
    public_pem = provider.fetch(METADATA.jwks_uri)["keys"][0]["n"].encode()
    confused = jwt.encode(
        {"iss": ISSUER, "sub": "x", "aud": "leadpipe-api"}, public_pem, algorithm="HS256", headers={"kid": "k1"}
    )
    assert reason(verifier, confused) == "bad_algorithm"
    # a PS256 token against a key published for RS256
    assert reason(verifier, provider.token(alg="PS256")) == "bad_algorithm"


def test_rotation_refetches_once_and_unknown_kids_are_bounded(
    provider: Provider, verifier: TokenVerifier, clock: Clock
) -> None:
    verifier.verify_access_token(provider.token())
    assert provider.fetched == 1
    provider.add_key("k2")
    clock.now += 31  # the provider rotated: a token with the new kid makes one refetch
    assert verifier.verify_access_token(provider.token(kid="k2"))["sub"] == "user-1"
    assert provider.fetched == 2
    provider.add_key("k3", publish=False)  # made-up kids: at most one fetch per min_refetch_s
    for _ in range(50):
        assert reason(verifier, provider.token(kid="k3")) == "unknown_key"
    assert provider.fetched == 2
    clock.now += 31
    assert reason(verifier, provider.token(kid="k3")) == "unknown_key"
    assert provider.fetched == 3
    assert verifier.verify_access_token(provider.token(kid="k1"))  # known keys never wait


def test_keys_are_refreshed_after_max_age_and_kept_when_the_provider_is_down(
    provider: Provider, verifier: TokenVerifier, clock: Clock
) -> None:
    verifier.verify_access_token(provider.token())
    provider.down = True
    clock.now += 3601
    assert verifier.verify_access_token(provider.token())  # stale keys beat no keys
    assert provider.fetched == 2


def test_first_fetch_failure_is_an_error(provider: Provider, verifier: TokenVerifier) -> None:
    provider.down = True
    assert reason(verifier, provider.token()) == "provider_unavailable"


def test_roles_from_groups_claim() -> None:
    nested = OidcConfig(**{**CONFIG.__dict__, "groups_claim": "ext.groups"})
    assert roles_from_claims({"ext": {"groups": ["privacy", "sales", "x"]}}, nested) == {Role.DPO, Role.SALES}
    assert roles_from_claims({"groups": "privacy"}, CONFIG) == {Role.DPO}
    assert roles_from_claims({"groups": ["unknown"]}, CONFIG) == frozenset()
    assert roles_from_claims({}, CONFIG) == frozenset()
    assert roles_from_claims({"groups": {"privacy": True}}, CONFIG) == frozenset()


def test_settings_map_to_config_and_refuse_unsafe_values() -> None:
    settings = explicit_settings(
        oidc_issuer=ISSUER,
        oidc_client_id="console",
        oidc_audience="leadpipe-api",
        oidc_client_secret="s3cret",
        oidc_group_roles={"privacy": ["dpo"]},
    )
    config = OidcConfig.from_settings(settings)
    assert config is not None and config.group_roles == {"privacy": {Role.DPO}}
    assert "s3cret" not in repr(config) and "s3cret" not in repr(settings)
    assert OidcConfig.from_settings(explicit_settings()) is None
    with pytest.raises(ValueError, match="must differ"):
        explicit_settings(oidc_issuer=ISSUER, oidc_client_id="console", oidc_audience="console")
    with pytest.raises(ValueError, match="needs oidc_client_id"):
        explicit_settings(oidc_issuer=ISSUER)
    with pytest.raises(ValueError, match="may not include"):
        explicit_settings(oidc_issuer=ISSUER, oidc_client_id="c", oidc_audience="a", oidc_algorithms=["HS256"])


def test_discovery_requires_the_configured_issuer() -> None:
    doc = {"issuer": ISSUER, "authorization_endpoint": "a", "token_endpoint": "t", "jwks_uri": "j"}
    assert ProviderMetadata.discover(ISSUER, lambda _url: doc).jwks_uri == "j"
    with pytest.raises(TokenError, match="issuer_mismatch"):
        ProviderMetadata.discover(ISSUER, lambda _url: {**doc, "issuer": "https://evil.test"})
    with pytest.raises(TokenError, match="bad_discovery"):
        ProviderMetadata.discover(ISSUER, lambda _url: {"issuer": ISSUER})


# ---- authorization code + PKCE --------------------------------------------------------------------------------


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


class TokenEndpoint:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.requests: list[tuple[str, dict[str, str], tuple[str, str] | None]] = []
        self.nonce = ""
        self.id_claims: dict[str, Any] = {}

    def __call__(self, url: str, form: Mapping[str, str], auth: tuple[str, str] | None) -> Mapping[str, Any]:
        self.requests.append((url, dict(form), auth))
        access = self.provider.token(groups=["privacy"])
        claims = {"aud": "console", "nonce": self.nonce, "at_hash": at_hash(access), "name": "Ana", **self.id_claims}
        return {"access_token": access, "id_token": self.provider.token(**claims), "expires_in": 3600}


@pytest.fixture
def flow(verifier: TokenVerifier, provider: Provider) -> tuple[AuthorizationCodeFlow, TokenEndpoint]:
    endpoint = TokenEndpoint(provider)
    return AuthorizationCodeFlow(CONFIG, METADATA, verifier, post=endpoint), endpoint


def test_start_builds_a_pkce_authorization_request(flow: tuple[AuthorizationCodeFlow, TokenEndpoint]) -> None:
    code_flow, _ = flow
    started = code_flow.start("https://console.test/auth/callback")
    query = {k: v[0] for k, v in parse_qs(urlparse(started.url).query).items()}
    assert started.url.startswith(METADATA.authorization_endpoint + "?")
    assert query["response_type"] == "code" and query["client_id"] == "console"
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == pkce_challenge(started.code_verifier)
    assert 43 <= len(started.code_verifier) <= 128
    assert query["state"] == started.state and query["nonce"] == started.nonce
    assert "openid" in query["scope"].split() and query["audience"] == "leadpipe-api"
    assert started.code_verifier not in started.url and started.state not in repr(started)
    assert code_flow.start("https://console.test/auth/callback").state != started.state


def test_finish_redeems_the_code_with_the_verifier(flow: tuple[AuthorizationCodeFlow, TokenEndpoint]) -> None:
    code_flow, endpoint = flow
    started = code_flow.start("https://console.test/auth/callback")
    endpoint.nonce = started.nonce
    result = code_flow.finish(started, state=started.state, code="the-code", error=None)
    assert result.id_claims["name"] == "Ana"
    url, form, auth = endpoint.requests[0]
    assert url == METADATA.token_endpoint and auth == ("console", "s3cret")
    assert form["code_verifier"] == started.code_verifier and form["code"] == "the-code"
    assert form["redirect_uri"] == started.redirect_uri and form["grant_type"] == "authorization_code"


@pytest.mark.parametrize(
    ("state", "code", "error", "id_claims", "expected"),
    [
        ("forged", "c", None, {}, "state_mismatch"),
        (None, "c", None, {}, "state_mismatch"),
        ("ok", None, "access_denied", {}, "provider_refused"),
        ("ok", None, None, {}, "missing_code"),
        ("ok", "c", None, {"nonce": "replayed"}, "nonce_mismatch"),
        ("ok", "c", None, {"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "at_hash_mismatch"),
        ("ok", "c", None, {"aud": ["console", "other"]}, "wrong_audience"),
        ("ok", "c", None, {"azp": "other"}, "wrong_audience"),
        ("ok", "c", None, {"aud": "leadpipe-api"}, "wrong_audience"),  # an access token is no ID token
    ],
)
def test_finish_refuses(
    flow: tuple[AuthorizationCodeFlow, TokenEndpoint],
    state: str | None,
    code: str | None,
    error: str | None,
    id_claims: dict[str, Any],
    expected: str,
) -> None:
    code_flow, endpoint = flow
    started = code_flow.start("https://console.test/auth/callback")
    endpoint.nonce, endpoint.id_claims = started.nonce, id_claims
    with pytest.raises(TokenError) as caught:
        code_flow.finish(started, state=started.state if state == "ok" else state, code=code, error=error)
    assert caught.value.reason == expected
