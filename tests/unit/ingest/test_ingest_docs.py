"""docs/ingest.md's table of field names is the one the adapters use (``pipeline.sources.fields``): a name added
to the code without the docs, or documented but not read, fails here."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.sources.fields import _ALIASES, canonical_field

DOC = Path(__file__).resolve().parents[3] / "docs" / "ingest.md"


def _table() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text().splitlines():
        match = re.fullmatch(r"\| `(\w+)` \| (.+) \|", line)
        if match and match.group(1) in _ALIASES:
            rows[match.group(1)] = re.findall(r"`([^`]+)`", match.group(2).partition(" (")[0])
    return rows


def test_the_documented_field_names_are_the_ones_read() -> None:
    table = _table()
    assert set(table) == set(_ALIASES)
    for canonical, names in table.items():
        assert names == list(_ALIASES[canonical]), canonical


def test_the_documented_spellings_reach_their_field() -> None:
    assert canonical_field("E-Mail Address") == "email"
    assert canonical_field("your-email") == "email"
    assert canonical_field("tel-123") == "phone"
    assert canonical_field("Contact Person") == "full_name"
    assert canonical_field("Last Service Delivery") == "last_service_delivery_at"
