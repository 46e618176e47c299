"""Zoom's webinar and meeting reports (registration, attendee) as `leadpipe import event` reads them, and its
``webinar.registration_created`` webhook: the registrants, dated by the webinar, the denied ones left out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from source_payloads import PAYLOADS, ctx_for

from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.sources import NothingToTake, event, tabular


def _imported(name: str) -> tuple[list[tuple[int, ContactEvent | str]], list[tuple[int, str]]]:
    """Each row as ``leadpipe import event`` submits it (``split_csv``): its event, or the reason it is ignored."""
    rows, skipped = tabular.split_csv((PAYLOADS / "event" / name).read_bytes())
    read: list[tuple[int, ContactEvent | str]] = []
    for line, document in rows:
        try:
            [found] = event.parse(document, ctx_for("event", document, tabular.ROW_TYPE))
            read.append((line, found))
        except NothingToTake as exc:
            read.append((line, exc.reason))
    return read, skipped


def test_an_attendee_report_s_people_are_its_attendees_not_its_hosts() -> None:
    """The report's preamble and host section were read as the data: the host's header was the file's header, the
    host and panelists became leads, the attendee section's header a record, and no row had its event date."""
    read, skipped = _imported("zoom_webinar_attendee_report.csv")
    people = {line: e for line, e in read if isinstance(e, ContactEvent)}
    assert sorted(people) == [13, 14, 15, 19]  # Anna, Ana, Kenji (registered, did not attend), Marc (other attended)
    assert [line for line, e in read if e == "attendee_denied"] == [16]
    assert [line for line, _why in skipped] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 17, 18]
    anna = people[13]
    assert (anna.person.first_name, anna.person.last_name, anna.person.email) == (
        "Anna",
        "Schmidt",
        "anna.schmidt@example.de",
    )
    assert (anna.person.phone, anna.person.country_code, anna.person.company) == (
        "+493012345678",
        "DE",
        "Beispiel GmbH",
    )
    assert people[14].person.phone == "+34612345678"  # Spain's national number, by "Country/Region Name"
    assert people[15].person.phone == "+81312345678"  # no country given: the e-mail's domain's
    marc = people[19].person  # "Marc D. (Marc Dupont)": renamed in the webinar, registered as Marc Dupont
    assert (marc.first_name, marc.last_name, marc.country_code) == ("Marc", "Dupont", "FR")
    for found in people.values():
        assert found.interaction.kind == InteractionKind.REGISTRATION
        assert found.interaction.event_name == "Produktlaunch Q4 / Product launch Q4"
        assert found.interaction.event_date is not None
        assert found.interaction.event_date.isoformat() == "2023-11-20T09:58:00+00:00"
    assert not any("ourcompany.example" in (e.person.email or "") for e in people.values())


def test_a_registration_report_dates_its_people_by_the_scheduled_time_month_first() -> None:
    """Zoom writes "11/05/2023": the 5th of November, which a row alone could not tell."""
    read, _skipped = _imported("zoom_meeting_registration_report.csv")
    people = [e for _line, e in read if isinstance(e, ContactEvent)]
    assert [e.person.email for e in people] == ["lena.fischer@example.at", "wei.zhang@example.cn"]
    assert [e.person.phone for e in people] == ["+436641234567", "+8613800138000"]
    assert {e.interaction.event_date.isoformat() for e in people if e.interaction.event_date} == {
        "2023-11-05T09:00:00+00:00"
    }
    assert people[0].interaction.message == "Bitte mit Aufzeichnung"
    assert [e for _line, e in read if isinstance(e, str)] == ["attendee_denied"]


def test_a_zoom_report_posted_whole_keeps_its_registrants_and_notes_the_denied() -> None:
    raw = (PAYLOADS / "event" / "zoom_meeting_registration_report.csv").read_bytes()
    found = event.parse(raw, ctx_for("event", raw, "text/csv"))
    assert [e.person.first_name for e in found] == ["Lena", "Wei"]
    assert found[0].provenance.notes == ("attendee_denied",)


def test_an_ordinary_csv_is_no_zoom_report() -> None:
    raw = b"Name,Email,Meeting\nAna Ruiz,ana@example.es,Expo\n"
    [row] = tabular.read_csv(raw)
    assert row == (2, {"Name": "Ana Ruiz", "Email": "ana@example.es", "Meeting": "Expo"})


def _hook(name: str = "zoom_webinar_registration_created.json", **changes: Any) -> bytes:
    body = json.loads((PAYLOADS / "event" / name).read_bytes())
    body.update(changes)
    return json.dumps(body).encode()


