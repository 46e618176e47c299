"""``leadpipe serve`` over TCP against the real broker, fed real-world bad input: each request gets a specific answer
(never a 500, the process stays healthy), what was received whole is on ``contacts.dlq.ingest`` with its reason and
the payload sealed, ``leadpipe dlq list|show`` show it, and ``leadpipe dlq replay`` says why not, or, once the
adapter reads it, publishes it."""

from __future__ import annotations

import contextlib
import gzip
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from identity_helpers import key_for
from typer.testing import CliRunner

from pipeline.agents.launch import worker_env
from pipeline.cli import app as cli
from pipeline.ingest.api import sign
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.launcher import free_port
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Channel
from pipeline.models.identity import Role
from pipeline.models.records import ContactRecord, DeadLetter
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SECRET = "bad-input-secret"
SOURCES = {
    "form": {"channel": "web_form", "hmac_secret": SECRET},
    "crm": {"channel": "customer", "hmac_secret": SECRET},
}


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
        return out


def _dlq(*args: str) -> Any:
    return CliRunner().invoke(cli, ["dlq", *args])


@pytest.mark.slow
def test_bad_input_over_tcp_is_answered_dead_lettered_and_shown(
    cli_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = cli_runtime
    api, admin = free_port(), free_port()
    env = worker_env(
        runtime.settings,
        base=dict(__import__("os").environ),
        LEADPIPE_INGEST_PORT=str(api),
        LEADPIPE_ADMIN_PORT=str(admin),
        LEADPIPE_SOURCES=json.dumps(SOURCES),
    )
    leadpipe = str(Path(sys.executable).parent / "leadpipe")
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    server = subprocess.Popen([leadpipe, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{api}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, log_path.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("leadpipe serve was not ready within 120 s")

        def post(source: str, body: bytes, content_type: str, **extra: str) -> httpx.Response:
            headers = {"content-type": content_type, **sign(SECRET, body), **extra}
            return httpx.post(f"{url}/v1/sources/{source}", content=body, headers=headers, timeout=30)

        latin1 = '{"email": "bad.input1@example.com", "name": "José"}'.encode("latin-1")
        cut = b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\nbad.input2@example.com\r\n--b\r\nContent-Di'
        twice = b'{"email": "bad.input3@example.com", "email": "bad.input4@example.com"}'
        deep = b'{"email": "bad.input5@example.com", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
        quote = (
            b"email,name,last_service_delivery\n"
            b'bad.input6@example.com,"Ana,2024-01-01\n'  # the quote is never closed
            b"bad.input7@example.com,B,2024-01-01\n"
        )
        rejected = {
            "bad_encoding": (post("form", latin1, "application/json"), latin1),
            "malformed_form": (post("form", cut, "multipart/form-data; boundary=b"), cut),
            "duplicate_key": (post("form", twice, "application/json"), twice),
            "malformed_json": (post("form", deep, "application/json"), deep),
            "malformed_csv": (post("crm", quote, "text/csv"), quote),
        }
        for reason, (response, _) in rejected.items():
            answer = response.json()
            assert (response.status_code, answer["reason"], answer["dead_lettered"]) == (400, reason, True), answer
            assert "bad.input" not in response.text and "José" not in response.text

        utf16 = '{"email": "bad.input8@example.com", "name": "José"}'.encode("utf-16")
        assert post("form", utf16, "application/json").status_code == 202
        bomb = gzip.compress(b'{"email": "x@example.com", "m": "' + b"a" * 5_000_000 + b'"}')
        assert post("form", bomb, "application/json", **{"content-encoding": "gzip"}).status_code == 413
        stamp = {"X-Leadpipe-Timestamp": "9" * 400, "X-Leadpipe-Signature": "sha256=00"}
        huge = httpx.post(
            f"{url}/v1/sources/form", content=b"{}", headers={"content-type": "application/json", **stamp}
        )
        assert (huge.status_code, huge.json()["reason"]) == (401, "bad_timestamp")
        put = httpx.put(f"{url}/v1/sources/form", content=b"{}")
        assert (put.status_code, put.json()["reason"], put.headers["allow"]) == (
            405,
            "method_not_allowed",
            "POST, GET, HEAD, OPTIONS",
        )
        assert httpx.options(f"{url}/v1/sources/form").status_code == 204
        signed = "".join(f"{k}: {v}\r\n" for k, v in sign(SECRET, latin1).items()).encode()
        unframed = _raw(
            api, b"POST /v1/sources/form HTTP/1.0\r\nContent-Type: application/json\r\n" + signed + b"\r\n" + latin1
        )
        assert unframed.startswith(b"HTTP/1.1 411 ") and b'"length_required"' in unframed, unframed[:300]
        assert httpx.get(f"{url}/healthz").status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{admin}/metrics").text
        assert 'leadpipe_ingest_requests_total{channel="web_form",outcome="rejected"} 4.0' in metrics
        assert 'leadpipe_ingest_requests_total{channel="web_form",outcome="refused"} 3.0' in metrics  # 413, 401, 411
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    assert "Traceback" not in log_path.read_text()

    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(runtime.settings, Role.ADMIN, "anna", display_name="Anna Ops"))
    listed = _dlq("list", "--topic", "contacts.dlq.ingest", "--json")
    assert listed.exit_code == 0, listed.output
    letters = {entry["dead_letter_id"]: entry for entry in map(json.loads, listed.stdout.splitlines())}
    for reason, (response, body) in rejected.items():
        letter_id = response.json()["dead_letter_id"]
        assert letters[letter_id]["reason"] == reason and letters[letter_id]["stage"] == "ingest"
        shown = _dlq("show", letter_id)
        assert shown.exit_code == 0 and json.loads(shown.stdout)["has_payload"] is True
        assert "bad.input" not in shown.stdout
        assert _dlq("show", letter_id, "--payload").stdout_bytes == body
    table = _dlq("list", "--topic", "contacts.dlq.ingest")
    assert "from web_form (application/json)" in table.output and "bad.input" not in table.output
    still = _dlq("replay", rejected["duplicate_key"][0].json()["dead_letter_id"])
    assert still.exit_code == 1 and "still refused at ingest (duplicate_key" in still.output, still.output

    # an ingest dead letter the adapter reads now (UTF-16 JSON, refused malformed_json before it read UTF-16)
    old = DeadLetter.build(
        stage="ingest",
        reason="malformed_json",
        error="payload: not valid JSON (malformed_json)",
        failed_at=datetime.now(UTC),
        seal=lambda letter_id: runtime.codec.seal_payload(utf16, subject_key=None, record_id=letter_id, own_key=True),
        channel=Channel.WEB_FORM,
        submission=f"form:{uuid.uuid4()}",
    )
    publisher = ConfirmingPublisher(runtime.settings)
    publisher.publish([Outgoing("contacts.dlq.ingest", None, old)])
    publisher.close()
    before = len(read_to_end(runtime.settings, ["contacts.normalized"]))
    replayed = _dlq("replay", str(old.dead_letter_id))
    assert replayed.exit_code == 0 and "replayed" in replayed.output, replayed.output
    [record] = read_to_end(runtime.settings, ["contacts.normalized"])[before:]
    event = runtime.codec.open_contact(ContactRecord.model_validate_json(record.value or b""))
    assert (event.person.email, event.person.first_name) == ("bad.input8@example.com", "José")
