"""Vendors' webhook signatures (``pipeline.ingest.signatures``): each scheme as its vendor documents it, and a source
configured with one taking that vendor's webhooks through the API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any, get_args
from urllib.parse import parse_qsl, urlencode

import pytest
from fastapi.testclient import TestClient
from ingest_helpers import RecordingPublisher
from pydantic import ValidationError
from source_payloads import payload
from starlette.datastructures import Headers

from pipeline.api.app import create_api
from pipeline.config import Settings, SourceAuth
from pipeline.db import ensure_schema
from pipeline.ingest import signatures
from pipeline.ingest.signatures import Scheme
from pipeline.runtime import Runtime

BODY = b'{"object": "page"}'
SECRET = "vendor-secret"
NOW = 1_717_590_000


def _mac(message: bytes, digest: Any = hashlib.sha256) -> hmac.HMAC:
    return hmac.new(SECRET.encode(), message, digest)


#: Each scheme's headers computed here from the vendor's documentation, independently of ``signatures.sign``.
DOCUMENTED: dict[Scheme, Callable[[bytes], dict[str, str]]] = {
    "meta": lambda b: {"X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), b, hashlib.sha256).hexdigest()},
    "intercom": lambda b: {"X-Hub-Signature": "sha1=" + hmac.new(SECRET.encode(), b, hashlib.sha1).hexdigest()},
    "viber": lambda b: {"X-Viber-Content-Signature": hmac.new(SECRET.encode(), b, hashlib.sha256).hexdigest()},
    "typeform": lambda b: {
        "Typeform-Signature": "sha256="
        + base64.b64encode(hmac.new(SECRET.encode(), b, hashlib.sha256).digest()).decode()
    },
    "telegram": lambda _b: {"X-Telegram-Bot-Api-Secret-Token": SECRET},
    "webflow": lambda b: {
        "x-webflow-timestamp": str(NOW * 1000),
        "x-webflow-signature": _mac(f"{NOW * 1000}:".encode() + b).hexdigest(),
    },
    "leadpipe": lambda b: {
        "X-Leadpipe-Timestamp": str(NOW),
        "X-Leadpipe-Signature": "sha256="
        + hmac.new(SECRET.encode(), f"{NOW}.".encode() + b, hashlib.sha256).hexdigest(),
    },
    # developer.calendly.com/api-docs/overview/webhooks/webhook-signatures: t=<unix>,v1=<hex> of "<t>.<raw body>"
    "calendly": lambda b: {"Calendly-Webhook-Signature": f"t={NOW},v1=" + _mac(f"{NOW}.".encode() + b).hexdigest()},
    # developer.tawk.to/webhooks: hex HMAC-SHA1 of the raw body, keyed by the webhook's secret key
    "tawk": lambda b: {"X-Tawk-Signature": _mac(b, hashlib.sha1).hexdigest()},
    # tally.so/help/webhooks: base64 HMAC-SHA256 of the JSON payload as sent (JSON.stringify of what it posts)
    "tally": lambda b: {"Tally-Signature": base64.b64encode(_mac(b).digest()).decode()},
    # developers.zoom.us/docs/api/webhooks: "v0=" + hex HMAC-SHA256 of "v0:<x-zm-request-timestamp>:<raw body>"
    "zoom": lambda b: {
        "x-zm-request-timestamp": str(NOW),
        "x-zm-signature": "v0=" + _mac(f"v0:{NOW}:".encode() + b).hexdigest(),
    },
}


def check(scheme: Scheme, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> str | None:
    return signatures.problem(scheme, SECRET, body, Headers(headers).get, tolerance_s=300, now=now)


@pytest.mark.parametrize("scheme", list(DOCUMENTED))
def test_each_scheme_verifies_what_its_vendor_sends_and_nothing_else(scheme: Scheme) -> None:
    documented = DOCUMENTED[scheme](BODY)
    assert documented == signatures.sign(scheme, SECRET, BODY, NOW)
    assert check(scheme, documented) is None
    assert check(scheme, {k.upper(): v for k, v in documented.items()}) is None  # header names are case-insensitive
    assert check(scheme, {}) == "missing_signature"
    forged = {k: v for k, v in signatures.sign(scheme, "another-secret", BODY, NOW).items()}
    assert check(scheme, forged) == "bad_signature"
    if scheme != "telegram":  # Telegram's token signs nothing: any body passes with it
        assert check(scheme, documented, body=BODY + b" ") == "bad_signature"


@pytest.mark.parametrize("scheme", ["leadpipe", "webflow", "calendly"])
def test_a_signed_time_outside_the_tolerance_is_stale(scheme: Scheme) -> None:
    assert check(scheme, DOCUMENTED[scheme](BODY), now=NOW + 301) == "stale_timestamp"
    assert check(scheme, DOCUMENTED[scheme](BODY), now=NOW - 301) == "stale_timestamp"


def test_a_base64_signature_is_compared_as_sent() -> None:
    documented = DOCUMENTED["typeform"](BODY)["Typeform-Signature"]
    assert check("typeform", {"Typeform-Signature": documented.swapcase()}) == "bad_signature"
    tally = DOCUMENTED["tally"](BODY)["Tally-Signature"]
    assert check("tally", {"Tally-Signature": tally.swapcase()}) == "bad_signature"


def test_calendlys_header_carries_its_time_and_signature() -> None:
    v1 = _mac(f"{NOW}.".encode() + BODY).hexdigest()
    assert check("calendly", {"Calendly-Webhook-Signature": f"v1={v1},t={NOW}"}) is None  # order does not matter
    assert check("calendly", {"Calendly-Webhook-Signature": f"t={NOW}, v1={v1.upper()}"}) is None
    assert check("calendly", {"Calendly-Webhook-Signature": f"t={NOW}"}) == "missing_signature"
    assert check("calendly", {"Calendly-Webhook-Signature": f"v1={v1}"}) == "missing_signature"
    assert check("calendly", {"Calendly-Webhook-Signature": v1}) == "missing_signature"
    assert check("calendly", {"Calendly-Webhook-Signature": f"t=soon,v1={v1}"}) == "bad_timestamp"
    moved = _mac(f"{NOW + 1}.".encode() + BODY).hexdigest()  # signed for another time than the one it names
    assert check("calendly", {"Calendly-Webhook-Signature": f"t={NOW},v1={moved}"}) == "bad_signature"
    assert signatures.presented("calendly", Headers(DOCUMENTED["calendly"](BODY)).get) == signatures.Presented(
        v1, NOW, f"{NOW}.".encode()
    )
    assert signatures.header_names("calendly") == "Calendly-Webhook-Signature"


def test_a_vendor_scheme_needs_the_secret_it_signs_with() -> None:
    with pytest.raises(ValidationError, match="needs the secret"):
        SourceAuth.model_validate({"channel": "messenger", "signature": "meta", "bearer_token": "x"})


WHATSAPP = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "1",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551181"}],
                        "messages": [
                            {"from": "16315551181", "id": "wamid.X", "timestamp": "1717590000", "type": "text",
                             "text": {"body": "Hi, is the demo still on?"}}
                        ],
                    },
                }
            ],
        }
    ],
}  # fmt: skip


@pytest.fixture
def vendor_client(make_settings: Callable[..., Settings], publisher: RecordingPublisher) -> Any:
    sources = {
        "whatsapp": {"channel": "messenger", "signature": "meta", "hmac_secret": SECRET},
        "telegram": {"channel": "messenger", "signature": "telegram", "hmac_secret": SECRET},
    }
    runtime = Runtime(make_settings(sources=sources))
    ensure_schema(runtime.engine)
    return TestClient(create_api(runtime, publisher))  # type: ignore[arg-type]


def test_whatsapp_signed_by_meta_is_taken_and_its_retry_is_a_replay(
    vendor_client: TestClient, publisher: RecordingPublisher
) -> None:
    body = json.dumps(WHATSAPP).encode()
    headers = {"content-type": "application/json", **signatures.sign("meta", SECRET, body, int(time.time()))}
    first = vendor_client.post("/v1/sources/whatsapp", content=body, headers=headers)
    assert first.status_code == 202, first.text
    published = len(publisher.records)
    assert published == 2
    again = vendor_client.post("/v1/sources/whatsapp", content=body, headers=headers)  # Meta retries a slow answer
    assert again.status_code == 202 and again.json() == {**first.json(), "replayed": True}
    assert len(publisher.records) == published
    forged = vendor_client.post(
        "/v1/sources/whatsapp",
        content=body,
        headers={"content-type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert forged.status_code == 401
    assert forged.json()["reason"] == "bad_signature" and "X-Hub-Signature-256" in forged.json()["message"]
    unsigned = vendor_client.post("/v1/sources/whatsapp", content=body, headers={"content-type": "application/json"})
    assert (unsigned.status_code, unsigned.json()["reason"]) == (401, "missing_signature")


def test_telegram_with_its_secret_token(vendor_client: TestClient, publisher: RecordingPublisher) -> None:
    update = {
        "update_id": 1,
        "message": {
            "message_id": 5,
            "date": 1717590000,
            "from": {"id": 42, "first_name": "Ivan", "username": "ivan_p"},
            "chat": {"id": 42, "type": "private"},
            "contact": {"phone_number": "79161234567", "first_name": "Ivan", "user_id": 42},
        },
    }
    body = json.dumps(update).encode()
    ok = vendor_client.post(
        "/v1/sources/telegram",
        content=body,
        headers={"content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert ok.status_code == 202, ok.text
    wrong = vendor_client.post(
        "/v1/sources/telegram",
        content=body,
        headers={"content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "guess"},
    )
    assert (wrong.status_code, wrong.json()["reason"]) == (401, "bad_signature")


HUBSPOT_URL = "https://leads.example.com/v1/sources/hubspot?portal=62515"


def hubspot_documented(body: bytes, stamp_ms: int, signed_url: str = HUBSPOT_URL) -> dict[str, str]:
    """HubSpot's v3 signature as documented: base64 HMAC-SHA256 of method + URI + body + timestamp."""
    message = b"POST" + signed_url.encode() + body + str(stamp_ms).encode()
    return {
        "X-HubSpot-Request-Timestamp": str(stamp_ms),
        "X-HubSpot-Signature-v3": base64.b64encode(_mac(message).digest()).decode(),
    }


