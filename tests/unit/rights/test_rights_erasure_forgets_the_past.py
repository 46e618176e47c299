"""An erased person who writes again and asks for a copy of their data (9.1) must find only what came after: the
CRM's audit rows of the erased interactions (``interaction_recorded``: the event id, its kind and channel, the
purposes, the consents given and the fields filled in) described the erased past and outlived it, so the copy told
the person (and any reader of the audit) what they had sent before the erasure. They go with the erasure; the
rights' own rows (the objection the person made, the erasure itself with its counts) stay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes.contacts import make_tagged
from identity_helpers import person

from pipeline.db import ensure_schema, make_engine
from pipeline.models.rights import RightKind, RightsCommand
from pipeline.rights.commands import build_command
from pipeline.rights.effects.crm import SUBJECT_ERASED, CrmRights
from pipeline.sinks.crm.writer import CrmWriter

ERASED_AT = datetime(2025, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[CrmRights]:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    ensure_schema(engine)
    yield CrmRights(engine, clock=lambda: ERASED_AT)
    engine.dispose()


def command(kind: RightKind, subject_key: str) -> RightsCommand:
    return build_command(kind, subject_key, issued_by=person("dpo:test"), now=ERASED_AT)


def test_the_audit_of_erased_interactions_goes_with_them(crm: CrmRights) -> None:
    before = make_tagged(phone="+4930123456", occurred_at=datetime(2025, 5, 1, tzinfo=UTC))
    key = before.event.subject_key
    CrmWriter(crm.engine).write_events([before])
    crm.set_marketing_objection(key, command(RightKind.OBJECTION, key).request_id)
    erasure = command(RightKind.ERASURE, key)
    result = crm.erase_subject(key, erasure.request_id)

    after = make_tagged(occurred_at=datetime(2025, 7, 1, tzinfo=UTC))
    assert after.event.subject_key == key
    CrmWriter(crm.engine).write_events([after])
    export = crm.export_subject(key)
    assert export is not None
    audit: list[dict[str, Any]] = export["audit"]
    events = {e["event_id"] for e in audit if e["event_id"] is not None}
    assert str(before.event.event_id) not in events and str(after.event.event_id) in events
    actions = [e["action"] for e in audit]
    # the rights the person exercised stay on record; what they sent before the erasure does not
    assert actions[:2] == ["marketing_objected", SUBJECT_ERASED]
    assert actions.count("interaction_recorded") == 1
    assert [i["event_id"] for i in export["interactions"]] == [str(after.event.event_id)]
    assert result.evidence()["interaction_audit_deleted"] == 1  # the erasure's evidence counts them


def test_erasing_again_with_nothing_left_changes_nothing(crm: CrmRights) -> None:
    tagged = make_tagged(occurred_at=datetime(2025, 5, 1, tzinfo=UTC))
    key = tagged.event.subject_key
    CrmWriter(crm.engine).write_events([tagged])
    erasure = command(RightKind.ERASURE, key)
    crm.erase_subject(key, erasure.request_id)
    again = crm.erase_subject(key, erasure.request_id)
    assert again.already_erased and again.interaction_audit_deleted == 0
