"""``leadpipe import <channel> FILE``: batch loads (CSV, Excel .xlsx and .xls, JSON Lines, JSON, mbox, .eml, vCard)
through ingest.

The file is split into one record per person (a CSV row with its header, a JSONL line, a mail of an mbox, an
element of a JSON array, a card of a .vcf), so each is accepted or dead-lettered on its own, and each raw record
sealed under its own subject's key. Records go through ``IngestService.submit_many`` in batches: all parsed, the
data keys of the batch's people loaded or created with one commit, then sealed and published in one confirmed send.
The summary counts published events and rejected records by reason, and the exit code is 1 when anything was
rejected. The default source id is the same on every run, so re-importing a file yields the same event ids
(downstream de-duplicates).
"""

from __future__ import annotations

import collections
import contextlib
import csv
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, NamedTuple
from uuid import UUID

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.clikit import DATABASE, KAFKA, exits, needs
from pipeline.config import get_settings
from pipeline.db import ensure_schema
from pipeline.ingest.service import IngestService, Submission, SubmitResult, UnsupportedContentType
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.common import Channel
from pipeline.runtime import Runtime
from pipeline.sources import tabular, vcard
from pipeline.sources.base import SourceError, load_json
from pipeline.sources.email import split_mbox

FORMATS: dict[str, str] = {
    "csv": "text/csv",
    "xlsx": "text/csv",  # the first sheet, each row submitted as a CSV record
    "xls": "text/csv",  # the same, from an Excel 97-2003 workbook
    "jsonl": "application/json",
    "json": "application/json",
    "mbox": "application/mbox",
    "eml": "message/rfc822",
    "vcard": "text/vcard",
}
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".xls": "xls",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".mbox": "mbox",
    ".eml": "eml",
    ".vcf": "vcard",
    ".vcard": "vcard",
}


def formats_read(accepted: Iterable[str]) -> list[str]:
    """The ``--format`` names whose records a channel's adapter reads (an mbox's records are single messages)."""
    types = set(accepted)
    return [fmt for fmt, kind in FORMATS.items() if ("message/rfc822" if fmt == "mbox" else kind) in types]


def guess_format(path: Path, *, mail: bool = False) -> str:
    """The format by the file's extension. ``mail``: a file of unknown extension is a message (maildir entries and
    mail corpora name their files ``1700000000.M1P2.host`` or ``00001.7848dde1...``), an mbox when it starts as one."""
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None and mail:
        with path.open("rb") as file:
            return "mbox" if file.read(5) == b"From " else "eml"
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path.name}; pass --format ({'|'.join(FORMATS)})")
    return fmt


_HEADER_LINE = re.compile(rb"^(?:From |[!-9;-~]{1,100}:)")
"""How a message (or an mbox) opens: a header field's name and colon, or an mbox's ``From `` line."""


def is_mail(head: bytes) -> bool:
    """Whether a file that opens with ``head`` may be a message (or an mbox): its first line that is not blank is a
    header field or an mbox's ``From `` line. A mail corpus's other files are not: SpamAssassin's ``cmds`` (``mv
    00001.bfc8... 00001.7c53...``), TREC's ``full/index`` (``spam ../data/inmail.1``, the corpus's answer key), a
    README, a maildir's ``dovecot-uidlist``."""
    return bool(_HEADER_LINE.match(head.lstrip(b"\xef\xbb\xbf").lstrip(b"\r\n \t")))


#: How much of a file ``is_mail`` reads.
_HEAD_BYTES = 4096


def list_files(path: Path) -> list[tuple[Path, Path]]:
    """The files under a directory in path order, each with its name under it; hidden ones left out."""
    found = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        name = file.relative_to(path)
        if not any(part.startswith(".") for part in name.parts):
            found.append((file, name))
    return found


def records_at(path: Path, fmt: str | None = None, *, mail: bool = False) -> list[ImportRecord]:
    """``iter_records`` as a list (one file, or a small directory: a corpus is read with ``iter_records``)."""
    return list(iter_records(path, fmt, mail=mail))


