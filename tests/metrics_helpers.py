"""A ``/metrics`` address for tests: what a callable renders (a real ``WorkerMetrics.render``), served over HTTP the way
a worker's faust web server serves it, for the code that scrapes it (the console's charts)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def serving_metrics(render: Callable[[], bytes], host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The address of a ``/metrics`` page whose body is ``render()`` at each request, until the block ends (on
    ``host``, and ``port`` or a free one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="metrics-page")
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()
