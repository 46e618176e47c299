"""``leadpipe import email DIR`` on a public spam corpus's layout, at a size where holding it whole would show.

The acceptance imports SpamAssassin's public corpus (``easy_ham/``, ``spam/``, ... each with its ``cmds``), TREC 2007
(``data/inmail.N`` and ``full/index``, the answer key) and Enron-Spam: every message is accounted for, the files
that are no message are counted and named (never 10,000 dead letters, never silently left out), and a directory is
read one file at a time.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from ingest_helpers import RecordingPublisher

from pipeline import importer
from pipeline.config import Settings
from pipeline.importer import ImportSummary, records_at, run_import
from pipeline.ingest.service import IngestService
from pipeline.kafka.producer import Outgoing
from pipeline.models.common import Channel
from pipeline.models.records import DeadLetter
from pipeline.runtime import Runtime


def _message(n: int, *, body: str = "Could we see a demo of the platform next week?") -> bytes:
    return (
        f"From: Person {n} <person{n}@example{n % 7}.com>\r\n"
        f"To: sales@example.org\r\nSubject: Demo {n}\r\nDate: Tue, 04 Jun 2002 09:{n % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{n}.corpus@example.org>\r\n\r\n{body}\r\n"
    ).encode()


def _corpus(root: Path, per_dir: int, *, body: str | None = None, extras: bool = True) -> int:
    """SpamAssassin's and TREC's layouts with (``extras``) their files that are no message; the number of messages
    written."""
    written = 0
    for name in ("easy_ham", "spam"):
        folder = root / "sa" / name
        folder.mkdir(parents=True)
        lines = []
        for k in range(1, per_dir + 1):
            written += 1
            raw = b"From person@example.com  Thu Aug 22 13:17:22 2002\n" + _message(written, **_body(body))
            (folder / f"{k:05d}.{written:032x}").write_bytes(raw)
            lines.append(f"mv {k:05d}.{k:032x} {k:05d}.{written:032x}")
        if extras:
            (folder / "cmds").write_text("\n".join(lines) + "\n")
    data, full = root / "trec07p" / "data", root / "trec07p" / "full"
    data.mkdir(parents=True)
    full.mkdir(parents=True)
    index = []
    for k in range(1, per_dir + 1):
        written += 1
        (data / f"inmail.{k}").write_bytes(_message(written, **_body(body)))
        index.append(f"{'spam' if k % 3 else 'ham'} ../data/inmail.{k}")
    if extras:
        (full / "index").write_text("\n".join(index) + "\n")
        (root / "README").write_text("This corpus holds mail from 2002-2007.\n")
    return written


def _body(body: str | None) -> dict[str, str]:
    return {} if body is None else {"body": body}


def _dead_letters(publisher: RecordingPublisher) -> list[DeadLetter]:
    return [r.value for r in publisher.records if isinstance(r.value, DeadLetter)]


def test_a_corpus_files_that_are_no_message_are_counted_and_named_not_dead_lettered(
    runtime: Runtime, publisher: RecordingPublisher, tmp_path: Path
) -> None:
    """``cmds``, TREC's ``full/index`` and a README were each submitted as a message and dead-lettered as
    ``no_identity`` (TREC's 2 MB index as one sealed dead letter): now each is skipped as ``not_a_message``, named,
    and the accounting adds up: messages in == accepted + without a contact + rejected."""
    messages = _corpus(tmp_path / "corpus", 60)
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    summary = run_import(service, Channel.EMAIL, records_at(tmp_path / "corpus", mail=True), "import", batch_size=50)
    assert summary.rejected == 0 and not _dead_letters(publisher), summary.examples
    assert summary.records == messages == summary.accepted + sum(summary.ignored.values()) + summary.rejected
    assert sorted(summary.skipped["not_a_message"]) == [
        "README: file",
        "sa/easy_ham/cmds: file",
        "sa/spam/cmds: file",
        "trec07p/full/index: file",
    ]
    assert (
        summary.accounting() == f"{messages + 4} read = {messages} accepted + 0 without a contact + 0 rejected "
        "(dead-lettered) + 4 skipped (not a message)"
    )


def test_a_message_without_a_sender_is_still_a_message(
    runtime: Runtime, publisher: RecordingPublisher, tmp_path: Path
) -> None:
    """Enron-Spam's files open with ``Subject:`` and have no sender: messages, rejected as ``no_identity`` (and
    dead-lettered) like any such mail, not skipped: only a file whose first line is no header field is."""
    corpus = tmp_path / "enron1"
    (corpus / "ham").mkdir(parents=True)
    (corpus / "ham" / "0001.1999-12-10.farmer.ham.txt").write_bytes(b"Subject: meter 7268\r\n\r\nvols attached\r\n")
    (corpus / "ham" / "0002.txt").write_bytes(b"From: Ana <ana@example.es>\r\n\r\nHola\r\n")
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    summary = run_import(service, Channel.EMAIL, records_at(corpus, mail=True), "import")
    assert (summary.records, summary.accepted, dict(summary.reasons), summary.skipped) == (2, 1, {"no_identity": 1}, {})


class _Discarding(RecordingPublisher):
    """Confirms every record and keeps none (the broker holds them, not the importer)."""

    def __init__(self, *_: object) -> None:
        super().__init__()
        self.published = 0

    def publish(self, records: Iterable[Outgoing], timeout_s: float | None = None) -> int:
        self.published += (count := sum(1 for _ in records))
        return count

    def close(self) -> None:
        pass


def _peak_import(root: Path) -> tuple[int, int]:
    """Peak bytes allocated while ``leadpipe import email root`` runs (batches of 20), and the messages published."""
    publishers: list[_Discarding] = []
    with pytest.MonkeyPatch.context() as patch:

        def made(_settings: Settings) -> _Discarding:
            publishers.append(_Discarding())
            return publishers[-1]

        patch.setattr(importer, "ConfirmingPublisher", made)
        tracemalloc.start()
        try:
            importer.import_file(Channel.EMAIL, root, batch_size=20)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return peak, publishers[0].published


def test_importing_a_directory_holds_a_batch_not_the_corpus(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``leadpipe import email DIR`` read every file of the directory into one list before the first publish, so a
    corpus of 75,000 messages (TREC 2007) was held whole. Now the peak is a batch's, whatever the corpus's size: four
    times the messages (3 MB against 12 MB of ~50 KB messages) cost the same memory (before: 2.9 and 11.6 MB more)."""
    body = ("Our quarterly catalogue lists every product line and its price. " * 16 + "\r\n") * 48  # ~50 KB
    small = _corpus(tmp_path / "small", 20, body=body, extras=False)
    large = _corpus(tmp_path / "large", 80, body=body, extras=False)
    _corpus(tmp_path / "warm", 1, extras=False)
    settings = make_settings(home=tmp_path / "home")
    monkeypatch.setattr(importer, "get_settings", lambda: settings)
    _peak_import(tmp_path / "warm")  # the adapters' and the key store's first use import modules and build caches
    (small_peak, small_sent), (large_peak, large_sent) = (
        _peak_import(tmp_path / "small"),
        _peak_import(tmp_path / "large"),
    )
    assert large_sent == 4 * small_sent >= 2 * small  # a normalized and a raw record per message
    assert large_peak < small_peak * 1.5, f"peaks {small_peak:,} and {large_peak:,} bytes for {small} and {large}"


