"""The app factory: one FastAPI app with the shared state every router's dependencies read, plus the probes.

``create_app(runtime, publisher, routers)`` puts the runtime, the publisher, the app's metrics and its one
``Authenticator`` (with the browser's sign-in where single sign-on is configured) on ``app.state`` (read through
``pipeline.http.deps`` and ``pipeline.http.auth``), includes the routers in the order given, then ``/healthz`` and
``/readyz``, and sets the security headers on every response. ``/metrics``, ``/openapi.json`` and ``/docs`` are the
admin app's (``app.state.admin``, served on the admin port: ``pipeline.http.server``), on the API port only with
``api_public_docs``. Which routers make up leadpipe's API is decided where the API is composed
(``pipeline.api.app``), not here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.config import Settings
from pipeline.http import health
from pipeline.http.metrics import ApiMetrics
from pipeline.identity.authenticator import Authenticator
from pipeline.identity.signin import SignIn
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.runtime import Runtime

#: The routes FastAPI adds itself, declared public here (the permission matrix test reads this).
DOCUMENTATION_ROUTES = {
    "/openapi.json": "the API's description",
    "/docs": "the API's documentation page",
    "/docs/oauth2-redirect": "the documentation page's sign-in helper",
}

#: Nothing from elsewhere: no inline script, no framing by another site, no plugins, forms post here only.
CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
#: The documentation page loads Swagger UI from its CDN and starts it with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)


def security_headers(*, docs: bool = False, hsts: bool = False) -> list[tuple[bytes, bytes]]:
    """The headers every answer carries (the one list: the middleware below and the server's own 431 use it)."""
    wanted = [
        (b"content-security-policy", (DOCS_CSP if docs else CSP).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    ]
    if hsts:
        wanted.append((b"strict-transport-security", b"max-age=31536000"))
    return wanted


def complete_headers(
    headers: Iterable[tuple[bytes, bytes]], wanted: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``headers`` plus each of ``security_headers`` they do not set themselves (a route may set its own caching)."""
    completed = list(headers)
    present = {name.lower() for name, _ in completed}
    completed.extend(pair for pair in wanted if pair[0] not in present)
    return completed


class SecurityHeaders:
    """Every response gets CSP, no framing, no MIME sniffing, no referrer, and no caching unless a route says so
    (answers carry personal data and credentials); HSTS when the public address is https."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts
        # built once: a list per answer (encoding the CSP each time) cost ~1 % of a webhook's CPU (issue 20)
        self._wanted = security_headers(hsts=hsts)
        self._docs_wanted = security_headers(docs=True, hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope.get("path") == "/docs"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                wanted = self._docs_wanted if docs else self._wanted
                message["headers"] = complete_headers(message.get("headers", []), wanted)
            await send(message)

        await self.app(scope, receive, send_with_headers)


#: A handler in front of an ``Api``: answers a request it claims and returns True, else returns False untouched.
FrontDoor = Callable[[Scope, Receive, Send], Awaitable[bool]]


class Api(FastAPI):
    """FastAPI with front doors (``front_doors``, e.g. the ingest webhook's): handlers that answer the requests they
    claim before any of FastAPI's per-request work.

    Why: before its middleware stack, FastAPI checks on every request whether its native telemetry is on (reading
    OpenTelemetry's tracer, meter and logger providers) and Starlette sets the scope up; for a webhook that costs ~3 %
    of the API process's CPU (py-spy at 1,000 requests/s) and serves nothing the webhook uses. A front door gets
    the scope with ``app`` set, as Starlette would have, and answers with everything its answers need itself.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.front_doors: list[FrontDoor] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.front_doors:
            scope["app"] = self
            for door in self.front_doors:
                if await door(scope, receive, send):
                    return
        await super().__call__(scope, receive, send)


def wants_hsts(settings: Settings) -> bool:
    """HSTS only where the public address is https (a plain-http address would lock browsers out)."""
    return (settings.public_url or "").startswith("https://")


def create_app(
    runtime: Runtime,
    publisher: ConfirmingPublisher,
    routers: Iterable[APIRouter],
    *,
    title: str = "leadpipe",
    version: str = "1",
    summary: str | None = None,
) -> Api:
    """A FastAPI app serving ``routers`` (and the probes) over ``runtime`` and ``publisher``; its admin app (metrics,
    OpenAPI, docs) is ``app.state.admin``."""
    settings = runtime.settings
    public = settings.api_public_docs
    app = Api(
        title=title,
        version=version,
        summary=summary,
        openapi_url="/openapi.json" if public else None,
        docs_url="/docs" if public else None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.publisher = publisher
    app.state.metrics = ApiMetrics()
    app.state.authenticator = authenticator = Authenticator.for_engine(settings, runtime.engine)
    app.state.sign_in = SignIn(authenticator, settings.session_secret_bytes()) if authenticator.sessions else None
    app.state.public_routes = dict(DOCUMENTATION_ROUTES)
    for router in routers:
        app.include_router(router)
    app.include_router(health.router)
    hsts = wants_hsts(settings)
    app.state.admin = admin = health.admin_app(app)
    admin.add_middleware(SecurityHeaders, hsts=hsts)
    app.add_middleware(SecurityHeaders, hsts=hsts)
    return app