def iter_records(
    path: Path,
    fmt: str | None = None,
    *,
    mail: bool = False,
    on_file: Callable[[], None] | None = None,
    files: Sequence[tuple[Path, Path]] | None = None,
) -> Iterator[ImportRecord]:
    """The records of a file, or of every file under a directory (a maildir's ``cur`` and ``new`` included; hidden
    files left out), each named by its file too (``cur/1700000000.M1P2.host: file``), read one file at a time (a
    corpus of 75,000 messages is never held whole). ``fmt``: every file's format; else each file's by
    ``guess_format``. ``mail`` without ``fmt``: a file of no known extension that is no message (``is_mail``) is one
    record skipped as ``not_a_message``, counted and named, never submitted. ``on_file`` after each file is read;
    ``files``: the directory's ``list_files``, when the caller has them."""
    found: Sequence[tuple[Path, Path | None]] = (files or list_files(path)) if path.is_dir() else [(path, None)]
    for file, name in found:
        data: bytes | None = None
        chosen = fmt
        try:
            data = file.read_bytes()
        except OSError as exc:  # a file this user may not read, gone meanwhile: said and counted, never a traceback
            where = f"{name}: file" if name is not None else "file"
            yield ImportRecord(b"", FORMATS["eml"] if mail else FORMATS["csv"], where, f"unreadable ({exc.strerror})")
            if on_file is not None:
                on_file()
            continue
        if mail and fmt is None and file.suffix.lower() not in _EXTENSIONS:
            if not is_mail(data[:_HEAD_BYTES]):
                where = f"{name}: file" if name is not None else "file"
                yield ImportRecord(b"", FORMATS["eml"], where, "not_a_message")
                if on_file is not None:
                    on_file()
                continue
            chosen = "mbox" if data.startswith(b"From ") else "eml"  # as ``guess_format`` tells
        records = split_records(data, chosen or guess_format(file, mail=mail))
        if name is None:
            yield from records
        else:
            for record in records:
                yield record._replace(where=f"{name}: {record.where}")
        if on_file is not None:
            on_file()


def content_types_at(
    path: Path, fmt: str | None = None, *, mail: bool = False, files: Sequence[tuple[Path, Path]] | None = None
) -> set[str]:
    """The media types the records of a file or directory are submitted as, from each file's format alone (its
    extension, or its first bytes for mail), so a format the channel cannot read is refused before anything is sent;
    ``ValueError`` (``guess_format``) for a file whose format cannot be told."""
    if fmt:
        formats = {fmt}
    elif path.is_dir():
        formats = {guess_format(file, mail=mail) for file, _ in (files or list_files(path))}
    else:
        formats = {guess_format(path, mail=mail)}
    return {"message/rfc822" if each == "mbox" else FORMATS[each] for each in formats}


class ImportRecord(NamedTuple):
    """One record of a file: its bytes, the media type it is submitted as, and where it is in the file."""

    raw: bytes
    content_type: str
    where: str
    """"line 12" (CSV: the line the row starts on, header and multi-line cells counted; JSON Lines; vCard: its
    BEGIN line), prefixed by the file's name under a directory ("cur/1700000000.M1P2.host: file"), "message 3"
    (mbox, from 1), "[4]" (index in a JSON array; "results[4]" in an API export's list), or "file" (submitted
    whole)."""
    skipped: str | None = None
    """Why a spreadsheet's row is no record and is not submitted: ``above_header`` (a title, LinkedIn's notes),
    ``footer`` (Salesforce's "Grand Totals", a total row); or why a file under a mail directory is none:
    ``not_a_message`` (``is_mail``); counted apart in the summary."""


