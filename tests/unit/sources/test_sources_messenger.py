"""Messengers and phone: WhatsApp Cloud API, Telegram, Viber, Skype and PBX call logs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from source_payloads import ctx_for, payload

from pipeline.models.common import InteractionKind
from pipeline.sources import NothingToTake, SourceError, messenger


def parse(name: str):  # type: ignore[no-untyped-def]
    raw, content_type = payload("messenger", name)
    return messenger.parse(raw, ctx_for("messenger", raw, content_type))


def test_whatsapp_cloud_webhook() -> None:
    [event] = parse("whatsapp_cloud.json")
    assert event.person.phone == "+16315551181"
    assert event.person.messenger_handles == {"whatsapp": "+16315551181"}
    assert (event.person.first_name, event.person.last_name) == ("Kerry", "Fisher")
    assert event.interaction.kind is InteractionKind.MESSAGE
    assert [u.text for u in event.interaction.transcript] == [
        "Hi, I saw your ad. Do you build Shopify stores?",
        "[image]",
    ]
    assert event.occurred_at.isoformat() == "2024-06-05T13:43:20+00:00"


def test_whatsapp_status_only_webhook_says_it_names_no_contact() -> None:
    """Not an empty success (a silent drop) and no longer a refusal (Meta retries a refused webhook for days, and
    each became a dead letter): the reason the API answers, counts and logs."""
    with pytest.raises(NothingToTake) as taken:
        parse("whatsapp_status_only.json")
    assert taken.value.reason == "status_update"


def test_a_whatsapp_webhook_without_messages_or_statuses_is_still_refused() -> None:
    raw = b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"value": {}}]}]}'
    with pytest.raises(SourceError) as err:
        messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    assert err.value.reason == "no_contact"


def test_telegram_shared_contact() -> None:
    [event] = parse("telegram_contact.json")
    assert event.person.phone == "+79161234567"
    assert event.person.messenger_handles == {"telegram": "@ivan_petrov"}


def test_telegram_without_phone_explains_why() -> None:
    with pytest.raises(SourceError) as err:
        parse("telegram_no_phone.json")
    assert err.value.reason == "no_identity"
    assert "contact card" in err.value.message


def test_viber_contact_message() -> None:
    [event] = parse("viber_contact.json")
    assert event.person.phone == "+380501234567"
    assert event.person.messenger_handles == {"viber": "01234567890A="}


def test_skype_call_log() -> None:
    [event] = parse("skype_call_log.json")
    assert event.interaction.kind is InteractionKind.CALL
    assert event.interaction.call_duration_s == 1260
    assert event.interaction.recording_ref == "s3://recordings/2024/06/05/call-88231.ogg"
    assert event.person.skype_id == "live:.cid.3f2a9b8c7d6e5f40"
    assert event.person.email == "sofia.nowak@firma.example.pl"
    assert event.person.country_code == "PL"


def test_phone_call_batch() -> None:
    first, second = parse("phone_calls.json")
    assert first.person.phone == "+12125550142"  # national number, US from "New York, NY"
    assert first.interaction.call_duration_s == 95
    assert second.person.phone == "+442079460958"
    assert second.interaction.call_duration_s == 42
    assert first.event_id != second.event_id


def test_bad_duration_and_platform_are_named() -> None:
    raw = b'{"platform": "pager", "contact": {"phone": "+4930123456"}, "duration_s": -5}'
    with pytest.raises(SourceError) as err:
        messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    assert {p.field for p in err.value.problems} == {"platform", "duration_s"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (  # WhatsApp: the status of a message the business sent, nothing from a person
            {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp", "statuses": [{"id": "wamid.X", "status": "delivered",
                "timestamp": "1750030073", "recipient_id": "16505551234"}]}}]}]},
            "status_update",
        ),
        ({"event": "delivered", "timestamp": 1457764197627, "message_token": 1, "user_id": "01234567890A="}, "receipt"),
        ({"event": "seen", "timestamp": 1457764197627, "message_token": 1, "user_id": "01234567890A="}, "receipt"),
        ({"event": "webhook", "timestamp": 1457764197627, "message_token": 241256543215}, "receipt"),
    ],
)  # fmt: skip
def test_receipts_and_status_updates_name_no_contact(body: dict[str, Any], reason: str) -> None:
    raw = json.dumps(body).encode()
    with pytest.raises(NothingToTake) as taken:
        messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    assert taken.value.reason == reason


def test_twilio_sms_whatsapp_and_calls_as_twilio_posts_them() -> None:
    [sms] = parse("twilio_sms.txt")
    assert (sms.person.phone, sms.person.country_code) == ("+14155552671", "US")
    assert (sms.interaction.kind, sms.interaction.subject) == (InteractionKind.MESSAGE, "sms message")
    assert sms.interaction.message == "Hi, I'd like a quote for 20 seats"
    [whatsapp] = parse("twilio_whatsapp.txt")
    assert (whatsapp.person.first_name, whatsapp.person.last_name) == ("Ana", "García")
    assert whatsapp.person.phone == "+34600123456"  # "whatsapp:+34600123456"
    assert whatsapp.person.messenger_handles == {"whatsapp": "+34600123456"}
    assert whatsapp.interaction.subject == "whatsapp message"
    [call] = parse("twilio_call.txt")
    assert (call.interaction.kind, call.person.phone, call.person.country_code) == (
        InteractionKind.CALL,
        "+4930123456",
        "DE",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"SmsSid=SM3&SmsStatus=delivered&MessageStatus=delivered&To=%2B14155552671&MessageSid=SM3&From=%2B15005550006",
        b"CallSid=CA1&CallStatus=completed&Direction=inbound&From=%2B4930123456&CallDuration=42",
        b"CallSid=CA2&CallStatus=ringing&Direction=outbound-api&From=%2B15005550006&To=%2B4930123456",
    ],
)
def test_twilio_status_callbacks_and_our_own_calls_are_no_contact(body: bytes) -> None:
    with pytest.raises(NothingToTake) as taken:
        messenger.parse(body, ctx_for("messenger", body, "application/x-www-form-urlencoded"))
    assert taken.value.reason == "status_update"


def test_a_form_post_that_is_no_twilio_webhook_is_refused() -> None:
    body = b"name=Ana&phone=%2B34600123456"
    with pytest.raises(SourceError) as err:
        messenger.parse(body, ctx_for("messenger", body, "application/x-www-form-urlencoded"))
    assert err.value.reason == "unexpected_shape"


def test_a_call_log_exported_as_csv_row_by_row() -> None:
    """A phone system's or call tracker's export: the caller by number and name, the call's start, its duration as
    h:mm:ss or seconds, the recording and the notes; a national number read in the row's country."""
    raw = (
        b"Call Start,Caller Number,Caller Name,Duration,Recording URL,Notes,Country\n"
        b"2024-06-05 10:00:00,+49 30 1234567,Klaus Weber,00:03:12,https://rec.example/1.mp3,Wants a demo,DE\n"
        b"2024-06-05 11:00:00,030 7654321,,45,,,Germany\n"
    )
    first, second = messenger.parse(raw, ctx_for("messenger", raw, "text/csv"))
    assert (first.person.first_name, first.person.last_name, first.person.phone) == ("Klaus", "Weber", "+49301234567")
    assert (first.interaction.kind, first.interaction.call_duration_s) == (InteractionKind.CALL, 192.0)
    assert (first.interaction.recording_ref, first.interaction.message) == ("https://rec.example/1.mp3", "Wants a demo")
    assert first.occurred_at.isoformat() == "2024-06-05T10:00:00+00:00"
    assert (second.person.phone, second.interaction.call_duration_s) == ("+49307654321", 45.0)
    bad = b"Caller Number,Duration\n,12\n"
    with pytest.raises(SourceError) as err:
        messenger.parse(bad, ctx_for("messenger", bad, "text/csv"))
    assert err.value.reason == "no_identity"
