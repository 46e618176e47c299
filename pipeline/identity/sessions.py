"""Browser sessions after single sign-on: an encrypted, expiring cookie that names a server-side session.

The cookie carries a random session token, encrypted and authenticated with Fernet (AES-128-CBC + HMAC-SHA256, with
its issue time, so a cookie older than the session's lifetime is refused before the database is asked) under a key
derived from ``LEADPIPE_SESSION_SECRET``. The database keeps the token's SHA-256 only, with the principal, the roles
the provider's groups gave at sign-in, and the expiry. Logout revokes the row, so a copied cookie dies with the
session; every request reads the principal again, so disabling a person or revoking a local role applies at once.

The CSRF token is an HMAC of the session token under the same secret: bound to one session, nothing to store, and
unknowable to anyone who cannot read the (HttpOnly) cookie. The HTTP layer requires it on every state-changing
request that a session cookie authenticates (``pipeline/http/auth.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session

from pipeline.identity.store import AuthenticationFailed, IdentityStore
from pipeline.identity.tables import SessionRow
from pipeline.models.identity import Principal, Role

Clock = Callable[[], datetime]


def _derived(secret: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"leadpipe:{purpose}".encode()).derive(secret)


class CookieSealer:
    """Encrypts and authenticates a small JSON value for a cookie, with a maximum age (one key per purpose)."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derived(secret, purpose)))

    def seal(self, value: Mapping[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(dict(value), separators=(",", ":")).encode()).decode()

    def open(self, token: str, max_age_s: float) -> dict[str, Any] | None:
        """The value, or None when the cookie was not made here, was altered, or is older than ``max_age_s``."""
        try:
            data = json.loads(self._fernet.decrypt(token.encode(), ttl=int(max_age_s)))
        except (InvalidToken, ValueError, UnicodeError):
            return None
        return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class SessionPrincipal:
    """Who a session cookie belongs to, its CSRF token, and when it ends."""

    principal: Principal
    expires_at: datetime
    csrf_token: str = field(repr=False)


@dataclass(frozen=True)
class IssuedSession(SessionPrincipal):
    """A new session: ``cookie`` is the value of the session cookie (shown to the browser only)."""

    cookie: str = field(default="", repr=False)


class SessionStore:
    """Sessions on the product's database; one per process (``Authenticator.sessions``)."""

    def __init__(
        self,
        engine: Engine,
        store: IdentityStore,
        secret: bytes,
        *,
        ttl_s: float,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._store = store
        self._cookies = CookieSealer(secret, "session-cookie")
        self._csrf_key = _derived(secret, "csrf")
        self.ttl_s = ttl_s
        self._clock = clock

    def create(self, principal: Principal, provider_roles: frozenset[Role]) -> IssuedSession:
        """A new session for a principal who just signed in (a new token each time: no session fixation)."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        expires = now + timedelta(seconds=self.ttl_s)
        with Session(self._engine) as session:
            session.execute(delete(SessionRow).where(SessionRow.expires_at < now - timedelta(days=1)))
            session.add(
                SessionRow(
                    session_hash=_hash(token),
                    principal_id=principal.principal_id,
                    provider_roles=",".join(sorted(r.value for r in provider_roles)),
                    created_at=now,
                    expires_at=expires,
                )
            )
            session.commit()
        return IssuedSession(
            principal=principal,
            expires_at=expires,
            csrf_token=self._csrf(token),
            cookie=self._cookies.seal({"t": token}),
        )

    def resolve(self, cookie: str) -> SessionPrincipal:
        """The session's principal as of now, or ``AuthenticationFailed`` (bad_session, session_ended, disabled)."""
        token = self._token(cookie)
        if token is None:
            raise AuthenticationFailed("bad_session")
        with Session(self._engine) as session:
            row = session.get(SessionRow, _hash(token))
            if row is None or row.revoked_at is not None or row.expires_at <= self._clock():
                raise AuthenticationFailed("session_ended")
            principal_id, expires_at = row.principal_id, row.expires_at
            provider_roles = frozenset(Role(r) for r in row.provider_roles.split(",") if r)
        info = self._store.get(principal_id)
        if info is None or info.disabled:
            raise AuthenticationFailed("disabled")
        principal = info.principal("oidc").model_copy(update={"roles": info.roles | provider_roles})
        return SessionPrincipal(principal=principal, expires_at=expires_at, csrf_token=self._csrf(token))

    def revoke(self, cookie: str) -> bool:
        """End the session a cookie names (logout); False when it named none."""
        token = self._token(cookie)
        if token is None:
            return False
        with Session(self._engine) as session:
            done = session.execute(
                update(SessionRow)
                .where(SessionRow.session_hash == _hash(token), SessionRow.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            session.commit()
        return bool(getattr(done, "rowcount", 0))

    def _token(self, cookie: str) -> str | None:
        value = self._cookies.open(cookie, self.ttl_s)
        token = None if value is None else value.get("t")
        return token if isinstance(token, str) and token else None

    def _csrf(self, token: str) -> str:
        return hmac.new(self._csrf_key, token.encode(), hashlib.sha256).hexdigest()


def csrf_matches(session: SessionPrincipal, presented: str | None) -> bool:
    """Constant-time check of a request's CSRF token against its session's."""
    return bool(presented) and hmac.compare_digest(session.csrf_token.encode(), (presented or "").encode())


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
