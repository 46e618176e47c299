"""The end of ``leadpipe demo``: the console on the demo's data, with a sign-in link per role, until Ctrl-C.

The product signs people in through single sign-on only; the demo has no identity provider, so it prints one link
per demo person (sales, reviewer, DPO) that opens a browser session for them. The route that honours those links
exists only on the app this module builds (``demo_console_app``), never on ``leadpipe serve``'s, and its tokens are
random, live in this process's memory and die with it.
"""

from __future__ import annotations

import hmac
import secrets
import socket
from dataclasses import dataclass

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse
from rich.console import Console

from pipeline.api.app import create_api
from pipeline.api.identity import set_session_cookie
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.http.auth import get_authenticator, public
from pipeline.http.deps import get_settings
from pipeline.identity.sessions import SessionStore
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.identity import PrincipalKind, Role, system_principal
from pipeline.runtime import Runtime

#: The demo's people: (account, display name, role). The DPO is the one the demo's erasure was issued by.
DEMO_PEOPLE = (
    ("demo-sales", "Demo Sales", Role.SALES),
    ("demo-reviewer", "Demo Reviewer", Role.REVIEWER),
    ("demo-dpo", "Demo DPO", Role.DPO),
)
SIGN_IN_PATH = "/demo/sign-in"

router = APIRouter(include_in_schema=False)


@router.get(
    SIGN_IN_PATH + "/{token}",
    status_code=303,
    response_class=RedirectResponse,
    dependencies=[Depends(public("the demo's sign-in links, printed by `leadpipe demo`: only its own app has them"))],
)
async def demo_sign_in(request: Request, token: str) -> RedirectResponse:
    """A session for the demo person the link names, then the console's first page for them."""
    links: dict[str, str] = request.app.state.demo_sign_in_links
    name = next((who for known, who in links.items() if hmac.compare_digest(known, token)), None)
    authenticator = get_authenticator(request)
    info = None if name is None else authenticator.store.get(name)
    if info is None or authenticator.sessions is None:
        raise HTTPException(404, {"status": "refused", "reason": "unknown_link", "message": "no such sign-in link"})
    issued = authenticator.sessions.create(info.principal("local"), frozenset())
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, get_settings(request), issued.cookie)
    return response


@dataclass(frozen=True)
class DemoConsole:
    """The demo's app, and each demo person's sign-in path (account -> path)."""

    app: FastAPI
    sign_in_paths: dict[str, str]


def demo_console_app(settings: Settings, publisher: ConfirmingPublisher | None = None) -> DemoConsole:
    """``leadpipe serve``'s app on the demo run's settings (plain http on this machine), plus the sign-in links."""
    settings = settings.model_copy(update={"session_cookie_secure": False, "public_url": None})
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    app = create_api(runtime, publisher or ConfirmingPublisher(settings))
    authenticator = app.state.authenticator
    if authenticator.sessions is None:  # no single sign-on configured: sessions for the links alone
        authenticator.sessions = SessionStore(
            runtime.engine, authenticator.store, settings.session_secret_bytes(), ttl_s=settings.session_ttl_s
        )
    links: dict[str, str] = {}
    paths: dict[str, str] = {}
    for name, display_name, role in DEMO_PEOPLE:
        info = authenticator.store.get(name)
        if info is None:
            authenticator.store.add_principal(
                name, display_name=display_name, kind=PrincipalKind.PERSON, roles=[role], by=system_principal("demo")
            )
        token = secrets.token_urlsafe(24)
        links[token] = name
        paths[name] = f"{SIGN_IN_PATH}/{token}"
    app.state.demo_sign_in_links = links
    app.include_router(router)
    return DemoConsole(app, paths)


def serve_console(settings: Settings, console: Console, host: str, port: int) -> int:
    """Serve the console on the demo's data until Ctrl-C; 0 once stopped."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        console.print(
            f"[red]Console: cannot listen on {host}:{port} ({exc.strerror}); choose --port or LEADPIPE_DEMO_PORT[/red]"
        )
        return 1
    demo = demo_console_app(settings)
    base = f"http://{host}:{port}"
    console.rule("the console")
    console.print(f"Console: {base}/  (the demo's data; Ctrl-C stops it, the worker and the broker)")
    for name, display_name, role in DEMO_PEOPLE:
        console.print(f"  sign in as {display_name} ({role.value}): {base}{demo.sign_in_paths[name]}")
    server = uvicorn.Server(uvicorn.Config(demo.app, host=host, port=port, log_config=None, access_log=False))
    server.run()  # uvicorn ends on SIGINT/SIGTERM
    return 0
