"""CSV and JSON Lines reading shared by the event (business cards) and customer adapters and the importer; an Excel
workbook's first sheet (.xlsx, or the older .xls) as CSV for the importer. A Zoom report's sections are read as the
rows of its people (``_zoom_report``)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any, NamedTuple

import openpyxl
import xlrd

from pipeline.sources.base import SourceError, decode_text, json_type, load_json
from pipeline.sources.fields import canonical_field, normalize_key

CSV_TYPES = frozenset({"text/csv", "application/csv", "text/tab-separated-values"})
JSONL_TYPES = frozenset({"application/jsonl", "application/x-ndjson", "application/x-jsonlines", "application/ndjson"})

csv.field_size_limit(1_048_576)


#: A CRLF or CR line end, made LF for the sniffer.
_LINE_END = re.compile(r"\r\n?")


def _dialect(sample: str) -> type[csv.Dialect]:
    """The delimiter a spreadsheet used (",", ";" from a German Excel, tab, "|"), sniffed from the first lines; quoted
    as Excel quotes (``"``, doubled inside).

    Sniffed with every line end made LF (the reader still reads the file as it is): the sniffer sees a quoted cell
    end a row only before LF, so a Windows Excel file (CRLF rows) with a line break in a quoted last cell was read
    as ",". Only the delimiter and leading spaces are taken: no spreadsheet or CRM quotes with ``'``, and the sniffer
    took Shopify's apostrophe-marked cells (``'+447400123456``) for quoted ones, reading a row as one cell."""
    try:
        sniffed = csv.Sniffer().sniff(_LINE_END.sub("\n", sample), delimiters=",;\t|")
    except csv.Error:
        return csv.excel
    return _excel_with(sniffed.delimiter, skipinitialspace=sniffed.skipinitialspace)


def _excel_with(delimiter: str, *, skipinitialspace: bool = False) -> type[csv.Dialect]:
    return type("sniffed", (csv.excel,), {"delimiter": delimiter, "skipinitialspace": skipinitialspace})


#: How ``split_csv``'s records are submitted: its Content-Type names the dialect they are written in (``csv.excel``),
#: so the adapter reads each row as the file was read instead of sniffing one row again.
ROW_TYPE = 'text/csv; delimiter=","'


def dialect_of(params: Mapping[str, str]) -> type[csv.Dialect] | None:
    """The dialect a CSV's Content-Type names (``text/csv; delimiter=";"``, as ``ROW_TYPE``), else None: sniffed."""
    delimiter = params.get("delimiter", "")
    return _excel_with(delimiter) if len(delimiter) == 1 and delimiter in ",;\t|" else None


#: The first line Excel writes (and reads) to name a CSV's delimiter: ``sep=;``.
_SEPARATOR_HINT = re.compile(r"\A\ufeff?sep=([^\r\n])[ \t]*\r?\n")

#: Excel's text marker before a number-like value (Shopify writes ``'+447400123456``, ``'02134``): not part of it.
_TEXT_MARKER = re.compile(r"'\+?\d[\d \-./()]*\Z")

#: How many non-blank rows may stand above the header: a title, a report's or LinkedIn's notes.
_HEADER_WITHIN = 10

#: The fields that make a row a header: a person's identity or name.
_HEADER_FIELDS = frozenset({"email", "phone", "first_name", "last_name", "full_name"})

#: A number a total row holds: a count or a sum ("5", "1,234.50"), not a phone (a leading + or 0, or seven digits
#: or more without a separator).
_TOTAL = re.compile(r"(?:[1-9][\d,.]*|0)(?:[.,]\d+)?")


class Table(NamedTuple):
    """A CSV's rows (line, header -> cell) and the non-blank rows that are none: (line, ``above_header`` or
    ``footer``)."""

    rows: list[tuple[int, dict[str, str]]]
    skipped: list[tuple[int, str]]


def read_csv(
    raw: bytes, charset: str | None = None, dialect: type[csv.Dialect] | None = None
) -> list[tuple[int, dict[str, str]]]:
    """``read_table``'s rows: what the adapters read."""
    return read_table(raw, charset, dialect).rows


