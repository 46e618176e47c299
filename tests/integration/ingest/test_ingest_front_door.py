"""The front door against real brokers: sizes from the API to the topic, a broker stopped and restarted (a private
one, from the project's launcher), and ``leadpipe serve`` itself over TCP (header limits, the admin port, readiness,
several workers)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.ingest.api import sign
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.launcher import LocalKafka, free_port
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.kafka.topics import apply_topics
from pipeline.models.common import Channel
from pipeline.models.records import RawRecord
from pipeline.runtime import Runtime

pytestmark = pytest.mark.integration

SECRET = "door-secret"
SOURCES = {"form": {"channel": "web_form", "hmac_secret": SECRET, "verify_token": "door-verify"}}


def form(i: int, filler: int = 0) -> bytes:
    note = "x" * filler
    return json.dumps({"email": f"door.person{i}@example.com", "message": "Call me", "notes": note}).encode()


async def post_all(app: object, bodies: list[bytes]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:

        async def post(body: bytes) -> httpx.Response:
            headers = {"content-type": "application/json", **sign(SECRET, body)}
            return await client.post("/v1/sources/form", content=body, headers=headers)

        return await asyncio.gather(*(post(b) for b in bodies))


def test_one_size_limit_from_the_api_to_the_topic(kafka_settings: Settings) -> None:
    """Probe of issue 13: bodies of 750 KB - 1 MiB got 500 (librdkafka's 1 MB message.max.bytes), and 9 of 120
    concurrent normal requests 500 too, 3 of them published nevertheless. Now what the raw topic cannot take is 413
    before it is read, a large body the topic takes is accepted, and its neighbours are unaffected."""
    settings = kafka_settings.model_copy(
        update={"sources": Settings.model_validate({"sources": SOURCES}).sources, "ingest_timeout_s": 20.0}
    )
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    publisher = ConfirmingPublisher(settings, delivery_timeout_s=20.0)
    app = create_api(runtime, publisher)
    limit = app.state.ingest.limits[Channel.WEB_FORM]
    assert 760_000 < limit < 1_048_576  # the raw topic (1 MB) holds the base64 of the body: less than the API's 1 MiB
    try:
        large = form(0, limit - 200)
        too_large = form(1, limit + 10)
        normal = [form(i) for i in range(2, 122)]
        responses = asyncio.run(post_all(app, [large, too_large, *normal]))
    finally:
        publisher.close()
    statuses = [r.status_code for r in responses]
    assert statuses[0] == 202, responses[0].text
    assert statuses[1] == 413 and responses[1].json()["reason"] == "too_large"
    assert statuses[2:] == [202] * 120
    answered = {i for r in responses if r.status_code == 202 for i in r.json()["event_ids"]}
    raw = [RawRecord.model_validate_json(r.value) for r in read_to_end(settings, ["contacts.raw.web_form"]) if r.value]
    assert {str(r.event_id) for r in raw} == answered  # exactly what was answered 202, the large one included


@contextlib.contextmanager
def private_broker(make_settings: Callable[..., Settings], home: Path) -> Iterator[LocalKafka]:
    settings = make_settings(home=home, kafka_port=free_port(), kafka_controller_port=free_port())
    broker = LocalKafka.from_settings(settings)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


@pytest.mark.slow
def test_a_broker_outage_is_a_fast_503_and_the_door_heals_by_itself(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Probe of issue 13: with the broker down, requests hung up to 35 s and /healthz said 200. Now the first
    request is answered 503 within ingest_timeout_s, the next ones at once, /readyz says which dependency is
    missing while /healthz stays live, and once the broker is back requests are accepted without a restart."""
    with private_broker(make_settings, tmp_path / "broker") as broker:
        settings = make_settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            sources=SOURCES,
            ingest_timeout_s=3.0,
            topic_partitions=1,
        )
        apply_topics(settings)
        runtime = Runtime(settings)
        ensure_schema(runtime.engine)
        publisher = ConfirmingPublisher(settings, delivery_timeout_s=settings.ingest_timeout_s)
        app = create_api(runtime, publisher)
        from fastapi.testclient import TestClient

        client = TestClient(app)
        try:

            def post(i: int) -> tuple[int, float, dict[str, object]]:
                body = form(i)
                started = time.monotonic()
                answer = client.post(
                    "/v1/sources/form", content=body, headers={"content-type": "application/json", **sign(SECRET, body)}
                )
                return answer.status_code, time.monotonic() - started, answer.json()

            assert post(1)[0] == 202
            assert client.get("/readyz").json()["checks"] == {"kafka": "ok", "database": "ok"}
            assert broker.down()
            status, took, answer = post(2)
            assert status == 503 and took < settings.ingest_timeout_s + 3, (status, took, answer)
            fast = [post(i) for i in range(3, 6)]
            assert all(s == 503 and t < 1.0 for s, t, _a in fast), fast
            time.sleep(1.1)  # past the readiness cache
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["kafka"].startswith("unavailable")
            assert client.get("/healthz").status_code == 200

            broker.up()
            deadline = time.monotonic() + 60
            healed = None
            while time.monotonic() < deadline:
                status, _took, _answer = post(100 + int(time.monotonic()))
                if status == 202:
                    healed = time.monotonic()
                    break
                time.sleep(0.5)
            assert healed is not None, "no request was accepted within 60 s of the broker's restart"
            time.sleep(1.1)
            assert client.get("/readyz").status_code == 200
        finally:
            client.close()
            publisher.close()


