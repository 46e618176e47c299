"""Messengers and phone: WhatsApp Cloud API, Telegram, Viber, Skype and PBX call logs."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

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


@pytest.mark.parametrize("caller", [b"anonymous", b"Restricted", b"%2B266696687"])
def test_a_call_from_a_withheld_number_is_no_contact_not_a_dead_letter(caller: bytes) -> None:
    """Twilio posts a withheld caller as "anonymous" (or +266696687): it was dead-lettered invalid_phone."""
    body = b"CallSid=CA9&CallStatus=ringing&Direction=inbound&From=" + caller + b"&To=%2B4930123456"
    with pytest.raises(NothingToTake) as taken:
        messenger.parse(body, ctx_for("messenger", body, "application/x-www-form-urlencoded"))
    assert taken.value.reason == "withheld_number"


def test_a_form_post_that_is_no_twilio_webhook_is_refused() -> None:
    body = b"name=Ana&phone=%2B34600123456"
    with pytest.raises(SourceError) as err:
        messenger.parse(body, ctx_for("messenger", body, "application/x-www-form-urlencoded"))
    assert err.value.reason == "unexpected_shape"


def test_a_call_log_with_its_date_and_time_in_two_columns_keeps_the_time() -> None:
    """Phone systems export "Date" and "Time" apart: every call was dated midnight."""
    raw = b"Date,Time,Caller Number,Duration\n2024-06-05,14:25,+49 30 1234567,30\n"
    [event] = messenger.parse(raw, ctx_for("messenger", raw, "text/csv"))
    assert event.occurred_at.isoformat() == "2024-06-05T14:25:00+00:00"


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


def _one(body: dict[str, Any]):  # type: ignore[no-untyped-def]
    raw = json.dumps(body).encode()
    [event] = messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    return event


def _ignored(raw: bytes, content_type: str = "application/json") -> str:
    with pytest.raises(NothingToTake) as taken:
        messenger.parse(raw, ctx_for("messenger", raw, content_type))
    return taken.value.reason


def _whatsapp(*messages: dict[str, Any], **value: Any) -> dict[str, Any]:
    said = [{"from": "5511912345678", "id": "wamid.x", "timestamp": "1717590000", **m} for m in messages]
    contacts = [{"profile": {"name": "Ana"}, "wa_id": "5511912345678"}]
    body = {"messaging_product": "whatsapp", "contacts": contacts, "messages": said, **value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": body}]}],
    }


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "d",
                                                                                         "title": "Book a demo"}}},
         "Book a demo"),
        ({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "p", "title": "Plano Pro",
                                                                                     "description": "R$ 99"}}},
         "Plano Pro"),
        ({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent",
                                                                                   "response_json": json.dumps(
            {"flow_token": "t", "company": "Acme", "seats": 20})}}},
         "company: Acme\nseats: 20"),
        ({"type": "image", "image": {"caption": "这是我们的需求", "id": "i"}}, "这是我们的需求"),
        ({"type": "document", "document": {"caption": "Our RFP", "filename": "rfp.pdf", "id": "d"}}, "Our RFP"),
        ({"type": "order", "order": {"catalog_id": "c", "text": "Bu ürünleri istiyorum", "product_items": []}},
         "Bu ürünleri istiyorum"),
        ({"type": "audio", "audio": {"id": "a"}}, "[audio]"),
    ],
)  # fmt: skip
def test_whatsapp_messages_read_by_the_person_s_words(message: dict[str, Any], text: str) -> None:
    """A button or list choice, a Flow's answers, a caption and an order's note came out as "[interactive]",
    "[image]", "[order]": the person's words were lost."""
    assert _one(_whatsapp(message)).interaction.message == text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_whatsapp({"type": "reaction", "reaction": {"message_id": "wamid.o", "emoji": "👍"}}), "reaction"),
        (_whatsapp({"type": "system", "system": {"body": "changed number", "type": "user_changed_number"}}),
         "system_notice"),
        ({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "smb_message_echoes",
            "value": {"message_echoes": [{"from": "15550783881", "to": "4915123456789", "type": "text",
                                          "text": {"body": "Thanks"}}]}}]}]},
         "echo"),
        ({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "message_template_status_update", "value": {"event": "APPROVED", "message_template_id": 1}}]}]},
         "account_update"),
        ({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "errors": [{"code": 131000, "title": "Something went wrong"}]}}]}]},
         "account_update"),
        ({"update_id": 5, "my_chat_member": {"chat": {"id": 1}, "from": {"id": 1}, "date": 1717590000}}, "chat_member"),
        ({"update_id": 6, "callback_query": {"id": "q", "from": {"id": 1, "first_name": "O"}, "data": "demo",
                                             "message": {"message_id": 2, "from": {"id": 7, "is_bot": True},
                                                         "date": 1717590000, "text": "Choose:"}}},
         "button_press"),
        ({"update_id": 7, "channel_post": {"message_id": 3, "chat": {"id": -1, "type": "channel"},
                                           "date": 1717590000, "text": "Our news"}},
         "channel_post"),
        ({"event": "subscribed", "timestamp": 1717590000123, "user": {"id": "a=", "name": "I"}, "message_token": 1},
         "subscription"),
        ({"event": "unsubscribed", "timestamp": 1717590000123, "user_id": "a=", "message_token": 1}, "subscription"),
        ({"event": "conversation_started", "timestamp": 1717590000123, "message_token": 1, "type": "open",
          "user": {"id": "a=", "name": "I"}, "subscribed": False},
         "conversation_started"),
    ],
)  # fmt: skip
def test_messenger_notices_that_name_no_person_are_ignored_not_dead_lettered(body: dict[str, Any], reason: str) -> None:
    assert _ignored(json.dumps(body).encode()) == reason


