"""What the server answers a request it cannot parse (``BoundedHttpToolsProtocol``), over a real socket: 400 saying
what to check, with the security headers every answer carries, never a reset and never the app's attention."""

from __future__ import annotations

import pytest
from test_http_server import App, _connect, _read_all, served  # noqa: F401 (the fixture)

FRAMINGS = [
    b"POST /v1/sources/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /v1/sources/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/sources/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /v1/sources/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"POST /v1/sources/\xc3\xa9 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", FRAMINGS)
def test_a_request_that_is_not_http_is_400_saying_what_to_check_with_the_security_headers(
    served: tuple[int, App],  # noqa: F811
    request_bytes: bytes,
) -> None:
    port, app = served
    with _connect(port) as sock:
        sock.sendall(request_bytes)
        answer, _ = _read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:200]
    assert b"x-content-type-options: nosniff" in head and b"connection: close" in head
    assert body.startswith(b"not a valid HTTP/1.1 request") and b"Transfer-Encoding" in body
    assert app.disconnects == 0
