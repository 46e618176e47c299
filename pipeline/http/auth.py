"""Who may call what: every route declares its access, and the dependencies here enforce it.

A route declares exactly one of:

- ``require(Permission.X)``: the caller must authenticate and hold ``X`` (``pipeline/identity/permissions.py``);
- ``require_signed_in()``: any authenticated person or operator client (not a producer credential), e.g. ``/v1/me``;
- ``require_session(...)``: the same, from a browser session only (the console, ``/logout``): yields the session;
- ``public("why")``: no caller identity (health, documentation, the sign-in redirects, and ingest, which checks its
  sources' own credentials or a producer key bound to the source).

``route_accesses(app)`` reads the declarations back for every route of an app; the permission matrix test asks it.

Authentication is the app's one ``Authenticator`` (``app.state.authenticator``), run off the event loop: an
``Authorization: Bearer`` header (an API key, the identity provider's access token, or, behind
``LEADPIPE_LEGACY_ROLE_TOKENS``, a shared role token), else the session cookie. A cookie-authenticated request that
changes state must carry the session's CSRF token (``X-CSRF-Token``, or a ``csrf_token`` form field) and, when the
browser says where it comes from (``Origin``), come from this site: SameSite=Lax alone leaves same-site subdomains
and older browsers, the token alone a token leaked into a log; both together hold. A bearer request needs neither:
browsers never attach an Authorization header by themselves.

Refusals keep the ``Refused`` shape: 401 (no or bad credentials, with a challenge), 403 (authenticated but not
allowed, or a failed CSRF check), 429 with ``Retry-After`` (too many failures from this address or on this key),
503 (the identity provider is unreachable). The reason a caller sees and ``leadpipe_ingest_refusals`` counts is coarse
(``invalid_credentials``: a guesser learns nothing about which keys exist); the log keeps the precise one.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, cast
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute

from pipeline.config import Settings
from pipeline.http.deps import get_metrics, get_settings
from pipeline.http.errors import refusal
from pipeline.identity.authenticator import Authenticator
from pipeline.identity.permissions import Permission, allowed
from pipeline.identity.sessions import SessionPrincipal, csrf_matches
from pipeline.identity.store import AuthenticationFailed
from pipeline.models.identity import Principal, Role

__all__ = [
    "CSRF_HEADER",
    "Access",
    "Caller",
    "Permission",
    "Principal",
    "Public",
    "SignedIn",
    "authentication_refusal",
    "public",
    "require",
    "require_session",
    "require_signed_in",
    "route_accesses",
    "session_cookie_name",
]


@dataclass(frozen=True)
class Public:
    """A route anyone may call, and why that is safe."""

    reason: str


@dataclass(frozen=True)
class SignedIn:
    """A route for any authenticated person or operator client; ``session_only``: from a browser session only."""

    session_only: bool = False


Access = Permission | Public | SignedIn

#: The attribute a dependency carries its route's declaration in.
ACCESS_ATTRIBUTE = "leadpipe_access"

CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")

#: The bearer scheme of every operator route (one ``HTTPBearer`` in ``/openapi.json``).
bearer = HTTPBearer(
    auto_error=False,
    description="A personal leadpipe API key (lpk_...), or an access token from the identity provider",
)

#: What a caller is told for each precise reason; anything not listed is ``invalid_credentials``.
_CALLER_REASONS = {
    "missing_credentials": "missing_credentials",
    "expired_key": "credentials_expired",
    "expired": "credentials_expired",
    "session_ended": "credentials_expired",
    "revoked_key": "credentials_revoked",
    "disabled": "credentials_revoked",
    "sign_in_not_configured": "sign_in_not_configured",
}


@dataclass(frozen=True)
class Caller:
    """Who makes a request, and their browser session when a session cookie authenticated it."""

    principal: Principal
    session: SessionPrincipal | None = None


def session_cookie_name(settings: Settings) -> str:
    """``__Host-`` when Secure: browsers then refuse the cookie from http, from a subdomain, or with another path."""
    return "__Host-leadpipe_session" if settings.session_cookie_secure else "leadpipe_session"


def get_authenticator(request: Request) -> Authenticator:
    return cast(Authenticator, request.app.state.authenticator)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def own_origin(request: Request, settings: Settings) -> str:
    """This site's origin as a browser sees it: ``LEADPIPE_PUBLIC_URL``, else the address the request was made to."""
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        return f"{parts.scheme}://{parts.netloc}"
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def authentication_refusal(exc: AuthenticationFailed) -> tuple[int, str, str, dict[str, str]]:
    """(status, reason for the caller, message, headers) for a failed authentication."""
    if exc.reason == "rate_limited":
        wait = str(max(1, math.ceil(exc.retry_after or 1)))
        return 429, "rate_limited", "too many failed attempts; try again later", {"Retry-After": wait}
    if exc.reason == "provider_unavailable":
        return 503, "provider_unavailable", "the identity provider cannot be reached; retry", {"Retry-After": "5"}
    reason = _CALLER_REASONS.get(exc.reason, "invalid_credentials")
    return 401, reason, "a valid API key, access token or session is required", {}


