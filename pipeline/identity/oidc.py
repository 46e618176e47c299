"""OpenID Connect: verifying the provider's tokens, and the browser's authorization-code + PKCE sign-in.

JWT parsing and signature checks are PyJWT's; this module decides what to trust:

- the provider's metadata from discovery, whose ``issuer`` must equal the configured one exactly;
- its signing keys (JWKS), cached for ``jwks_max_age_s`` and fetched again when a token names an unknown key id
  (the provider rotated), but at most once per ``jwks_min_refetch_s``, so tokens with made-up key ids cannot make
  us hammer the provider; a failed fetch keeps the keys we had;
- an access token: signature, ``iss``, ``aud`` (our API's audience, never the client id: an ID token must not pass
  as an access token), ``exp``/``iat``/``nbf`` with a small leeway, and only asymmetric algorithms;
- an ID token: the same against the client id, plus the ``nonce`` of this sign-in, ``azp`` and ``at_hash``.

Groups in a configurable claim map to roles (``oidc_group_roles``). Nothing here logs a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from pipeline.config import Settings
from pipeline.logging import get_logger
from pipeline.models.identity import Role

log = get_logger(__name__)

FetchJson = Callable[[str], Mapping[str, Any]]
PostForm = Callable[[str, Mapping[str, str], tuple[str, str] | None], Mapping[str, Any]]


class TokenError(Exception):
    """A token, sign-in response or provider answer that is refused; ``reason`` is a short code (no token in it)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    audience: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    groups_claim: str = "groups"
    group_roles: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    leeway_s: float = 30.0
    jwks_max_age_s: float = 3600.0
    jwks_min_refetch_s: float = 30.0
    http_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """None when single sign-on is not configured (``LEADPIPE_OIDC_ISSUER`` unset)."""
        if settings.oidc_issuer is None or settings.oidc_client_id is None or settings.oidc_audience is None:
            return None
        return cls(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            audience=settings.oidc_audience,
            client_secret=None
            if settings.oidc_client_secret is None
            else settings.oidc_client_secret.get_secret_value(),
            scopes=settings.oidc_scopes,
            groups_claim=settings.oidc_groups_claim,
            group_roles={group: frozenset(roles) for group, roles in settings.oidc_group_roles.items()},
            algorithms=settings.oidc_algorithms,
            leeway_s=settings.oidc_leeway_s,
            jwks_max_age_s=settings.oidc_jwks_max_age_s,
            jwks_min_refetch_s=settings.oidc_jwks_min_refetch_s,
            http_timeout_s=settings.oidc_http_timeout_s,
        )


# ---- HTTP (the only I/O; injected in unit tests) -------------------------------------------------------------


