"""The CRM schema against the person-field list and the shapes its writers build."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.crm.schema import IDENTITY_FIELDS, PERSONAL_SUBJECT_COLUMNS, audit, audit_row, subjects
from pipeline.models.contact import PROFILE_FIELDS


def test_every_profile_field_is_a_personal_column_of_the_subject() -> None:
    assert set(PROFILE_FIELDS) <= set(subjects.c.keys())
    assert set(PROFILE_FIELDS) <= set(PERSONAL_SUBJECT_COLUMNS)
    assert {name for name, _kind in IDENTITY_FIELDS} <= set(PROFILE_FIELDS)


def test_an_audit_row_fills_every_column_but_the_id() -> None:
    row = audit_row(datetime.now(UTC), "sk_a", "rectified", actor="rights", detail={"fields": []})
    assert set(row) == set(audit.c.keys()) - {"id"}
    assert (row["event_id"], row["request_id"]) == (None, None)
