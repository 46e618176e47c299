"""The browser's single sign-on, from ``/login`` to a session: what the HTTP routes in ``pipeline.api.identity`` call.

``start`` makes the provider URL (authorization code + PKCE, with state and nonce) and a short-lived login cookie
that keeps the state, nonce and code verifier encrypted in the browser until the provider sends it back, so no
server-side state is needed between the two requests and any API replica can finish the sign-in. ``finish`` checks
the callback against that cookie, redeems the code, verifies the ID token, links the person to a local principal
(created on first sign-in; refused when disabled here) with the roles their groups map to, and opens a session.
Every failed callback counts against the address like a failed key check.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.identity.authenticator import Authenticator
from pipeline.identity.oidc import AuthorizationCodeFlow, LoginStart, TokenError, display_name_of, roles_from_claims
from pipeline.identity.sessions import CookieSealer, IssuedSession
from pipeline.identity.store import AuthenticationFailed
from pipeline.logging import get_logger

log = get_logger(__name__)

#: How long a person may take at the provider's login form.
LOGIN_MAX_AGE_S = 600


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (an open redirect would hand the session's first page
    to anyone who crafted the link)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or any(c in value for c in "\r\n"):
        return "/"
    return value[:2000]


@dataclass(frozen=True)
class Started:
    provider_url: str
    login_cookie: str


class SignIn:
    """One per app, beside its ``Authenticator``."""

    def __init__(self, authenticator: Authenticator, secret: bytes) -> None:
        self.authenticator = authenticator
        self._pending = CookieSealer(secret, "login-state")

    def _flow(self) -> AuthorizationCodeFlow:
        verifier, metadata = self.authenticator.provider()
        return AuthorizationCodeFlow(verifier.config, metadata, verifier)

    def start(self, redirect_uri: str, next_path: str | None, address: str | None) -> Started:
        """The provider's authorization URL and the login cookie (``TokenError`` when the provider is unreachable)."""
        self.authenticator.sign_in_allowed(address)
        started = self._flow().start(redirect_uri)
        cookie = self._pending.seal(
            {
                "state": started.state,
                "nonce": started.nonce,
                "verifier": started.code_verifier,
                "redirect_uri": redirect_uri,
                "next": safe_next(next_path),
            }
        )
        return Started(provider_url=started.url, login_cookie=cookie)

    def finish(
        self,
        login_cookie: str | None,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        address: str | None,
    ) -> tuple[IssuedSession, str]:
        """The new session and where to send the browser, or ``AuthenticationFailed`` with the reason."""
        authenticator = self.authenticator
        sessions = authenticator.sessions
        if sessions is None:
            raise AuthenticationFailed("sign_in_not_configured")
        authenticator.sign_in_allowed(address)
        pending = None if login_cookie is None else self._pending.open(login_cookie, LOGIN_MAX_AGE_S)
        if pending is None:
            raise authenticator.sign_in_failed(address, "sign_in_expired")
        started = LoginStart(
            redirect_uri=str(pending["redirect_uri"]),
            url="",
            state=str(pending["state"]),
            nonce=str(pending["nonce"]),
            code_verifier=str(pending["verifier"]),
        )
        try:
            flow = self._flow()
            result = flow.finish(started, state=state, code=code, error=error)
        except TokenError as exc:
            if exc.reason == "provider_unavailable":
                raise AuthenticationFailed("provider_unavailable") from exc
            raise authenticator.sign_in_failed(address, exc.reason) from exc
        claims = result.id_claims
        roles = roles_from_claims(claims, flow.config)
        try:
            principal = authenticator.store.linked_principal(
                flow.config.issuer,
                str(claims["sub"]),
                display_name=display_name_of(claims),
                preferred_name=claims.get("preferred_username") or claims.get("email"),
                roles=roles,
            )
        except AuthenticationFailed as exc:
            raise authenticator.sign_in_failed(address, exc.reason) from exc
        session = sessions.create(principal, roles)
        log.info("signed_in", principal_id=principal.principal_id, roles=sorted(r.value for r in principal.roles))
        return session, str(pending["next"])