def read_table(raw: bytes, charset: str | None = None, dialect: type[csv.Dialect] | None = None) -> Table:
    """(line, row as header -> cell) for every non-empty row; header cells trimmed, duplicates kept first.

    ``line`` is the line of the file the row starts on, counting the header and every line of a quoted cell that
    spans several (what an editor shows), so a rejection names the line to fix. ``dialect``: the CSV's when known
    (written by ``xlsx_as_csv``, named by the Content-Type), else sniffed. The header is the first row (of the first
    ten) that names a person's e-mail, phone or name, else the first row: the rows above it (a title, LinkedIn's
    "Notes:") are skipped; so is a footer (``_footer_start``). A cell's Excel text marker (``'0612``) is left out.
    """
    for magic, what in _NOT_TEXT:
        if raw.startswith(magic):
            raise SourceError("malformed_csv", None, f"the file is {what}, not CSV text")
    text = decode_text(raw, charset)
    if not text.strip():
        raise SourceError("empty_payload", None, "the CSV is empty")
    if _is_markup(text):
        raise SourceError(
            "malformed_csv",
            None,
            "the file is HTML or XML (a web page, or an HTML or XML table saved as .xls?), not CSV",
        )
    if "\x00" in text:
        raise SourceError("malformed_csv", None, "the CSV contains NUL bytes (a binary file?)")
    skipped = 0
    if (hint := _SEPARATOR_HINT.match(text)) is not None:  # Excel's "sep=;" line names the delimiter
        text, skipped = text[hint.end() :], 1
        dialect = _excel_with(hint.group(1))
    dialect = dialect or _dialect(text[:8192])
    stream = io.StringIO(text, newline="")
    reader = csv.reader(stream, dialect)
    lines: list[tuple[int, list[str]]] = []  # (line it starts on, cells), blank rows as []
    last_at = next_at = 0  # where the last row starts in the text
    try:
        consumed = skipped
        for cells in reader:
            start, consumed = consumed + 1, reader.line_num + skipped
            last_at, next_at = next_at, stream.tell()
            if any(cell.strip() for cell in cells):
                lines.append((start, cells))
            elif not lines or lines[-1][1]:  # a run of blank rows is kept as one: all that is read of them is
                lines.append((start, []))  # that they part blocks (1,000,000 of them held 180 MB)
    except csv.Error as exc:
        raise SourceError("malformed_csv", f"line {reader.line_num}", f"not valid CSV: {exc}") from None
    if lines and _quote_left_open(text[last_at:], dialect):
        start = lines[-1][0]
        raise SourceError(
            "malformed_csv",
            f"line {start}",
            f"a quoted cell opened on line {start} is never closed: every line after it would be read as that one cell",
        )
    filled = [index for index, (_, cells) in enumerate(lines) if cells]
    if not filled:
        raise SourceError("empty_payload", None, "the CSV has no header row")
    if (report := _zoom_report(lines, filled)) is not None:
        return report
    at = next((i for i in filled[:_HEADER_WITHIN] if _is_header(lines[i][1])), filled[0])
    end = _footer_start(lines, at + 1)
    names = [cell.strip().lstrip("\ufeff") for cell in lines[at][1]]
    rows: list[tuple[int, dict[str, str]]] = []
    for start, cells in lines[at + 1 : end]:
        if not cells:
            continue  # blank lines between blocks of a spreadsheet export carry nothing
        row: dict[str, str] = {}
        for position, cell in enumerate(cells):
            name = names[position] if position < len(names) else f"column_{position + 1}"
            if name and name not in row:
                row[name] = cell[1:] if _TEXT_MARKER.match(cell) else cell
        rows.append((start, row))
    if not rows:
        raise SourceError("empty_payload", None, "the CSV has a header but no rows")
    above = [(start, "above_header") for start, cells in lines[:at] if cells]
    return Table(rows, above + [(start, "footer") for start, cells in lines[end:] if cells])


#: Files that are no text at all, by their first bytes (a workbook named or sent as a CSV).
_NOT_TEXT = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook, or a zip that is none)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Office compound file (an Excel 97-2003 .xls workbook?)"),
    (b"%PDF-", "a PDF document"),
)


