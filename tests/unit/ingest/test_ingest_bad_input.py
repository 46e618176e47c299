"""Real-world bad input at the webhook route: every refusal is specific (a reason a machine reads, a message that
names what to fix without quoting the payload), in the API's shape, and never a 500."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from ingest_helpers import HMAC_SECRET, RecordingPublisher
from starlette.datastructures import Headers

from pipeline.ingest import signatures
from pipeline.ingest.api import sign
from pipeline.models.records import DeadLetter

BODY = b'{"email": "ana@example.com", "name": "Ana"}'
JSON = {"content-type": "application/json"}


def _refused(response: object, status: int, reason: str) -> dict[str, str]:
    answer = response.json()  # type: ignore[attr-defined]
    assert (response.status_code, answer["status"], answer["reason"]) == (status, "refused", reason), answer  # type: ignore[attr-defined]
    return answer  # type: ignore[no-any-return]


@pytest.mark.parametrize("stamp", ["9" * 400, "9" * 5000, "1_700_000_000", "+1700000000", "٣", "1e9", "-5", ""])
def test_a_timestamp_that_is_no_unix_time_is_refused_bad_timestamp_never_a_500(
    client: TestClient, publisher: RecordingPublisher, stamp: str
) -> None:
    headers = {**JSON, "X-Leadpipe-Timestamp": stamp, "X-Leadpipe-Signature": "sha256=00"}
    response = client.post("/v1/sources/wp-contact", content=BODY, headers={k: v.encode() for k, v in headers.items()})
    if not stamp:
        _refused(response, 401, "missing_signature")
        return
    answer = _refused(response, 401, "bad_timestamp")
    assert "X-Leadpipe-Timestamp is not a Unix time" in answer["message"]
    assert publisher.records == []


def test_the_time_checks_never_overflow() -> None:
    for stamp in ("9" * 400, str(2**70)):
        found = Headers({"X-Leadpipe-Timestamp": stamp, "X-Leadpipe-Signature": "sha256=00"})
        assert signatures.problem("leadpipe", "k", b"", found.get, tolerance_s=300, now=time.time()) == "bad_timestamp"
    for stamp in ("²", "9" * 5000, str(2**70)):  # "²".isdigit() and int() of 5,000 digits raises
        mailgun = b'{"signature": {"timestamp": "%s", "token": "t", "signature": "00"}}' % stamp.encode()
        assert signatures.presented("mailgun", Headers({}).get, mailgun, "application/json") == "bad_timestamp"


def test_a_timestamp_in_milliseconds_or_from_the_future_is_named_as_such(client: TestClient) -> None:
    now = int(time.time())
    in_ms = client.post("/v1/sources/wp-contact", content=BODY, headers={**JSON, **sign(HMAC_SECRET, BODY, now * 1000)})
    assert "in milliseconds" in _refused(in_ms, 401, "timestamp_in_milliseconds")["message"]
    ahead = client.post("/v1/sources/wp-contact", content=BODY, headers={**JSON, **sign(HMAC_SECRET, BODY, now + 3600)})
    assert "ahead of the server's clock" in _refused(ahead, 401, "stale_timestamp")["message"]
    late = client.post("/v1/sources/wp-contact", content=BODY, headers={**JSON, **sign(HMAC_SECRET, BODY, now - 3600)})
    _refused(late, 401, "stale_timestamp")


def test_two_different_signature_headers_are_refused_whichever_comes_first(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    signed = sign(HMAC_SECRET, BODY)
    stamp = ("X-Leadpipe-Timestamp", signed["X-Leadpipe-Timestamp"])
    good, bad = ("X-Leadpipe-Signature", signed["X-Leadpipe-Signature"]), ("X-Leadpipe-Signature", "sha256=00")
    for pair in ((good, bad), (bad, good)):
        response = client.post(
            "/v1/sources/wp-contact", content=BODY, headers=[("content-type", "application/json"), stamp, *pair]
        )
        assert "sent more than once" in _refused(response, 401, "repeated_signature_header")["message"]
    assert publisher.records == []
    same = client.post(
        "/v1/sources/wp-contact", content=BODY, headers=[("content-type", "application/json"), stamp, good, good]
    )
    assert same.status_code == 202  # the same value twice (a proxy that copies headers) is one signature


def test_signature_hex_in_uppercase_or_with_spaces_is_accepted(client: TestClient) -> None:
    signed = sign(HMAC_SECRET, BODY)
    signed["X-Leadpipe-Signature"] = " sha256=" + signed["X-Leadpipe-Signature"][7:].upper() + " "
    assert client.post("/v1/sources/wp-contact", content=BODY, headers={**JSON, **signed}).status_code == 202


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "TRACE"])
def test_another_method_on_a_source_is_405_in_the_apis_shape_with_allow(client: TestClient, method: str) -> None:
    for source in ("wp-contact", "nope"):
        response = client.request(method, f"/v1/sources/{source}", content=BODY)
        assert method in _refused(response, 405, "method_not_allowed")["message"]
        assert response.headers["allow"] == "POST, GET, HEAD, OPTIONS"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_options_answers_the_methods_without_cors(client: TestClient) -> None:
    response = client.options(
        "/v1/sources/wp-contact", headers={"Origin": "https://site.example", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 204 and response.headers["allow"] == "POST, GET, HEAD, OPTIONS"
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("path", ["/v1/sources/..%2Fwp-contact", "/v1/sources/a/b", "/v1/sources/%C3%A9t%C3%A9"])
def test_a_path_naming_no_source_is_404_unknown_source(client: TestClient, path: str) -> None:
    _refused(client.post(path, content=BODY, headers=JSON), 404, "unknown_source")


def test_a_missing_or_unreadable_content_type_is_named_as_such(client: TestClient) -> None:
    missing = client.post("/v1/sources/wp-contact", content=BODY, headers=sign(HMAC_SECRET, BODY))
    assert "no Content-Type" in _refused(missing, 415, "missing_content_type")["message"]
    garbage = client.post("/v1/sources/wp-contact", content=BODY, headers={"content-type": ";;;"})
    message = _refused(garbage, 415, "unsupported_content_type")["message"]
    assert "not a media type" in message and "text/plain" not in message


@pytest.mark.parametrize(
    ("body", "content_type", "first_name"),
    [
        ('{"email": "ana@example.com", "name": "José"}'.encode("utf-16"), "application/json", "José"),
        ('{"email": "ana@example.com", "name": "José"}'.encode("latin-1"), "application/json; charset=latin-1", "José"),
    ],
)
def test_json_in_the_encoding_it_says_is_accepted(
    client: TestClient, publisher: RecordingPublisher, body: bytes, content_type: str, first_name: str
) -> None:
    response = client.post(
        "/v1/sources/wp-contact", content=body, headers={"content-type": content_type, **sign(HMAC_SECRET, body)}
    )
    assert response.status_code == 202, response.json()


def test_json_not_in_utf8_is_400_bad_encoding_and_dead_lettered(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = '{"email": "ana@example.com", "name": "José"}'.encode("latin-1")
    response = client.post("/v1/sources/wp-contact", content=body, headers={**JSON, **sign(HMAC_SECRET, body)})
    answer = response.json()
    assert (response.status_code, answer["reason"]) == (400, "bad_encoding"), answer
    assert "José".encode("latin-1").decode("latin-1") not in answer["message"]
    [dead] = publisher.records
    assert isinstance(dead.value, DeadLetter) and dead.value.reason == "bad_encoding"
    assert str(dead.value.dead_letter_id) == answer["dead_letter_id"] and dead.value.payload is not None


def test_a_multipart_post_cut_short_is_400_malformed_form_and_dead_lettered(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\nana@example.com\r\n--x\r\nContent-Dispo'
    headers = {"content-type": "multipart/form-data; boundary=x", **sign(HMAC_SECRET, body)}
    response = client.post("/v1/sources/wp-contact", content=body, headers=headers)
    assert (response.status_code, response.json()["reason"]) == (400, "malformed_form")
    assert [type(r.value) for r in publisher.records] == [DeadLetter]


def test_json_nested_a_thousand_levels_is_400_malformed_json_not_a_500(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = b'{"email": "ana@example.com", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"  # orjson reads 1,024 levels
    response = client.post("/v1/sources/wp-contact", content=body, headers={**JSON, **sign(HMAC_SECRET, body)})
    assert (response.status_code, response.json()["reason"]) == (400, "malformed_json"), response.json()
    assert [type(r.value) for r in publisher.records] == [DeadLetter]


def test_duplicate_keys_with_different_values_are_400_duplicate_key_and_dead_lettered(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = b'{"email": "ana@example.com", "email": "bob@example.com"}'
    response = client.post("/v1/sources/wp-contact", content=body, headers={**JSON, **sign(HMAC_SECRET, body)})
    assert (response.status_code, response.json()["reason"]) == (400, "duplicate_key"), response.json()
    assert "example.com" not in response.text
    [dead] = publisher.records
    assert isinstance(dead.value, DeadLetter) and dead.value.reason == "duplicate_key"


async def _asgi_post(app: object, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    """A request exactly as given (no Content-Length added, as HTTP/1.0 clients send a body they do not frame)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.0", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080),
    }  # fmt: skip
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:])  # type: ignore[arg-type, misc]


