"""CSV reading shared by the customer and event adapters and the importer (``pipeline.sources.tabular``)."""

from __future__ import annotations

import pytest
from source_payloads import ctx_for

from pipeline.sources import SourceError, customer, tabular


def test_an_apostrophe_is_no_quote_character_and_excels_text_marker_is_left_out() -> None:
    raw = b"Customer ID,Name,Phone\n'7012345678903,O'Brien,'+447400123456\n'702,'Tis me,'0612 34\n"
    assert [row for _, row in tabular.read_csv(raw)] == [
        {"Customer ID": "7012345678903", "Name": "O'Brien", "Phone": "+447400123456"},
        {"Customer ID": "702", "Name": "'Tis me", "Phone": "0612 34"},
    ]


def test_a_content_type_that_names_the_delimiter_is_read_with_it_not_sniffed() -> None:
    raw = b"E-Mail;Name;Last Service Delivery\nana@example.es;Ana;2024-03-31\n"
    [event] = customer.parse(raw, ctx_for("customer", raw, "text/csv"))  # sniffed: ";"
    assert event.person.email == "ana@example.es"
    with pytest.raises(SourceError):  # one column named "E-Mail;Name;..."
        customer.parse(raw, ctx_for("customer", raw, tabular.ROW_TYPE))
    assert tabular.dialect_of({"delimiter": ";"}) is not None and tabular.dialect_of({"delimiter": "ab"}) is None


def test_the_header_is_the_first_row_naming_a_persons_fields() -> None:
    raw = b"Leads export,,\nexported 2024-05-20,,\nName,E-Mail,Company\nAna,ana@example.es,Acme\n"
    table = tabular.read_table(raw)
    assert table.rows == [(4, {"Name": "Ana", "E-Mail": "ana@example.es", "Company": "Acme"})]
    assert table.skipped == [(1, "above_header"), (2, "above_header")]


def test_a_footer_after_a_blank_line_is_skipped_a_row_of_data_is_not() -> None:
    raw = b"Name,Email,Score\nAna,ana@example.es,3\n\nTotal leads,,1\nPrinted by Sam Seller,,\n"
    table = tabular.read_table(raw)
    assert [line for line, _ in table.rows] == [2] and table.skipped == [(4, "footer"), (5, "footer")]
    no_gap = b"Name,Email\nAna,ana@example.es\nTotal leads,\n"  # no blank line: a row, as before
    assert [line for line, _ in tabular.read_csv(no_gap)] == [2, 3]
    phone = b"Name,Phone\nAna,+34 612 345 678\n\nBob Smith,447400123456\n"  # a name and a number: a contact
    assert [line for line, _ in tabular.read_csv(phone)] == [2, 4]


def test_an_ambiguous_date_is_read_in_the_order_its_column_proves() -> None:
    """A US export writes month first: "12/01/2024" alone is refused ambiguous_date, so ~40 % of its rows were lost
    while "3/14/2024" in the same column proves the order."""
    raw = (
        b"Email,Last Service Delivery,Signed\n"
        b"a@example.com,3/14/2024,05/06/2024\n"
        b"b@example.com,12/01/2024,13/06/2024\n"
        b"c@example.com,5/3/2024 9:00 AM,20/06/2024\n"
    )
    rows, _skipped = tabular.split_csv(raw)
    delivered = []
    for _line, document in rows:
        [event] = customer.parse(document, ctx_for("customer", document, tabular.ROW_TYPE))
        delivered.append(event.interaction.last_service_delivery_at.date().isoformat())
    assert delivered == ["2024-03-14", "2024-12-01", "2024-05-03"]
    assert [row["Signed"] for _, row in tabular.settled_dates(tabular.read_csv(raw))] == [
        "2024-06-05",  # its column puts the day first
        "13/06/2024",
        "20/06/2024",
    ]


def test_a_column_with_both_orders_or_no_proof_is_left_as_it_is() -> None:
    rows = [(2, {"d": "3/14/2024"}), (3, {"d": "14/3/2024"}), (4, {"d": "5/6/2024"})]
    assert tabular.settled_dates(rows) == rows
    alone = [(2, {"d": "5/6/2024"}), (3, {"d": "7/8/2024"})]
    assert tabular.settled_dates(alone) == alone