def _is_markup(text: str) -> bool:
    """Whether a text starts as HTML or XML does (``<!DOCTYPE``, ``<html``, ``<table``, ``<?xml``): what old CRMs
    export as ".xls", and what a login page sends instead of a file."""
    return bool(_MARKUP.match(text))


_MARKUP = re.compile(r"\ufeff?\s*<(?:!doctype|!--|\?xml|html|table|head|body|meta)[\s>/]", re.IGNORECASE)


def _quote_left_open(last_row: str, dialect: type[csv.Dialect]) -> bool:
    """Whether the file's last row ends inside a quoted cell: a quote never closed. Python's reader (not strict, as
    Excel's files need) then reads every line after it as that one cell, and those people would be lost in it."""
    if dialect.quotechar is None or dialect.quotechar not in last_row:
        return False
    strict = type("strict", (dialect,), {"strict": True})
    try:
        for _cells in csv.reader(io.StringIO(last_row, newline=""), strict):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


#: The cells that mark a Zoom report's summary row (its preamble names the webinar or meeting, then its people).
_ZOOM_IDS = frozenset({"webinar_id", "meeting_id"})
#: Where a Zoom report's summary dates the webinar or meeting: when it took place, else when it was scheduled.
_ZOOM_STARTS = ("actual_start_time", "start_time", "scheduled_time", "scheduled_start_time")
#: A Zoom report's column of the name a participant showed, with their account's in brackets when they renamed
#: themselves ("Ana G. (Ana García)").
_ZOOM_RENAMED = frozenset({"user_name_original_name", "name_original_name"})
_RENAMED = re.compile(r"\s*[^()]*?\s*\(([^()]+)\)\s*")
#: A Zoom report's section titles ("Host Details", "Attendee Details", "Other Attended"): only the registrants' and
#: attendees' sections name leads; the host's and panelists' are the company's own people.
_ZOOM_PEOPLE = ("attendee", "registrant", "other_attended")


def _zoom_report(lines: list[tuple[int, list[str]]], filled: list[int]) -> Table | None:
    """A Zoom webinar or meeting report (registration, attendee, participant): a preamble naming the report and a
    summary row (``Topic``, ``Webinar ID``, ``Actual Start Time``, ...) above its people, in sections of their own
    (``Host Details``, ``Panelist Details``, ``Attendee Details``, ``Other Attended``), each with its own header.

    The people of the attendee and registrant sections are the rows (the host's and panelists' are skipped, as
    above a header), each with the summary's topic and start as ``Event Name`` and ``Event Date`` (the date starts
    the retention clock, and a row alone does not say it). Zoom writes its dates month first (``11/05/2023``):
    written ISO 8601 here, where the file says it is Zoom's. None when the file is no Zoom report (its first rows
    name no ``Webinar ID``/``Meeting ID``: the cheap check of the common path), or when read as one it has no people
    (a flat export with such a column)."""
    summary_at = next((i for i in filled[:_HEADER_WITHIN] if _is_zoom_summary(lines[i][1])), None)
    if summary_at is None:
        return None
    names = [normalize_key(cell) for cell in lines[summary_at][1]]
    values_at = next((i for i in filled if i > summary_at), None)
    summary = dict(zip(names, lines[values_at][1], strict=False)) if values_at is not None else {}
    extra = {"Event Name": summary.get("topic", "").strip()}
    extra["Event Date"] = next((_month_first(d) for k in _ZOOM_STARTS if (d := summary.get(k, "").strip())), "")
    taken = {k: v for k, v in extra.items() if v}
    host = (summary.get("user_email") or summary.get("host_email") or "").strip().casefold()  # a participant report's
    rows: list[tuple[int, dict[str, str]]] = []
    skipped: list[tuple[int, str]] = []
    section: str | None = None  # no title yet: a registration report's people follow its summary directly
    header: list[str] | None = None
    for index in filled:
        start, cells = lines[index]
        if index <= (values_at if values_at is not None else summary_at):
            skipped.append((start, "above_header"))
            continue
        title = [normalize_key(cell) for cell in cells if cell.strip()]
        if len(title) == 1 and (title[0].endswith("_details") or title[0] == "other_attended"):
            section, header = title[0], None  # "Attendee Details", "Other Attended"
            skipped.append((start, "above_header"))
            continue
        if header is None:
            header = [cell.strip().lstrip("\ufeff") for cell in cells] if _is_header(cells) else None
            skipped.append((start, "above_header"))
            continue
        hosting = section is not None and not any(word in section for word in _ZOOM_PEOPLE)
        if hosting or (host and any(cell.strip().casefold() == host for cell in cells)):
            skipped.append((start, "above_header"))  # the host, the panelists
            continue
        row: dict[str, str] = {}
        for position, cell in enumerate(cells):
            name = header[position] if position < len(header) else f"column_{position + 1}"
            if name and name not in row:
                row[name] = cell[1:] if _TEXT_MARKER.match(cell) else cell
        for name in [n for n in row if normalize_key(n) in _ZOOM_RENAMED]:
            if (renamed := _RENAMED.fullmatch(row[name])) is not None:
                row[name] = renamed.group(1)  # "Ana G. (Ana García)": the name as registered, not as shown
        known = {normalize_key(name) for name, cell in row.items() if cell.strip()}
        row.update({name: value for name, value in taken.items() if normalize_key(name) not in known})
        rows.append((start, row))
    if not rows:
        return None  # a flat export with a "Webinar ID" column: read as any CSV
    return Table(rows, skipped)


