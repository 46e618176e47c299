"""A call log's time: its start in one column or its date and time apart, in the time zone a column names."""

from __future__ import annotations

import pytest
from source_payloads import ctx_for

from pipeline.sources import messenger


def _started(raw: bytes) -> list[str]:
    """The calls' starts (a start later than the test's receipt, 2024-06-06 12:00 UTC, would read as the receipt)."""
    return [e.occurred_at.isoformat() for e in messenger.parse(raw, ctx_for("messenger", raw, "text/csv"))]


@pytest.mark.parametrize(
    ("header", "row", "started"),
    [
        ("Date,Time", "2024-06-03,09:15", "2024-06-03T09:15:00+00:00"),
        ("Date,Time", "05/31/2024,2:30 PM", "2024-05-31T14:30:00+00:00"),  # RingCentral's
        ("Call Date,Call Time", "2024-06-03,09:15:22", "2024-06-03T09:15:22+00:00"),
        ("Call Date,Call Time", "31.05.2024,14:30", "2024-05-31T14:30:00+00:00"),
        ("Start Date,Start Time", "2024-06-03,9:15 AM", "2024-06-03T09:15:00+00:00"),
        ("Call Time", "2024-06-03 09:15:22", "2024-06-03T09:15:22+00:00"),  # 3CX: the whole start in "Call Time"
        ("Date & Time", "2024-06-03 09:15:22", "2024-06-03T09:15:22+00:00"),  # Zoom Phone's
        ("datetime", "2024-06-03T09:15:22-04:00", "2024-06-03T13:15:22+00:00"),
    ],
)
def test_the_call_s_date_and_time_make_its_start(header: str, row: str, started: str) -> None:
    """A call log's "Call Date" and "Call Time" were not read at all: every call was dated when it was imported."""
    raw = f"{header},Caller Number\n{row},+1 212-555-0143\n".encode()
    assert _started(raw) == [started]


@pytest.mark.parametrize(
    ("zone", "started"),
    [
        ("America/New_York", "2024-06-03T13:15:00+00:00"),  # EDT in June
        ("Europe/Berlin", "2024-06-03T07:15:00+00:00"),
        ("UTC-05:00", "2024-06-03T14:15:00+00:00"),
        ("GMT+2", "2024-06-03T07:15:00+00:00"),
        ("+0530", "2024-06-03T03:45:00+00:00"),
        ("UTC", "2024-06-03T09:15:00+00:00"),
    ],
)
def test_a_time_zone_column_says_where_the_clock_was(zone: str, started: str) -> None:
    """A "Time Zone" column beside the date and time was ignored: the call was read as UTC, hours off."""
    raw = f"Call Date,Call Time,Time Zone,Caller Number\n2024-06-03,09:15,{zone},+1 212-555-0143\n".encode()
    assert _started(raw) == [started]
    whole = f"Start Time,Timezone,Caller Number\n2024-06-03 09:15,{zone},+1 212-555-0143\n".encode()
    assert _started(whole) == [started]


def test_a_start_with_its_own_offset_keeps_it() -> None:
    raw = b"Start Time,Time Zone,Caller Number\n2024-06-03T09:15:00+02:00,America/New_York,+1 212-555-0143\n"
    assert _started(raw) == ["2024-06-03T07:15:00+00:00"]


@pytest.mark.parametrize("zone", ["Eastern", "America", "-300", "(UTC-05:00) Eastern Time (US & Canada)"])
def test_a_time_zone_that_is_none_is_noted_and_the_time_read_as_written(zone: str) -> None:
    """A zone that is none (a word, a folder of zones, minutes) costs the call nothing: read as UTC, and the event
    says so."""
    raw = f'Call Date,Call Time,Time Zone,Caller Number\n2024-06-03,09:15,"{zone}",+1 212-555-0143\n'.encode()
    [call] = messenger.parse(raw, ctx_for("messenger", raw, "text/csv"))
    assert call.occurred_at.isoformat() == "2024-06-03T09:15:00+00:00"
    assert call.provenance.notes == ("time_zone_unknown",)
