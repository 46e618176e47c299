"""The ingest API: authentication, limits, answers, what is published and what is dead-lettered."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterable
from typing import Any
from unittest.mock import patch

import pytest
from fastapi.testclient import TestClient
from ingest_helpers import BEARER, HMAC_SECRET, RecordingPublisher
from source_payloads import payload
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.datastructures import Headers

from pipeline.api.app import create_api
from pipeline.crypto.keystore import Warmed
from pipeline.ingest import signatures
from pipeline.ingest.api import sign
from pipeline.ingest.coalesce import GroupCommit
from pipeline.ingest.service import IngestSummary
from pipeline.kafka.producer import PublishError
from pipeline.logging import configure_logging
from pipeline.models.records import ContactRecord, DeadLetter, RawRecord
from pipeline.runtime import Runtime


def post_signed(client: TestClient, source: str, body: bytes, content_type: str, **kw: object):  # type: ignore[no-untyped-def]
    headers = {"content-type": content_type, **sign(HMAC_SECRET, body)}
    return client.post(f"/v1/sources/{source}", content=body, headers=headers)


def test_accepted_form_is_published_raw_and_normalized_sealed(
    client: TestClient, publisher: RecordingPublisher, runtime: Runtime
) -> None:
    body, content_type = payload("web_form", "cf7_contact_us.txt")
    response = post_signed(client, "wp-contact", body, content_type)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "accepted" and len(answer["event_ids"]) == 1
    raw_out, normalized_out = publisher.records
    assert raw_out.topic == "contacts.raw.web_form" and normalized_out.topic == "contacts.normalized"
    assert isinstance(raw_out.value, RawRecord) and isinstance(normalized_out.value, ContactRecord)
    assert raw_out.key == normalized_out.key == normalized_out.value.subject_key
    event = runtime.codec.open_contact(normalized_out.value)
    assert str(event.event_id) == answer["event_ids"][0]
    assert event.person.email == "Juergen.Mueller@example.de" and event.provenance.source_id == "wp-contact"
    assert runtime.codec.sealer.open(raw_out.value.sealed) == body
    assert "Juergen" not in normalized_out.value.model_dump_json()  # personal data only inside the seal


def test_a_replayed_signed_request_gets_the_original_ids_and_is_not_published_again(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    """Probe of issue 13: the same signed bytes and headers sent again 6 s later were accepted and published again
    (after an erasure, the person came back). Now the replay is answered 202 ``replayed`` and nothing is sent."""
    body, content_type = payload("event", "eventbrite_order.json")
    headers = {"content-type": content_type, **sign(HMAC_SECRET, body)}
    first = client.post("/v1/sources/cards", content=body, headers=headers)
    published = len(publisher.records)
    again = client.post("/v1/sources/cards", content=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert len(first.json()["event_ids"]) == 2 and first.json()["replayed"] is False
    assert again.json() == {**first.json(), "replayed": True}
    assert len(publisher.records) == published == 4
    assert (
        'leadpipe_ingest_requests_total{channel="event",outcome="replayed"} 1.0'
        in TestClient(client.app.state.admin).get("/metrics").text
    )


def test_the_same_form_submitted_again_later_gets_new_ids_and_a_retried_delivery_the_same(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    """Ids derive from the signed timestamp (or the sender's delivery id): a person filling in the identical form
    again after an erasure is a new submission, not the tombstoned old one."""
    body, content_type = payload("web_form", "cf7_contact_us.txt")
    now = int(time.time())

    def post(stamp: int, delivery: str | None = None) -> list[str]:
        headers = {"content-type": content_type, **sign(HMAC_SECRET, body, stamp)}
        if delivery:
            headers["X-Leadpipe-Delivery"] = delivery
        answer = client.post("/v1/sources/wp-contact", content=body, headers=headers)
        assert answer.status_code == 202 and answer.json()["replayed"] is False, answer.text
        return list(answer.json()["event_ids"])

    assert post(now - 60) != post(now - 30)
    assert post(now - 20, "delivery-7") == post(now - 10, "delivery-7") != post(now - 5, "delivery-8")
    assert len(publisher.records) == 2 * 5  # each one published (a re-signed retry is not a replay)


def test_bearer_sources_keep_ids_from_the_bytes(client: TestClient) -> None:
    body = b'{"data": {"contact": {"attributes": {"email": "ana@example.com"}}, "messages": []}}'
    headers = {"content-type": "application/json", "authorization": f"Bearer {BEARER}"}
    first = client.post("/v1/sources/drift", content=body, headers=headers).json()
    again = client.post("/v1/sources/drift", content=body, headers=headers).json()
    assert first["event_ids"] == again["event_ids"] and again["replayed"] is False


def test_a_replay_reaching_another_api_process_is_caught_through_the_database(runtime: Runtime) -> None:
    """Two API processes over one database: B refuses to publish what A accepted (once A stored it)."""
    one, other = RecordingPublisher(), RecordingPublisher()
    body, content_type = payload("web_form", "cf7_contact_us.txt")
    headers = {"content-type": content_type, **sign(HMAC_SECRET, body)}
    with TestClient(create_api(runtime, one)) as a, TestClient(create_api(runtime, other)) as b:  # type: ignore[arg-type]
        first = a.post("/v1/sources/wp-contact", content=body, headers=headers).json()
        deadline = time.monotonic() + 5
        while a.app.state.ingest.group.replays.has_unstored and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)  # A stores its accepted signatures within FLUSH_INTERVAL_S
        time.sleep(0.1)
        again = b.post("/v1/sources/wp-contact", content=body, headers=headers).json()
    assert again == {**first, "replayed": True}
    assert len(one.records) == 2 and other.records == []


def test_unprocessable_payload_is_422_with_fields_and_dead_lettered(
    client: TestClient, publisher: RecordingPublisher, runtime: Runtime
) -> None:
    body, _ = payload("event", "business_cards_bad.csv")
    response = post_signed(client, "cards", body, "text/csv")
    assert response.status_code == 422
    answer = response.json()
    assert answer["status"] == "rejected" and answer["dead_lettered"] is True
    assert [(e["field"], e["reason"]) for e in answer["errors"]] == [
        ("row 2.email", "no_identity"),
        ("row 3.email", "invalid_email"),
        ("row 4.event_date", "missing_event_date"),
    ]
    assert "bad@@mail" not in response.text
    [dead] = publisher.records
    assert dead.topic == "contacts.dlq.ingest" and isinstance(dead.value, DeadLetter)
    assert str(dead.value.dead_letter_id) == answer["dead_letter_id"]
    assert dead.value.stage == "ingest" and dead.value.reason == "no_identity" and dead.value.channel == "event"
    assert "row 4.event_date" in dead.value.error
    assert dead.value.subject_key is not None  # an address was found in it: erasure will reach this copy too
    assert dead.value.payload is not None and runtime.codec.sealer.open(dead.value.payload) == body


def test_malformed_json_is_400_and_dead_lettered(client: TestClient, publisher: RecordingPublisher) -> None:
    response = client.post(
        "/v1/sources/drift",
        content=b'{"data": {"contact": ',
        headers={"content-type": "application/json", "authorization": f"Bearer {BEARER}"},
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "malformed_json" and "line 1" in response.json()["message"]
    assert publisher.topics() == ["contacts.dlq.ingest"]
    assert publisher.records[0].value.subject_key is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("source", "headers", "status", "reason"),
    [
        ("nope", {}, 404, "unknown_source"),
        ("wp-contact", {"content-type": "application/pdf"}, 415, "unsupported_content_type"),
        ("wp-contact", {"content-type": "application/json"}, 401, "missing_signature"),
        (
            "wp-contact",
            {"content-type": "application/json", "X-Leadpipe-Timestamp": "1", "X-Leadpipe-Signature": "sha256=00"},
            401,
            "stale_timestamp",
        ),
        ("drift", {"content-type": "application/json"}, 401, "missing_token"),
        ("drift", {"content-type": "application/json", "authorization": "Bearer wrong"}, 401, "bad_token"),
        ("broken", {"content-type": "application/json"}, 401, "source_without_credentials"),
    ],
)
def test_refusals_are_answered_counted_and_nothing_is_published(
    client: TestClient, publisher: RecordingPublisher, source: str, headers: dict[str, str], status: int, reason: str
) -> None:
    response = client.post(f"/v1/sources/{source}", content=b"{}", headers=headers)
    assert (response.status_code, response.json()["reason"]) == (status, reason)
    if reason == "stale_timestamp":  # says what is wrong: the time it signs, not (necessarily) the signature
        assert "signed timestamp is more than 300s" in response.json()["message"], response.json()
    assert publisher.records == []
    metrics = TestClient(client.app.state.admin).get("/metrics").text
    assert f'leadpipe_ingest_refusals_total{{reason="{reason}"}} 1.0' in metrics


def test_tampered_body_fails_the_signature(client: TestClient) -> None:
    body = b'{"fields": [{"name": "email", "value": "a@example.com"}]}'
    headers = {"content-type": "application/json", **sign(HMAC_SECRET, body)}
    response = client.post("/v1/sources/wp-contact", content=body.replace(b"a@", b"b@"), headers=headers)
    assert (response.status_code, response.json()["reason"]) == (401, "bad_signature")
    ok = client.post("/v1/sources/wp-contact", content=body, headers=headers)
    assert ok.status_code == 202


def test_body_limit_by_header_and_while_streaming(client: TestClient, publisher: RecordingPublisher) -> None:
    big = b"x" * 64_001
    response = post_signed(client, "wp-contact", big, "application/json")
    assert (response.status_code, response.json()["reason"]) == (413, "too_large")

    def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: the limit must hold while reading
        for _ in range(100):
            yield b"y" * 1000

    response = client.post("/v1/sources/wp-contact", content=chunks(), headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["reason"]) == (413, "too_large")
    assert publisher.records == []


def test_broker_failure_is_503_and_nothing_accepted(client: TestClient, publisher: RecordingPublisher) -> None:
    publisher.fail = True
    body, content_type = payload("web_form", "hubspot_demo_request.json")
    response = post_signed(client, "wp-contact", body, content_type)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"


def test_openapi_documents_the_real_models(client: TestClient) -> None:
    doc = TestClient(client.app.state.admin).get("/openapi.json").json()
    operation = doc["paths"]["/v1/sources/{source_id}"]["post"]
    assert {"application/json", "text/csv", "message/rfc822", "multipart/form-data"} <= set(
        operation["requestBody"]["content"]
    )
    assert operation["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/Accepted")
    assert operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/Rejected")
    assert {"Accepted", "Rejected", "FieldError", "Refused"} <= set(doc["components"]["schemas"])
    assert client.get("/healthz").json() == {"status": "ok"}


def test_logs_carry_ids_not_people(client: TestClient) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    try:
        body, content_type = payload("web_form", "cf7_contact_us.txt")
        assert post_signed(client, "wp-contact", body, content_type).status_code == 202
        bad, _ = payload("web_form", "hubspot_invalid_fields.json")
        assert post_signed(client, "wp-contact", bad, "application/json").status_code == 422
    finally:
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    assert "ingest_accepted" in text and "ingest_rejected" in text
    for personal in ("Mueller", "Müller", "030 1234567", "tom@@example", "Tom"):
        assert personal not in text


def test_at_info_an_accepted_request_costs_no_line_of_its_own_but_is_summarised(client: TestClient) -> None:
    """Issue 20: two INFO lines per request were 15-17 % of the API's CPU. Accepted requests are counted into one
    ``ingest_summary`` line at most every 10 s; a rejection keeps its own WARNING line."""
    clock = [0.0]
    summary = IngestSummary(every_s=10.0, clock=lambda: clock[0])
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        body, content_type = payload("web_form", "cf7_contact_us.txt")
        with patch("pipeline.ingest.service.summary", summary):
            for stamp in range(3):
                headers = {"content-type": content_type, **sign(HMAC_SECRET, body, int(time.time()) - stamp)}
                assert client.post("/v1/sources/wp-contact", content=body, headers=headers).status_code == 202
            assert "ingest_accepted" not in stream.getvalue() and "ingest_summary" not in stream.getvalue()
            clock[0] = 11.0
            headers = {"content-type": content_type, **sign(HMAC_SECRET, body, int(time.time()) - 5)}
            assert client.post("/v1/sources/wp-contact", content=body, headers=headers).status_code == 202
    finally:
        logging.getLogger().handlers.clear()
    [line] = [json.loads(x) for x in stream.getvalue().splitlines() if "ingest_summary" in x]
    assert line["events"] == 4 and line["submissions"] == [
        {"source_id": "wp-contact", "channel": "web_form", "outcome": "accepted", "count": 4}
    ]
    assert "Mueller" not in stream.getvalue()


def test_signature_window_uses_the_clock() -> None:
    body = b"{}"
    headers = Headers(sign("k", body, timestamp=int(time.time()) - 10))
    assert signatures.problem("leadpipe", "k", body, headers.get, tolerance_s=300, now=time.time()) is None
    stale = Headers(sign("k", body, timestamp=int(time.time()) - 400))
    assert signatures.problem("leadpipe", "k", body, stale.get, tolerance_s=300, now=time.time()) == "stale_timestamp"
    bad = Headers({"X-Leadpipe-Timestamp": "abc", "X-Leadpipe-Signature": "sha256=1"})
    assert signatures.problem("leadpipe", "k", body, bad.get, tolerance_s=300, now=time.time()) == "bad_timestamp"


class SlowPublisher(RecordingPublisher):
    """Each send is confirmed after a broker round trip (20 ms, without blocking the loop); counts the sends."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def send(self, records):  # type: ignore[no-untyped-def]
        self.batches += 1
        future = asyncio.get_running_loop().create_future()

        def confirm() -> None:
            try:
                future.set_result(self.publish(records))
            except PublishError as exc:
                future.set_exception(exc)

        asyncio.get_running_loop().call_later(0.02, confirm)
        return future


def post_concurrently(app: object, count: int) -> list[Any]:
    """``count`` signed web-form posts of distinct people, all in flight at once."""
    import httpx

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            bodies = [f'{{"email": "person{i}@example.com"}}'.encode() for i in range(count)]
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/sources/wp-contact",
                        content=body,
                        headers={"content-type": "application/json", **sign(HMAC_SECRET, body)},
                    )
                    for body in bodies
                )
            )

    return asyncio.run(run())


