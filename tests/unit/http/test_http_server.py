"""The server's own bounds on slow clients (``BoundedHttpToolsProtocol``) over real sockets: a head or body that
does not come in time is answered 408 (a connection that sent nothing is closed), a request beyond the connection
limit 503, and a keep-alive connection's next request is timed from the end of the previous answer."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from pipeline.http import server as http_server

HEAD_S, BODY_S = 0.6, 1.0


class App:
    """Reads the body, answers 200 "ok"; records whether it saw the client leave."""

    def __init__(self) -> None:
        self.disconnects = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, App]]:
    monkeypatch.setenv(http_server.HEADER_TIMEOUT_ENV, str(HEAD_S))
    monkeypatch.setenv(http_server.BODY_TIMEOUT_ENV, str(BODY_S))
    monkeypatch.setattr(http_server, "SWEEP_S", 0.1)
    app = App()
    config = uvicorn.Config(
        app, http=http_server.BoundedHttpToolsProtocol, lifespan="off", log_config=None, limit_concurrency=4
    )
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1], app
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _read_all(sock: socket.socket) -> tuple[bytes, float]:
    """Everything until the server closes, and when that was."""
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65_536):
            answer += chunk
    return answer, time.monotonic()


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(served: tuple[int, App]) -> None:
    port, _app = served
    with _connect(port) as sock:
        started = time.monotonic()
        answer, closed = _read_all(sock)
    assert answer == b"" and HEAD_S <= closed - started < HEAD_S + 1.0


def test_a_head_sent_a_line_at_a_time_is_408(served: tuple[int, App]) -> None:
    port, _app = served
    with _connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/sources/x HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(OSError):  # the server stops reading once it answered
            for i in range(20):
                time.sleep(0.1)
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
        answer, closed = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:200]
    assert b"connection: close" in answer and b"x-content-type-options: nosniff" in answer
    assert closed - started < HEAD_S + 2.0 + 2.5  # the deadline, a sweep, then the drain before the close


def test_a_body_sent_a_byte_at_a_time_is_408_and_the_app_sees_the_client_leave(served: tuple[int, App]) -> None:
    port, app = served
    with _connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/sources/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            for _ in range(40):
                time.sleep(0.1)
                sock.sendall(b"x")
                if time.monotonic() - started > BODY_S + 0.5:
                    break
        answer, _closed = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:200]
    assert b"body was not complete within 1 s" in answer
    assert app.disconnects == 1


def test_a_keep_alive_connection_times_the_next_head_from_the_last_answer(served: tuple[int, App]) -> None:
    port, _app = served
    request = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
    with _connect(port) as sock:
        for _ in range(3):  # together longer than the head's deadline: each request is timed on its own
            time.sleep(HEAD_S / 2)
            sock.sendall(request)
            assert sock.recv(65_536).startswith(b"HTTP/1.1 200 OK")


def test_requests_beyond_the_connection_limit_are_503_until_slow_connections_are_dropped(
    served: tuple[int, App],
) -> None:
    port, _app = served
    idle = [_connect(port) for _ in range(4)]
    try:
        time.sleep(0.1)
        with _connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65_536).startswith(b"HTTP/1.1 503 ")
        time.sleep(HEAD_S + 0.5)  # the idle ones are closed
        with _connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65_536).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in idle:
            sock.close()


def test_serve_caps_connections_and_hands_the_timeouts_to_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class Server:
        def __init__(self, config: uvicorn.Config) -> None:
            seen["config"] = config

        def run(self, sockets: list[socket.socket]) -> None:
            seen["env"] = (os.environ[http_server.HEADER_TIMEOUT_ENV], os.environ[http_server.BODY_TIMEOUT_ENV])

    monkeypatch.setattr(http_server.uvicorn, "Server", Server)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # what serve sets for its workers stays in this test
    _serve(monkeypatch, port=0, admin=None)
    assert seen["config"].limit_concurrency == 99
    assert seen["env"] == ("7.0", "20.0")


def _serve(monkeypatch: pytest.MonkeyPatch, *, port: int, admin: tuple[str, int] | None) -> None:
    """``serve`` as the CLI calls it; uvicorn's access logger put back after (``uvicorn.Config(access_log=False)``
    silences it for the whole process, and the log redaction tests read it)."""
    access = logging.getLogger("uvicorn.access")
    monkeypatch.setattr(access, "propagate", access.propagate)
    monkeypatch.setattr(access, "handlers", list(access.handlers))
    http_server.serve(
        "pipeline.api.cli:app_factory",
        host="127.0.0.1",
        port=port,
        admin=admin,
        workers=1,
        max_header_bytes=32_768,
        max_header_fields=100,
        header_timeout_s=7.0,
        body_timeout_s=20.0,
        max_connections=99,
    )


def test_a_taken_port_is_a_cannot_listen_naming_it_and_nothing_stays_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """``leadpipe serve`` beside a process on its admin port: the API port it had bound already is let go."""
    with socket.create_server(("127.0.0.1", 0)) as taken, socket.create_server(("127.0.0.1", 0)) as probe:
        admin_port = taken.getsockname()[1]
        api_port = probe.getsockname()[1]
        probe.close()
        with pytest.raises(http_server.CannotListen, match=rf"cannot listen on 127\.0\.0\.1:{admin_port} \(.+\)"):
            _serve(monkeypatch, port=api_port, admin=("127.0.0.1", admin_port))
        with socket.create_server(("127.0.0.1", api_port)):  # free again
            pass
