"""The importer's splitting and batching, over the same service as the API (records captured, not produced)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_helpers import RecordingPublisher
from source_payloads import PAYLOADS

from pipeline.importer import guess_format, run_import, split_records
from pipeline.ingest.service import IngestService, UnsupportedContentType
from pipeline.models.common import Channel
from pipeline.models.records import DeadLetter
from pipeline.runtime import Runtime


def test_csv_is_split_per_row_with_its_header() -> None:
    records = split_records((PAYLOADS / "event" / "business_cards.csv").read_bytes(), "csv")
    assert len(records) == 3  # the blank row is not a record
    for raw, content_type in records:
        header, _row = raw.decode().splitlines()
        assert header.startswith("Name,Job Title") and content_type == "text/csv"


def test_formats_split_and_guess() -> None:
    assert len(split_records((PAYLOADS / "email" / "inbox.mbox").read_bytes(), "mbox")) == 3
    assert len(split_records((PAYLOADS / "customer" / "customers.jsonl").read_bytes(), "jsonl")) == 3
    assert len(split_records((PAYLOADS / "messenger" / "phone_calls.json").read_bytes(), "json")) == 2
    assert split_records(b"not json", "json") == [(b"not json", "application/json")]  # rejected whole, not lost
    assert guess_format(Path("x.NDJSON")) == "jsonl"
    with pytest.raises(ValueError, match="--format"):
        guess_format(Path("x.xlsx"))


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


def test_import_refuses_a_format_the_channel_cannot_read(runtime: Runtime, publisher: RecordingPublisher) -> None:
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedContentType):
        run_import(service, Channel.CHATBOT, [(b"a,b\n1,2\n", "text/csv")], "import")
    assert publisher.records == []
