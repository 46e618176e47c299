"""Phones that cannot exist (issue 17): every channel that reads a phone validates it with libphonenumber.

A contact with a valid e-mail keeps everything but the number, and the event says so (note ``phone_invalid``); a
contact whose only identity is such a number is rejected ``invalid_phone`` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from source_payloads import ctx_for

from pipeline import normalize
from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.sources import ADAPTERS, SourceError
from pipeline.sources.base import PHONE_INVALID

# The examples: possible lengths, numbers no numbering plan has (libphonenumber: not valid).
INVALID = [("12", "DE"), ("555-0000", "US"), ("+1 (123) 456-7890", None), ("+44 20 1234", None)]
EMAIL = "ana.garcia@example.com"
BAD_PHONE = "+1 (123) 456-7890"


@pytest.mark.parametrize(("number", "region"), INVALID)
def test_numbers_that_cannot_exist_are_refused(number: str, region: str | None) -> None:
    with pytest.raises(normalize.NormalizationError) as err:
        normalize.canonical_phone(number, region, require_valid=True)
    assert err.value.reason == "invalid_phone"
    assert number not in str(err.value)
    # looking a subject up stays lenient: a number stored before this rule can still be found and erased
    assert normalize.canonical_phone(number, region).startswith("+")


@pytest.mark.parametrize(
    ("number", "region", "e164"),
    [
        ("030 1234567", "DE", "+49301234567"),
        ("+1 415 555 0100", None, "+14155550100"),
        ("07400 123456", "GB", "+447400123456"),
        ("03-1234-5678", "JP", "+81312345678"),
        ("0049 30 1234567", None, "+49301234567"),  # 00, the international prefix, where no country is known
        ("00 33 1 23 45 67 89", None, "+33123456789"),
    ],
)
def test_real_numbers_pass(number: str, region: str | None, e164: str) -> None:
    assert normalize.canonical_phone(number, region, require_valid=True) == e164


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _csv(header: str, row: str) -> bytes:
    return f"{header}\n{row}\n".encode()


# channel, content type, payload builder (email or None, phone), the field path of the phone
CASES: list[tuple[Channel, str, Callable[[str | None, str], bytes], str]] = [
    (
        Channel.WEB_FORM,
        "application/x-www-form-urlencoded",
        lambda email, phone: f"your-email={email or ''}&your-tel={phone.replace('+', '%2B')}".encode(),
        "phone",
    ),
    (
        Channel.WEB_FORM,
        "application/json",
        lambda email, phone: _json({"fields": [{"name": "email", "value": email}, {"name": "phone", "value": phone}]}),
        "phone",
    ),
    (
        Channel.CHATBOT,
        "application/json",
        lambda email, phone: _json({"data": {"contact": {"attributes": {"email": email, "phone": phone}}}}),
        "data.contact.attributes.phone",
    ),
    (
        Channel.MESSENGER,
        "application/json",
        lambda email, phone: _json({"platform": "phone", "type": "call", "contact": {"email": email, "phone": phone}}),
        "contact.phone",
    ),
    (
        Channel.EVENT,
        "application/json",
        lambda email, phone: _json(
            {"profile": {"email": email, "cell_phone": phone}, "event": {"start": {"utc": "2024-05-14T09:00:00Z"}}}
        ),
        "profile.phone",
    ),
    (
        Channel.EVENT,
        "text/csv",
        lambda email, phone: _csv("Name,E-Mail,Phone,Event Date", f"Ana Garcia,{email or ''},{phone},2024-05-14"),
        "row 2.phone",
    ),
    (
        Channel.CUSTOMER,
        "text/csv",
        lambda email, phone: _csv(
            "Email;Phone;Last Service Delivery", f"{email or ''};{phone};2024-03-31"
        ),  # a ';' CSV: the number's commas stay in one cell
        "row 2.phone",
    ),
    (
        Channel.CUSTOMER,
        "application/jsonl",
        lambda email, phone: _json({"email": email, "phone": phone, "last_service_delivery": "2024-03-31"}),
        "line 1.phone",
    ),
    (
        Channel.WEBSITE,
        "application/json",
        lambda email, phone: _json({"type": "identify", "traits": {"email": email, "phone": phone}}),
        "traits.phone",
    ),
]


def _parse(channel: Channel, content_type: str, raw: bytes) -> list[ContactEvent]:
    return ADAPTERS[channel](raw, ctx_for(channel, raw, content_type))


@pytest.mark.parametrize(("channel", "content_type", "build", "field"), CASES)
def test_valid_email_keeps_the_contact_without_the_phone(
    channel: Channel, content_type: str, build: Callable[[str | None, str], bytes], field: str
) -> None:
    [event] = _parse(channel, content_type, build(EMAIL, BAD_PHONE))
    assert event.person.email == EMAIL and event.person.phone is None
    assert event.provenance.notes == (PHONE_INVALID,)
    assert event.subject_key == normalize.subject_key(b"unit-test-pepper", email=EMAIL)


@pytest.mark.parametrize(("channel", "content_type", "build", "field"), CASES)
def test_an_invalid_phone_as_the_only_identity_is_rejected(
    channel: Channel, content_type: str, build: Callable[[str | None, str], bytes], field: str
) -> None:
    with pytest.raises(SourceError) as err:
        _parse(channel, content_type, build(None, BAD_PHONE))
    assert (err.value.reason, err.value.field) == ("invalid_phone", field)
    assert "456" not in err.value.explain()  # names the field, never quotes the value


@pytest.mark.parametrize(("channel", "content_type", "build", "field"), CASES)
def test_a_valid_phone_is_kept_without_a_note(
    channel: Channel, content_type: str, build: Callable[[str | None, str], bytes], field: str
) -> None:
    [event] = _parse(channel, content_type, build(EMAIL, "+49 30 1234567"))
    assert event.person.phone == "+49301234567" and event.provenance.notes == ()


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("whatsapp", {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
            "contacts": [{"wa_id": "11234567890", "profile": {"name": "X"}}],
            "messages": [{"from": "11234567890", "type": "text", "text": {"body": "hi"}}]}}]}]}, "entry[0].phone"),
        ("telegram", {"update_id": 1, "message": {"from": {"id": 7, "username": "x"}, "date": 1717596000,
                      "contact": {"phone_number": "4912", "user_id": 7}, "text": "hi"}}, "message.contact.phone"),
        ("viber", {"event": "message", "sender": {"id": "a=", "name": "X"},
                   "message": {"type": "contact", "contact": {"phone_number": "+380 12"}}}, "message.contact.phone"),
    ],
)  # fmt: skip
def test_messenger_numbers_that_cannot_exist_are_rejected(name: str, payload: dict[str, Any], field: str) -> None:
    with pytest.raises(SourceError) as err:
        _parse(Channel.MESSENGER, "application/json", _json(payload))
    assert (err.value.reason, err.value.field) == ("invalid_phone", field), name


def test_an_invalid_email_and_an_invalid_phone_are_both_named() -> None:
    with pytest.raises(SourceError) as err:
        _parse(Channel.WEB_FORM, "application/json", _json({"email": "nope@@example", "phone": BAD_PHONE}))
    assert [(p.reason, p.field) for p in err.value.problems] == [("invalid_email", "email"), ("invalid_phone", "phone")]
