"""Realistic payload fixtures under tests/fixtures/payloads/<channel>/ and the content type each is sent with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipeline.models.common import Channel
from pipeline.sources import SourceContext

PAYLOADS = Path(__file__).resolve().parent / "fixtures" / "payloads"
MULTIPART_BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
RECEIVED_AT = datetime(2024, 6, 6, 12, 0, tzinfo=UTC)
PEPPER = b"unit-test-pepper"

_TYPES = {
    ".json": "application/json",
    ".txt": "application/x-www-form-urlencoded",
    ".multipart": f"multipart/form-data; boundary={MULTIPART_BOUNDARY}",
    ".eml": "message/rfc822",
    ".mbox": "application/mbox",
    ".csv": "text/csv",
    ".jsonl": "application/jsonl",
    ".vcf": "text/vcard",
}


def content_type_of(path: Path) -> str:
    return _TYPES[path.suffix]


def payload(channel: Channel | str, name: str) -> tuple[bytes, str]:
    path = PAYLOADS / Channel(channel).value / name
    return path.read_bytes(), content_type_of(path)


def all_payloads() -> list[tuple[Channel, Path]]:
    return [(Channel(p.parent.name), p) for p in sorted(PAYLOADS.rglob("*.*"))]


def ctx_for(channel: Channel | str, raw: bytes, content_type: str, source_id: str = "unit-source") -> SourceContext:
    return SourceContext.for_payload(
        raw,
        source_id=source_id,
        channel=Channel(channel),
        content_type=content_type,
        received_at=RECEIVED_AT,
        pepper=PEPPER,
    )