def split_records(data: bytes, fmt: str) -> list[ImportRecord]:
    """One record per person. A file that cannot be split is one record (and will be rejected)."""
    content_type = FORMATS[fmt]
    try:
        if fmt in ("csv", "xlsx", "xls"):
            place = "line" if fmt == "csv" else "row"  # a workbook's rows as Excel shows them
            if fmt == "csv":
                rows, skipped = tabular.split_csv(data)
            else:
                as_csv = tabular.xlsx_as_csv(data) if fmt == "xlsx" else tabular.xls_as_csv(data)
                rows, skipped = tabular.split_csv(as_csv, dialect=csv.excel)
            found = [(line, ImportRecord(row, tabular.ROW_TYPE, f"{place} {line}")) for line, row in rows]
            found += [(line, ImportRecord(b"", tabular.ROW_TYPE, f"{place} {line}", why)) for line, why in skipped]
            return [record for _, record in sorted(found, key=lambda pair: pair[0])]
        if fmt == "jsonl":
            lines = enumerate(data.split(b"\n"), start=1)
            return [ImportRecord(line.strip(), content_type, f"line {n}") for n, line in lines if line.strip()]
        if fmt == "mbox":
            messages = enumerate(split_mbox(data), start=1)
            return [ImportRecord(message, "message/rfc822", f"message {n}") for n, message in messages]
        if fmt == "vcard":
            cards = vcard.split_vcards(data)
            return [ImportRecord(card.encode(), content_type, f"line {line}") for line, card in cards]
        if fmt == "json":
            parsed = load_json(data)  # the adapter's own reading (duplicate keys refused, not resolved here)
            key = ""
            if (wrapped := tabular.record_list(parsed)) is not None:  # an API export: {"results": [...], ...}
                key, parsed = wrapped
            if isinstance(parsed, list) and parsed:
                return [ImportRecord(orjson.dumps(item), content_type, f"{key}[{i}]") for i, item in enumerate(parsed)]
    except (SourceError, orjson.JSONDecodeError):
        pass  # submitted whole below: the adapter names the problem and the file is dead-lettered, not lost
    return [ImportRecord(data, "message/rfc822" if fmt == "mbox" else content_type, "file")]


def parse_defaults(pairs: Sequence[str], fmt: str) -> dict[str, str]:
    """``--default FIELD=VALUE`` options as a mapping; a usage error (``ValueError``) for a malformed one or for a
    format whose records have no fields to fill (mbox, eml)."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise ValueError(f"--default takes FIELD=VALUE, not {pair!r}")
        found[name.strip()] = value
    if found and fmt in ("mbox", "eml"):
        raise ValueError("--default fills fields of csv, xlsx, xls, jsonl, json and vcard records; a mail has none")
    return found


def with_defaults(records: list[ImportRecord], defaults: Mapping[str, str]) -> list[ImportRecord]:
    """Each record with ``defaults`` filled in where it has no value: a column added to a CSV row, or filled where
    the row left it empty; a key added to a JSON object. A record submitted whole (``file``) is left as it is."""
    if not defaults:
        return records
    out: list[ImportRecord] = []
    for record in records:
        raw = record.raw
        if record.skipped is None and record.content_type == tabular.ROW_TYPE:
            raw = tabular.with_columns(raw, defaults)
        elif record.where != "file" and record.content_type in vcard.VCARD_TYPES:
            with contextlib.suppress(SourceError):  # an unreadable card is submitted as it is: the adapter says why
                raw = vcard.with_fields(raw.decode(), defaults).encode()
        elif record.where != "file" and (parsed := _json_object(raw)) is not None:
            missing = {name: value for name, value in defaults.items() if parsed.get(name) in (None, "")}
            raw = orjson.dumps({**parsed, **missing}) if missing else raw
        out.append(record._replace(raw=raw))
    return out


def _json_object(raw: bytes) -> dict[str, object] | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


#: How the summary names ``ImportRecord.skipped``.
_SKIPPED = {"above_header": "above the header", "footer": "the file's footer", "not_a_message": "not a message"}

_PIECE_ROW = re.compile(r"^row \d+\.")
"""A CSV record is submitted as its own two-line document, whose adapter names the row "row 2": the file's line
is the record's ``where`` instead."""


def _field_in_file(field: str | None) -> str:
    return _PIECE_ROW.sub("", field or "") or "payload"


