"""The importer's splitting and batching, over the same service as the API (records captured, not produced)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import orjson
import pytest
from ingest_helpers import RecordingPublisher
from source_payloads import PAYLOADS

from pipeline.importer import (
    ImportRecord,
    ImportSummary,
    formats_read,
    guess_format,
    parse_defaults,
    records_at,
    run_import,
    split_records,
    with_defaults,
)
from pipeline.ingest.service import IngestService, UnsupportedContentType
from pipeline.models.common import Channel
from pipeline.models.records import ContactRecord, DeadLetter
from pipeline.runtime import Runtime
from pipeline.sources import CONTENT_TYPES


def test_csv_is_split_per_row_with_its_header() -> None:
    records = split_records((PAYLOADS / "event" / "business_cards.csv").read_bytes(), "csv")
    assert len(records) == 3  # the blank row is not a record
    for record in records:
        header, _row = record.raw.decode().splitlines()
        assert header.startswith("Name,Job Title") and record.content_type == 'text/csv; delimiter=","'
    assert [r.where for r in records] == ["line 2", "line 4", "line 5"]  # line 3 is blank


def test_formats_split_and_guess() -> None:
    assert len(split_records((PAYLOADS / "email" / "inbox.mbox").read_bytes(), "mbox")) == 3
    assert len(split_records((PAYLOADS / "customer" / "customers.jsonl").read_bytes(), "jsonl")) == 3
    assert len(split_records((PAYLOADS / "messenger" / "phone_calls.json").read_bytes(), "json")) == 2
    assert split_records(b"not json", "json") == [ImportRecord(b"not json", "application/json", "file")]  # whole
    assert guess_format(Path("x.NDJSON")) == "jsonl"
    with pytest.raises(ValueError, match="--format"):
        guess_format(Path("x.numbers"))


def test_import_counts_published_and_rejected_by_reason(runtime: Runtime, publisher: RecordingPublisher) -> None:
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    records = split_records((PAYLOADS / "customer" / "customers.jsonl").read_bytes(), "jsonl")
    records += split_records((PAYLOADS / "customer" / "customers.csv").read_bytes(), "csv")
    progress: list[int] = []
    summary = run_import(service, Channel.CUSTOMER, records, "import", batch_size=2, on_batch=progress.append)
    assert (summary.records, summary.published_events, summary.rejected) == (6, 5, 1)
    assert dict(summary.reasons) == {"missing_last_service_delivery": 1}
    assert progress == [2, 2, 2]
    dead = [r.value for r in publisher.records if isinstance(r.value, DeadLetter)]
    assert [d.dead_letter_id for d in dead] == summary.dead_letter_ids
    assert len(publisher.records) == 5 * 2 + 1


def test_import_counts_receipts_apart_and_publishes_nothing_for_them(
    runtime: Runtime, publisher: RecordingPublisher
) -> None:
    """An export of messenger webhooks holds the business's delivery receipts beside the people's messages: the
    receipts are counted by reason, neither published nor dead-lettered, and the import still succeeds."""
    receipt = b'{"event": "seen", "timestamp": 1457764197627, "message_token": 1, "user_id": "01234567890A="}'
    data = b"\n".join(
        [receipt, receipt, (PAYLOADS / "messenger" / "telegram_contact.json").read_bytes().replace(b"\n", b"")]
    )
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    summary = run_import(service, Channel.MESSENGER, split_records(data, "jsonl"), "import")
    assert (summary.records, summary.published_events, summary.rejected) == (3, 1, 0)
    assert dict(summary.ignored) == {"receipt": 2}
    assert len(publisher.records) == 2  # the one person's raw and normalised records


def test_import_refuses_a_format_the_channel_cannot_read(runtime: Runtime, publisher: RecordingPublisher) -> None:
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedContentType):
        run_import(service, Channel.CHATBOT, [ImportRecord(b"a,b\n1,2\n", "text/csv", "file")], "import")
    assert publisher.records == []


def test_a_format_the_channel_cannot_read_is_answered_with_the_formats_it_reads() -> None:
    """`leadpipe import customer inbox.mbox` answered with the HTTP API's media types (application/csv, ...), which
    an operator cannot give to --format."""
    assert formats_read(CONTENT_TYPES[Channel.CUSTOMER]) == ["csv", "xlsx", "xls", "jsonl", "json", "vcard"]
    assert formats_read(CONTENT_TYPES[Channel.EMAIL]) == ["jsonl", "json", "mbox", "eml"]  # JSON: a service's webhooks
    assert formats_read(CONTENT_TYPES[Channel.CHATBOT]) == ["jsonl", "json"]


def _examples(runtime: Runtime, publisher: RecordingPublisher, channel: Channel, data: bytes, fmt: str) -> list[str]:
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    return run_import(service, channel, split_records(data, fmt), "import").examples


def test_csv_rejections_name_the_line_of_the_file(runtime: Runtime, publisher: RecordingPublisher) -> None:
    data = (
        b"Name,Email,Notes,Last Service Delivery\n"  # line 1
        b'Ana,ana@example.com,"two\nlines",2024-01-01\n'  # lines 2-3
        b"\n"  # line 4, blank
        b'Bad,bad@@mail,"three\nmore\nlines",2024-01-01\n'  # lines 5-7
        b"Late,late@example.com,,\n"  # line 8
    )
    examples = _examples(runtime, publisher, Channel.CUSTOMER, data, "csv")
    assert [e.split(" (dead letter")[0] for e in examples] == [
        "line 5: email: The part after the @-sign contains invalid characters",
        "line 8: last_service_delivery: the date of the last service delivery starts the customer retention clock",
    ]


def test_jsonl_mbox_and_json_rejections_name_their_place(runtime: Runtime, publisher: RecordingPublisher) -> None:
    jsonl = b'{"email": "a@example.com", "last_service_delivery": "2024-01-01"}\n\n\n{"email": "b@example.com"}\n'
    assert _examples(runtime, publisher, Channel.CUSTOMER, jsonl, "jsonl")[0].startswith("line 4: last_service_")
    mbox = (PAYLOADS / "email" / "inbox.mbox").read_bytes()
    assert _examples(runtime, publisher, Channel.EMAIL, mbox, "mbox")[0].startswith("message 3: from: ")
    ok = b'{"email": "b@example.com", "last_service_delivery": "2024-01-01"}'
    array = b'[{"email": "a@example.com"}, ' + ok + b', {"email": "c@@example.com"}]'
    [first, second] = _examples(runtime, publisher, Channel.CUSTOMER, array, "json")
    assert first.startswith("[0]: last_service_delivery: ") and second.startswith("[2]: email: ")


def _workbook(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_excel_workbook_is_imported_row_by_row_named_by_its_sheet_rows(
    runtime: Runtime, publisher: RecordingPublisher
) -> None:
    """Sales' exports are workbooks more often than CSV: the first sheet, each row a record named by the row Excel
    shows; dates as dates, a number cell as its digits, a cell with a line break and an empty row in between."""
    data = _workbook(
        [
            ["Kundennummer", "Ansprechpartner", "E-Mail", "Telefon", "Land", "Last Service Delivery", "Notes"],
            ["K-1", "Jürgen Müller", "jm@beispiel.de", "030 1234567", "Deutschland", datetime(2024, 3, 31), "jährlich"],
            [None] * 7,
            ["K-2", "山田 太郎", "taro@example.co.jp", "03-1234-5678", "日本", date(2024, 5, 1), "line1\nline2"],
            ["K-3", "No Date", "nodate@example.com", None, "France", None, None],
        ]
    )
    records = split_records(data, guess_format(Path("export.xlsx")))
    assert [r.where for r in records] == ["row 2", "row 4", "row 6"]
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    summary = run_import(service, Channel.CUSTOMER, records, "import")
    assert (summary.records, summary.published_events, summary.rejected) == (3, 2, 1)
    assert summary.examples[0].startswith("row 6: last_service_delivery")
    events = [runtime.codec.open_contact(r.value) for r in publisher.records if isinstance(r.value, ContactRecord)]
    assert [(e.person.last_name, e.person.phone, e.person.country_code) for e in events] == [
        ("Müller", "+49301234567", "DE"),
        ("山田", "+81312345678", "JP"),
    ]
    assert events[0].interaction.last_service_delivery_at == datetime(2024, 3, 31, tzinfo=UTC)


def test_a_file_that_is_not_a_workbook_is_submitted_whole_and_rejected() -> None:
    [record] = split_records(b"PK\x03\x04 not really a workbook", "xlsx")
    assert record.where == "file"


def test_defaults_fill_what_an_export_leaves_out(runtime: Runtime, publisher: RecordingPublisher) -> None:
    """An attendee export names the people, not the event's date (the retention clock): ``--default`` gives every
    row that has none the event's date and name; a row with its own date keeps it."""
    data = (
        b"Order #,First Name,Last Name,Email,Company,Event Date\n"
        b"1001,Maria,Rossi,maria@example.it,Rossi Srl,\n"
        b"1002,Peter,Smith,peter@example.co.uk,Smith Ltd,2024-05-20\n"
    )
    defaults = parse_defaults(["event_date=2024-05-14", "Event Name=Expo 2024"], "csv")
    records = with_defaults(split_records(data, "csv"), defaults)
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    summary = run_import(service, Channel.EVENT, records, "import")
    assert (summary.published_events, summary.rejected) == (2, 0)
    events = [runtime.codec.open_contact(r.value) for r in publisher.records if isinstance(r.value, ContactRecord)]
    assert [(e.interaction.event_date, e.interaction.event_name) for e in events] == [
        (datetime(2024, 5, 14, tzinfo=UTC), "Expo 2024"),
        (datetime(2024, 5, 20, tzinfo=UTC), "Expo 2024"),
    ]
    without = run_import(service, Channel.EVENT, split_records(data, "csv"), "import-2")
    assert dict(without.reasons) == {"missing_event_date": 1}