@pytest.mark.parametrize("fail", [False, True])
def test_concurrent_requests_share_key_warm_up_and_confirmed_batches(
    runtime: Runtime, fail: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = SlowPublisher()
    publisher.fail = fail
    warmed: list[list[str]] = []
    warm_in = runtime.keystore.warm_in

    def counting_warm(conn: Connection, scopes: Iterable[str]) -> Warmed:
        warmed.append(list(scopes))
        return warm_in(conn, warmed[-1])

    monkeypatch.setattr(runtime.keystore, "warm_in", counting_warm)
    app = create_api(runtime, publisher)  # type: ignore[arg-type]

    responses = post_concurrently(app, 20)
    # group commit: requests that arrived while a batch was sealed share the next key warm-up (one database trip)
    assert len(warmed) < 20 and publisher.batches == 20
    assert sorted(s for scopes in warmed for s in scopes) == sorted({s for scopes in warmed for s in scopes})
    if fail:
        assert {r.status_code for r in responses} == {503}
        assert {r.json()["reason"] for r in responses} == {"broker_unavailable"}
        assert publisher.records == []
        return
    assert {r.status_code for r in responses} == {202}
    published = {str(r.value.event_id) for r in publisher.records}
    answered = {i for r in responses for i in r.json()["event_ids"]}
    assert published == answered and len(answered) == 20


def test_key_store_failure_is_503_for_every_request_of_the_batch(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(conn: object, scopes: object) -> Warmed:
        raise OperationalError("SELECT data_keys", {}, Exception("database is locked"))

    monkeypatch.setattr(runtime.keystore, "warm_in", unavailable)
    publisher = SlowPublisher()
    responses = post_concurrently(create_api(runtime, publisher), 6)  # type: ignore[arg-type]
    assert {r.status_code for r in responses} == {503}
    assert {r.json()["reason"] for r in responses} == {"key_store_unavailable"}
    assert {r.headers["retry-after"] for r in responses} == {"5"}
    assert publisher.records == [] and publisher.batches == 0


def test_next_batch_is_sealed_while_the_previous_one_waits_for_the_broker(runtime: Runtime) -> None:
    """Seals and broker round trips as time intervals: a seal overlaps a send still waiting for its confirmation
    (the sealer never waits for the broker), and the seals themselves run one after another."""
    import itertools
    import threading

    sends: list[tuple[float, float]] = []
    seals: list[tuple[float, float]] = []
    lock = threading.Lock()

    class TimelinePublisher(RecordingPublisher):
        def send(self, records):  # type: ignore[no-untyped-def]
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            start = time.perf_counter()

            def confirm() -> None:
                with lock:
                    sends.append((start, time.perf_counter()))
                future.set_result(self.publish(records))

            loop.call_later(0.05, confirm)
            return future

    publisher = TimelinePublisher()
    app = create_api(runtime, publisher)  # type: ignore[arg-type]
    service = app.state.ingest.service
    encode = service.encode

    def logged_seal(batch):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            time.sleep(0.01)
            return encode(batch)
        finally:
            with lock:
                seals.append((start, time.perf_counter()))

    service.encode = logged_seal
    app.state.ingest.group = GroupCommit(service, max_records=4)  # two requests per batch at most
    responses = post_concurrently(app, 30)
    assert {r.status_code for r in responses} == {202} and len(publisher.records) == 60
    ordered = sorted(seals)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(ordered))
    overlapped = sum(1 for s0, s1 in seals for p0, p1 in sends if s0 < p1 and p0 < s1)
    assert overlapped >= 1, (seals, sends)


def test_a_webhook_is_answered_before_any_of_fastapis_per_request_work(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path is the app's front door (``Api.front_doors``): a webhook post never reaches Starlette's
    ``__call__`` (behind FastAPI's per-request telemetry check), every other request does."""
    entered: list[str] = []
    starlette_call = Starlette.__call__

    async def counting(self: Starlette, scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope["path"])
        await starlette_call(self, scope, receive, send)

    monkeypatch.setattr(Starlette, "__call__", counting)
    body, content_type = payload("web_form", "cf7_contact_us.txt")
    assert post_signed(client, "wp-contact", body, content_type).status_code == 202
    assert client.post("/v1/sources/", content=body).status_code in (404, 405)  # no source id: not the fast path's
    assert client.get("/healthz").status_code == 200
    assert entered == ["/v1/sources/", "/healthz"]


def test_fast_path_answers_carry_the_security_headers(client: TestClient) -> None:
    """The webhook fast path sits outside the app's middleware stack: its 202 and its refusals must still carry the
    headers every other answer does (issue 15)."""
    body, content_type = payload("web_form", "cf7_contact_us.txt")
    answers = {
        "accepted": post_signed(client, "wp-contact", body, content_type),
        "unsigned": client.post("/v1/sources/wp-contact", content=body, headers={"content-type": content_type}),
        "bad type": client.post("/v1/sources/wp-contact", content=body, headers={"content-type": "image/png"}),
        "unknown": client.post("/v1/sources/nobody", content=body, headers={"content-type": content_type}),
    }
    assert answers["accepted"].status_code == 202, answers["accepted"].text
    assert all(a.status_code >= 400 for name, a in answers.items() if name != "accepted")
    for answer in answers.values():
        headers = answer.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["cache-control"] == "no-store"


def test_fast_path_answers_an_unexpected_exception_500_with_the_security_headers(
    runtime: Runtime, publisher: RecordingPublisher
) -> None:
    """The webhook fast path sits in front of the error middleware: a bug on it must still be a 500 (and raised on
    for the server to log), carrying the headers every answer does, never a connection dropped without an answer."""
    app = create_api(runtime, publisher)  # type: ignore[arg-type]
    body, content_type = payload("web_form", "cf7_contact_us.txt")

    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug")

    app.state.ingest.service.parse = broken
    client = TestClient(app, raise_server_exceptions=False)
    answer = post_signed(client, "wp-contact", body, content_type)
    assert answer.status_code == 500
    assert answer.text == "Internal Server Error"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    with pytest.raises(RuntimeError, match="a bug"):
        post_signed(TestClient(app), "wp-contact", body, content_type)
    assert publisher.records == []


def test_a_webhook_that_names_no_contact_by_its_nature_is_taken_without_events(
    client: TestClient, publisher: RecordingPublisher, runtime: Runtime
) -> None:
    """Intercom's ping of the endpoint (like a messenger's delivery receipts): 202 with no events and why, nothing
    published, nothing dead-lettered, no data key made, counted as ignored. A refusal made the sender retry it for
    days, and a dead letter per receipt buried the payloads someone has to look at."""
    body = b'{"type": "notification_event", "topic": "ping", "data": {"item": {"type": "ping", "message": "hi"}}}'
    headers = {"content-type": "application/json", "authorization": f"Bearer {BEARER}"}
    response = client.post("/v1/sources/drift", content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted", "event_ids": [], "replayed": False, "ignored": "webhook_check"}
    assert publisher.records == []
    with runtime.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM data_keys").scalar() == 0
    metrics = TestClient(client.app.state.admin).get("/metrics").text
    assert 'leadpipe_ingest_requests_total{channel="chatbot",outcome="ignored"} 1.0' in metrics
