"""Real-world bad input read by the adapters: each is read as what it is, or refused with a reason that says what is
wrong with it (never a misleading one, never a silent loss of the rows after it)."""

from __future__ import annotations

import io
import zipfile

import pytest
from source_payloads import ctx_for

from pipeline.sources import SourceError, customer, tabular, web_form
from pipeline.sources.base import load_json
from pipeline.sources.formdata import multipart_pairs

DOCUMENT = '{"email": "ana@example.com", "name": "José"}'


@pytest.mark.parametrize(
    ("raw", "charset"),
    [
        (DOCUMENT.encode("utf-16"), None),  # Windows tools: UTF-16 with its byte-order mark
        (DOCUMENT.encode("utf-16-be"), "utf-16-be"),
        (DOCUMENT.encode("utf-32"), None),
        (b"\xef\xbb\xbf" + DOCUMENT.encode(), None),
        (DOCUMENT.encode("latin-1"), "iso-8859-1"),  # declared in the Content-Type
        (DOCUMENT.encode(), "utf-8"),
        (DOCUMENT.encode(), "no-such-charset"),  # a label nobody knows: JSON's own UTF-8
    ],
)
def test_json_is_read_in_the_encoding_its_bom_or_charset_names(raw: bytes, charset: str | None) -> None:
    assert load_json(raw, charset) == {"email": "ana@example.com", "name": "José"}


def test_json_that_is_not_utf8_is_bad_encoding_naming_where_not_malformed_json() -> None:
    raw = '{"email": "ana@example.com",\n "name": "José"}'.encode("latin-1")
    with pytest.raises(SourceError) as caught:
        load_json(raw)
    assert caught.value.reason == "bad_encoding"
    message = caught.value.problems[0].message
    assert "not UTF-8" in message and "line 2" in message and "Jos" not in message
    with pytest.raises(SourceError) as odd:  # UTF-16 cut in the middle of a character
        load_json(DOCUMENT.encode("utf-16")[:-1])
    assert odd.value.reason == "bad_encoding"


def test_a_json_form_with_a_declared_charset_reads_its_text() -> None:
    raw = DOCUMENT.encode("latin-1")
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json; charset=iso-8859-1"))
    assert event.person.first_name == "José"


def test_a_multipart_body_cut_short_is_malformed_not_taken_with_its_last_field_cut() -> None:
    cut = (
        b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\nana@example.com\r\n'
        b'--x\r\nContent-Disposition: form-data; name="message"\r\n\r\nPlease call me tomor'
    )
    with pytest.raises(SourceError) as caught:
        multipart_pairs(cut, "x", [])
    assert caught.value.reason == "malformed_form" and "closing boundary" in caught.value.problems[0].message
    whole = cut + b"row\r\n--x--"  # closed (no CRLF after the close, a preamble before it: both fine)
    assert multipart_pairs(b"preamble\r\n" + whole, "x", [])[-1] == ("message", "Please call me tomorrow")


def test_an_unterminated_quote_in_a_csv_is_refused_naming_its_line_not_swallowing_the_rows_after_it() -> None:
    raw = b'email,name\nana@example.com,"Ana\nbob@example.com,Bob\ncat@example.com,Cat\n'
    with pytest.raises(SourceError) as caught:
        tabular.split_csv(raw)
    assert caught.value.reason == "malformed_csv"
    assert caught.value.problems[0].field == "line 2" and "never closed" in caught.value.problems[0].message
    # a quote inside an unquoted cell (5" screen) and a quoted cell with a line break are fine
    rows, _ = tabular.split_csv(b'email,note\nana@example.com,5" screen\nbob@example.com,"two\nlines"\n')
    assert [line for line, _ in rows] == [2, 3]


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b"PK\x03\x04" + b"\x00" * 40, "zip archive"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "Office compound file"),
        (b"%PDF-1.7\n...", "PDF"),
    ],
)
def test_a_binary_file_sent_as_csv_is_named_for_what_it_is(raw: bytes, what: str) -> None:
    with pytest.raises(SourceError) as caught:
        customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    assert caught.value.reason == "malformed_csv" and what in caught.value.problems[0].message


def test_a_csv_named_xlsx_or_xls_is_read_as_the_csv_it_is() -> None:
    semicolons = "email;name\r\nana@example.com;José\r\n".encode("cp1252")
    expected = "email,name\r\nana@example.com,José\r\n".encode()
    assert tabular.xlsx_as_csv(semicolons) == expected
    assert tabular.xls_as_csv(b"email\tname\nana@example.com\tJos\xc3\xa9\n") == expected
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "no workbook here")
    with pytest.raises(SourceError) as caught:  # a zip renamed .xlsx: still no workbook
        tabular.xlsx_as_csv(buffer.getvalue())
    assert caught.value.reason == "malformed_file"