def test_a_body_without_content_length_is_411_not_a_bad_signature(client: TestClient) -> None:
    import asyncio

    signed = [(k.lower().encode(), v.encode()) for k, v in sign(HMAC_SECRET, BODY).items()]
    status, answer = asyncio.run(
        _asgi_post(client.app, "/v1/sources/wp-contact", [(b"content-type", b"application/json"), *signed], b"")
    )
    assert status == 411 and b'"length_required"' in answer


def test_every_request_to_a_source_is_counted_once_by_outcome(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    import gzip

    def signed(body: bytes, **extra: str) -> dict[str, str]:
        return {**JSON, **sign(HMAC_SECRET, body), **extra}

    big = b'{"email": "ana@example.com", "m": "' + b"x" * 70_000 + b'"}'
    bomb = gzip.compress(b'{"email": "ana@example.com", "m": "' + b"x" * 200_000 + b'"}')
    requests = [
        (BODY, signed(BODY)),  # accepted
        (BODY, signed(BODY)),  # replayed
        (b'{"email": 5}', signed(b'{"email": 5}')),  # rejected
        (BODY, {**JSON, "X-Leadpipe-Timestamp": "1", "X-Leadpipe-Signature": "sha256=00"}),  # refused: stale
        (big, signed(big)),  # refused: too large (Content-Length)
        (bomb, signed(bomb, **{"content-encoding": "gzip"})),  # refused: inflates past the limit
        (b"x", signed(b"x", **{"content-encoding": "gzip"})),  # refused: not gzip
        (BODY, {"content-type": "text/plain"}),  # refused: type
    ]
    for body, headers in requests:
        assert client.post("/v1/sources/wp-contact", content=body, headers=headers).status_code != 500
    assert client.post("/v1/sources/broken", content=BODY, headers=JSON).status_code == 401  # no credentials
    streamed = client.post("/v1/sources/wp-contact", content=iter([big]), headers=signed(big))  # chunked: read
    assert streamed.status_code == 413
    metrics = TestClient(client.app.state.admin).get("/metrics").text
    counted = {
        line.split('outcome="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("leadpipe_ingest_requests_total{") and 'channel="web_form"' in line
    }
    assert counted == {"accepted": 1, "replayed": 1, "rejected": 1, "refused": 6}, counted
    assert (
        sum(
            1
            for line in metrics.splitlines()
            if 'channel="website",outcome="refused"' in line and line.endswith(" 1.0")
        )
        == 1
    )


def test_identity_listed_with_gzip_is_gzip_two_codings_or_brotli_are_415(client: TestClient) -> None:
    import gzip

    for encoding in ("identity, gzip", "gzip, identity", " GZIP "):
        body = b'{"email": "ana@example.com", "note": "%s"}' % encoding.encode()
        headers = {**JSON, **sign(HMAC_SECRET, body), "content-encoding": encoding}
        assert client.post("/v1/sources/wp-contact", content=gzip.compress(body), headers=headers).status_code == 202
    for encoding in ("br", "gzip, gzip", "gzip, br"):
        response = client.post("/v1/sources/wp-contact", content=BODY, headers={**JSON, "content-encoding": encoding})
        assert repr(encoding) in _refused(response, 415, "unsupported_content_encoding")["message"]
