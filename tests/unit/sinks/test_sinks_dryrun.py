"""Without a token the HubSpot sink writes what it would send to a private JSONL file (the embedded default)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from fakes.contacts import make_tagged

from pipeline.config import Settings
from pipeline.sinks.base import WriteOutcome
from pipeline.sinks.hubspot.dryrun import DryRunGateway
from pipeline.sinks.hubspot.sink import HubSpotSink, make_gateway


def test_dry_run_is_the_default_without_token(settings: Settings) -> None:
    assert settings.hubspot_dry_run
    assert isinstance(make_gateway(settings), DryRunGateway)


def test_dry_run_records_each_request_in_a_private_file(settings: Settings) -> None:
    sink = HubSpotSink.from_settings(settings)
    batch = [make_tagged(f"p{i}@example.com") for i in range(150)] + [make_tagged(None, phone="+4930123456")]
    results = sink.write(batch)
    assert sum(r.outcome is WriteOutcome.WRITTEN for r in results) == 150
    assert sum(r.outcome is WriteOutcome.NOT_APPLICABLE for r in results) == 1
    path: Path = settings.resolved_dry_run_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["path"] for line in lines].count("/crm/v3/properties/contacts") >= 10
    upserts = [line for line in lines if line["path"] == "/crm/v3/objects/contacts/batch/upsert"]
    assert [len(u["body"]["inputs"]) for u in upserts] == [100, 50]
    assert upserts[0]["body"]["inputs"][0]["idProperty"] == "email"