def http_fetch_json(timeout_s: float) -> FetchJson:
    def fetch(url: str) -> Mapping[str, Any]:
        try:
            response = httpx.get(url, timeout=timeout_s, headers={"Accept": "application/json"})
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError("provider_unavailable", f"{url}: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise TokenError("provider_unavailable", f"{url}: not a JSON object")
        return data

    return fetch


def http_post_form(timeout_s: float) -> PostForm:
    def post(url: str, form: Mapping[str, str], basic_auth: tuple[str, str] | None) -> Mapping[str, Any]:
        try:
            response = httpx.post(url, data=dict(form), auth=basic_auth, timeout=timeout_s)
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError("provider_unavailable", f"{url}: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise TokenError("provider_unavailable", f"{url}: not a JSON object")
        if response.status_code != 200:  # RFC 6749 5.2: {"error": ..., "error_description": ...}
            raise TokenError("token_request_refused", str(data.get("error", response.status_code)))
        return data

    return post


# ---- discovery and keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None = None

    @classmethod
    def discover(cls, issuer: str, fetch: FetchJson) -> ProviderMetadata:
        """OpenID Connect Discovery 1.0; the answer's issuer must be ours exactly (section 4.3)."""
        doc = fetch(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if doc.get("issuer") != issuer:
            raise TokenError("issuer_mismatch", "the discovery document names another issuer")
        try:
            return cls(
                issuer=issuer,
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                end_session_endpoint=doc.get("end_session_endpoint"),
            )
        except KeyError as exc:
            raise TokenError("bad_discovery", f"missing {exc.args[0]}") from exc


class JwksCache:
    """The provider's public keys by key id, with bounded refetching (thread-safe)."""

    def __init__(
        self,
        jwks_uri: str,
        fetch: FetchJson,
        *,
        max_age_s: float = 3600.0,
        min_refetch_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uri = jwks_uri
        self._fetch = fetch
        self._max_age_s = max_age_s
        self._min_refetch_s = min_refetch_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self.fetches = 0  # for tests and metrics

    def key(self, kid: str | None) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= self._max_age_s:
                self._refresh(now, keep_on_error=self._fetched_at is not None)
            found = self._lookup(kid)
            if found is None and self._fetched_at is not None and now - self._fetched_at >= self._min_refetch_s:
                self._refresh(now, keep_on_error=True)  # rotated: the provider signs with a key we have not seen
                found = self._lookup(kid)
            if found is None:
                raise TokenError("unknown_key", "no signing key with this key id")
            return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        only = list(self._keys.values())
        return only[0] if len(only) == 1 else None  # a token without kid is fine only when the choice is obvious

    def _refresh(self, now: float, *, keep_on_error: bool) -> None:
        self.fetches += 1
        self._fetched_at = now  # also on failure: the next try waits min_refetch_s, not one request
        try:
            doc = self._fetch(self._uri)
            keys: dict[str | None, jwt.PyJWK] = {}
            for entry in doc.get("keys", []):
                if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                    continue
                try:
                    parsed = jwt.PyJWK.from_dict(entry)
                except (jwt.PyJWKError, jwt.InvalidKeyError):
                    continue  # a key type this build cannot use; the others still count
                keys[parsed.key_id] = parsed
        except TokenError:
            if not keep_on_error:
                raise
            log.warning("oidc_jwks_refresh_failed", uri=self._uri)
            return
        if not keys and not keep_on_error:
            raise TokenError("no_keys", "the provider's key set has no usable signing key")
        if keys:
            self._keys = keys


# ---- token verification ------------------------------------------------------------------------------------

_JWT_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidIssuedAtError, "bad_iat"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAlgorithmError, "bad_algorithm"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.DecodeError, "malformed"),
    (jwt.InvalidTokenError, "invalid_token"),
)


class TokenVerifier:
    """Checks the provider's JWTs; one instance per process (it owns the key cache)."""

    def __init__(self, config: OidcConfig, jwks: JwksCache) -> None:
        self.config = config
        self._jwks = jwks

    @classmethod
    def discover(cls, config: OidcConfig, fetch: FetchJson | None = None) -> tuple[TokenVerifier, ProviderMetadata]:
        fetch = fetch or http_fetch_json(config.http_timeout_s)
        metadata = ProviderMetadata.discover(config.issuer, fetch)
        jwks = JwksCache(
            metadata.jwks_uri, fetch, max_age_s=config.jwks_max_age_s, min_refetch_s=config.jwks_min_refetch_s
        )
        return cls(config, jwks), metadata

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """The claims of a valid bearer access token for our API, or ``TokenError``."""
        return self._decode(token, audience=self.config.audience)

    def verify_id_token(self, token: str, *, nonce: str, access_token: str | None = None) -> dict[str, Any]:
        """The claims of a valid ID token from this sign-in (OIDC Core 3.1.3.7), or ``TokenError``."""
        claims = self._decode(token, audience=self.config.client_id)
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise TokenError("nonce_mismatch", "the ID token is not from this sign-in")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != self.config.client_id:
            raise TokenError("wrong_audience", "azp is not this client")
        if access_token is not None and "at_hash" in claims:
            alg = jwt.get_unverified_header(token)["alg"]
            if not hmac.compare_digest(str(claims["at_hash"]), _at_hash(alg, access_token)):
                raise TokenError("at_hash_mismatch", "the access token does not belong to this ID token")
        return claims

    def _decode(self, token: str, *, audience: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise TokenError("malformed", "not a JWT") from exc
        alg = header.get("alg")
        if alg not in self.config.algorithms:
            raise TokenError("bad_algorithm", f"{alg!r} is not accepted")
        key = self._jwks.key(header.get("kid"))
        try:  # with a PyJWK, PyJWT also refuses a token whose alg is not the key's own
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"], "enforce_minimum_key_length": True},
            )
        except jwt.InvalidTokenError as exc:
            reason = next(code for kind, code in _JWT_ERRORS if isinstance(exc, kind))
            raise TokenError(reason, type(exc).__name__) from exc
        return claims


def _at_hash(alg: str, access_token: str) -> str:
    """OIDC Core 3.1.3.6: the left half of the access token's hash, base64url; the hash follows the algorithm."""
    bits = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}.get(alg[-3:], hashlib.sha512)
    digest = bits(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path (``groups``, ``ext.groups``, ``realm_access.roles``); None when absent."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def roles_from_claims(claims: Mapping[str, Any], config: OidcConfig) -> frozenset[Role]:
    """The roles the provider's groups map to; unknown groups give nothing (never a default role)."""
    groups = claim(claims, config.groups_claim)
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        return frozenset()
    return frozenset().union(*(config.group_roles.get(str(g), frozenset()) for g in groups))


def display_name_of(claims: Mapping[str, Any]) -> str:
    for name in ("name", "preferred_username", "email", "sub"):
        if isinstance(claims.get(name), str) and claims[name].strip():
            return str(claims[name]).strip()[:200]
    return "unknown"


# ---- authorization code + PKCE -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginStart:
    """What the browser's sign-in must remember until the provider sends it back (keep it server-side or sealed)."""

    redirect_uri: str
    url: str = field(repr=False)  # carries the state and nonce
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)


@dataclass(frozen=True)
class LoginResult:
    id_claims: dict[str, Any]
    id_token: str = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_in: int | None = None


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


class AuthorizationCodeFlow:
    """The browser sign-in: ``start`` gives the provider URL to redirect to, ``finish`` takes the callback."""

    def __init__(
        self, config: OidcConfig, metadata: ProviderMetadata, verifier: TokenVerifier, post: PostForm | None = None
    ) -> None:
        self.config = config
        self.metadata = metadata
        self.verifier = verifier
        self._post = post or http_post_form(config.http_timeout_s)

    def start(self, redirect_uri: str) -> LoginStart:
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        code_verifier = secrets.token_urlsafe(64)  # 86 characters of the unreserved set (RFC 7636: 43-128)
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(code_verifier),
            "code_challenge_method": "S256",
            "audience": self.config.audience,  # providers that scope access tokens by audience (Hydra, Auth0)
        }
        url = f"{self.metadata.authorization_endpoint}?{urlencode(query)}"
        return LoginStart(url=url, redirect_uri=redirect_uri, state=state, nonce=nonce, code_verifier=code_verifier)

    def finish(self, started: LoginStart, *, state: str | None, code: str | None, error: str | None) -> LoginResult:
        """Check the callback against the started sign-in, redeem the code, verify the ID token."""
        if not state or not hmac.compare_digest(state, started.state):
            raise TokenError("state_mismatch", "the callback does not belong to this sign-in")
        if error:
            raise TokenError("provider_refused", error[:100])
        if not code:
            raise TokenError("missing_code")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": started.redirect_uri,
            "code_verifier": started.code_verifier,
            "client_id": self.config.client_id,
        }
        auth = None if self.config.client_secret is None else (self.config.client_id, self.config.client_secret)
        answer = self._post(self.metadata.token_endpoint, form, auth)
        id_token, access_token = answer.get("id_token"), answer.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise TokenError("bad_token_response", "no id_token or access_token")
        claims = self.verifier.verify_id_token(id_token, nonce=started.nonce, access_token=access_token)
        refresh = answer.get("refresh_token")
        expires = answer.get("expires_in")
        return LoginResult(
            id_claims=claims,
            id_token=id_token,
            access_token=access_token,
            refresh_token=refresh if isinstance(refresh, str) else None,
            expires_in=int(expires) if isinstance(expires, int | float) else None,
        )
