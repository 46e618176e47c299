"""What real senders do at the door: Meta's and Mailchimp's GET of the URL, a trailing slash, a compressed body, a
client that hangs up mid-body, and a rejected delivery sent again."""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import zlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ingest_helpers import HMAC_SECRET, VERIFY, RecordingPublisher
from source_payloads import payload

from pipeline.api.app import create_api
from pipeline.ingest.api import sign
from pipeline.ingest.replay import Rejection, ReplayKey, ReplayStore
from pipeline.models.records import DeadLetter, RawRecord
from pipeline.runtime import Runtime


def metrics_of(client: TestClient) -> str:
    return TestClient(client.app.state.admin).get("/metrics").text  # type: ignore[attr-defined]


def verification(token: str | None, mode: str = "subscribe") -> dict[str, str]:
    params = {"hub.mode": mode, "hub.challenge": "1158201444"}
    if token is not None:
        params["hub.verify_token"] = token
    return params


def test_meta_verification_answers_the_challenge_only_with_the_sources_verify_token(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    """Probe: Meta's GET was 405, so a WhatsApp Cloud API webhook could not be saved."""
    ok = client.get("/v1/sources/whatsapp", params=verification(VERIFY))
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert ok.headers["content-type"].startswith("text/plain") and ok.headers["x-content-type-options"] == "nosniff"
    refused = {
        "bad_verify_token": client.get("/v1/sources/whatsapp", params=verification("guess")),
        "missing_verify_token": client.get("/v1/sources/whatsapp", params=verification(None)),
        "verify_token_not_configured": client.get("/v1/sources/wp-contact", params=verification(VERIFY)),
    }
    for reason, answer in refused.items():
        assert (answer.status_code, answer.json()["reason"]) == (403, reason)
        assert "1158201444" not in answer.text
    wrong_mode = client.get("/v1/sources/whatsapp", params=verification(VERIFY, mode="unsubscribe"))
    assert (wrong_mode.status_code, wrong_mode.json()["reason"]) == (400, "bad_hub_mode")
    unknown = client.get("/v1/sources/nobody", params=verification(VERIFY))
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "unknown_source")
    assert publisher.records == []
    assert 'leadpipe_ingest_refusals_total{reason="bad_verify_token"} 1.0' in metrics_of(client)


def test_a_plain_get_says_the_source_takes_posts_and_head_is_the_same_without_a_body(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    """Mailchimp GETs a new webhook's URL and saves it only on a 200."""
    answer = client.get("/v1/sources/wp-contact")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "source_id": "wp-contact", "accepts": "POST"}
    assert client.get("/v1/sources/wp-contact/").json() == answer.json()
    head = client.head("/v1/sources/whatsapp", params=verification(VERIFY))
    assert (head.status_code, head.content) == (200, b"")
    assert client.head("/v1/sources/nobody").status_code == 404
    assert publisher.records == []
    operation = TestClient(client.app.state.admin).get("/openapi.json").json()["paths"]["/v1/sources/{source_id}"]
    assert set(operation) == {"get", "post"}


def test_a_trailing_slash_is_the_same_endpoint_not_a_redirect(client: TestClient) -> None:
    """Probe: ``POST /v1/sources/{id}/`` was 307, which many senders do not follow on a POST."""
    body, content_type = payload("web_form", "cf7_contact_us.txt")
    headers = {"content-type": content_type, **sign(HMAC_SECRET, body)}
    answer = client.post("/v1/sources/wp-contact/", content=body, headers=headers, follow_redirects=False)
    assert answer.status_code == 202, answer.text
    assert client.post("/v1/sources/wp-contact//", content=body, follow_redirects=False).status_code != 202


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_body_is_inflated_before_its_signature_and_its_parse(
    client: TestClient, publisher: RecordingPublisher, runtime: Runtime, encoding: str
) -> None:
    """Probe: a gzip body was refused bad_signature, or dead-lettered as malformed JSON."""
    body, content_type = payload("web_form", "cf7_contact_us.txt")
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    headers = {"content-type": content_type, "content-encoding": encoding, **sign(HMAC_SECRET, body)}
    answer = client.post("/v1/sources/wp-contact", content=packed, headers=headers)
    assert answer.status_code == 202, answer.text
    raw = next(r.value for r in publisher.records if isinstance(r.value, RawRecord))
    assert runtime.codec.sealer.open(raw.sealed) == body  # the payload as sent, uncompressed


