"""Aircall's call webhooks and RingCentral's call log export: the caller (or the number called), never the agent
or the company's own line; a US export's national numbers read without ``--default country=US``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from source_payloads import PAYLOADS, ctx_for

from pipeline.models.common import InteractionKind
from pipeline.sources import NothingToTake, SourceError, messenger, tabular


def _aircall(**changes: Any) -> bytes:
    body = json.loads((PAYLOADS / "messenger" / "aircall_call_ended.json").read_bytes())
    body.update({k: v for k, v in changes.items() if k != "data"})
    body["data"].update(changes.get("data", {}))
    return json.dumps(body).encode()


def test_aircall_s_ended_call_is_the_caller_s_call() -> None:
    """Refused before (``no_identity``): the webhook was read as leadpipe's own log, with no ``contact`` in it."""
    raw = _aircall()
    [call] = messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    person = call.person
    assert (person.first_name, person.last_name, person.email, person.phone, person.company) == (
        "Julien",
        "Moreau",
        "julien.moreau@example.fr",
        "+33612345678",
        "Exemple SARL",
    )
    assert call.interaction.kind == InteractionKind.CALL
    assert (call.interaction.call_duration_s, call.interaction.message) == (132.0, "Wants a quote for 40 seats")
    assert call.interaction.recording_ref == "https://assets.aircall.io/calls/812345678/recording"
    assert call.occurred_at.isoformat() == "2024-06-05T12:20:00+00:00"  # started_at, epoch seconds


def test_an_unknown_aircall_caller_is_their_number() -> None:
    raw = _aircall(data={"contact": None, "raw_digits": "+49 171 2345678", "direction": "outbound"})
    [call] = messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    assert (call.person.phone, call.person.email, call.person.first_name) == ("+491712345678", None, None)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"event": "call.created"}, "status_update"),
        ({"event": "call.answered"}, "status_update"),
        ({"resource": "contact", "event": "contact.created"}, "vendor_event"),
        ({"data": {"raw_digits": "anonymous"}}, "withheld_number"),
    ],
)
def test_aircall_s_other_events_are_answered_without_a_contact(changes: dict[str, Any], reason: str) -> None:
    raw = _aircall(**changes)
    with pytest.raises(NothingToTake) as taken:
        messenger.parse(raw, ctx_for("messenger", raw, "application/json"))
    assert taken.value.reason == reason


def _rows(raw: bytes) -> list[Any]:
    rows, _skipped = tabular.split_csv(raw)
    out: list[Any] = []
    for _line, document in rows:
        try:
            [call] = messenger.parse(document, ctx_for("messenger", document, tabular.ROW_TYPE))
            out.append(call.person.phone)
        except SourceError as exc:
            out.append(exc.reason)
    return out


def test_ringcentral_s_national_numbers_are_north_american() -> None:
    """A row without a location was refused (``invalid_phone``): "(212) 555-0188" read in no country."""
    raw = (PAYLOADS / "messenger" / "ringcentral_call_log.csv").read_bytes()
    assert _rows(raw) == ["+16505550143", "+12125550188", "+15125550199"]


@pytest.mark.parametrize(
    ("number", "country", "read"),
    [
        ("(212) 555-0188", "", "+12125550188"),
        ("1 (212) 555-0188", "", "+12125550188"),
        ("(664) 123-4567", "Mexico", "+526641234567"),  # Mexico writes some numbers so: the row's country decides
    ],
)
def test_a_bracketed_area_code_is_read_where_the_row_says(number: str, country: str, read: str) -> None:
    raw = f'Date,Time,Phone Number,Country\n2024-06-03,09:15,"{number}",{country}\n'.encode()
    assert _rows(raw) == [read]


def test_a_number_not_written_the_north_american_way_still_needs_its_country() -> None:
    raw = b'Date,Time,Phone Number\n2024-06-03,09:15,"(030) 1234567"\n'
    assert _rows(raw) == ["invalid_phone"]


def _imported(raw: bytes) -> list[Any]:
    """Each record of a JSON export as ``leadpipe import messenger`` splits it."""
    from pipeline.importer import split_records

    return [messenger.parse(r.raw, ctx_for("messenger", r.raw, r.content_type))[0] for r in split_records(raw, "json")]


def test_ringcentral_s_call_log_api_export_is_the_other_party_of_each_call() -> None:
    """Each record was read as leadpipe's own log, with no ``contact``: refused ``no_identity``."""
    raw = (PAYLOADS / "messenger" / "ringcentral_call_log_api.json").read_bytes()
    inbound, outbound = _imported(raw)
    assert (inbound.person.phone, inbound.person.first_name, inbound.person.country_code) == (
        "+14155550143",
        "Grace",
        "US",
    )
    assert (inbound.interaction.call_duration_s, inbound.occurred_at.isoformat()) == (
        252.0,
        "2024-06-05T12:20:00+00:00",
    )
    assert (outbound.person.phone, outbound.person.country_code) == ("+442079460958", "GB")  # the number called
    assert "Sales" not in (outbound.person.first_name or "")


def test_aircall_s_calls_export_is_read_as_its_webhooks() -> None:
    call = json.loads((PAYLOADS / "messenger" / "aircall_call_ended.json").read_bytes())["data"]
    export = json.dumps({"calls": [call], "meta": {"count": 1, "total": 1, "current_page": 1}}).encode()
    [julien] = _imported(export)
    assert (julien.person.email, julien.person.phone) == ("julien.moreau@example.fr", "+33612345678")