def test_a_whatsapp_reaction_beside_a_message_leaves_the_message() -> None:
    event = _one(_whatsapp({"type": "reaction", "reaction": {"emoji": "👍"}}, {"type": "text", "text": {"body": "Hi"}}))
    assert [t.text for t in event.interaction.transcript] == ["Hi"]


def test_a_telegram_card_of_someone_else_does_not_name_the_person() -> None:
    """A forwarded contact card (no ``user_id`` of the sender) became the lead, with the sender's handle."""
    sender = {"id": 123, "first_name": "Oleg", "username": "oleg_k"}
    card = {"phone_number": "+48601234567", "first_name": "Marek", "last_name": "Nowak"}
    for shared in (card, {**card, "user_id": 999}):
        raw = json.dumps({"update_id": 1, "message": {"from": sender, "date": 1717590060, "contact": shared}}).encode()
        with pytest.raises(SourceError) as err:
            messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
        assert err.value.reason == "no_identity"
    own = _one({"update_id": 1, "message": {"from": sender, "date": 1717590060, "contact": {**card, "user_id": 123}}})
    assert (own.person.first_name, own.person.phone) == ("Marek", "+48601234567")


def test_a_message_that_is_only_a_contact_card_keeps_its_time() -> None:
    """Telegram's ``date`` and Viber's ``timestamp`` of a card without words: the receipt time before."""
    telegram = _one(
        {
            "update_id": 1,
            "message": {
                "from": {"id": 1},
                "date": 1717590060,
                "contact": {"phone_number": "380501234567", "user_id": 1},
            },
        }
    )
    viber = _one(
        {
            "event": "message",
            "timestamp": 1717590060000,
            "message_token": 1,
            "sender": {"id": "a="},
            "message": {"type": "contact", "contact": {"name": "I", "phone_number": "+380671234567"}},
        }
    )
    assert telegram.occurred_at.isoformat() == viber.occurred_at.isoformat() == "2024-06-05T12:21:00+00:00"


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"Body": "STOP", "OptOutType": "STOP"}, "opt_out"),
        ({"Body": "Stop"}, "opt_out"),
        ({"Body": "unsubscribe "}, "opt_out"),
        ({"Body": "START", "OptOutType": "START"}, "sms_keyword"),
        ({"Body": "HELP", "OptOutType": "HELP"}, "sms_keyword"),
    ],
)
def test_an_sms_opt_out_is_no_lead(form: dict[str, str], reason: str) -> None:
    """A person's ``STOP`` was kept as a lead: the one message that asks for no contact."""
    body = urlencode({"MessageSid": "SM1", "SmsStatus": "received", "From": "+33612345678", "NumMedia": "0", **form})
    assert _ignored(body.encode(), "application/x-www-form-urlencoded") == reason


@pytest.mark.parametrize(
    "row",
    [
        b"Date,From,To,Direction,Duration\n2024-06-05 15:20,+14155550100,+442071234567,Outgoing,30\n",
        b"Start Time,Caller Number,Caller Name,To Number,Direction\n2024-06-05 15:20,+14155550100,Our Sales,"
        b"+442071234567,outbound\n",
    ],
)
def test_on_an_outgoing_call_the_person_is_the_one_called(row: bytes) -> None:
    """An outgoing call made the company's own line (``From``) the lead."""
    [event] = messenger.parse(row, ctx_for("messenger", row, "text/csv"))
    assert (event.person.phone, event.person.first_name) == ("+442071234567", None)
    log = _one({"platform": "phone", "direction": "outbound", "from": "+14155550100", "to": "+442071234567"})
    assert log.person.phone == "+442071234567"
    inbound = row.replace(b"Outgoing", b"Incoming").replace(b"outbound", b"inbound")
    [event] = messenger.parse(inbound, ctx_for("messenger", inbound, "text/csv"))
    assert event.person.phone == "+14155550100"


