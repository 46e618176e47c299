"""An Eventbrite attendee who will not attend (refunded, cancelled, transferred, deleted, "Not Attending") registered
for nothing: no attendee event, the payload answered ``ignored`` with the reason (``leadpipe import`` counts it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from source_payloads import ctx_for

from pipeline.sources import NothingToTake, event

#: Eventbrite's "Attendee Summary" report (Reports > Attendee summary > Export CSV).
HEADER = (
    "Order #,Order Date,First Name,Last Name,Email,Quantity,Ticket Type,Attendee #,Group,Order Type,Currency,"
    "Total Paid,Fees Paid,Eventbrite Fees,Eventbrite Payment Processing,Attendee Status,Job Title,Company,Event Date"
)


def _row(status: str, order_type: str = "Eventbrite Completed") -> bytes:
    row = (
        f"1111111113,2024-04-03 09:30:00-05:00,Cleo,Ng,cleo@example.com,1,General Admission,2222222223,,{order_type},"
        f"USD,25.00,2.14,1.64,0.50,{status},PM,Initech,2024-05-14"
    )
    return f"{HEADER}\n{row}\n".encode()


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("Not Attending", "attendee_not_attending"),
        ("Refunded", "attendee_refunded"),
        ("Refunded/Canceled", "attendee_refunded"),
        ("Cancelled", "attendee_cancelled"),
        ("Canceled", "attendee_cancelled"),
        ("Transferred", "attendee_transferred"),
        ("Deleted", "attendee_deleted"),
    ],
)
def test_an_attendee_who_will_not_attend_is_no_attendee(status: str, reason: str) -> None:
    """Every row of an attendee report was imported as a registration, the refunded and cancelled ones too."""
    raw = _row(status)
    with pytest.raises(NothingToTake) as taken:
        event.parse(raw, ctx_for("event", raw, "text/csv"))
    assert taken.value.reason == reason


@pytest.mark.parametrize("status", ["Attending", "Checked In", ""])
def test_an_attending_or_checked_in_attendee_is_one(status: str) -> None:
    raw = _row(status)
    [cleo] = event.parse(raw, ctx_for("event", raw, "text/csv"))
    assert (cleo.person.email, cleo.person.position) == ("cleo@example.com", "PM")


def test_an_order_status_tells_when_the_report_has_no_attendee_status() -> None:
    raw = (
        b"Order #,First Name,Last Name,Email,Order Status,Event Date\n"
        b"1,Dan,Oz,dan@example.com,Refunded/Canceled,2024-05-14\n"
        b"2,Eve,Ra,eve@example.com,Partially Refunded,2024-05-14\n"
    )
    [eve] = event.parse(raw, ctx_for("event", raw, "text/csv"))  # a partial refund: the attendee status would tell
    assert eve.person.email == "eve@example.com"
    one = b"Email,Order Status,Event Date\ndan@example.com,Refunded/Canceled,2024-05-14\n"
    with pytest.raises(NothingToTake) as taken:
        event.parse(one, ctx_for("event", one, "text/csv"))
    assert taken.value.reason == "attendee_refunded"


def _attendee(email: str, **state: Any) -> dict[str, Any]:
    return {"ticket_class_name": "GA", "profile": {"first_name": "Gus", "last_name": "Ng", "email": email}, **state}


def _order(*attendees: dict[str, Any], **state: Any) -> bytes:
    order = {
        "id": "1111111117",
        "created": "2024-04-03T14:30:00Z",
        "email": "buyer@example.com",
        "event": {"name": {"text": "Expo 2024"}, "start": {"utc": "2024-05-14T08:00:00Z"}},
        "attendees": list(attendees),
        **state,
    }
    return json.dumps(order).encode()


def test_an_eventbrite_order_keeps_only_its_attendees_who_attend() -> None:
    """An order expanded with its attendees (API or webhook): a refunded or cancelled attendee was registered."""
    raw = _order(
        _attendee("gus@example.com", status="Attending", cancelled=False, refunded=False),
        _attendee("hal@example.com", status="Not Attending", cancelled=True, refunded=True),
        _attendee("ida@example.com", status="Checked In", checked_in=True),
        _attendee("jon@example.com", status="Attending", cancelled=True),  # the API's flag, before its status
        _attendee("kim@example.com", status="Transferred"),
    )
    events = event.parse(raw, ctx_for("event", raw, "application/json"))
    assert [e.person.email for e in events] == ["gus@example.com", "ida@example.com"]
    left_out = ("attendee_cancelled", "attendee_refunded", "attendee_transferred")  # said, never silent
    assert all(set(left_out) <= set(e.provenance.notes) for e in events)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_order(_attendee("hal@example.com", status="Not Attending")), "attendee_not_attending"),
        (_order(_attendee("hal@example.com", refunded=True)), "attendee_refunded"),
        (_order(_attendee("hal@example.com"), status="refunded"), "attendee_refunded"),
        (_order(_attendee("hal@example.com"), status="deleted"), "attendee_deleted"),
        (json.dumps(_attendee("hal@example.com", status="Not Attending", event_date="2024-05-14")).encode(),
         "attendee_not_attending"),
    ],
)  # fmt: skip
def test_an_order_or_attendee_without_anyone_attending_is_ignored_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(NothingToTake) as taken:
        event.parse(raw, ctx_for("event", raw, "application/json"))
    assert taken.value.reason == reason


def test_a_csv_posted_whole_keeps_the_rows_that_attend() -> None:
    """One row that will not attend does not make the whole file ignored."""
    raw = (
        b"First Name,Last Name,Email,Attendee Status,Event Date\n"
        b"Ana,Silva,ana@example.com,Attending,2024-05-14\n"
        b"Cleo,Ng,cleo@example.com,Not Attending,2024-05-14\n"
    )
    [ana] = event.parse(raw, ctx_for("event", raw, "text/csv"))
    assert ana.person.email == "ana@example.com" and "attendee_not_attending" in ana.provenance.notes
