"""One call from a request's credentials to a ``Principal``: what the HTTP auth dependency and the console use.

``Authenticator.authenticate(authorization_header, client_address)`` accepts, in this order:

1. a leadpipe API key (``Bearer lpk_...``), checked against its hash;
2. the shared per-role tokens of old (``LEADPIPE_DPO_TOKEN``, ...) only when ``LEADPIPE_LEGACY_ROLE_TOKENS=true``,
   each use logged as a warning: they name no person;
3. an access token from the identity provider (``Bearer eyJ...``), verified against its keys; the person or
   client is linked to a local principal on first sight (so an admin can disable them), roles from their groups.

``authenticate_session(cookie, client_address)`` does the same for a browser's session cookie (``sessions``), and
``sign_in_failed`` counts a failed single sign-on callback.

Failures are counted per client address and per principal; past the limit the answer is ``rate_limited`` with a
``retry_after``, even for a correct credential. The caller maps reasons to statuses: ``rate_limited`` -> 429,
``provider_unavailable`` -> 503, everything else -> 401; then checks ``allowed(principal, permission)`` -> 403.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine

from pipeline.config import Settings
from pipeline.identity.keys import LastUsedThrottle, parse_key
from pipeline.identity.oidc import (
    OidcConfig,
    ProviderMetadata,
    TokenError,
    TokenVerifier,
    display_name_of,
    roles_from_claims,
)
from pipeline.identity.ratelimit import FailureLimiter, Limit, address_name, principal_name
from pipeline.identity.sessions import SessionPrincipal, SessionStore
from pipeline.identity.store import AuthenticationFailed, IdentityStore
from pipeline.logging import get_logger
from pipeline.models.identity import Principal, PrincipalKind, Role

log = get_logger(__name__)

_LEGACY = ((Role.DPO, "dpo_token"), (Role.REVIEWER, "reviewer_token"), (Role.SALES, "sales_token"))

T = TypeVar("T")
Provider = tuple[TokenVerifier, ProviderMetadata]


class Authenticator:
    """Thread-safe; one per process (it holds the key cache, the failure counters and the last-used throttle)."""

    def __init__(
        self,
        settings: Settings,
        store: IdentityStore,
        *,
        sessions: SessionStore | None = None,
        provider_factory: Callable[[OidcConfig], Provider] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sessions = sessions
        self.oidc = OidcConfig.from_settings(settings)
        self._provider_factory = provider_factory or TokenVerifier.discover
        self._provider: Provider | None = None
        self._provider_tried_at: float | None = None
        self._lock = threading.Lock()
        self._clock = clock
        self.limiter = FailureLimiter(
            {
                "addr": Limit(settings.auth_failure_limit, settings.auth_failure_window_s, settings.auth_lockout_s),
                "principal": Limit(
                    settings.auth_failure_limit_principal, settings.auth_failure_window_s, settings.auth_lockout_s
                ),
            }
        )
        if settings.legacy_role_tokens:
            log.warning("legacy_role_tokens_enabled", roles=[r.value for r, f in _LEGACY if getattr(settings, f)])

    @classmethod
    def for_engine(cls, settings: Settings, engine: Engine) -> Authenticator:
        """The product's authenticator; browser sessions only where single sign-on is configured."""
        last_used = LastUsedThrottle(settings.api_key_last_used_interval_s)
        store = IdentityStore(engine, settings.api_key_pepper_bytes(), last_used=last_used)
        sessions = None
        if settings.oidc_issuer is not None:
            sessions = SessionStore(engine, store, settings.session_secret_bytes(), ttl_s=settings.session_ttl_s)
        return cls(settings, store, sessions=sessions)

    def authenticate(self, authorization: str | None, address: str | None) -> Principal:
        """The principal behind an ``Authorization`` header, or ``AuthenticationFailed`` (reason, retry_after)."""
        names = [address_name(address)]
        scheme, _, credential = (authorization or "").strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationFailed("missing_credentials")
        parsed = parse_key(credential) if credential.startswith("lpk_") else None
        if parsed is not None:
            names.append(principal_name(parsed.key_id))
        return self._limited(names, lambda: self._authenticate(credential))

    def authenticate_session(self, cookie: str, address: str | None) -> SessionPrincipal:
        """The principal of a browser's session cookie, limited like a key check (a forged cookie is a guess)."""
        sessions = self.sessions
        if sessions is None:
            raise AuthenticationFailed("sign_in_not_configured")
        return self._limited([address_name(address)], lambda: sessions.resolve(cookie))

    def sign_in_allowed(self, address: str | None) -> None:
        """``AuthenticationFailed("rate_limited")`` while this address is locked out (checked before a sign-in)."""
        if (wait := self.limiter.retry_after([address_name(address)], self._clock())) is not None:
            raise AuthenticationFailed("rate_limited", retry_after=wait)

    def sign_in_failed(self, address: str | None, reason: str) -> AuthenticationFailed:
        """Count a failed sign-in callback (wrong state, refused code, bad ID token) against the address."""
        return self._failed([address_name(address)], self._clock(), reason)

    def _limited(self, names: list[str], check: Callable[[], T]) -> T:
        now = self._clock()
        if (wait := self.limiter.retry_after(names, now)) is not None:
            raise AuthenticationFailed("rate_limited", retry_after=wait)
        try:
            found = check()
        except TokenError as exc:
            if exc.reason == "provider_unavailable":  # not the caller's fault: not counted
                raise AuthenticationFailed("provider_unavailable") from exc
            raise self._failed(names, now, exc.reason) from exc
        except AuthenticationFailed as exc:
            raise self._failed(names, now, exc.reason) from exc
        self.limiter.succeeded(names)
        return found

    def _failed(self, names: list[str], now: float, reason: str) -> AuthenticationFailed:
        locked = self.limiter.failed(names, now)
        log.warning("authentication_failed", reason=reason, locked_s=locked)
        return AuthenticationFailed(reason, retry_after=locked)

    def _authenticate(self, credential: str) -> Principal:
        if credential.startswith("lpk_"):
            return self.store.authenticate_key(credential)
        if self.settings.legacy_role_tokens and (legacy := self._legacy(credential)) is not None:
            return legacy
        if credential.count(".") == 2 and self.oidc is not None:
            return self._from_access_token(credential)
        raise AuthenticationFailed("unknown_credential")

    def _legacy(self, credential: str) -> Principal | None:
        """The shared token of a role; every configured one is compared, so timing does not say which matched."""
        found: Role | None = None
        for role, field_name in _LEGACY:
            expected = getattr(self.settings, field_name)
            if expected is not None and hmac.compare_digest(expected.get_secret_value().encode(), credential.encode()):
                found = role
        if found is None:
            return None
        log.warning("legacy_role_token_used", role=found.value)
        return Principal(
            principal_id=f"legacy-{found.value}-token",
            display_name=f"shared {found.value} token (names no person)",
            kind=PrincipalKind.CLIENT,
            roles=frozenset({found}),
            auth="legacy_token",
        )

    def _from_access_token(self, token: str) -> Principal:
        assert self.oidc is not None
        claims = self.provider()[0].verify_access_token(token)
        # client credentials: the token's subject is the client itself (no person signed in)
        is_client = claims.get("client_id") == claims["sub"] and "groups" not in claims
        return self.store.linked_principal(
            self.oidc.issuer,
            str(claims["sub"]),
            display_name=display_name_of(claims),
            preferred_name=claims.get("client_id")
            if is_client
            else claims.get("preferred_username") or claims.get("email"),
            roles=roles_from_claims(claims, self.oidc),
            kind=PrincipalKind.CLIENT if is_client else PrincipalKind.PERSON,
        )

    def provider(self) -> Provider:
        """The provider's verifier and metadata, discovered on first use; a failed discovery is tried again at most
        every ``oidc_jwks_min_refetch_s``."""
        if self.oidc is None:
            raise TokenError("sign_in_not_configured", "LEADPIPE_OIDC_ISSUER is not set")
        with self._lock:
            if self._provider is not None:
                return self._provider
            now = self._clock()
            if self._provider_tried_at is not None and now - self._provider_tried_at < self.oidc.jwks_min_refetch_s:
                raise TokenError("provider_unavailable", "discovery failed recently")
            self._provider_tried_at = now
            self._provider = self._provider_factory(self.oidc)
            return self._provider
