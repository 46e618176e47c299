"""``leadpipe dpo status`` after requests completed (issue 18): recent ones are listed by default, and older ones are
counted with a pointer to ``--all``, instead of "0 request(s)" after three completed requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from identity_helpers import key_for, person
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import get_settings
from pipeline.db import ensure_schema, make_engine
from pipeline.models.identity import Role
from pipeline.models.rights import AuditRecord, RightKind, RightsStatus, SinkStatus
from pipeline.rights.commands import build_command
from pipeline.rights.tracker import RequestTracker

NOW = datetime.now(UTC)


@pytest.fixture
def tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RequestTracker]:
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    monkeypatch.setenv("LEADPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("LEADPIPE_DATABASE_URL", url)
    get_settings.cache_clear()
    engine = make_engine(url)
    ensure_schema(engine)
    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(get_settings(), Role.DPO))  # a database URL: a key is needed
    yield RequestTracker(engine)
    engine.dispose()
    get_settings.cache_clear()


def _request(tracker: RequestTracker, subject: str, received: datetime, completed: datetime | None) -> str:
    command = build_command(RightKind.ERASURE, subject, issued_by=person("dpo"), now=received)
    tracker.record(command, ["crm"])
    if completed is not None:
        tracker.set_sink(
            RightsStatus(
                request_id=command.request_id,
                subject_key=subject,
                sink="crm",
                status=SinkStatus.DONE,
                at=completed,
                evidence={},
            )
        )
    return str(command.request_id)


def test_status_lists_open_and_recently_completed_requests_and_points_to_all(tracker: RequestTracker) -> None:
    recent = [
        _request(tracker, f"sk_recent{i}", NOW - timedelta(hours=i + 1), NOW - timedelta(hours=i)) for i in (1, 2)
    ]
    old = _request(tracker, "sk_old", NOW - timedelta(days=40), NOW - timedelta(days=39))
    open_ = _request(tracker, "sk_open", NOW - timedelta(minutes=5), None)

    result = CliRunner().invoke(app, ["dpo", "status"])
    assert result.exit_code == 0, result.output
    first, *rest = result.output.splitlines()
    assert first == "1 open request(s), 0 overdue; 2 completed in the last 7 days"
    shown = "\n".join(rest)
    assert all(r in shown for r in (*recent, open_)) and old not in shown
    assert "1 older completed request(s) not shown: `leadpipe dpo status --all` lists every request" in shown

    every = CliRunner().invoke(app, ["dpo", "status", "--all"])
    assert every.exit_code == 0 and old in every.output and "not shown" not in every.output
    assert every.output.splitlines()[0] == "1 open request(s), 0 overdue; 3 completed"

    as_json = CliRunner().invoke(app, ["dpo", "status", "--json"])
    assert {r["request_id"] for r in json.loads(as_json.stdout)} == {*recent, open_}


def test_show_as_json_is_one_document_a_script_can_read(tracker: RequestTracker) -> None:
    """``dpo show`` printed the request's JSON and then its audit trail as text lines: no parser read both."""
    request_id = _request(tracker, "sk_shown", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    tracker.audit(AuditRecord.new("person:dpo", "rights_request_issued", request_id=UUID(request_id)))
    result = CliRunner().invoke(app, ["dpo", "show", request_id, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["request"]["request_id"] == request_id and document["request"]["subject_key"] == "sk_shown"
    assert [entry["action"] for entry in document["audit"]] == ["rights_request_issued"]
    text = CliRunner().invoke(app, ["dpo", "show", request_id])
    assert text.exit_code == 0 and request_id in text.output  # the readable form stays as it was