def test_defaults_fill_json_objects_and_refuse_what_they_cannot_fill() -> None:
    records = split_records(
        b'{"email": "a@b.de", "event_date": ""}\n{"email": "c@d.de", "event_date": "2024-01-01"}', "jsonl"
    )
    filled = with_defaults(records, {"event_date": "2024-05-14"})
    assert [orjson.loads(r.raw)["event_date"] for r in filled] == ["2024-05-14", "2024-01-01"]
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_defaults(["event_date"], "csv")
    with pytest.raises(ValueError, match="a mail has none"):
        parse_defaults(["event_date=2024-05-14"], "mbox")


def test_a_vcf_is_split_per_card_and_defaults_become_properties(
    runtime: Runtime, publisher: RecordingPublisher
) -> None:
    """A scanner's or phone's .vcf: each card its own record, submitted as the card itself (text/vcard); ``--default``
    adds what a card lacks as an X- property, so the cards from a trade show all get its date and name."""
    data = (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Rossi;Maria;;;\r\nEMAIL:maria@example.it\r\nORG:Rossi Srl\r\nEND:VCARD\r\n"
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Smith;Peter;;;\r\nEMAIL:peter@example.co.uk\r\n"
        b"X-EVENT-DATE:2024-05-20\r\nEND:VCARD\r\n"
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Nobody\r\nEND:VCARD\r\n"
    )
    fmt = guess_format(Path("Cards.VCF"))
    records = with_defaults(split_records(data, fmt), parse_defaults(["event_date=2024-05-14", "event_name=Expo"], fmt))
    assert [(r.content_type, r.where) for r in records] == [("text/vcard", f"line {n}") for n in (1, 7, 13)]
    assert records[0].raw.startswith(b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Rossi;Maria;;;")
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    summary = run_import(service, Channel.EVENT, records, "import")
    assert (summary.published_events, summary.rejected, dict(summary.reasons)) == (2, 1, {"no_identity": 1})
    events = [runtime.codec.open_contact(r.value) for r in publisher.records if isinstance(r.value, ContactRecord)]
    assert [(e.person.last_name, e.interaction.event_date, e.interaction.event_name) for e in events] == [
        ("Rossi", datetime(2024, 5, 14, tzinfo=UTC), "Expo"),
        ("Smith", datetime(2024, 5, 20, tzinfo=UTC), "Expo"),
    ]
    with pytest.raises(UnsupportedContentType):
        run_import(service, Channel.WEB_FORM, records, "import")


def test_a_vcf_with_no_card_is_submitted_whole_and_rejected() -> None:
    [record] = split_records(b"Name,Email\nJane,jane@example.com\n", "vcard")
    assert (record.where, record.content_type) == ("file", "text/vcard")


def test_an_api_export_is_split_per_record_in_its_list() -> None:
    data = b'{"results": [{"properties": {"email": "a@example.com"}}, {"properties": {"email": "b@example.com"}}],'
    data += b' "paging": {"next": {"after": "2"}}}'
    records = split_records(data, "json")
    assert [r.where for r in records] == ["results[0]", "results[1]"]
    assert orjson.loads(records[1].raw) == {"properties": {"email": "b@example.com"}}
    [single] = split_records(b'{"email": "a@example.com", "data": [{"x": 1}]}', "json")  # a record itself
    assert single.where == "file"


def test_an_old_excel_workbook_is_read_like_a_new_one(runtime: Runtime, publisher: RecordingPublisher) -> None:
    """An Excel 97-2003 export (.xls): its first sheet row by row, a date cell as its date, a phone typed as a number
    as its digits; the row without a delivery date is rejected by its row."""
    data = (Path(__file__).resolve().parents[2] / "fixtures" / "customers_export.xls").read_bytes()
    records = split_records(data, guess_format(Path("Kunden.XLS")))
    assert [r.where for r in records] == ["row 2", "row 3", "row 4"]
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    summary = run_import(service, Channel.CUSTOMER, records, "import")
    assert (summary.published_events, summary.rejected, dict(summary.reasons)) == (
        2,
        1,
        {"missing_last_service_delivery": 1},
    )
    events = [runtime.codec.open_contact(r.value) for r in publisher.records if isinstance(r.value, ContactRecord)]
    assert [(e.person.last_name, e.person.phone, e.interaction.last_service_delivery_at) for e in events] == [
        ("Müller", "+49301234567", datetime(2024, 3, 31, tzinfo=UTC)),
        ("García", "+34600123456", datetime(2024, 2, 29, tzinfo=UTC)),
    ]
    [whole] = split_records(b"not a workbook", "xls")
    assert whole.where == "file"


def test_a_maildir_or_a_mail_corpus_is_read_file_by_file(tmp_path: Path) -> None:
    """For e-mail a file of unknown extension is a message (a maildir's ``cur/1700000000.M1P2.host:2,S``, a corpus's
    ``00001.7848dde1``), an mbox when it starts as one; hidden files are left out; each record names its file."""
    message = b"From: Ana <ana@example.es>\r\nSubject: Hi\r\n\r\nPlease call me.\r\n"
    (tmp_path / "cur").mkdir()
    (tmp_path / "cur" / "1700000000.M1P2.host:2,S").write_bytes(message)
    (tmp_path / "00001.7848dde101aa985090474a91ec93fcf0").write_bytes(message)
    (tmp_path / "archive").write_bytes(b"From ana Wed Jun  5 10:00:00 2024\r\n" + message)
    (tmp_path / ".dovecot.index").write_bytes(b"\x00binary")
    records = records_at(tmp_path, mail=True)
    assert [(r.where, r.content_type) for r in records] == [
        ("00001.7848dde101aa985090474a91ec93fcf0: file", "message/rfc822"),
        ("archive: message 1", "message/rfc822"),
        ("cur/1700000000.M1P2.host:2,S: file", "message/rfc822"),
    ]
    assert guess_format(tmp_path / "00001.7848dde101aa985090474a91ec93fcf0", mail=True) == "eml"
    with pytest.raises(ValueError, match="--format"):  # not for other channels: a stray file is no contact list
        guess_format(tmp_path / "00001.7848dde101aa985090474a91ec93fcf0")


def _import(runtime: Runtime, publisher: RecordingPublisher, data: bytes, fmt: str, **defaults: str) -> ImportSummary:
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    records = with_defaults(split_records(data, fmt), defaults)
    return run_import(service, Channel.CUSTOMER, records, "import")


def test_shopifys_apostrophe_marked_cells_are_read_as_the_file_was(
    runtime: Runtime, publisher: RecordingPublisher
) -> None:
    """Shopify marks numbers as text with Excel's leading apostrophe: the file is sniffed once (the apostrophe is no
    quote character), each row submitted in the dialect it was written in, and the marker left out of the values."""
    data = (
        b"Customer ID,First Name,Email,Accepts Email Marketing,Default Address Country Code,Phone\r\n"
        b"'7012345678903,,,no,,'+447400123456\r\n"
        b"'7012345678902,Chloe,chloe@example.fr,no,FR,\r\n"
    )
    summary = _import(runtime, publisher, data, "csv", last_service_delivery="2024-12-01")
    assert (summary.published_events, summary.rejected, summary.examples) == (2, 0, [])
    events = [runtime.codec.open_contact(r.value) for r in publisher.records if isinstance(r.value, ContactRecord)]
    assert [(e.person.phone, e.person.email, e.interaction.subject) for e in events] == [
        ("+447400123456", None, "7012345678903"),
        (None, "chloe@example.fr", "7012345678902"),
    ]


def test_rows_above_the_header_are_skipped_and_counted(runtime: Runtime, publisher: RecordingPublisher) -> None:
    """LinkedIn's connections export starts with notes; a workbook with a title row: the header is the first row
    naming a person's fields, the rows above it are counted as skipped, neither submitted nor dead-lettered."""
    linkedin = (
        b"Notes:\n"
        b'"When exporting your connection data, you may notice that some of the email addresses are missing."\n'
        b"\n"
        b"First Name,Last Name,URL,Email Address,Company,Position,Connected On\n"
        b"Grace,Hopper,https://www.linkedin.com/in/gracehopper,grace@example.com,Navy,Admiral,14 Mar 2024\n"
    )
    summary = _import(runtime, publisher, linkedin, "csv", last_service_delivery="2024-12-01")
    assert (summary.records, summary.published_events, summary.rejected) == (1, 1, 0)
    assert summary.skipped == {"above_header": ["line 1", "line 2"]}
    workbook = _workbook(
        [
            ["Trade show leads - Expo 2024", None, None],
            ["Full Name", "Email", "Last Service Delivery"],
            ["Ana Silva", "ana@example.pt", date(2024, 5, 14)],
        ]
    )
    summary = _import(runtime, publisher, workbook, "xlsx")
    assert (summary.records, summary.published_events, summary.rejected) == (1, 1, 0)
    assert summary.skipped == {"above_header": ["row 1"]}
    [record] = [r for r in split_records(b"Jane,jane@example.com\nJoe,joe@example.com\n", "csv") if not r.skipped]
    assert record.where == "line 2"  # no row names a field: the first row is the header, as before


def test_a_reports_footer_is_skipped_and_a_lone_address_is_still_a_contact(
    runtime: Runtime, publisher: RecordingPublisher
) -> None:
    """A Salesforce report ends with its totals and notices, a workbook with a total row, after a blank line: they
    are the file's footer, not contacts; a last row holding only an e-mail address is a contact."""
    salesforce = (
        b'"First Name","Last Name","Email","Last Service Delivery"\r\n'
        b'"Priya","Shah","priya@globex.example","2024-03-14"\r\n'
        b"\r\n"
        b'"Grand Totals (1 records)"\r\n'
        b"\r\n"
        b'"Confidential Information - Do Not Distribute"\r\n'
        b'"Copyright (c) 2000-2024 salesforce.com, inc. All rights reserved."\r\n'
    )
    summary = _import(runtime, publisher, salesforce, "csv")
    assert (summary.records, summary.published_events, summary.rejected) == (1, 1, 0)
    assert summary.skipped == {"footer": ["line 4", "line 6", "line 7"]}
    workbook = _workbook(
        [
            ["Full Name", "Email", "Phone", "Last Service Delivery"],
            ["Ana Silva", "ana@example.pt", None, date(2024, 5, 14)],
            [None] * 4,
            ["Total leads", 1, None, None],
        ]
    )
    summary = _import(runtime, publisher, workbook, "xlsx")
    assert (summary.records, summary.rejected, summary.skipped) == (1, 0, {"footer": ["row 4"]})
    lone = b"Email,Phone,Last Service Delivery\nana@example.pt,,2024-05-14\n\nbob@example.com\n\n,+44 7400 123456\n"
    summary = _import(runtime, publisher, lone, "csv", last_service_delivery="2024-12-01")
    assert (summary.records, summary.published_events, summary.skipped) == (3, 3, {})