def test_a_batch_is_cut_by_its_bytes_too(runtime: Runtime, publisher: RecordingPublisher, tmp_path: Path) -> None:
    """Ingest holds about ten times a batch's bytes while it parses and seals it: 500 messages with attachments
    (a corpus's spam runs to megabytes a message) were one batch of gigabytes. A batch stops at ``BATCH_BYTES``."""
    attachment = "QUJD" * 19 + "\r\n"
    body = "see the attached file\r\n" + attachment * 5_000  # ~400 KB of base64 lines
    (tmp_path / "spam").mkdir()
    for n in range(24):
        (tmp_path / "spam" / f"{n:05d}.eml").write_bytes(_message(n, body=body))
    publishes: list[int] = []
    recorded = publisher.publish

    def publish(records: Iterable[Outgoing], timeout_s: float | None = None) -> int:
        publishes.append(1)
        return recorded(records, timeout_s)

    publisher.publish = publish  # type: ignore[method-assign]
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    summary = run_import(service, Channel.EMAIL, records_at(tmp_path / "spam", mail=True), "import")
    assert summary.records == 24 and not summary.rejected, summary
    assert len(publishes) >= 2, publishes  # ~10 MB: before, one


def test_the_summary_adds_up_what_was_ignored_too() -> None:
    """A receipt (a bounce in a corpus) is read, counted apart and adds up with the rest."""
    summary = ImportSummary(records=3, accepted=1, rejected=1)
    summary.ignored["bounce"] += 1
    assert summary.accounting() == "3 read = 1 accepted + 1 without a contact + 1 rejected (dead-lettered)"


def test_a_file_that_cannot_be_read_is_counted_and_named_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corpus unpacked by another user, a file gone meanwhile: ``leadpipe import`` ended in a PermissionError
    traceback with no summary. The file is a record skipped as unreadable, the others are read."""
    (tmp_path / "ok.eml").write_bytes(_message(1))
    (tmp_path / "locked.eml").write_bytes(_message(2))
    read_bytes = Path.read_bytes

    def refuse(path: Path) -> bytes:  # as for a file of another user's (tests run as root, who may read anything)
        if path.name == "locked.eml":
            raise PermissionError(13, "Permission denied")
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    records = list(importer.iter_records(tmp_path, mail=True))
    skipped = {r.where: r.skipped for r in records if r.skipped}
    assert [r.where for r in records if not r.skipped] == ["ok.eml: file"]
    assert skipped == {"locked.eml: file": "unreadable (Permission denied)"}


def test_a_json_export_with_a_repeated_key_is_refused_not_resolved() -> None:
    """Splitting an array export re-serialised each element with orjson, which let the last of two e-mails win
    before the adapter could refuse the ambiguity (``duplicate_key``): the file goes whole to the adapter now."""
    data = b'[{"email": "ann@example.com", "email": "bob@example.com"}, {"email": "cy@example.com"}]'
    [whole] = importer.split_records(data, "json")
    assert (whole.where, whole.raw) == ("file", data)