def test_hubspot_v3_signs_the_url_it_calls_the_body_and_the_time() -> None:
    documented = hubspot_documented(BODY, NOW * 1000)
    assert documented == signatures.sign("hubspot", SECRET, BODY, NOW, url=HUBSPOT_URL)

    def hubspot(headers: dict[str, str], body: bytes = BODY, url: str = HUBSPOT_URL, now: float = NOW) -> str | None:
        return signatures.problem("hubspot", SECRET, body, Headers(headers).get, tolerance_s=300, now=now, url=url)

    assert hubspot(documented) is None
    assert hubspot(documented, url=HUBSPOT_URL.replace("62515", "1")) == "bad_signature"  # another URL
    assert hubspot(documented, body=BODY + b" ") == "bad_signature"
    assert hubspot(documented, now=NOW + 301) == "stale_timestamp"  # HubSpot's own rule: five minutes
    assert hubspot({"X-HubSpot-Signature-v3": documented["X-HubSpot-Signature-v3"]}) == "missing_signature"
    with pytest.raises(ValidationError, match="public_url"):
        SourceAuth.model_validate({"channel": "web_form", "signature": "hubspot", "hmac_secret": SECRET})


def mailgun_documented(token: str, stamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    """Mailgun's fields as its documentation computes them: hex HMAC-SHA256 of timestamp + token."""
    signature = hmac.new(secret.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": str(stamp), "token": token, "signature": signature}


def test_mailgun_signs_a_timestamp_and_token_in_the_body_as_a_form_or_json() -> None:
    fields = mailgun_documented("a1b2c3d4e5")
    assert fields == signatures.mailgun_fields(SECRET, NOW, "a1b2c3d4e5")

    def mailgun(body: bytes, content_type: str, now: float = NOW) -> str | None:
        return signatures.problem(
            "mailgun", SECRET, body, Headers({}).get, tolerance_s=300, now=now, content_type=content_type
        )

    form = urlencode({"sender": "olivia@acme.example.com", **fields}).encode()
    assert mailgun(form, "application/x-www-form-urlencoded") is None
    assert mailgun(form, "application/x-www-form-urlencoded", now=NOW + 301) == "stale_timestamp"
    webhook = json.dumps({"signature": fields, "event-data": {"event": "delivered"}}).encode()
    assert mailgun(webhook, "application/json") is None
    forged = urlencode({"sender": "x@y.example", **mailgun_documented("a1b2c3d4e5", secret="guess")}).encode()
    assert mailgun(forged, "application/x-www-form-urlencoded") == "bad_signature"
    assert mailgun(b"sender=x%40y.example", "application/x-www-form-urlencoded") == "missing_signature"
    assert mailgun(b"{not json", "application/json") == "missing_signature"
    with pytest.raises(ValueError, match="body fields"):
        signatures.sign("mailgun", SECRET, form, NOW)


def test_hubspot_v3_signs_the_url_with_its_listed_escapes_decoded() -> None:
    """developers.hubspot.com/docs/api/webhooks/validating-requests, "Validate the v3 request signature": in the
    request URI, %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B are decoded before hashing; nothing else is."""
    configured = "https://leads.example.com/v1/sources/hubspot?next=https%3A%2F%2Fa.example%2Fp%3Fq%40x%21%24%27%28%29%2A%2C%3B&t=a%26b%3Dc%20d"
    decoded = "https://leads.example.com/v1/sources/hubspot?next=https://a.example/p?q@x!$'()*,;&t=a%26b%3Dc%20d"
    documented = hubspot_documented(BODY, NOW * 1000, signed_url=decoded)
    assert documented == signatures.sign("hubspot", SECRET, BODY, NOW, url=configured)

    def hubspot(url: str, headers: dict[str, str] = documented) -> str | None:
        return signatures.problem("hubspot", SECRET, BODY, Headers(headers).get, tolerance_s=300, now=NOW, url=url)

    assert hubspot(configured) is None
    assert hubspot(decoded) is None  # configured already decoded: the same URI is signed
    assert hubspot(configured, hubspot_documented(BODY, NOW * 1000, signed_url=configured)) == "bad_signature"
    everything = decoded.replace("a%26b%3Dc%20d", "a&b=c d")  # %26, %3D and %20 are not HubSpot's to decode
    assert hubspot(configured, hubspot_documented(BODY, NOW * 1000, signed_url=everything)) == "bad_signature"


@pytest.fixture
def mail_client(make_settings: Callable[..., Settings], publisher: RecordingPublisher) -> Any:
    sources = {
        "mailgun": {"channel": "email", "signature": "mailgun", "hmac_secret": SECRET},
        "postmark": {"channel": "email", "bearer_token": "postmark-token"},
        "hubspot": {"channel": "web_form", "signature": "hubspot", "hmac_secret": SECRET, "public_url": HUBSPOT_URL},
    }
    runtime = Runtime(make_settings(sources=sources))
    ensure_schema(runtime.engine)
    return TestClient(create_api(runtime, publisher))  # type: ignore[arg-type]


def test_a_mailgun_route_signed_in_its_body_is_taken_and_its_retry_is_a_replay(mail_client: TestClient) -> None:
    route = payload("email", "mailgun_route.txt")[0].split(b"&timestamp=")[0]  # the fixture's own fields replaced
    now = int(time.time())
    body = route + b"&" + urlencode(mailgun_documented("f00dfeed" * 6, now)).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    first = mail_client.post("/v1/sources/mailgun", content=body, headers=headers)
    assert first.status_code == 202, first.text
    again = mail_client.post("/v1/sources/mailgun", content=body, headers=headers)
    assert again.json() == {**first.json(), "replayed": True}
    unsigned = mail_client.post("/v1/sources/mailgun", content=route, headers=headers)
    assert (unsigned.status_code, unsigned.json()["reason"]) == (401, "missing_signature")
    assert "signature (a body field)" in unsigned.json()["message"]


def test_a_token_in_the_url_arrives_as_basic_auth_and_is_checked_as_the_password(mail_client: TestClient) -> None:
    """Postmark and SendGrid can only be given a URL: ``https://leadpipe:<token>@host/...`` sends HTTP Basic."""
    body, content_type = payload("email", "postmark_inbound.json")

    def post(authorization: str | None) -> Any:
        headers = {"content-type": content_type} | ({"authorization": authorization} if authorization else {})
        return mail_client.post("/v1/sources/postmark", content=body, headers=headers)

    def basic(credentials: bytes) -> str:
        return "Basic " + base64.b64encode(credentials).decode()

    assert post(basic(b"leadpipe:postmark-token")).status_code == 202
    assert post("Bearer postmark-token").status_code == 202
    for authorization, reason in [
        (basic(b"leadpipe:guess"), "bad_token"),
        (basic(b"postmark-token"), "missing_token"),  # the token as the user, no password
        ("Basic !!!not-base64", "bad_token"),
        ("Digest postmark-token", "missing_token"),
        (None, "missing_token"),
    ]:
        refused = post(authorization)
        assert (refused.status_code, refused.json()["reason"]) == (401, reason), authorization


def test_a_hubspot_workflow_webhook_signed_v3_is_taken(mail_client: TestClient) -> None:
    body = payload("web_form", "hubspot_workflow_contact.json")[0]
    stamp_ms = int(time.time()) * 1000
    headers = {"content-type": "application/json", **hubspot_documented(body, stamp_ms)}
    ok = mail_client.post("/v1/sources/hubspot", content=body, headers=headers)
    assert ok.status_code == 202, ok.text
    moved = {"content-type": "application/json", **hubspot_documented(body + b"\n", stamp_ms)}
    forged = mail_client.post("/v1/sources/hubspot", content=body, headers=moved)
    assert (forged.status_code, forged.json()["reason"]) == (401, "bad_signature")


TWILIO_URL = "https://leads.example.com/v1/sources/twilio"


def twilio_documented(form: dict[str, str], url: str = TWILIO_URL) -> dict[str, str]:
    """Twilio's signature as documented: base64 HMAC-SHA1 of the URL, then each parameter's name and value sorted."""
    signed = url + "".join(name + form[name] for name in sorted(form))
    return {"X-Twilio-Signature": base64.b64encode(_mac(signed.encode(), hashlib.sha1).digest()).decode()}


def test_twilio_signs_the_url_and_the_sorted_form_fields() -> None:
    form = {"From": "+14155552671", "Body": "Hi there", "MessageSid": "SM1", "AccountSid": "AC1", "NumMedia": "0"}
    body = urlencode(form).encode()
    documented = twilio_documented(form)
    assert documented == signatures.sign("twilio", SECRET, body, NOW, url=TWILIO_URL)

    def twilio(headers: dict[str, str], body: bytes = body, url: str = TWILIO_URL) -> str | None:
        kind = "application/x-www-form-urlencoded"
        return signatures.problem(
            "twilio", SECRET, body, Headers(headers).get, tolerance_s=300, now=NOW, url=url, content_type=kind
        )

    assert twilio(documented) is None
    assert twilio(documented, body=urlencode({**form, "Body": "Hi there!"}).encode()) == "bad_signature"
    assert twilio(documented, url=TWILIO_URL + "?x=1") == "bad_signature"
    assert twilio({}) == "missing_signature"
    json_body = signatures.problem(
        "twilio", SECRET, b"{}", Headers(documented).get, tolerance_s=300, now=NOW, url=TWILIO_URL
    )
    assert json_body == "bad_signature"  # only form posts are signed this way


def twilio_reference(pairs: list[tuple[str, str]], url: str = TWILIO_URL) -> str:
    """twilio-python's ``RequestValidator.compute_signature`` (twilio/request_validator.py): the URL, then for each
    distinct name in sorted order, each of its distinct values in sorted order."""
    names = sorted({name for name, _ in pairs})
    signed = url + "".join(name + value for name in names for value in sorted({v for n, v in pairs if n == name}))
    return base64.b64encode(_mac(signed.encode(), hashlib.sha1).digest()).decode()


def test_twilio_signs_a_repeated_fields_values_sorted_as_its_reference_validator_does() -> None:
    def twilio(body: bytes, signature: str) -> str | None:
        kind = "application/x-www-form-urlencoded"
        headers = Headers({"X-Twilio-Signature": signature})
        return signatures.problem(
            "twilio", SECRET, body, headers.get, tolerance_s=300, now=NOW, url=TWILIO_URL, content_type=kind
        )

    pairs = [("From", "+14155552671"), ("Tag", "zeta"), ("Body", "Hi"), ("Tag", "alpha")]
    body = urlencode(pairs).encode()
    assert twilio(body, twilio_reference(pairs)) is None
    assert signatures.sign("twilio", SECRET, body, NOW, url=TWILIO_URL) == {
        "X-Twilio-Signature": twilio_reference(pairs)
    }
    arrival = TWILIO_URL + "BodyHiFrom+14155552671TagzetaTagalpha"  # the values in arrival order: not Twilio's
    in_arrival_order = base64.b64encode(_mac(arrival.encode(), hashlib.sha1).digest()).decode()
    assert twilio(body, in_arrival_order) == "bad_signature"
    twice = [("Tag", "b"), ("Tag", "a"), ("Tag", "b")]  # a value repeated is signed once, as the reference does
    assert twilio(urlencode(twice).encode(), twilio_reference(twice)) is None


def test_an_sms_through_twilio_signed_for_the_public_url_is_taken(
    make_settings: Callable[..., Settings], publisher: RecordingPublisher
) -> None:
    sources = {
        "twilio": {"channel": "messenger", "signature": "twilio", "hmac_secret": SECRET, "public_url": TWILIO_URL}
    }
    runtime = Runtime(make_settings(sources=sources))
    ensure_schema(runtime.engine)
    client = TestClient(create_api(runtime, publisher))  # type: ignore[arg-type]
    body = payload("messenger", "twilio_sms.txt")[0]
    form = dict(parse_qsl(body.decode(), keep_blank_values=True))  # Twilio signs empty fields too
    headers = {"content-type": "application/x-www-form-urlencoded", **twilio_documented(form)}
    assert client.post("/v1/sources/twilio", content=body, headers=headers).status_code == 202
    again = client.post("/v1/sources/twilio", content=body, headers=headers)
    assert again.json()["replayed"] is True
    forged = client.post("/v1/sources/twilio", content=body + b"&x=1", headers=headers)
    assert (forged.status_code, forged.json()["reason"]) == (401, "bad_signature")
    with pytest.raises(ValidationError, match="public_url"):
        SourceAuth.model_validate({"channel": "messenger", "signature": "twilio", "hmac_secret": SECRET})


def test_wufoos_handshake_key_in_the_body(
    make_settings: Callable[..., Settings], publisher: RecordingPublisher
) -> None:
    sources = {"wufoo": {"channel": "web_form", "signature": "wufoo", "hmac_secret": "wufoo-secret"}}
    runtime = Runtime(make_settings(sources=sources))
    ensure_schema(runtime.engine)
    client = TestClient(create_api(runtime, publisher))  # type: ignore[arg-type]
    body = payload("web_form", "wufoo_contact.txt")[0]
    headers = {"content-type": "application/x-www-form-urlencoded"}
    assert client.post("/v1/sources/wufoo", content=body, headers=headers).status_code == 202
    wrong = client.post("/v1/sources/wufoo", content=body.replace(b"wufoo-secret", b"guess"), headers=headers)
    assert (wrong.status_code, wrong.json()["reason"]) == (401, "bad_signature")
    none = client.post("/v1/sources/wufoo", content=body.replace(b"HandshakeKey=wufoo-secret", b"x=1"), headers=headers)
    assert (none.status_code, none.json()["reason"]) == (401, "missing_signature")


@pytest.mark.parametrize(
    ("scheme", "channel", "fixture"),
    [
        ("calendly", "web_form", "calendly_invitee_created.json"),
        ("tawk", "chatbot", "tawk_chat_start.json"),
        ("tally", "web_form", "tally_contact.json"),
        ("zoom", "event", "zoom_webinar_registration_created.json"),
    ],
)
def test_a_vendor_signed_webhook_is_taken_and_its_retry_is_a_replay(
    scheme: Scheme,
    channel: str,
    fixture: str,
    make_settings: Callable[..., Settings],
    publisher: RecordingPublisher,
) -> None:
    """Calendly, tawk.to and Tally could send their payloads but not authenticate them (a Calendly post was refused
    ``missing_token``): each is now verified by its own signature."""
    sources = {scheme: {"channel": channel, "signature": scheme, "hmac_secret": SECRET}}
    runtime = Runtime(make_settings(sources=sources))
    ensure_schema(runtime.engine)
    client = TestClient(create_api(runtime, publisher))  # type: ignore[arg-type]
    body, content_type = payload(channel, fixture)
    headers = {"content-type": content_type, **signatures.sign(scheme, SECRET, body, int(time.time()))}
    first = client.post(f"/v1/sources/{scheme}", content=body, headers=headers)
    assert first.status_code == 202, first.text
    published = len(publisher.records)
    again = client.post(f"/v1/sources/{scheme}", content=body, headers=headers)  # the vendor's retry
    assert again.status_code == 202 and again.json() == {**first.json(), "replayed": True}
    assert len(publisher.records) == published
    forged = {"content-type": content_type, **signatures.sign(scheme, "guess", body, int(time.time()))}
    refused = client.post(f"/v1/sources/{scheme}", content=body, headers=forged)
    assert (refused.status_code, refused.json()["reason"]) == (401, "bad_signature")
    unsigned = client.post(f"/v1/sources/{scheme}", content=body, headers={"content-type": content_type})
    assert (unsigned.status_code, unsigned.json()["reason"]) == (401, "missing_signature")
    assert signatures.header_names(scheme) in unsigned.json()["message"]
    if scheme in ("calendly", "zoom"):
        stale = {"content-type": content_type, **signatures.sign(scheme, SECRET, body, int(time.time()) - 301)}
        late = client.post(f"/v1/sources/{scheme}", content=body, headers=stale)
        assert (late.status_code, late.json()["reason"]) == (401, "stale_timestamp")


def test_the_settings_offer_exactly_the_schemes_there_are() -> None:
    """``SourceAuth.signature`` (settings, outside the pure core) repeats ``signatures.Scheme``: the two lists must
    never drift (a scheme configurable but not verifiable, or verifiable but refused by the settings)."""

    assert get_args(SourceAuth.model_fields["signature"].annotation) == get_args(signatures.Scheme)


def test_zoom_enables_the_endpoint_only_when_its_url_validation_is_answered(
    make_settings: Callable[..., Settings], publisher: RecordingPublisher
) -> None:
    """Zoom posts ``endpoint.url_validation`` before it sends a webinar's registrations (and every 72 hours after)
    and enables the URL only when the answer is the token with its hex HMAC-SHA256 under the app's secret token; it
    was answered 202 "ignored", so a Zoom webhook could never be switched on. Signed like every Zoom request."""
    sources = {"zoom": {"channel": "event", "signature": "zoom", "hmac_secret": SECRET}}
    runtime = Runtime(make_settings(sources=sources))
    ensure_schema(runtime.engine)
    client = TestClient(create_api(runtime, publisher))  # type: ignore[arg-type]
    body, content_type = payload("event", "zoom_endpoint_url_validation.json")
    headers = {"content-type": content_type, **signatures.sign("zoom", SECRET, body, int(time.time()))}
    answered = client.post("/v1/sources/zoom", content=body, headers=headers)
    token = json.loads(body)["payload"]["plainToken"]
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"plainToken": token, "encryptedToken": _mac(token.encode()).hexdigest()}
    assert publisher.records == []  # nothing taken in
    forged = {"content-type": content_type, **signatures.sign("zoom", "guess", body, int(time.time()))}
    refused = client.post("/v1/sources/zoom", content=body, headers=forged)
    assert (refused.status_code, refused.json()["reason"]) == (401, "bad_signature")  # no token for a stranger