def test_zoom_s_registration_webhook_is_a_registration() -> None:
    """Refused before: the webhook was read as an attendee with no e-mail and no event date."""
    raw = _hook()
    [jill] = event.parse(raw, ctx_for("event", raw, "application/json"))
    person = jill.person
    assert (person.first_name, person.last_name, person.email) == ("Jill", "Chill", "jchill@example.com")
    assert (person.phone, person.country_code, person.company, person.position) == (
        "+16505550100",
        "US",
        "Cooking Org",
        "Chef",
    )
    assert jill.interaction.kind == InteractionKind.REGISTRATION
    assert (jill.interaction.event_name, jill.interaction.message) == (
        "Product launch Q4",
        "Looking forward to the discussion.",
    )
    assert jill.interaction.event_date is not None
    assert jill.interaction.event_date.isoformat() == "2023-11-20T14:58:00+00:00"
    assert jill.occurred_at.isoformat() == "2023-11-21T16:14:01.572000+00:00"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("webinar.registration_denied", "attendee_denied"),
        ("meeting.registration_cancelled", "attendee_cancelled"),
        ("meeting.started", "zoom_event"),
        ("webinar.participant_joined", "zoom_event"),
    ],
)
def test_a_denied_cancelled_or_other_zoom_event_is_no_registrant(kind: str, reason: str) -> None:
    raw = _hook(event=kind)
    with pytest.raises(NothingToTake) as taken:
        event.parse(raw, ctx_for("event", raw, "application/json"))
    assert taken.value.reason == reason


def test_zoom_s_url_validation_is_answered_without_a_contact() -> None:
    raw = (PAYLOADS / "event" / "zoom_endpoint_url_validation.json").read_bytes()
    with pytest.raises(NothingToTake) as taken:
        event.parse(raw, ctx_for("event", raw, "application/json"))
    assert taken.value.reason == "webhook_check"


def test_a_registrant_zoom_says_was_denied_is_none() -> None:
    body = json.loads(_hook())
    body["payload"]["object"]["registrant"]["status"] = "denied"
    raw = json.dumps(body).encode()
    with pytest.raises(NothingToTake) as taken:
        event.parse(raw, ctx_for("event", raw, "application/json"))
    assert taken.value.reason == "attendee_denied"


def test_a_meeting_participant_report_s_host_is_no_participant() -> None:
    """Zoom's meeting participants export: its summary names the host by ``User Email``, who joined too."""
    raw = (
        b"Meeting ID,Topic,Start Time,End Time,User Email,Duration (Minutes),Participants\r\n"
        b"85123456789,Demo Acme,06/03/2024 09:00:12 AM,06/03/2024 09:45:40 AM,host@ourcompany.example,46,3\r\n"
        b"\r\n"
        b"Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest\r\n"
        b"Dana Host,host@ourcompany.example,06/03/2024 09:00:12 AM,06/03/2024 09:45:40 AM,46,No\r\n"
        b"Joanna Nowak,joanna.nowak@example.pl,06/03/2024 09:01:30 AM,06/03/2024 09:45:00 AM,44,Yes\r\n"
    )
    [(line, row)] = tabular.read_csv(raw)
    assert (line, row["User Email"], row["Event Name"], row["Event Date"]) == (
        6,
        "joanna.nowak@example.pl",
        "Demo Acme",
        "2024-06-03 09:00:12 AM",
    )
    [joanna] = event.parse(raw, ctx_for("event", raw, "text/csv"))
    assert (joanna.person.first_name, joanna.person.last_name) == ("Joanna", "Nowak")
    assert joanna.interaction.event_date is not None
    assert joanna.interaction.event_date.isoformat() == "2024-06-03T09:00:12+00:00"


@pytest.mark.parametrize(
    "raw",
    [
        b"Webinar ID,First Name,Email,Event Date\n83412345678,Ana,ana@example.es,2024-05-14\n"
        b"83412345678,Bo,bo@example.se,2024-05-14\n",
        b"ID,Topic,Email\n1,Demo,ana@example.es\n",
    ],
)
def test_a_flat_export_naming_a_webinar_is_read_as_any_csv(raw: bytes) -> None:
    assert [row["Email"] for _line, row in tabular.read_csv(raw)][:1] == ["ana@example.es"]


@pytest.mark.parametrize("questions", [7, True, "none", {"title": "x"}])
def test_custom_questions_of_another_type_are_no_crash(questions: object) -> None:
    """A registrant's ``custom_questions`` that is not a list crashed the adapter (500 adapter_error): read as none."""
    body = json.loads(_hook())
    body["payload"]["object"]["registrant"]["custom_questions"] = questions
    raw = json.dumps(body).encode()
    [jill] = event.parse(raw, ctx_for("event", raw, "application/json"))
    assert jill.person.email == "jchill@example.com"
