"""How leadpipe's HTTP apps are served: uvicorn on uvloop and httptools, header limits before parsing, the API and
the admin port in one process, and ``workers`` processes sharing both ports.

- ``BoundedHttpToolsProtocol``: uvicorn's httptools protocol with the request line and header block bounded in
  bytes (``http_max_header_bytes``) and fields (``http_max_header_fields``). llhttp itself has no limit (a 1 MB
  header was read whole, then the connection was reset): past either limit the request is answered
  ``431 Request Header Fields Too Large`` at once, the connection half-closed and what the client still sends
  discarded for a moment, so the client reads the answer instead of a reset. Slow clients are bounded in time the
  same way: a request's head must be complete within ``http_header_timeout_s`` of the connection (or of the end of
  the previous answer on it) and its body within ``http_body_timeout_s`` of its head, else ``408 Request Timeout``
  (a connection that sent nothing is just closed). Before, a connection sending a byte a second stayed open for
  good, and 20,000 of them kept a signed webhook out. uvicorn's ``limit_concurrency`` (``http_max_connections``)
  answers a request beyond that many connections 503.
- ``PortDispatch``: one ASGI app per listening socket: the API on the API port, ``/metrics``, ``/openapi.json`` and
  ``/docs`` only on the admin port (``pipeline.http.app.admin_app``).
- ``serve``: binds both sockets in the parent, then runs one server, or ``workers`` processes (uvicorn's
  supervisor, which restarts a dead one); with several, Prometheus counters are kept per process in a shared
  directory and summed by ``/metrics`` (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import weakref
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from pipeline.http.app import security_headers

#: Set by ``serve`` for its worker processes (uvicorn builds the protocol; it cannot be given arguments).
HEADER_BYTES_ENV = "LEADPIPE_HTTP_MAX_HEADER_BYTES"
HEADER_FIELDS_ENV = "LEADPIPE_HTTP_MAX_HEADER_FIELDS"
HEADER_TIMEOUT_ENV = "LEADPIPE_HTTP_HEADER_TIMEOUT_S"
BODY_TIMEOUT_ENV = "LEADPIPE_HTTP_BODY_TIMEOUT_S"
#: "1" when the public address is https: the server's own 431 then carries HSTS like the app's answers.
HSTS_ENV = "LEADPIPE_HTTP_HSTS"
#: prometheus_client's multiprocess mode: where each process keeps its counters (read at import time).
PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: How long the supervisor waits for a worker's answer before it kills and replaces it (``--workers`` > 1).
WORKER_HEALTHCHECK_S = 60

_STATUS_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
_STATUS_408 = b"HTTP/1.1 408 Request Timeout\r\n"
_STATUS_400 = b"HTTP/1.1 400 Bad Request\r\n"
#: What a request httptools cannot parse is told (uvicorn's own answer, "Invalid HTTP request received.", said
#: neither what nor carried the security headers).
NOT_HTTP = (
    "not a valid HTTP/1.1 request: its request line (a raw non-ASCII or space in the URL: percent-encode it), a "
    "header, or its body's framing (Content-Length and Transfer-Encoding both, two lengths, a bad chunk size) "
    "cannot be read"
)
#: How long a refused connection's further input is read and dropped before it is closed.
_DRAIN_S = 2.0
#: How often each server's connections are checked against their deadlines (a deadline is kept within this).
SWEEP_S = 1.0
_NEVER = float("inf")
#: The servers (uvicorn's ``ServerState``, one per event loop) whose connections a sweep is checking.
_swept: weakref.WeakSet[ServerState] = weakref.WeakSet()


class _TooManyFields(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools with the header block bounded before it is parsed (431 past the limit, never a reset)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_head = int(os.environ.get(HEADER_BYTES_ENV, "32768"))
        self._max_fields = int(os.environ.get(HEADER_FIELDS_ENV, "100"))
        self._head_open = True  # reading a request line and headers (not a body)
        self._head_bytes = 0
        self._fields = 0
        self._refused = False
        self._head_s = float(os.environ.get(HEADER_TIMEOUT_ENV, "10"))
        self._body_s = float(os.environ.get(BODY_TIMEOUT_ENV, "30"))
        # Loop time by which the head (or body) must be in: checked by one sweep per server every SWEEP_S, not a
        # timer per request (uvloop's call_later + cancel cost ~0.55 us a request; setting this float ~0.07 us)
        self._deadline = _NEVER
        self._security = b"".join(
            name + b": " + value + b"\r\n" for name, value in security_headers(hsts=os.environ.get(HSTS_ENV) == "1")
        )

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._deadline = self.loop.time() + self._head_s
        if self.server_state not in _swept:  # the first connection of this server: its sweep starts
            _swept.add(self.server_state)
            self.loop.call_later(SWEEP_S, _sweep, self.loop, self.server_state)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # drained: the answer is on its way, the connection closes shortly
        if self._head_open:
            room = self._max_head - self._head_bytes
            if len(data) > room:  # feed only what the limit allows: the rest may be a body, or more header
                super().data_received(data[:room])
                if self._head_open and not self._refused:
                    self._refuse(_STATUS_431, f"the request line and headers exceed {self._max_head} bytes")
                    return
                data = data[room:]
                if self._refused or not data:
                    return
            else:
                self._head_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._fields = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self._max_fields:
            raise _TooManyFields
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._deadline = self.loop.time() + self._body_s
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open, self._head_bytes = True, 0  # keep-alive: the next request's head

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # the next request's head from now (or, pipelined, the rest of a body whose reading was paused meanwhile)
        self._deadline = self.loop.time() + (self._head_s if self._head_open else self._body_s)

    def expire(self) -> None:
        """Past the deadline (``_sweep``): 408 for a request begun, a silent close for a connection that sent none."""
        cycle = self.cycle
        if self._head_open:
            if cycle is not None and not cycle.response_complete:
                self._deadline = _NEVER  # the app is answering: its own time bounds apply, the next head is timed after
            elif self._head_bytes == 0:
                self._deadline = _NEVER
                self.transport.close()
            else:
                self._refuse(_STATUS_408, f"the request's head was not complete within {self._head_s:g} s")
        elif cycle is not None and cycle.response_started:
            self._deadline = _NEVER  # answered before its body was read (413): a second answer would break HTTP
            self.transport.close()
        else:
            if cycle is not None:  # the app reading the body learns the client is gone (http.disconnect)
                cycle.disconnected = True
                cycle.message_event.set()
            self._refuse(_STATUS_408, f"the request's body was not complete within {self._body_s:g} s")

    def send_400_response(self, msg: str) -> None:
        """httptools turns an exception in a callback into a parser error, ours meaning too many header fields; any
        other is a request it cannot parse, answered with what to check and the security headers."""
        if self._fields > self._max_fields:
            self._refuse(_STATUS_431, f"the request has more than {self._max_fields} header fields")
            return
        self._refuse(_STATUS_400, NOT_HTTP)

    def _refuse(self, status: bytes, message: str) -> None:
        self._refused = True
        self._deadline = _NEVER
        body = message.encode()
        self.transport.write(
            status
            + b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n"
            + self._security
            + b"\r\n"
            + body
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer, then FIN: the client reads it before any reset could come
        self.loop.call_later(_DRAIN_S, self.transport.close)


def _sweep(loop: Any, state: ServerState) -> None:
    """Expire the server's connections past their deadline; again in ``SWEEP_S`` while it has any (an idle server
    has no timer). 20,000 connections cost ~0.5 ms a sweep."""
    now = loop.time()
    for connection in list(state.connections):
        if isinstance(connection, BoundedHttpToolsProtocol) and connection._deadline < now:
            connection.expire()
    if state.connections:
        loop.call_later(SWEEP_S, _sweep, loop, state)
    else:
        _swept.discard(state)


class PortDispatch:
    """One ASGI app per local port: ``admin`` on ``admin_port``, ``api`` everywhere else (and its lifespan)."""

    def __init__(self, api: Any, admin: Any, admin_port: int | None) -> None:
        self.api = api
        self.admin = admin
        self.admin_port = admin_port

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        server = scope.get("server")
        if self.admin_port is not None and server is not None and server[1] == self.admin_port:
            await self.admin(scope, receive, send)
        else:
            await self.api(scope, receive, send)


class CannotListen(RuntimeError):
    """A port could not be bound (another process listens on it, or the address is not this machine's)."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotListen(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def serve(
    factory: str,
    *,
    host: str,
    port: int,
    admin: tuple[str, int] | None,
    workers: int,
    max_header_bytes: int,
    max_header_fields: int,
    header_timeout_s: float,
    body_timeout_s: float,
    max_connections: int,
    hsts: bool = False,
) -> None:
    """Serve the app ``factory`` builds (``module:function``, called in each worker) on the API and admin ports."""
    os.environ[HEADER_BYTES_ENV] = str(max_header_bytes)
    os.environ[HEADER_FIELDS_ENV] = str(max_header_fields)
    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout_s)
    os.environ[BODY_TIMEOUT_ENV] = str(body_timeout_s)
    os.environ[HSTS_ENV] = "1" if hsts else "0"
    metrics_dir = None
    if workers > 1 and PROMETHEUS_DIR_ENV not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="leadpipe-metrics-")
        os.environ[PROMETHEUS_DIR_ENV] = metrics_dir
    config = uvicorn.Config(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        log_config=None,  # uvicorn's loggers go through leadpipe's redacting handler
        access_log=False,  # a line per request cost more than it told: the metrics count every request
        server_header=False,
        limit_concurrency=max_connections,  # beyond it a request is answered 503 (slow clients cannot pile up)
        timeout_graceful_shutdown=10,
        # a spawned worker imports the CLI before it can answer the supervisor's first ping: 3.6 s of CPU, 14 s on
        # a loaded 2-core machine, where uvicorn's 5 s default killed and restarted every worker for good
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )
    sockets = [_bind(host, port)]
    if admin is not None:
        try:
            sockets.append(_bind(*admin))
        except CannotListen:
            sockets[0].close()
            raise
    try:
        if workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            uvicorn.Server(config).run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