def _is_zoom_summary(cells: list[str]) -> bool:
    """Zoom's summary row: a ``Webinar ID`` or ``Meeting ID`` column, or ``Topic`` beside an ``ID``."""
    names = {normalize_key(cell) for cell in cells[:12]}
    return not names.isdisjoint(_ZOOM_IDS) or ({"topic", "id"} <= names and not _is_header(cells))


def _month_first(text: str) -> str:
    """A date Zoom writes month first (``11/05/2023 09:58:12 AM``) as ISO 8601 (``2023-11-05 09:58:12 AM``); any
    other text as it is (``Nov 5, 2023 09:58 AM`` reads as it is)."""
    if (found := _SLASHED_DATE.match(text)) is None:
        return text
    month, day = int(found.group(1)), int(found.group(3))
    return f"{found.group(4)}-{month:02d}-{day:02d}{text[found.end() :]}"


def _is_header(cells: list[str]) -> bool:
    """A header names a person's identity or name (``_HEADER_FIELDS``), and holds no e-mail address (a data row)."""
    return not any("@" in cell for cell in cells) and any(canonical_field(c.strip()) in _HEADER_FIELDS for c in cells)


def _footer_start(lines: list[tuple[int, list[str]]], first: int) -> int:
    """Where a file's footer starts (``len(lines)`` when it has none): the rows after the data's last blank line
    when each is a note (one cell of words: Salesforce's "Grand Totals (1 records)", "Confidential Information - Do
    Not Distribute") or a total (a label in the first cell, counts or sums in the others: "Total leads", 5). A
    real row of one value (an e-mail address, a phone) is no note, so it stays a record."""
    end = len(lines)
    while end > first and not lines[end - 1][1]:
        end -= 1
    start = end
    while start > first and (not lines[start - 1][1] or _is_note(lines[start - 1][1])):
        start -= 1
    while start < end and not lines[start][1]:
        start += 1  # the footer starts at its first non-blank row ...
    if start in (end, first) or lines[start - 1][1]:
        return len(lines)  # ... after a blank line below the data
    return start


def _is_note(cells: list[str]) -> bool:
    label, *values = [cell.strip() for cell in cells]
    if not _is_words(label):
        return False
    if not any(values):
        return True
    return all(not value or _is_total(value) for value in values)


def _is_total(value: str) -> bool:
    return bool(_TOTAL.fullmatch(value)) and (sum(c.isdigit() for c in value) < 7 or not value.isdigit())


def _is_words(cell: str) -> bool:
    """Two words or more, more letters than digits and no "@": a note's text, not an e-mail address or a phone."""
    letters, digits = sum(c.isalpha() for c in cell), sum(c.isdigit() for c in cell)
    return len(cell.split()) >= 2 and "@" not in cell and letters > digits


