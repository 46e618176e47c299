"""Binary COPY needs a psycopg type for every column the CRM writes: a new column type must be mapped here first."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, Table
from sqlalchemy.dialects.postgresql import INTERVAL

from pipeline.crm import schema
from pipeline.sinks.crm.pgcopy import copy_types


@pytest.mark.parametrize(
    "table", [schema.subjects, schema.identities, schema.interactions, schema.consents, schema.audit]
)
def test_every_crm_column_has_a_binary_copy_type(table: Table) -> None:
    columns = tuple(c.name for c in table.columns)
    types = copy_types(table, columns)
    assert len(types) == len(columns)
    assert (
        dict(zip(columns, types, strict=True)).items()
        >= {
            name: expected
            for name, expected in {
                "subject_key": "text",
                "event_id": "uuid",
                "occurred_at": "timestamptz",
                "purposes": "jsonb",
                "detail": "jsonb",
                "granted": "bool",
                "spam_score": "float8",
                "id": "int8",
            }.items()
            if name in columns
        }.items()
    )


def test_an_unmapped_column_type_is_named() -> None:
    table = Table("t", MetaData(), Column("wait", INTERVAL()))
    with pytest.raises(TypeError, match=r"t\.wait \(INTERVAL\)"):
        copy_types(table, ("wait",))
