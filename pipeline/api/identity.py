"""Signing in, who am I, and the admin's management of people, clients, keys and sources, over HTTP.

``sign_in_router``: ``GET /login`` sends the browser to the identity provider (authorization code + PKCE),
``GET /auth/callback`` takes its answer and opens a session (an encrypted, HttpOnly, SameSite=Lax cookie, Secure
and ``__Host-`` unless ``LEADPIPE_SESSION_COOKIE_SECURE=false`` for http://localhost), ``POST /logout`` ends it
(CSRF-checked), ``GET /v1/me`` says who the caller is, what they may do and, for a browser session, its CSRF token.

``admin_router`` (``/v1/admin``): the same operations as ``leadpipe users`` and ``leadpipe keys``, for the console:
reading needs ``principals:read``, changes ``principals:manage``, sources and producer bindings ``sources:manage``.
Every change is audited with the admin who made it. A new key's secret is in the answer once and never again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.config import Settings
from pipeline.http.auth import (
    Caller,
    authentication_refusal,
    client_address,
    get_authenticator,
    public,
    require,
    require_session,
    require_signed_in,
    session_cookie_name,
)
from pipeline.http.deps import get_metrics, get_settings
from pipeline.http.errors import refusal
from pipeline.identity.oidc import TokenError
from pipeline.identity.permissions import Permission, permissions_of
from pipeline.identity.sessions import SessionPrincipal
from pipeline.identity.signin import LOGIN_MAX_AGE_S, SignIn
from pipeline.identity.store import (
    AuthenticationFailed,
    IdentityError,
    IdentityNotFound,
    IdentityStore,
    KeyInfo,
    PrincipalInfo,
)
from pipeline.models.identity import Principal, PrincipalKind, Role

T = TypeVar("T")

LOGIN_COOKIE = "leadpipe_login"
CALLBACK_PATH = "/auth/callback"

sign_in_router = APIRouter(tags=["sign-in"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


# ---- signing in ----------------------------------------------------------------------------------------------


def _sign_in(request: Request) -> SignIn:
    found = request.app.state.sign_in
    if found is None:
        raise HTTPException(404, {"status": "refused", "reason": "sign_in_not_configured", "message": "no SSO"})
    return cast(SignIn, found)


def _callback_url(request: Request) -> str:
    settings = get_settings(request)
    if settings.public_url:
        return settings.public_url.rstrip("/") + CALLBACK_PATH
    return str(request.url_for("auth_callback"))


def _sign_in_refusal(request: Request, exc: AuthenticationFailed | TokenError) -> HTTPException:
    failed = exc if isinstance(exc, AuthenticationFailed) else AuthenticationFailed(exc.reason)
    status, reason, message, headers = authentication_refusal(failed)
    if status == 401:
        reason, message = "sign_in_failed", "the sign-in did not complete; start again at /login"
    return refusal(
        get_metrics(request),
        status,
        reason,
        message,
        log_event="sign_in_refused",
        headers=headers,
        detail_reason=failed.reason,
    )


@sign_in_router.get(
    "/login",
    status_code=302,
    response_class=RedirectResponse,
    dependencies=[Depends(public("starts single sign-on: a redirect to the identity provider"))],
)
async def login(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> RedirectResponse:
    """Send the browser to the identity provider; ``next`` (a path on this site) is where it lands afterwards."""
    sign_in = _sign_in(request)
    try:
        started = await asyncio.to_thread(sign_in.start, _callback_url(request), next, client_address(request))
    except (AuthenticationFailed, TokenError) as exc:
        raise _sign_in_refusal(request, exc) from None
    settings = get_settings(request)
    response = RedirectResponse(started.provider_url, status_code=302)
    response.set_cookie(
        LOGIN_COOKIE,
        started.login_cookie,
        max_age=LOGIN_MAX_AGE_S,
        path=CALLBACK_PATH,
        secure=settings.session_cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


@sign_in_router.get(
    CALLBACK_PATH,
    name="auth_callback",
    status_code=303,
    response_class=RedirectResponse,
    dependencies=[Depends(public("the identity provider's answer, checked against the browser's login cookie"))],
)
async def auth_callback(
    request: Request,
    state: Annotated[str | None, Query(max_length=500)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> RedirectResponse:
    """Finish the sign-in: a session cookie, then the page the sign-in started from."""
    sign_in = _sign_in(request)
    try:
        session, next_path = await asyncio.to_thread(
            sign_in.finish,
            request.cookies.get(LOGIN_COOKIE),
            state=state,
            code=code,
            error=error,
            address=client_address(request),
        )
    except AuthenticationFailed as exc:
        raise _sign_in_refusal(request, exc) from None
    settings = get_settings(request)
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, settings, session.cookie)
    response.delete_cookie(LOGIN_COOKIE, path=CALLBACK_PATH, secure=settings.session_cookie_secure, httponly=True)
    return response


def set_session_cookie(response: Response, settings: Settings, cookie: str) -> None:
    """The browser's session cookie: HttpOnly, SameSite=Lax, Secure unless ``session_cookie_secure`` is off."""
    response.set_cookie(
        session_cookie_name(settings),
        cookie,
        max_age=int(settings.session_ttl_s),
        path="/",
        secure=settings.session_cookie_secure,
        httponly=True,
        samesite="lax",
    )