RefusalHook = Callable[[Request, str, Principal | None], None]


def _refused(
    request: Request,
    status: int,
    reason: str,
    message: str,
    *,
    detail_reason: str,
    headers: dict[str, str] | None = None,
    principal: Principal | None = None,
) -> HTTPException:
    return refusal(
        get_metrics(request),
        status,
        reason,
        message,
        log_event="request_refused",
        headers=headers,
        detail_reason=detail_reason,
        path=request.url.path,
        method=request.method,
        principal_id=None if principal is None else principal.principal_id,
    )


async def _csrf_problem(request: Request, session: SessionPrincipal) -> str | None:
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request, get_settings(request)):
        return "cross_origin"
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(_FORMS):
        field = (await request.form()).get(CSRF_FORM_FIELD)
        presented = field if isinstance(field, str) else None
    return None if csrf_matches(session, presented) else "csrf_token"


async def authenticate(request: Request, *, session_only: bool = False) -> Caller:
    """The caller of a request, or an ``HTTPException`` (401, 403 for CSRF, 429, 503)."""
    authenticator = get_authenticator(request)
    address = client_address(request)
    header = None if session_only else request.headers.get("authorization")
    cookie = request.cookies.get(session_cookie_name(get_settings(request)))
    try:
        if header:
            return Caller(await asyncio.to_thread(authenticator.authenticate, header, address))
        if cookie:
            session = await asyncio.to_thread(authenticator.authenticate_session, cookie, address)
        else:
            raise AuthenticationFailed("missing_credentials")
    except AuthenticationFailed as exc:
        status, reason, message, headers = authentication_refusal(exc)
        raise _refused(request, status, reason, message, detail_reason=exc.reason, headers=headers) from None
    if request.method not in _SAFE_METHODS and (problem := await _csrf_problem(request, session)):
        raise _refused(
            request,
            403,
            "csrf_failed",
            f"a signed-in browser must send the {CSRF_HEADER} of its session, from this site",
            detail_reason=problem,
            principal=session.principal,
        )
    return Caller(session.principal, session)


def _admits(access: Permission | SignedIn, principal: Principal) -> bool:
    if isinstance(access, Permission):
        return allowed(principal, access)
    return principal.roles != {Role.PRODUCER}  # a producer credential reaches ingest only


