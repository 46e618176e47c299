"""Event attendees: Eventbrite orders and scanned business cards."""

from __future__ import annotations

import pytest
from source_payloads import ctx_for, payload

from pipeline.models.common import InteractionKind
from pipeline.sources import SourceError, event


def parse(name: str):  # type: ignore[no-untyped-def]
    raw, content_type = payload("event", name)
    return event.parse(raw, ctx_for("event", raw, content_type))


def test_eventbrite_order_gives_one_event_per_attendee() -> None:
    lena, tobias = parse("eventbrite_order.json")
    assert lena.interaction.kind is InteractionKind.REGISTRATION
    assert lena.interaction.event_name == "Cloud Summit Berlin 2024"
    assert lena.interaction.event_date is not None
    assert lena.interaction.event_date.isoformat() == "2024-09-12T07:00:00+00:00"
    assert lena.person.phone == "+491712345678"  # national mobile, country DE from the work address
    assert lena.person.skype_id == "lena.fischer.it"  # from the custom question "Skype ID"
    assert lena.person.position == "Engineering Manager"
    assert tobias.person.email == "t.wagner@example.de" and tobias.person.skype_id is None
    assert lena.event_id != tobias.event_id and lena.subject_key != tobias.subject_key


def test_unexpanded_eventbrite_webhook_is_explained() -> None:
    with pytest.raises(SourceError) as err:
        parse("eventbrite_webhook_unexpanded.json")
    assert err.value.reason == "unexpanded_webhook"


def test_messy_business_card_csv() -> None:
    anna, peter, maria = parse("business_cards.csv")  # BOM, semicolons, a blank row, mixed date formats
    assert (anna.person.first_name, anna.person.last_name) == ("Anna", "Kowalska")
    assert anna.person.email == "ANNA.KOWALSKA@kowalski.example.pl"
    assert anna.person.linkedin_url == "https://www.linkedin.com/in/annakowalska"
    assert anna.interaction.kind is InteractionKind.BUSINESS_CARD
    assert peter.person.position == "Sales Director, EMEA"
    assert peter.person.phone == "+353871234567"
    assert peter.interaction.event_date == anna.interaction.event_date  # 14.05.2024 == 2024-05-14
    assert maria.person.phone is None and maria.person.skype_id == "live:maria.silva"


def test_bad_cards_name_every_row() -> None:
    with pytest.raises(SourceError) as err:
        parse("business_cards_bad.csv")
    assert [(p.field, p.reason) for p in err.value.problems] == [
        ("row 2.email", "no_identity"),
        ("row 3.email", "invalid_email"),
        ("row 4.event_date", "missing_event_date"),
    ]


def test_attendee_without_event_date_is_refused() -> None:
    raw = b'{"profile": {"email": "x@example.com"}}'
    with pytest.raises(SourceError) as err:
        event.parse(raw, ctx_for("event", raw, "application/json"))
    assert err.value.reason == "missing_event_date"


def test_business_cards_as_vcards() -> None:
    """A phone's or scanner's .vcf: vCard 2.1 quoted-printable with a truncated photo, Apple's 3.0 with grouped
    properties, 4.0 with a ``tel:`` URI; national numbers read in the address's country, the birthday kept."""
    juergen, taro, ana = parse("business_cards.vcf")
    assert (juergen.person.first_name, juergen.person.last_name) == ("Jürgen", "Müller")
    assert juergen.person.phone == "+4915123456789"  # the preferred number, national, country from the address
    assert (juergen.person.company, juergen.person.position) == ("Beispiel GmbH", "Leiter Vertrieb")
    assert juergen.person.country_code == "DE"
    assert juergen.interaction.kind is InteractionKind.BUSINESS_CARD
    assert juergen.interaction.message == "Interessiert an der Enterprise-Lizenz\nBitte im Juni anrufen"
    assert juergen.interaction.event_date is not None and juergen.interaction.event_date.isoformat().startswith(
        "2024-05-14"
    )
    assert (taro.person.last_name, taro.person.first_name, taro.person.country_code) == ("山田", "太郎", "JP")
    assert taro.person.phone == "+819012345678"
    assert taro.person.birth_date is not None and taro.person.birth_date.isoformat() == "1985-04-01"
    assert taro.person.linkedin_url == "https://www.linkedin.com/in/taroyamada"
    assert (ana.person.phone, ana.person.skype_id, ana.person.country_code) == ("+34600123456", "ana.garcia.es", "ES")
    assert ana.interaction.message == "Quiere una demo, en español\nllamar por la tarde"


def test_a_vcard_without_event_date_or_identity_is_refused_by_its_line() -> None:
    raw = (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Doe;Jane;;;\r\nEMAIL:jane@example.com\r\nEND:VCARD\r\n"
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No Contact\r\nX-EVENT-DATE:2024-05-14\r\nEND:VCARD\r\n"
    )
    with pytest.raises(SourceError) as err:
        event.parse(raw, ctx_for("event", raw, "text/vcard"))
    assert [(p.field, p.reason) for p in err.value.problems] == [
        ("line 1.event_date", "missing_event_date"),
        ("line 6.email", "no_identity"),
    ]


@pytest.mark.parametrize(
    ("header", "row"),
    [
        (
            "Vorname;Nachname;E-Mail;Veranstaltung;Veranstaltungsdatum",
            "Jana;Novak;jana@example.de;Expo Berlin;14.05.2024",
        ),
        ("Prénom;Nom;E-mail;Événement;Date de l'événement", "Jana;Novak;jana@example.de;Expo Berlin;14/05/2024"),
        ("氏名,メールアドレス,イベント名,開催日", "Novak Jana,jana@example.de,Expo Berlin,2024/05/14"),
    ],
)
def test_an_attendee_list_in_the_organiser_s_language(header: str, row: str) -> None:
    """An attendee export in German, French or Japanese names the event and its date in that language: every row was
    refused ``missing_event_date`` (the clock's start)."""
    raw = f"{header}\n{row}\n".encode()
    [attendee] = event.parse(raw, ctx_for("event", raw, "text/csv"))
    assert attendee.person.email == "jana@example.de"
    assert attendee.interaction.event_name == "Expo Berlin"
    assert (
        attendee.interaction.event_date is not None and attendee.interaction.event_date.isoformat()[:10] == "2024-05-14"
    )