def split_csv(
    raw: bytes, charset: str | None = None, dialect: type[csv.Dialect] | None = None
) -> tuple[list[tuple[int, bytes]], list[tuple[int, str]]]:
    """(line the row starts on, one self-describing CSV document: header + that row, in ``csv.excel``'s dialect,
    submitted as ``ROW_TYPE``) per record, for per-row import and dead-lettering; and the rows skipped
    (``Table.skipped``). The file is sniffed once, here."""
    table = read_table(raw, charset, dialect)
    out = []
    for line, row in settled_dates(table.rows):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(list(row))
        writer.writerow(list(row.values()))
        out.append((line, buffer.getvalue().encode()))
    return out, table.skipped


#: A day and a month with slashes or dashes before a four-digit year ("12/01/2024", "5-3-2024 9:00 AM").
_SLASHED_DATE = re.compile(r"\s*(\d{1,2})([/-])(\d{1,2})\2(\d{4})(?=$|[\sT,])")


def settled_dates(rows: list[tuple[int, dict[str, str]]]) -> list[tuple[int, dict[str, str]]]:
    """The rows with each ambiguous date ("12/01/2024": 12 January or 1 December?) written as ISO 8601 in the order
    its column proves: a column whose other dates put the month first ("3/14/2024", a US export) and none the day
    first (or the reverse). A row alone cannot tell (``normalize.read_date`` refuses it ``ambiguous_date``); the file
    can. A column without proof, or with both orders, is left as it is."""
    orders: dict[str, set[str]] = {}
    for _line, row in rows:
        for column, value in row.items():
            if value and (found := _SLASHED_DATE.match(value)):
                first, second = int(found.group(1)), int(found.group(3))
                if first > 12 >= second:
                    orders.setdefault(column, set()).add("day first")
                elif second > 12 >= first:
                    orders.setdefault(column, set()).add("month first")
    settled = {column: found.pop() for column, found in orders.items() if len(found) == 1}
    if not settled:
        return rows
    out = []
    for line, row in rows:
        written = dict(row)
        for column, order in settled.items():
            value = written.get(column) or ""
            if (found := _SLASHED_DATE.match(value)) and int(found.group(1)) <= 12 and int(found.group(3)) <= 12:
                day, month = (
                    (found.group(1), found.group(3)) if order == "day first" else (found.group(3), found.group(1))
                )
                written[column] = f"{found.group(4)}-{int(month):02d}-{int(day):02d}{value[found.end() :]}"
        out.append((line, written))
    return out


def with_columns(document: bytes, values: Mapping[str, str]) -> bytes:
    """A one-row CSV document (``split_csv``'s) with ``values`` where the row has none: a column added, or an empty
    cell filled. A name is matched as the header spells it or as the adapters read it (``Event Date`` is
    ``event_date``)."""
    [(_, row)] = read_csv(document, dialect=csv.excel)
    names = {normalize_key(name): name for name in row}
    for name, value in values.items():
        column = names.get(normalize_key(name), name)
        if not row.get(column, "").strip():
            row[column] = value
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(row))
    writer.writerow(list(row.values()))
    return buffer.getvalue().encode()