def _raw(port: int, data: bytes) -> bytes:
    """Send bytes on a fresh connection (in chunks, as a client would) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for start in range(0, len(data), 65_536):
                sock.sendall(data[start : start + 65_536])
        answer = b""
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65_536):
                answer += chunk
    return answer


@pytest.mark.slow
def test_leadpipe_serve_bounds_headers_keeps_metrics_on_the_admin_port_and_runs_workers(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    api, admin = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADPIPE_")}
    env.update(
        LEADPIPE_ENVIRONMENT="test",
        LEADPIPE_HOME=str(tmp_path / "home"),
        LEADPIPE_KAFKA_BOOTSTRAP_SERVERS=kafka_settings.kafka_bootstrap_servers,
        LEADPIPE_TOPIC_PREFIX=kafka_settings.topic_prefix,
        LEADPIPE_SUBJECT_KEY_PEPPER="pepper",
        LEADPIPE_KEY_ENCRYPTION_KEY=base64.urlsafe_b64encode(b"k" * 32).decode(),
        LEADPIPE_INGEST_PORT=str(api),
        LEADPIPE_ADMIN_PORT=str(admin),
        LEADPIPE_SOURCES=json.dumps(SOURCES),
        LEADPIPE_LOG_FORMAT="json",
        LEADPIPE_HTTP_HEADER_TIMEOUT_S="1",
    )
    leadpipe = str(Path(sys.executable).parent / "leadpipe")
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([leadpipe, "serve", "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{api}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("leadpipe serve was not ready within 120 s")

        # Probe of issue 13: a 1 MB header was a connection reset without a status
        big = _raw(api, b"POST /v1/sources/form HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n")
        assert big.startswith(b"HTTP/1.1 431 "), big[:200]
        fields = b"".join(b"X-Field-%d: 1\r\n" % i for i in range(150))
        many = _raw(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        assert many.startswith(b"HTTP/1.1 431 "), many[:200]
        for refused in (big, many):  # the server's own answer carries the app's security headers too (issue 15)
            head = refused.split(b"\r\n\r\n")[0].lower()
            assert b"x-content-type-options: nosniff" in head and b"x-frame-options: deny" in head, head
            assert b"content-security-policy: default-src 'self'" in head and b"cache-control: no-store" in head
        fine = _raw(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert fine.startswith(b"HTTP/1.1 200 ")

        # Probe: a connection sending nothing, or its head a line a second, stayed open for good
        started = time.monotonic()
        assert _raw(api, b"") == b"" and time.monotonic() - started < 4  # closed by the server, not the timeout
        slow = _raw(api, b"POST /v1/sources/form HTTP/1.1\r\nHost: x\r\n")
        assert slow.startswith(b"HTTP/1.1 408 "), slow[:200]

        # Probe: Meta's verification GET was 405, a trailing slash 307, a gzip body bad_signature
        check = httpx.get(
            f"http://127.0.0.1:{api}/v1/sources/form",
            params={"hub.mode": "subscribe", "hub.verify_token": "door-verify", "hub.challenge": "42"},
        )
        assert (check.status_code, check.text) == (200, "42")
        body = form(99)
        headers = {"content-type": "application/json", "content-encoding": "gzip", **sign(SECRET, body)}
        packed = httpx.post(f"http://127.0.0.1:{api}/v1/sources/form/", content=gzip.compress(body), headers=headers)
        assert packed.status_code == 202, packed.text

        # Probe of issue 13: /metrics, /openapi.json and /docs were open on the API port
        for path in ("/metrics", "/openapi.json", "/docs"):
            assert httpx.get(f"http://127.0.0.1:{api}{path}").status_code == 404
            assert httpx.get(f"http://127.0.0.1:{admin}{path}").status_code == 200

        with httpx.Client(base_url=f"http://127.0.0.1:{api}") as client:
            for i in range(19):  # new connections: the two workers share them
                body = form(i)
                headers = {"content-type": "application/json", "connection": "close", **sign(SECRET, body)}
                assert client.post("/v1/sources/form", content=body, headers=headers).status_code == 202
        metrics = httpx.get(f"http://127.0.0.1:{admin}/metrics").text
        assert 'leadpipe_ingest_requests_total{channel="web_form",outcome="accepted"} 20.0' in metrics
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