def _guard(access: Permission | SignedIn, on_refused: RefusalHook | None) -> Callable[..., Awaitable[Caller]]:
    session_only = isinstance(access, SignedIn) and access.session_only

    async def guard(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Caller:
        try:
            caller = await authenticate(request, session_only=session_only)
        except HTTPException as exc:
            if on_refused is not None:
                detail: dict[str, Any] = exc.detail if isinstance(exc.detail, dict) else {}
                await asyncio.to_thread(on_refused, request, str(detail.get("reason", "refused")), None)
            raise
        if not _admits(access, caller.principal):
            needed = access.value if isinstance(access, Permission) else "an operator role"
            if on_refused is not None:
                await asyncio.to_thread(on_refused, request, "forbidden", caller.principal)
            raise _refused(
                request,
                403,
                "forbidden",
                f"this needs {needed}",
                detail_reason="forbidden",
                principal=caller.principal,
            )
        return caller

    setattr(guard, ACCESS_ATTRIBUTE, access)
    return guard


def require(permission: Permission, *, on_refused: RefusalHook | None = None) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only a caller holding ``permission``; returns who that caller is.

    ``on_refused(request, reason, principal or None)`` runs (in a thread) for every refusal, e.g. to audit it."""
    guard = _guard(permission, on_refused)

    # the guard is a local: a default, not an annotation, because annotations are read as strings in the module
    async def dependency(caller: Caller = Depends(guard)) -> Principal:  # noqa: B008
        return caller.principal

    dependency.__name__ = f"require_{permission.name.lower()}"
    return dependency


def require_signed_in() -> Callable[..., Awaitable[Caller]]:
    """Any authenticated person or operator client; returns the caller (with the session, if a cookie was used)."""
    return _guard(SignedIn(), None)


def require_session(permission: Permission | None = None) -> Callable[..., Awaitable[SessionPrincipal]]:
    """A browser session only (the console): its principal must hold ``permission`` (or any operator role)."""
    guard = _guard(permission if permission is not None else SignedIn(session_only=True), None)

    async def dependency(request: Request, caller: Caller = Depends(guard)) -> SessionPrincipal:  # noqa: B008
        if caller.session is None:  # a bearer header reached a session-only route
            raise _refused(
                request,
                401,
                "session_required",
                "sign in with a browser session",
                detail_reason="session_required",
            )
        return caller.session

    setattr(dependency, ACCESS_ATTRIBUTE, SignedIn(session_only=True) if permission is None else permission)
    return dependency


def public(reason: str) -> Callable[[], None]:
    """Declares a route that needs no caller identity, and why (``dependencies=[Depends(public("..."))]``)."""

    def dependency() -> None:
        return None

    setattr(dependency, ACCESS_ATTRIBUTE, Public(reason))
    return dependency


def _declared(calls: Iterator[Any]) -> Iterator[Access]:
    for call in calls:
        found = getattr(call, ACCESS_ATTRIBUTE, None)
        if isinstance(found, Permission | Public | SignedIn):
            yield found


def _calls(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


@dataclass(frozen=True)
class RouteAccess:
    """One route of an app, as served (router prefixes and dependencies applied), and what it declared."""

    path: str
    methods: frozenset[str]
    declared: tuple[Access, ...]


def _route_contexts(routes: Sequence[BaseRoute]) -> Iterator[Any]:
    """Every route as served: FastAPI >= 0.160 keeps included routers whole and resolves them lazily."""
    try:
        from fastapi.routing import iter_route_contexts  # noqa: PLC0415  # only where FastAPI has it
    except ImportError:  # an older FastAPI flattens included routers into app.routes
        yield from routes
        return
    yield from iter_route_contexts(routes)


def route_accesses(app: FastAPI) -> list[RouteAccess]:
    """What every route of ``app`` declared (``public_routes`` on ``app.state`` names the routes FastAPI adds)."""
    public_routes: dict[str, str] = getattr(app.state, "public_routes", {})
    found = []
    for route in _route_contexts(app.routes):
        path = str(getattr(route, "path", ""))
        dependant = getattr(route, "dependant", None)
        if dependant is not None:
            declared = tuple(dict.fromkeys(_declared(_calls(dependant))))
        else:
            declared = (Public(public_routes[path]),) if path in public_routes else ()
        found.append(RouteAccess(path, frozenset(getattr(route, "methods", None) or ()), declared))
    return found
