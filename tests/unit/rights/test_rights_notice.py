"""Policy 9.5: a person is told when their restriction is lifted. The notice is due when one was lifted, not for
every unrestriction asked for: lifting a restriction that never stood tells nobody anything (the probe's
never-restricted person flagged NOTICE-DUE)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from identity_helpers import person
from ingest_helpers import RecordingPublisher

from pipeline.models.rights import RightKind
from pipeline.rights.commands import build_command
from pipeline.rights.effects.base import Context
from pipeline.rights.effects.suppression import SuppressionPublisher
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
SUBJECT = "sk_" + "9" * 40


def _run(tracker: RequestTracker, kind: RightKind) -> bool:
    """Record a request, carry out its suppression step, and say whether a notice is due for it."""
    command = build_command(kind, SUBJECT, issued_by=person("dpo"), now=NOW)
    tracker.record(command, ["suppression"])
    effect = SuppressionPublisher(tracker, RecordingPublisher())  # type: ignore[arg-type]
    effect.apply(Context(command=command, now=NOW, open_sealed=lambda *_: None))
    view = tracker.get(command.request_id)
    assert view is not None
    return view.notice_due


def test_a_notice_is_due_only_when_a_restriction_was_lifted(runtime: Runtime) -> None:
    tracker = RequestTracker(runtime.engine)
    assert not _run(tracker, RightKind.UNRESTRICTION)  # never restricted: nothing to tell
    assert not _run(tracker, RightKind.RESTRICTION)
    assert _run(tracker, RightKind.UNRESTRICTION)  # lifted: the person is told
    assert not _run(tracker, RightKind.UNRESTRICTION)  # already lifted


def test_a_notice_is_recorded_once(runtime: Runtime) -> None:
    """Recorded again, the notice rewrote who told the person and when."""
    from pipeline.rights.dpo import DpoTools

    tools = DpoTools(runtime, RecordingPublisher(), migrate=False)  # type: ignore[arg-type]
    command = build_command(RightKind.UNRESTRICTION, SUBJECT, issued_by=person("dpo"), now=NOW)
    tools.tracker.record(command, ["suppression"])
    first = tools.notice_sent(command.request_id, by=person("dora"))
    assert first.notice_sent_by is not None and first.notice_sent_by.display_name == "Dora"
    with pytest.raises(ValueError, match="recorded already, by Dora"):
        tools.notice_sent(command.request_id, by=person("otto"))