@sign_in_router.post("/logout", status_code=303, response_class=RedirectResponse)
async def logout(
    request: Request, session: Annotated[SessionPrincipal, Depends(require_session())]
) -> RedirectResponse:
    """End the browser's session here (the cookie is worthless from now on, wherever a copy of it is)."""
    settings = get_settings(request)
    cookie = request.cookies.get(session_cookie_name(settings), "")
    sessions = get_authenticator(request).sessions
    if sessions is not None:
        await asyncio.to_thread(sessions.revoke, cookie)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(
        session_cookie_name(settings), path="/", secure=settings.session_cookie_secure, httponly=True, samesite="lax"
    )
    return response


class SessionOut(BaseModel):
    expires_at: datetime
    csrf_token: str = Field(description="Send it as X-CSRF-Token (or a csrf_token form field) with every change")


class MeOut(BaseModel):
    principal: Principal
    permissions: list[str] = Field(description="What this principal may do (pipeline/identity/permissions.py)")
    session: SessionOut | None = Field(default=None, description="When signed in with a browser session")


@sign_in_router.get("/v1/me", response_model=MeOut)
async def me(caller: Annotated[Caller, Depends(require_signed_in())]) -> MeOut:
    """Who the caller is, what they may do, and (for a browser) the session's CSRF token."""
    session = caller.session
    return MeOut(
        principal=caller.principal,
        permissions=sorted(p.value for p in permissions_of(caller.principal.roles)),
        session=None if session is None else SessionOut(expires_at=session.expires_at, csrf_token=session.csrf_token),
    )


# ---- administration ------------------------------------------------------------------------------------------

Reader = Annotated[Principal, Depends(require(Permission.PRINCIPALS_READ))]
Manager = Annotated[Principal, Depends(require(Permission.PRINCIPALS_MANAGE))]
SourceManager = Annotated[Principal, Depends(require(Permission.SOURCES_MANAGE))]


class PrincipalOut(BaseModel):
    # A PrincipalInfo as the API shows it: read from its attributes, roles and sources sorted (no docstring: it
    # would become the schema's description in /openapi.json).
    model_config = ConfigDict(from_attributes=True)

    principal_id: str
    name: str
    display_name: str
    kind: PrincipalKind
    roles: list[Role]
    disabled: bool
    sign_in: Literal["single_sign_on", "api_key"]
    sources: list[str]
    created_at: datetime
    created_by: str

    @field_validator("roles", "sources")
    @classmethod
    def _sorted(cls, values: list[Any]) -> list[Any]:
        return sorted(values)

    @classmethod
    def of(cls, info: PrincipalInfo) -> PrincipalOut:
        return cls.model_validate(info)


class PrincipalIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="Login handle: lower-case letters, digits, . - _ @")
    display_name: str = Field(default="", max_length=200)
    client: bool = Field(default=False, description="A machine client (a source, an integration)")
    roles: list[Role] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list, description="A producer client: ingest source ids")


class RolesIn(BaseModel):
    roles: list[Role] = Field(min_length=1)


class KeyIn(BaseModel):
    label: str = Field(default="", max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="Default LEADPIPE_API_KEY_TTL_DAYS")
    no_expiry: bool = False


class KeyOut(BaseModel):
    key_id: str
    owner: str
    label: str
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: KeyInfo, now: datetime) -> KeyOut:
        return cls(
            key_id=key.key_id,
            owner=key.principal_name,
            label=key.label,
            state=cast(Literal["active", "expired", "revoked"], key.state(now)),
            created_at=key.created_at,
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
        )


class CreatedKeyOut(BaseModel):
    key_id: str
    owner: str
    expires_at: datetime | None
    secret: str = Field(description="The whole API key: shown once, stored nowhere (only its hash is kept)")


class SecretOut(BaseModel):
    id: str
    active: bool
    not_after: datetime | None


class SourceOut(BaseModel):
    source_id: str
    channel: str
    hmac_secrets: list[SecretOut] = Field(description="Ids and validity only, never a secret")
    bearer_token: bool
    producers: list[str] = Field(description="Producer clients whose keys may submit as this source")


def _store(request: Request) -> IdentityStore:
    return get_authenticator(request).store


async def _identity(call: Callable[[], T]) -> T:
    """A store call off the event loop; a refused change is 404 (no such principal or key) or 422."""
    try:
        return await asyncio.to_thread(call)
    except IdentityNotFound as exc:
        raise HTTPException(404, {"status": "refused", "reason": "not_found", "message": str(exc)}) from None
    except IdentityError as exc:
        raise HTTPException(422, {"status": "refused", "reason": "invalid_change", "message": str(exc)}) from None


@admin_router.get("/users", response_model=list[PrincipalOut])
async def list_principals(request: Request, _by: Reader) -> list[PrincipalOut]:
    """Every person and client, with kind, state, roles and bound sources."""
    return [PrincipalOut.of(i) for i in await _identity(_store(request).list_principals)]


@admin_router.post("/users", response_model=PrincipalOut, status_code=201)
async def add_principal(body: PrincipalIn, request: Request, by: Manager) -> PrincipalOut:
    kind = PrincipalKind.CLIENT if body.client else PrincipalKind.PERSON
    added = await _identity(
        lambda: _store(request).add_principal(
            body.name,
            display_name=body.display_name or body.name,
            kind=kind,
            roles=body.roles,
            by=by,
            sources=body.sources,
        )
    )
    return PrincipalOut.of(added)


def _found(info: PrincipalInfo | None, name: str) -> PrincipalInfo:
    if info is None:
        raise IdentityNotFound(f"no user or client named {name!r}")
    return info


@admin_router.get("/users/{name}", response_model=PrincipalOut)
async def get_principal(name: str, request: Request, _by: Reader) -> PrincipalOut:
    return PrincipalOut.of(await _identity(lambda: _found(_store(request).get(name), name)))


@admin_router.post("/users/{name}/disable", response_model=PrincipalOut)
async def disable_principal(name: str, request: Request, by: Manager) -> PrincipalOut:
    """Every key and session of this principal is refused from the next request on."""
    return PrincipalOut.of(await _identity(lambda: _store(request).set_disabled(name, True, by=by)))


