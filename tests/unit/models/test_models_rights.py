"""``AuditRecord.new``: the one way every stage writes an audit entry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pipeline.models.rights import AuditRecord


def test_each_entry_has_its_own_id_and_the_given_or_current_time() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    detail = {"stage": "processing"}
    first = AuditRecord.new("processing", "dropped", at=at, subject_key="k", detail=detail)
    second = AuditRecord.new("processing", "dropped", at=at, subject_key="k", detail=detail)
    assert first.audit_id != second.audit_id
    assert (first.at, first.actor, first.action, first.subject_key, first.detail) == (
        at,
        "processing",
        "dropped",
        "k",
        detail,
    )
    assert first.detail is not detail  # a copy: the caller's mapping may change after
    before = datetime.now(UTC)
    now = AuditRecord.new("dpo", "request_extended", request_id=uuid.uuid4())
    assert before <= now.at <= datetime.now(UTC)
    assert (now.subject_key, now.event_id, now.detail) == (None, None, {})
