"""The column, key and index shapes every revision repeats, so a revision file says only what is new in it.

Each helper builds exactly what autogenerate wrote (same types, and the naming convention's names through ``op.f``),
so the schema is the one the models declare; ``tests/integration/sinks/test_sinks_crm.py`` compares the two.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def at(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """A timezone-aware timestamp: every time the database keeps is UTC with its offset."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def text(name: str, length: int | None = None, *, nullable: bool = False) -> sa.Column[Any]:
    """A string of at most ``length`` characters, or unbounded ``Text`` without one."""
    return sa.Column(name, sa.Text() if length is None else sa.String(length=length), nullable=nullable)


def subject_key(name: str = "subject_key", *, nullable: bool = False) -> sa.Column[Any]:
    """A subject key (the HMAC of an identifier, hex): the one way tables name a person."""
    return text(name, 128, nullable=nullable)


def big_id(name: str = "id") -> sa.Column[Any]:
    """An auto-increment surrogate key: BIGINT on PostgreSQL, INTEGER on SQLite (only that one auto-increments)."""
    return sa.Column(name, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False)


def document(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """A JSON document, JSONB on PostgreSQL."""
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    return sa.Column(name, json, nullable=nullable)


def primary_key(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    """The table's primary key under the naming convention's name."""
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def cascade(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    """A foreign key from ``table.column`` to ``target`` ("table.column") whose rows go when the target row goes."""
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"fk_{table}_{column}_{target.partition('.')[0]}"), ondelete="CASCADE"
    )


def create_indexes(table: str, *columns: str) -> None:
    """One plain index per column, through batch mode (SQLite cannot ALTER in place)."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def drop_indexes(table: str, *columns: str) -> None:
    """Undo ``create_indexes`` for the same columns."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in reversed(columns):
            batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))