def test_a_key_given_twice_with_different_values_is_refused_the_same_value_twice_is_not() -> None:
    with pytest.raises(SourceError) as caught:  # whose address is it? orjson would keep the last one silently
        load_json(b'{"email": "ana@example.com", "name": "Ana", "email": "bob@example.com"}')
    assert caught.value.reason == "duplicate_key" and caught.value.malformed
    assert "'email'" in caught.value.problems[0].message and "example.com" not in caught.value.problems[0].message
    with pytest.raises(SourceError) as nested:  # at any level; a key that could be personal data is not quoted
        load_json(b'{"people": {"ana@example.com": 1, "ana@example.com": 2}}')
    assert nested.value.reason == "duplicate_key" and "ana@" not in nested.value.problems[0].message
    assert load_json(b'{"email": "ana@example.com", "email": "ana@example.com"}') == {"email": "ana@example.com"}
    assert load_json(b'{"note": "a \\": b", "x": [{"a": 1}, {"a": 2}]}') == {
        "note": 'a ": b',
        "x": [{"a": 1}, {"a": 2}],
    }


@pytest.mark.parametrize("channel", ["web_form", "customer", "chatbot", "event", "messenger", "website", "email"])
def test_json_nested_deeper_than_the_adapters_read_is_malformed_not_a_recursion_error(channel: str) -> None:
    from pipeline.sources import parse

    raw = b'{"email": "ana@example.com", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    with pytest.raises(SourceError) as caught:
        parse(channel, raw, ctx_for(channel, raw, "application/json"))  # type: ignore[arg-type]
    assert caught.value.reason == "malformed_json" and "nested 1001 levels" in caught.value.problems[0].message


@pytest.mark.parametrize("field", ["rawRequest", "data.json", "FieldStructure"])
def test_a_form_tools_json_field_nested_too_deep_is_refused_naming_the_field(field: str) -> None:
    from urllib.parse import urlencode

    raw = urlencode({"email": "ana@example.com", field: "[" * 1000 + "]" * 1000}).encode()
    with pytest.raises(SourceError) as caught:
        web_form.parse(raw, ctx_for("web_form", raw, "application/x-www-form-urlencoded"))
    assert caught.value.problems[0].field == field and "deeper than 100" in caught.value.problems[0].message


def test_a_million_empty_rows_cost_no_memory_per_row_and_lines_are_still_named() -> None:
    import tracemalloc

    raw = b"email,name\nana@example.com,Ana\n" + b",\n" * 1_000_000 + b"bob@example.com,Bob\n"
    tracemalloc.start()
    try:
        rows, skipped = tabular.split_csv(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [line for line, _ in rows] == [2, 1_000_003] and skipped == []
    assert peak < 40_000_000, peak  # the file's text, not a list per blank row (180 MB before)


@pytest.mark.parametrize("charset", [None, "utf-8"])
def test_percent_escapes_of_a_latin1_page_are_read_as_the_text_they_are_not_refused(charset: str | None) -> None:
    from pipeline.sources.formdata import urlencoded_pairs

    raw = b"email=ana%40example.com&name=Jos%E9+Garc%EDa&empty&note="  # an ISO-8859-1 page's post, charset unsaid
    assert urlencoded_pairs(raw, charset) == [
        ("email", "ana@example.com"),
        ("name", "José García"),
        ("empty", ""),
        ("note", ""),
    ]
    content_type = "application/x-www-form-urlencoded" + (f"; charset={charset}" if charset else "")
    [event] = web_form.parse(raw, ctx_for("web_form", raw, content_type))
    assert (event.person.first_name, event.person.last_name) == ("José", "García")


@pytest.mark.parametrize(
    "raw",
    [
        b"<html><body><table><tr><td>email</td></tr></table></body></html>",  # an old CRM's ".xls" export
        b'\xef\xbb\xbf<?xml version="1.0"?>\n<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet">',
        b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>",  # a login page saved instead of the file
    ],
)
def test_html_or_xml_sent_or_named_as_csv_or_xls_is_named_for_what_it_is(raw: bytes) -> None:
    with pytest.raises(SourceError) as caught:
        tabular.split_csv(raw)
    assert caught.value.reason == "malformed_csv" and "HTML or XML" in caught.value.problems[0].message
    with pytest.raises(SourceError):  # not taken for a CSV named .xls either
        tabular.xls_as_csv(raw)
    rows, _ = tabular.split_csv(b"<Email Address>,name\nana@example.com,Ana\n")  # a header cell in brackets is text
    assert len(rows) == 1