def _meta(obj: str, *messaging: dict[str, Any], page: str = "106123456789012") -> bytes:
    """A Messenger Platform webhook as Meta posts it: one entry of the page's (or Instagram account's) events."""
    return json.dumps(
        {"object": obj, "entry": [{"id": page, "time": 1717600000000, "messaging": list(messaging)}]}
    ).encode()


def _said(sender: str, message: dict[str, Any], at: int = 1717600000000) -> dict[str, Any]:
    return {"sender": {"id": sender}, "recipient": {"id": "106123456789012"}, "timestamp": at, "message": message}


def test_a_messenger_message_is_the_person_who_gave_an_address_to_be_reached_at() -> None:
    """Meta names the sender by a page-scoped id only: the person's address, typed or chosen in the page's quick
    reply for it, identifies them; their messages are the transcript, one event per person."""
    raw = _meta(
        "page",
        _said("6789", {"mid": "m_1", "text": "Hi, I'd like a quote for 20 seats."}),
        _said(
            "6789", {"mid": "m_2", "text": "anna.berg@example.se", "quick_reply": {"payload": "anna.berg@example.se"}}
        ),
        _said("9001", {"mid": "m_3", "text": "Reach me at li.wei@example.cn."}, at=1717600005000),
    )
    anna, wei = messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    assert anna.person.email == "anna.berg@example.se" and anna.person.messenger_handles == {"messenger": "6789"}
    assert [u.text for u in anna.interaction.transcript] == [
        "Hi, I'd like a quote for 20 seats.",
        "anna.berg@example.se",
    ]
    assert anna.occurred_at.isoformat() == "2024-06-05T15:06:40+00:00"
    assert wei.person.email == "li.wei@example.cn" and wei.interaction.message == "Reach me at li.wei@example.cn."


def test_an_instagram_message_with_the_phone_quick_reply() -> None:
    raw = _meta(
        "instagram",
        _said("17841", {"mid": "m_1", "text": "+46 70 123 45 67", "quick_reply": {"payload": "+46701234567"}}),
    )
    [event] = messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    assert event.person.phone == "+46701234567" and event.person.messenger_handles == {"instagram": "17841"}


def test_a_messenger_message_without_an_address_says_why_it_names_no_one() -> None:
    raw = _meta("page", _said("6789", {"mid": "m_1", "text": "How much is it?"}))
    with pytest.raises(SourceError) as err:
        messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    assert err.value.reason == "no_identity" and "page-scoped id" in err.value.message


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"sender": {"id": "106123456789012"}, "message": {"mid": "m", "text": "Thanks!", "is_echo": True}}, "echo"),
        ({"sender": {"id": "6789"}, "delivery": {"mids": ["m"], "watermark": 1717600000000}}, "receipt"),
        ({"sender": {"id": "6789"}, "read": {"watermark": 1717600000000}}, "receipt"),
        ({"sender": {"id": "6789"}, "reaction": {"mid": "m", "action": "react", "emoji": "👍"}}, "reaction"),
    ],
)
def test_meta_notices_name_no_contact(event: dict[str, Any], reason: str) -> None:
    raw = _meta("page", {"recipient": {"id": "106123456789012"}, "timestamp": 1717600000000, **event})
    with pytest.raises(NothingToTake) as taken:
        messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    assert taken.value.reason == reason


def test_telegram_and_viber_messages_with_an_address_the_person_wrote() -> None:
    """Without a contact card the address the person wrote to be reached at identifies them (was: no_identity)."""
    telegram = json.dumps(
        {
            "update_id": 1,
            "message": {
                "message_id": 5,
                "date": 1717600000,
                "from": {"id": 777, "first_name": "Olga", "username": "olga_k"},
                "chat": {"id": 777, "type": "private"},
                "text": "Please send the price list to olga.k@example.ru.",
            },
        }
    ).encode()
    [event] = messenger.parse(telegram, ctx_for("messenger", telegram, "application/json"))
    assert event.person.email == "olga.k@example.ru" and event.person.messenger_handles == {"telegram": "@olga_k"}
    viber = json.dumps(
        {
            "event": "message",
            "timestamp": 1717600000000,
            "sender": {"id": "01234567890A=", "name": "Petr", "country": "CZ"},
            "message": {"type": "text", "text": "petr.novak@example.cz, call me tomorrow"},
        }
    ).encode()
    [event] = messenger.parse(viber, ctx_for("messenger", viber, "application/json"))
    assert event.person.email == "petr.novak@example.cz"