@dataclass
class ImportSummary:
    records: int = 0
    """Records submitted: ``accepted`` + ``sum(ignored.values())`` + ``rejected``."""
    accepted: int = 0
    """Records that became events (``published_events`` counts the events: a record may hold several)."""
    published_events: int = 0
    rejected: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    ignored: collections.Counter[str] = field(default_factory=collections.Counter)
    """Records that name no contact by their nature (a messenger's receipts in an export), by reason."""
    skipped: dict[str, list[str]] = field(default_factory=dict)
    """A spreadsheet's rows that are no records (``ImportRecord.skipped``): where they are, by reason."""
    dead_letter_ids: list[UUID] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def skip(self, record: ImportRecord) -> None:
        """Count a row that is no record; it is neither submitted nor dead-lettered."""
        self.skipped.setdefault(record.skipped or "unknown", []).append(record.where)

    def accounting(self) -> str:
        """One line that adds up: every record read is accepted, without a contact or rejected, and every row or
        file that is no record is skipped, by reason."""
        ignored = sum(self.ignored.values())
        line = (
            f"{self.records + sum(len(p) for p in self.skipped.values())} read = {self.accepted} accepted "
            f"+ {ignored} without a contact + {self.rejected} rejected (dead-lettered)"
        )
        for reason, places in self.skipped.items():
            line += f" + {len(places)} skipped ({_SKIPPED.get(reason, reason)})"
        return line

    def add(self, result: SubmitResult, where: str) -> None:
        """Count one record's result; ``where`` says where the record is in the file (``ImportRecord.where``)."""
        self.records += 1
        if result.accepted:
            self.published_events += len(result.event_ids)
            if result.ignored is not None:
                self.ignored[result.ignored] += 1
            else:
                self.accepted += 1
        else:
            self.rejected += 1
            self.reasons[result.reason or "unknown"] += 1
            if result.dead_letter_id is not None:
                self.dead_letter_ids.append(result.dead_letter_id)
            if len(self.examples) < 20:
                why = "; ".join(f"{_field_in_file(p.field)}: {p.message}" for p in result.problems[:3])
                self.examples.append(f"{where}: {why} (dead letter {result.dead_letter_id})")


BATCH_BYTES = 4 << 20
"""A batch's records are also cut at this many bytes: ingest holds about ten times a batch's bytes while it parses,
seals and publishes it (measured: 500 messages of 50 KB peaked at ~270 MB), and a corpus's mail with attachments
runs to megabytes a message."""


def run_import(
    service: IngestService,
    channel: Channel,
    records: Iterable[ImportRecord],
    source_id: str,
    *,
    batch_size: int = 500,
    on_batch: Callable[[int], None] | None = None,
    content_types: Iterable[str] | None = None,
    batch_bytes: int = BATCH_BYTES,
) -> ImportSummary:
    """Submit records in confirmed batches of at most ``batch_size`` records and, unless one record is bigger,
    ``batch_bytes`` of them, reading ``records`` as it goes (one batch held at a time); ``on_batch(n)`` after each
    with the records it covered, skipped ones included (progress). ``content_types``: the media types the records
    will have (``content_types_at``), checked against the channel before anything is sent; by default read from
    ``records``, which are then held whole."""
    summary = ImportSummary()
    if content_types is None:
        records = list(records)
        content_types = {record.content_type for record in records}
    for content_type in set(content_types):
        service.check_content_type(channel, content_type)
    stream = iter(records)
    while True:
        batch: list[ImportRecord] = []
        covered = size = 0
        full = False
        for record in stream:
            covered += 1
            if record.skipped is not None:
                summary.skip(record)
                continue
            batch.append(record)
            size += len(record.raw)
            if full := len(batch) == batch_size or size >= batch_bytes:
                break
        if batch:
            results = service.submit_many([Submission(source_id, channel, r.raw, r.content_type) for r in batch])
            for record, result in zip(batch, results, strict=True):
                summary.add(result, record.where)
        if on_batch is not None and covered:
            on_batch(covered)
        if not full:
            return summary


