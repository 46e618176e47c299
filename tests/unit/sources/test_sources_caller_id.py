"""A caller-ID name (CNAM: what the phone network shows for a number, at most 15 capitals, often "LAST FIRST", a
placeholder or the number's city) is no name the person gave: it never becomes the contact's name."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from source_payloads import ctx_for

from pipeline.sources import messenger

CNAM = ["SMITH JOHN", "WIRELESS CALLER", "TOLL FREE CALL", "UNAVAILABLE", "ANONYMOUS", "CELL PHONE   NY",
        "NEW YORK   NY", "SAN MATEO CA"]  # fmt: skip


@pytest.mark.parametrize("caller_name", CNAM)
def test_twilio_s_caller_name_is_no_name(caller_name: str) -> None:
    """Twilio's ``CallerName`` (its caller-ID lookup) was split into a first and last name: "SMITH JOHN" became
    first name SMITH, "WIRELESS CALLER" first name WIRELESS."""
    body = urlencode(
        {"CallSid": "CA1", "CallStatus": "ringing", "Direction": "inbound", "From": "+12125550143",
         "To": "+12125550100", "CallerName": caller_name, "FromCity": "NEW YORK", "FromCountry": "US"}
    ).encode()  # fmt: skip
    [call] = messenger.parse(body, ctx_for("messenger", body, "application/x-www-form-urlencoded"))
    assert (call.person.first_name, call.person.last_name, call.person.phone) == (None, None, "+12125550143")


def test_a_whatsapp_profile_name_is_still_the_name() -> None:
    body = urlencode(
        {"MessageSid": "SM1", "SmsStatus": "received", "From": "whatsapp:+34600123456", "Body": "Hola",
         "ProfileName": "Ana García", "NumMedia": "0"}
    ).encode()  # fmt: skip
    [message] = messenger.parse(body, ctx_for("messenger", body, "application/x-www-form-urlencoded"))
    assert (message.person.first_name, message.person.last_name) == ("Ana", "García")


@pytest.mark.parametrize("caller_name", [*CNAM, "Wireless Caller", "Toll Free", "New York   NY", "Unknown Caller"])
def test_a_call_tracker_s_caller_id_name_is_no_name(caller_name: str) -> None:
    """CallRail's "Name", RingCentral's, a PBX's "Caller Name": the caller ID the network gave."""
    raw = (
        "Start Time,Name,Phone Number,Duration (seconds),Source\n"
        f"2024-06-03 09:15:22,{caller_name},+1 212-555-0143,125,Google Ads\n"
    ).encode()
    [call] = messenger.parse(raw, ctx_for("messenger", raw, "text/csv"))
    assert (call.person.first_name, call.person.last_name, call.person.phone) == (None, None, "+12125550143")
    log = json.dumps({"platform": "phone", "contact": {"name": caller_name, "phone": "+12125550143"}}).encode()
    [call] = messenger.parse(log, ctx_for("messenger", log, "application/json"))
    assert (call.person.first_name, call.person.last_name) == (None, None)


@pytest.mark.parametrize(
    ("caller_name", "first", "last"),
    [("Jane Roe", "Jane", "Roe"), ("Klaus Weber", "Klaus", "Weber"), ("JONATHAN SMITHERSON", "JONATHAN", "SMITHERSON")],
)
def test_a_name_someone_entered_in_the_phone_system_stays(caller_name: str, first: str, last: str) -> None:
    """A contact's name from the phone system's address book is written as people write names (or is longer than
    a caller ID can be)."""
    raw = f"Start Time,Caller Name,Caller Number\n2024-06-03 09:15:22,{caller_name},+1 212-555-0143\n".encode()
    [call] = messenger.parse(raw, ctx_for("messenger", raw, "text/csv"))
    assert (call.person.first_name, call.person.last_name) == (first, last)


def test_a_skype_display_name_is_no_caller_id() -> None:
    contact = {"name": "ANNA LEE", "handle": "anna.lee", "email": "anna@example.com"}
    log = json.dumps({"platform": "skype", "type": "chat", "contact": contact}).encode()
    [chat] = messenger.parse(log, ctx_for("messenger", log, "application/json"))
    assert (chat.person.first_name, chat.person.last_name) == ("ANNA", "LEE")