def test_a_decompression_bomb_is_413_and_other_encodings_are_refused_without_a_dead_letter(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    bomb = gzip.compress(b"{" + b" " * 50_000_000 + b"}")  # 50 MB of JSON in ~50 KB; the door takes 64,000 bytes
    assert len(bomb) < 64_000
    plain = b'{"email": "ana@example.com"}'

    def post(content: bytes, encoding: str, signed: bytes) -> Any:
        headers = {"content-type": "application/json", "content-encoding": encoding, **sign(HMAC_SECRET, signed)}
        return client.post("/v1/sources/wp-contact", content=content, headers=headers)

    started = time.perf_counter()
    answer = post(bomb, "gzip", bomb)
    assert (answer.status_code, answer.json()["reason"]) == (413, "too_large")
    assert time.perf_counter() - started < 2  # inflated no further than the limit
    answer = post(plain, "br", plain)
    assert (answer.status_code, answer.json()["reason"]) == (415, "unsupported_content_encoding")
    for broken in (plain, gzip.compress(plain)[:-6], gzip.compress(plain) + b"trailing"):
        answer = post(broken, "gzip", plain)
        assert (answer.status_code, answer.json()["reason"]) == (400, "bad_content_encoding")
    assert publisher.records == []
    assert post(plain, "identity", plain).status_code == 202


def test_a_client_that_hangs_up_mid_body_is_counted_not_an_error(
    runtime: Runtime, publisher: RecordingPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe: starlette's ClientDisconnect went up as an exception: a 500 attempted and an ERROR with a traceback."""
    app = create_api(runtime, publisher)  # type: ignore[arg-type]
    body = b'{"email": "ana@example.com"}'
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in sign(HMAC_SECRET, body).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/sources/wp-contact",
        "raw_path": b"/v1/sources/wp-contact",
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }
    messages = iter([{"type": "http.request", "body": body[:5], "more_body": True}, {"type": "http.disconnect"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with caplog.at_level(logging.INFO):
        asyncio.run(app(scope, receive, send))  # raises nothing: uvicorn would log it as an ERROR
    assert all(m.get("status") != 500 for m in sent)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert publisher.records == []
    metrics = TestClient(app.state.admin).get("/metrics").text
    assert 'leadpipe_ingest_requests_total{channel="web_form",outcome="aborted"} 1.0' in metrics


def test_a_replayed_rejected_request_gets_the_same_answer_and_no_second_dead_letter(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    """Probe: the replay guard remembered accepted requests only, so a rejected one sent again was dead-lettered
    again (the docs promise a replay within the window is never published again)."""
    body = b'{"email": "not an address", "message": "hi"}'
    headers = {"content-type": "application/json", **sign(HMAC_SECRET, body)}
    first = client.post("/v1/sources/wp-contact", content=body, headers=headers)
    again = client.post("/v1/sources/wp-contact", content=body, headers=headers)
    assert first.status_code == 422 and first.json()["dead_lettered"] is True
    assert (again.status_code, again.content) == (first.status_code, first.content)
    [dead] = publisher.records
    assert isinstance(dead.value, DeadLetter) and str(dead.value.dead_letter_id) == first.json()["dead_letter_id"]
    assert 'leadpipe_ingest_requests_total{channel="web_form",outcome="replayed"} 1.0' in metrics_of(client)


def test_a_rejected_request_replayed_to_another_process_is_answered_alike_through_the_database(
    runtime: Runtime,
) -> None:
    one, other = RecordingPublisher(), RecordingPublisher()
    body = b'{"email": "not an address"'  # malformed: 400
    headers = {"content-type": "application/json", **sign(HMAC_SECRET, body)}
    with TestClient(create_api(runtime, one)) as a, TestClient(create_api(runtime, other)) as b:  # type: ignore[arg-type]
        first = a.post("/v1/sources/wp-contact", content=body, headers=headers)
        deadline = time.monotonic() + 5
        while a.app.state.ingest.group.replays.has_unstored and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        time.sleep(0.1)
        again = b.post("/v1/sources/wp-contact", content=body, headers=headers)
    assert first.status_code == 400
    assert (again.status_code, again.content) == (400, first.content)
    assert len(one.records) == 1 and other.records == []


def test_the_replay_store_keeps_a_rejection_beside_accepted_ids(runtime: Runtime) -> None:
    store = ReplayStore(runtime.engine)
    now = time.time()
    rejected = ReplayKey.of("wp-contact", "sha256=aa", int(now), 300)
    accepted = ReplayKey.of("wp-contact", "sha256=bb", int(now), 300)
    rejection = Rejection(422, b'{"status":"rejected","dead_letter_id":"x"}')
    store.exchange([(rejected, rejection), (accepted, ())], [], now)
    found = store.exchange([], [rejected, accepted], now)
    assert found == {rejected.ident: rejection, accepted.ident: ()}