@needs(KAFKA, DATABASE)
@exits(
    {
        1: "a record was rejected (and dead-lettered); the others were published",
        2: "usage: unknown format, or a format the channel does not read",
    }
)
def import_file(
    channel: Annotated[Channel, typer.Argument(help="The policy channel the records belong to.")],
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            readable=True,
            help="CSV, Excel (.xlsx, .xls), JSONL, JSON, mbox, .eml or vCard (.vcf); or a directory of them (a "
            "maildir: for e-mail a file of unknown extension is a message)",
        ),
    ],
    *,
    source_id: Annotated[str, typer.Option("--source-id", help="Provenance source id on every event.")] = "import",
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv|xlsx|xls|jsonl|json|mbox|eml|vcard; default: by extension.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Records per confirmed publish.")] = 500,
    defaults: Annotated[
        list[str] | None,
        typer.Option(
            "--default",
            metavar="FIELD=VALUE",
            help="A value for every record that has none (repeatable): an export without the event's date or name.",
        ),
    ] = None,
) -> None:
    """Load a file of contacts; exit code 1 when any record was rejected (and dead-lettered).

    Columns and fields per channel, with a sample file for each: docs/ingest.md.

    Example: leadpipe import customer docs/samples/customer.csv --source-id crm-export

    Example: leadpipe import event attendees.xlsx --default event_date=2024-05-14 --default "event_name=Expo 2024"

    Example: leadpipe import email inbox.mbox

    Example: leadpipe import event scanned-cards.vcf --default event_date=2024-05-14

    Example: leadpipe import email ~/Maildir
    """
    console = Console(stderr=True)
    mail = channel is Channel.EMAIL
    directory = file.is_dir()
    try:
        chosen = fmt or ("directory" if directory else guess_format(file, mail=mail))
        if chosen not in (*FORMATS, "directory"):
            raise ValueError(f"unknown format {chosen}; use one of {'|'.join(FORMATS)}")
        given = parse_defaults(defaults or [], chosen)
        listed = list_files(file) if directory else []
        content_types = content_types_at(file, fmt, mail=mail, files=listed)
        # A file is read whole (its records are the bar's total); a directory one file at a time, its files the
        # total: a corpus of 75,000 messages is never held in memory.
        whole = None if directory else records_at(file, fmt, mail=mail)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    settings = get_settings()
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    publisher = ConfirmingPublisher(settings)
    service = IngestService(runtime, publisher)
    try:
        with Progress(
            TextColumn("[bold]importing {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files" if directory else "records"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            if whole is not None:
                task = progress.add_task(file.name, total=len(whole))
                records: Iterable[ImportRecord] = with_defaults(whole, given)
                advance: Callable[[int], None] | None = lambda n: progress.advance(task, n)  # noqa: E731
            else:
                task = progress.add_task(file.name, total=len(listed))
                read = iter_records(file, fmt, mail=mail, on_file=lambda: progress.advance(task, 1), files=listed)
                records = (with_defaults([record], given)[0] for record in read) if given else read
                advance = None
            summary = run_import(
                service,
                channel,
                records,
                source_id,
                batch_size=batch_size,
                on_batch=advance,
                content_types=content_types,
            )
    except UnsupportedContentType as exc:  # the formats a person gives, not the media types of the HTTP API
        what = f"{chosen} files" if chosen != "directory" else exc.content_type
        said = f"{channel.value} does not read {what}; formats it reads: {', '.join(formats_read(exc.accepted))}"
        console.print(said, style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    finally:
        publisher.close()
    table = Table(title=f"import of {file.name} ({channel.value}, {chosen})")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_row("records read", str(summary.records))
    table.add_row("events published", str(summary.published_events))
    for reason, count in summary.ignored.most_common():
        table.add_row(f"records without a contact: {reason}", str(count))
    table.add_row("records rejected (dead-lettered)", str(summary.rejected))
    for reason, count in summary.reasons.most_common():
        table.add_row(f"  rejected: {reason}", str(count))
    for reason, places in summary.skipped.items():
        what = "files" if reason == "not_a_message" or reason.startswith("unreadable") else "rows"
        table.add_row(f"{what} skipped: {_SKIPPED.get(reason, reason)}", str(len(places)))
    Console().print(table)
    console.print(summary.accounting(), markup=False, highlight=False)
    console.print(
        f"Event ids follow from the source id ({source_id}) and each record's content: importing the same records "
        "again publishes the same ids, which the pipeline keeps once.",
        markup=False,
        highlight=False,
    )
    for reason, places in summary.skipped.items():
        shown = ", ".join(places[:5]) + (", ..." if len(places) > 5 else "")
        console.print(f"  skipped ({_SKIPPED.get(reason, reason)}): {shown}", markup=False, highlight=False)
    for line in summary.examples:
        console.print(f"  {line}", markup=False, highlight=False)
    if summary.rejected or any(reason.startswith("unreadable") for reason in summary.skipped):
        raise typer.Exit(1)
