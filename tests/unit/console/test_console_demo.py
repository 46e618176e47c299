"""``leadpipe demo``'s console: each printed link signs its demo person in with their role and nothing more, a
made-up link signs nobody in, and ``leadpipe serve``'s app has no such route at all."""

from __future__ import annotations

import socket
from collections.abc import Callable

from fastapi.testclient import TestClient
from ingest_helpers import RecordingPublisher
from rich.console import Console

from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.demo.console import SIGN_IN_PATH, demo_console_app, serve_console
from pipeline.runtime import Runtime


def test_each_link_signs_in_its_demo_person_with_their_role(make_settings: Callable[..., Settings]) -> None:
    demo = demo_console_app(make_settings(), RecordingPublisher())  # type: ignore[arg-type]  # records, no broker
    with TestClient(demo.app, base_url="http://127.0.0.1:8000", follow_redirects=False) as browser:
        browser.headers["Accept"] = "text/html"
        assert browser.get("/leads").status_code == 401  # no session yet
        sales = browser.get(demo.sign_in_paths["demo-sales"])
        assert sales.status_code == 303 and sales.headers["location"] == "/"
        assert "secure" not in sales.headers["set-cookie"].lower()  # plain http on this machine
        assert browser.get("/leads").status_code == 200
        assert browser.get("/dpo").status_code == 403  # sales may not see the DPO's page
        browser.cookies.clear()
        browser.get(demo.sign_in_paths["demo-dpo"])
        assert browser.get("/dpo").status_code == 200
        browser.cookies.clear()
        assert browser.get(f"{SIGN_IN_PATH}/not-a-printed-token").status_code == 404
        assert browser.get("/leads").status_code == 401
    assert len(set(demo.sign_in_paths.values())) == 3


def test_the_product_app_has_no_demo_sign_in(make_settings: Callable[..., Settings]) -> None:
    app = create_api(Runtime(make_settings()), RecordingPublisher())  # type: ignore[arg-type]
    assert not [r for r in app.routes if getattr(r, "path", "").startswith(SIGN_IN_PATH)]


def test_a_taken_port_is_said_not_served(make_settings: Callable[..., Settings]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = Console(record=True, width=200)
        assert serve_console(make_settings(), out, "127.0.0.1", port) == 1
    said = out.export_text()
    assert f"cannot listen on 127.0.0.1:{port}" in said and "LEADPIPE_DEMO_PORT" in said
