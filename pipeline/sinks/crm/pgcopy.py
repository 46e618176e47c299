"""PostgreSQL binary COPY for the CRM's write path: rows straight into a table, or into a session-local staging
table that one ``INSERT ... SELECT ... ON CONFLICT`` then merges.

Binary COPY lets psycopg's C dumpers encode datetimes, UUIDs, numbers and text, and spares the server parsing them
from text; it needs the type of every column up front (``copy_types``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from operator import itemgetter
from typing import Any, cast

import orjson
import psycopg
from psycopg.types.json import set_json_dumps
from sqlalchemy import Column, Connection, MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

#: The staging tables' shapes (each transaction creates its own temporary table: see ``copy_to_stage``).
_STAGE_METADATA = MetaData()

#: psycopg type names of the SQL types the CRM tables use, for binary COPY (``copy.set_types``).
_PG_COPY_TYPES: dict[str, str] = {
    "VARCHAR": "text",
    "TEXT": "text",
    "UUID": "uuid",
    "BOOLEAN": "bool",
    "FLOAT": "float8",
    "BIGINT": "int8",
    "INTEGER": "int4",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "JSONB": "jsonb",
}


def _row_values(columns: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values in ``columns`` order: itemgetter does it in C (but returns a bare value for one key)."""
    if len(columns) == 1:
        (only,) = columns
        return lambda row: (row[only],)
    return cast(Callable[[Mapping[str, Any]], tuple[Any, ...]], itemgetter(*columns))


@cache
def copy_types(table: Table, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The psycopg type names of ``columns`` of ``table``, for ``COPY ... (FORMAT BINARY)``; a column of a type
    not mapped above is a ``TypeError`` that names it."""
    dialect: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    names = []
    for column in columns:
        compiled = table.c[column].type.compile(dialect=dialect).split("(")[0].strip()
        if compiled not in _PG_COPY_TYPES:
            raise TypeError(f"no binary COPY type for {table.name}.{column} ({compiled})")
        names.append(_PG_COPY_TYPES[compiled])
    return tuple(names)  # cached: immutable


def copy_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, into: str = ""
) -> None:
    """PostgreSQL binary COPY of rows (mappings with at least ``columns``) into ``into`` (default: ``table``),
    inside the connection's current transaction. ``table`` gives the column types.

    JSON values are dicts/lists encoded by orjson (psycopg's default is the stdlib ``json``, several times slower).
    """
    driver = conn.connection.driver_connection
    if driver is None:
        raise RuntimeError("no database connection")
    cols = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{into or table.name}" ({cols}) FROM STDIN (FORMAT BINARY)'
    values = _row_values(columns)
    try:
        with driver.cursor() as cur:
            set_json_dumps(orjson.dumps, context=cur)
            with cur.copy(statement) as copy:
                copy.set_types(copy_types(table, tuple(columns)))
                for row in rows:
                    copy.write_row(values(row))
    except psycopg.Error as exc:  # the same exception types as every other statement (DataError, IntegrityError...)
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def copy_to_stage(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Table:
    """COPY rows into a session-local staging table shaped like ``columns`` of ``table`` (emptied at commit)."""
    name = f"stage_{table.name}"
    stage = _STAGE_METADATA.tables.get(name)
    if stage is None:
        stage = Table(name, _STAGE_METADATA, *[Column(c, table.c[c].type) for c in columns])
    cols = ", ".join(f'"{c}"' for c in columns)
    # every time, not cached per connection: a rolled-back transaction takes the table it created with it
    conn.exec_driver_sql(
        f'CREATE TEMPORARY TABLE IF NOT EXISTS "{name}" ON COMMIT DELETE ROWS AS '
        f'SELECT {cols} FROM "{table.name}" WITH NO DATA'
    )
    copy_rows(conn, table, columns, rows, into=name)
    return stage