def read_jsonl(raw: bytes) -> list[tuple[int, Any]]:
    """(line number, parsed object) per non-blank line; a bad line is named by its number."""
    text_lines = raw.split(b"\n")
    out: list[tuple[int, Any]] = []
    for number, line in enumerate(text_lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((number, load_json(line)))
        except SourceError as exc:
            raise SourceError(exc.reason, f"line {number}", exc.message) from None
    if not out:
        raise SourceError("empty_payload", None, "the JSON Lines document is empty")
    return out


#: Where an API's export keeps its records: HubSpot's ``results``, Salesforce's ``records`` (RingCentral's call log
#: too), Mailchimp's ``members``, Pipedrive's ``data``, Aircall's ``calls``, a generic ``contacts`` or ``items``.
_RECORD_LISTS = ("results", "records", "members", "contacts", "items", "data", "calls")


def record_list(data: Any) -> tuple[str, list[Any]] | None:
    """(key, records) of an API export's object that wraps its records in a list (``{"results": [...],
    "paging": ...}``), or None: a JSON object that is itself a record (it names an e-mail or phone field) is not."""
    if not isinstance(data, dict) or any(canonical_field(k) in ("email", "phone") for k in data):
        return None
    for key in _RECORD_LISTS:
        if isinstance(found := data.get(key), list) and found and all(isinstance(item, dict) for item in found):
            return key, found
    return None


def records_of_json(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(path, object) for a JSON object, each element of a JSON array of objects, or each record of an API export
    (``record_list``: ``results[3]``)."""
    data = load_json(raw)
    prefix = ""
    if (wrapped := record_list(data)) is not None:
        prefix, data = wrapped
    items = data if isinstance(data, list) else [data]
    out = []
    for position, item in enumerate(items):
        path = f"{prefix}[{position}]" if isinstance(data, list) else ""
        if not isinstance(item, dict):
            raise SourceError(
                "unexpected_shape", path or None, f"a record must be a JSON object, not {json_type(item)}"
            )
        out.append((path, item))
    if not out:
        raise SourceError("empty_payload", None, "the JSON array is empty")
    return out


def _text_sheet(data: bytes) -> bytes | None:
    """A file of delimited text as ``xlsx_as_csv`` writes a sheet (``csv.excel``, its delimiter sniffed), or None
    when it is no text (a binary file, NUL bytes) or has no cells."""
    if any(data.startswith(magic) for magic, _ in _NOT_TEXT):
        return None
    try:
        text = decode_text(data)
    except SourceError:
        return None
    if "\x00" in text or not text.strip() or _is_markup(text):
        return None
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    try:
        for cells in csv.reader(io.StringIO(text, newline=""), _dialect(text[:8192])):
            writer.writerow(cells)
    except csv.Error:
        return None
    return out.getvalue().encode()


def xlsx_as_csv(data: bytes) -> bytes:
    """The first sheet of an Excel workbook (.xlsx) as CSV (UTF-8), so that each row is read like a CSV row.

    Cells as the sheet shows their values (formulas' cached results): a date as ISO 8601 (a midnight time left
    out), a whole number without ``.0`` (a phone typed as a number), true/false. Written in ``csv.excel``'s dialect
    (read back with it, not sniffed); an empty row stays an empty line, so a row's CSV line is the row Excel shows
    while no cell above it holds a line break. A file of text (a CSV saved or renamed as .xlsx, as web apps' "Excel
    exports" often are) is read as the CSV it is. Refused as ``malformed_file`` when the bytes are neither."""
    if not data.startswith(b"PK") and (as_text := _text_sheet(data)) is not None:
        return as_text
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SourceError("malformed_file", None, f"not an Excel workbook ({type(exc).__name__})") from None
    try:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        for row in book.worksheets[0].iter_rows(values_only=True):
            writer.writerow([_cell_text(value) for value in row])
        return out.getvalue().encode()
    finally:
        book.close()


def xls_as_csv(data: bytes) -> bytes:
    """``xlsx_as_csv`` for an Excel 97-2003 workbook (.xls, read by xlrd): the same cell texts, a date cell as its
    date (Excel stores it as a number of days). A file of text (a CSV or a tab-separated export named .xls) is read as
    the CSV it is. Refused as ``malformed_file`` when the bytes are neither."""
    if not data.startswith(_NOT_TEXT[1][0]) and (as_text := _text_sheet(data)) is not None:
        return as_text
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
        sheet = book.sheet_by_index(0)
    except Exception as exc:  # xlrd raises XLRDError, CompDocError, struct and assertion errors on what it cannot read
        raise SourceError("malformed_file", None, f"not an Excel 97-2003 workbook ({type(exc).__name__})") from None
    try:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        for row in range(sheet.nrows):
            writer.writerow([_cell_text(_xls_value(sheet.cell(row, col), book.datemode)) for col in range(sheet.ncols)])
        return out.getvalue().encode()
    finally:
        book.release_resources()


def _xls_value(cell: Any, datemode: int) -> Any:
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate_as_datetime(cell.value, datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell.value  # a number formatted as a date that is none: its number
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return bool(cell.value)
    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return None
    return cell.value


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() and value.tzinfo is None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
