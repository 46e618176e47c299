"""CSV and JSON Lines reading shared by the event (business cards) and customer adapters and the importer; an Excel
workbook's first sheet (.xlsx, or the older .xls) as CSV for the importer."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

import openpyxl
import xlrd

from pipeline.sources.base import SourceError, decode_text, json_type, load_json
from pipeline.sources.fields import canonical_field, normalize_key

CSV_TYPES = frozenset({"text/csv", "application/csv", "text/tab-separated-values"})
JSONL_TYPES = frozenset({"application/jsonl", "application/x-ndjson", "application/x-jsonlines", "application/ndjson"})

csv.field_size_limit(1_048_576)


#: A CRLF or CR line end, made LF for the sniffer.
_LINE_END = re.compile(r"\r\n?")


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    """The delimiter a spreadsheet used (",", ";" from a German Excel, tab, "|"), sniffed from the first lines.

    Sniffed with every line end made LF (the reader still reads the file as it is): the sniffer sees a quoted cell
    end a row only before LF, so a Windows Excel file (CRLF rows) with a line break in a quoted last cell was read
    as ","."""
    try:
        return csv.Sniffer().sniff(_LINE_END.sub("\n", sample), delimiters=",;\t|")
    except csv.Error:
        return csv.excel


#: The first line Excel writes (and reads) to name a CSV's delimiter: ``sep=;``.
_SEPARATOR_HINT = re.compile(r"\A\ufeff?sep=([^\r\n])[ \t]*\r?\n")


def read_csv(
    raw: bytes, charset: str | None = None, dialect: type[csv.Dialect] | None = None
) -> list[tuple[int, dict[str, str]]]:
    """(line, row as header -> cell) for every non-empty row; header cells trimmed, duplicates kept first.

    ``line`` is the line of the file the row starts on, counting the header and every line of a quoted cell that
    spans several (what an editor shows), so a rejection names the line to fix. ``dialect``: the CSV's when known
    (written by ``xlsx_as_csv``), else sniffed.
    """
    text = decode_text(raw, charset)
    if not text.strip():
        raise SourceError("empty_payload", None, "the CSV is empty")
    if "\x00" in text:
        raise SourceError("malformed_csv", None, "the CSV contains NUL bytes (a binary file?)")
    skipped = 0
    if (hint := _SEPARATOR_HINT.match(text)) is not None:  # Excel's "sep=;" line names the delimiter
        text, skipped = text[hint.end() :], 1
        dialect = type("hinted", (csv.excel,), {"delimiter": hint.group(1)})
    reader = csv.reader(io.StringIO(text, newline=""), dialect or _dialect(text[:8192]))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise SourceError("empty_payload", None, "the CSV has no header row")
        names = [cell.strip().lstrip("\ufeff") for cell in header]
        rows: list[tuple[int, dict[str, str]]] = []
        consumed = reader.line_num + skipped
        for cells in reader:
            start, consumed = consumed + 1, reader.line_num + skipped
            if not any(cell.strip() for cell in cells):
                continue  # blank lines between blocks of a spreadsheet export carry nothing
            row: dict[str, str] = {}
            for position, cell in enumerate(cells):
                name = names[position] if position < len(names) else f"column_{position + 1}"
                if name and name not in row:
                    row[name] = cell
            rows.append((start, row))
    except csv.Error as exc:
        raise SourceError("malformed_csv", f"line {reader.line_num}", f"not valid CSV: {exc}") from None
    if not rows:
        raise SourceError("empty_payload", None, "the CSV has a header but no rows")
    return rows


def split_csv(
    raw: bytes, charset: str | None = None, dialect: type[csv.Dialect] | None = None
) -> list[tuple[int, bytes]]:
    """(line the row starts on, one self-describing CSV document: header + that row) per record, for per-row import
    and dead-lettering."""
    out = []
    for line, row in read_csv(raw, charset, dialect):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(list(row))
        writer.writerow(list(row.values()))
        out.append((line, buffer.getvalue().encode()))
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


#: Where an API's export keeps its records: HubSpot's ``results``, Salesforce's ``records``, Mailchimp's
#: ``members``, Pipedrive's ``data``, a generic ``contacts`` or ``items``.
_RECORD_LISTS = ("results", "records", "members", "contacts", "items", "data")


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


def xlsx_as_csv(data: bytes) -> bytes:
    """The first sheet of an Excel workbook (.xlsx) as CSV (UTF-8), so that each row is read like a CSV row.

    Cells as the sheet shows their values (formulas' cached results): a date as ISO 8601 (a midnight time left
    out), a whole number without ``.0`` (a phone typed as a number), true/false. Written in ``csv.excel``'s dialect
    (read back with it, not sniffed); an empty row stays an empty line, so a row's CSV line is the row Excel shows
    while no cell above it holds a line break. Refused as ``malformed_file`` when the bytes are not a workbook."""
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
    date (Excel stores it as a number of days). Refused as ``malformed_file`` when the bytes are not such a workbook."""
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