@admin_router.post("/users/{name}/enable", response_model=PrincipalOut)
async def enable_principal(name: str, request: Request, by: Manager) -> PrincipalOut:
    return PrincipalOut.of(await _identity(lambda: _store(request).set_disabled(name, False, by=by)))


@admin_router.post("/users/{name}/roles", response_model=PrincipalOut)
async def grant_roles(name: str, body: RolesIn, request: Request, by: Manager) -> PrincipalOut:
    return PrincipalOut.of(await _identity(lambda: _store(request).grant(name, body.roles, by=by)))


@admin_router.delete("/users/{name}/roles/{role}", response_model=PrincipalOut)
async def revoke_role(name: str, role: Role, request: Request, by: Manager) -> PrincipalOut:
    return PrincipalOut.of(await _identity(lambda: _store(request).revoke(name, [role], by=by)))


@admin_router.put("/users/{name}/sources/{source_id}", response_model=PrincipalOut)
async def bind_source(name: str, source_id: str, request: Request, by: SourceManager) -> PrincipalOut:
    """Let a producer client's keys submit to ``POST /v1/sources/{source_id}``."""
    if source_id not in get_settings(request).sources:
        raise HTTPException(404, {"status": "refused", "reason": "unknown_source", "message": "no such source"})
    return PrincipalOut.of(await _identity(lambda: _store(request).bind_source(name, source_id, by=by)))


@admin_router.delete("/users/{name}/sources/{source_id}", response_model=PrincipalOut)
async def unbind_source(name: str, source_id: str, request: Request, by: SourceManager) -> PrincipalOut:
    return PrincipalOut.of(await _identity(lambda: _store(request).unbind_source(name, source_id, by=by)))


@admin_router.get("/keys", response_model=list[KeyOut])
async def list_keys(
    request: Request, _by: Reader, user: Annotated[str | None, Query(max_length=100)] = None
) -> list[KeyOut]:
    """API keys with owner, state, expiry and last use (never the secret)."""
    now = datetime.now().astimezone()
    return [KeyOut.of(k, now) for k in await _identity(lambda: _store(request).list_keys(user))]


@admin_router.post("/users/{name}/keys", response_model=CreatedKeyOut, status_code=201)
async def create_key(name: str, body: KeyIn, request: Request, by: Manager) -> CreatedKeyOut:
    """A new API key for a person or client; the answer is the only place its secret ever appears."""
    days = body.expires_in_days or get_settings(request).api_key_ttl_days
    expires_in = None if body.no_expiry else timedelta(days=days)
    created = await _identity(lambda: _store(request).create_key(name, by=by, label=body.label, expires_in=expires_in))
    return CreatedKeyOut(
        key_id=created.key_id, owner=created.principal_name, expires_at=created.expires_at, secret=created.secret
    )


@admin_router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, request: Request, by: Manager) -> Response:
    """Revoke an API key: refused from the next request on."""
    await _identity(lambda: _store(request).revoke_key(key_id, by=by))
    return Response(status_code=204)


@admin_router.get("/sources", response_model=list[SourceOut])
async def list_sources(request: Request, _by: SourceManager) -> list[SourceOut]:
    """The configured ingest sources: channel, which credentials they have (ids, never secrets), bound producers."""
    settings = get_settings(request)
    principals = await _identity(_store(request).list_principals)
    now = datetime.now().astimezone()
    return [
        SourceOut(
            source_id=source_id,
            channel=auth.channel.value,
            hmac_secrets=[
                SecretOut(id=s.id, active=s.not_after is None or now <= s.not_after, not_after=s.not_after)
                for s in auth.hmac_secrets
            ]
            + ([SecretOut(id="hmac_secret", active=True, not_after=None)] if auth.hmac_secret is not None else []),
            bearer_token=auth.bearer_token is not None,
            producers=sorted(p.name for p in principals if source_id in p.sources and not p.disabled),
        )
        for source_id, auth in sorted(settings.sources.items())
    ]
