"""CSV and JSON Lines reading shared by the event (business cards) and customer adapters and the importer."""

from __future__ import annotations

import csv
import io
from typing import Any

from pipeline.sources.base import SourceError, decode_text, json_type, load_json

CSV_TYPES = frozenset({"text/csv", "application/csv", "text/tab-separated-values"})
JSONL_TYPES = frozenset({"application/jsonl", "application/x-ndjson", "application/x-jsonlines", "application/ndjson"})

csv.field_size_limit(1_048_576)


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    """The delimiter a spreadsheet used (",", ";" from a German Excel, tab, "|"), sniffed from the first lines."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def read_csv(raw: bytes, charset: str | None = None) -> list[tuple[int, dict[str, str]]]:
    """(line, row as header -> cell) for every non-empty row; header cells trimmed, duplicates kept first.

    ``line`` is the line of the file the row starts on, counting the header and every line of a quoted cell that
    spans several (what an editor shows), so a rejection names the line to fix.
    """
    text = decode_text(raw, charset)
    if not text.strip():
        raise SourceError("empty_payload", None, "the CSV is empty")
    if "\x00" in text:
        raise SourceError("malformed_csv", None, "the CSV contains NUL bytes (a binary file?)")
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text[:8192]))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise SourceError("empty_payload", None, "the CSV has no header row")
        names = [cell.strip().lstrip("\ufeff") for cell in header]
        rows: list[tuple[int, dict[str, str]]] = []
        consumed = reader.line_num
        for cells in reader:
            start, consumed = consumed + 1, reader.line_num
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


def split_csv(raw: bytes, charset: str | None = None) -> list[tuple[int, bytes]]:
    """(line the row starts on, one self-describing CSV document: header + that row) per record, for per-row import
    and dead-lettering."""
    out = []
    for line, row in read_csv(raw, charset):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(list(row))
        writer.writerow(list(row.values()))
        out.append((line, buffer.getvalue().encode()))
    return out


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


def records_of_json(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(path, object) for a JSON object, or each element of a JSON array of objects."""
    data = load_json(raw)
    items = data if isinstance(data, list) else [data]
    out = []
    for position, item in enumerate(items):
        path = f"[{position}]" if isinstance(data, list) else ""
        if not isinstance(item, dict):
            raise SourceError(
                "unexpected_shape", path or None, f"a record must be a JSON object, not {json_type(item)}"
            )
        out.append((path, item))
    if not out:
        raise SourceError("empty_payload", None, "the JSON array is empty")
    return out
