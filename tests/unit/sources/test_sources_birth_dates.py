"""A birthday that is no whole date (an address book's placeholder for none, a birthday without its year) is left
out with the note ``birth_date_incomplete``, never the contact refused; other impossible dates are still refused."""

from __future__ import annotations

from datetime import date

import pytest
from source_payloads import ctx_for

from pipeline import normalize
from pipeline.sources import SourceError, customer
from pipeline.sources.vcard import card_fields

TODAY = date(2024, 6, 6)


@pytest.mark.parametrize(
    "value",
    ["0/0/00", "00.00.0000", "0000-00-00", "04/12", "12/31", "21.06.", "--06-21", "--0621", "21 June", "June 21st"],
)
def test_a_placeholder_or_a_birthday_without_a_year_is_incomplete(value: str) -> None:
    with pytest.raises(normalize.NormalizationError) as err:
        normalize.parse_birth_date(value, today=TODAY)
    assert err.value.reason == normalize.BIRTH_DATE_INCOMPLETE


@pytest.mark.parametrize("value", ["13/45", "31/02", "2/30", "1604-06-21", "soon"])
def test_an_impossible_date_is_still_invalid(value: str) -> None:
    with pytest.raises(normalize.NormalizationError) as err:
        normalize.parse_birth_date(value, today=TODAY)
    assert err.value.reason == "invalid_birth_date"


@pytest.mark.parametrize(
    ("column", "value"),
    [("Birthday", "0/0/00"), ("Birthday", "04/12"), ("Birthday", "--06-21")],  # Outlook, Mailchimp, Google
)
def test_the_contact_is_kept_without_it_with_a_note(column: str, value: str) -> None:
    raw = f"Email,{column},Last Order Date\nsean@example.ie,{value},2024-03-01\nann@example.ie,1990-05-17,2024-03-01\n"
    sean, ann = customer.parse(raw.encode(), ctx_for("customer", raw.encode(), "text/csv"))
    assert sean.person.birth_date is None and sean.provenance.notes == ("birth_date_incomplete",)
    assert ann.person.birth_date == date(1990, 5, 17) and ann.provenance.notes == ()


def test_an_impossible_birth_date_still_refuses_the_row() -> None:
    raw = b"Email,Birthday,Last Order Date\nsean@example.ie,31/02/1990,2024-03-01\n"
    with pytest.raises(SourceError) as err:
        customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    assert err.value.reason == "invalid_birth_date"


def test_apples_omitted_year_is_no_year() -> None:
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Hans Mueller\r\nEMAIL:hans@example.de\r\n{}\r\nEND:VCARD\r\n"
    assert card_fields(card.format("BDAY;X-APPLE-OMIT-YEAR=1604:1604-06-21"))["birth_date"] == "--06-21"
    assert card_fields(card.format("BDAY:1980-06-21"))["birth_date"] == "1980-06-21"
    omitted = card.format("BDAY;X-APPLE-OMIT-YEAR=1604:1604-06-21\r\nX-LAST-SERVICE-DELIVERY:2024-03-01")
    raw = omitted.encode()
    [hans] = customer.parse(raw, ctx_for("customer", raw, "text/vcard"))
    assert hans.person.birth_date is None and hans.provenance.notes == ("birth_date_incomplete",)
