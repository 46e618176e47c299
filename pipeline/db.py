"""The one database of the CRM, the key store and the rights tracker: one Base, one engine factory, and bringing a
database to the current schema (``ensure_schema``), which every process does at start.

The schema's history is ``pipeline/migrations`` (Alembic, run from code: no alembic.ini). ``upgrade`` is safe to call
from several processes at once: PostgreSQL takes a transaction-scoped advisory lock (in ``migrations/env.py``), SQLite
a file lock beside the database. Alembic loads the migrations by path, so this module imports none of them, nor the
models they compare against (``pipeline.migrations.MODEL_MODULES``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Executable,
    MetaData,
    Row,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeEngine

_T = TypeVar("_T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite stores no zone and hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value  # str: SQLite with raw SQL
        if not isinstance(moment, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(moment).__name__}")
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    """Every table of the product; Alembic's autogenerate compares against this metadata."""

    metadata = MetaData(naming_convention=NAMING)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings each backend needs (SQLite: WAL, foreign keys, a busy timeout)."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # Switching to WAL needs a moment alone with the file, and SQLite does not always wait for it: when
            # several processes open a new database at once, retry instead of failing the first connection.
            for attempt in range(100):
                try:
                    if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        cur.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError:
                    if attempt == 99:
                        raise
                    time.sleep(0.05)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            # SQLite's own lower() folds ASCII only: a search for "иван" never found "Иванов" (PostgreSQL's folds
            # every script). Python's, as the searched text is folded, in its place.
            dbapi_conn.create_function("lower", 1, _lower, deterministic=True)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


#: What to do when the database cannot be reached; the CLI prints it after the reason.
DATABASE_HINT = (
    "check LEADPIPE_DATABASE_URL and that the database server runs (unset, leadpipe uses SQLite under LEADPIPE_HOME)"
)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the message names it (without its password) and the server's reason."""

    hint = DATABASE_HINT


def safe_url(url: str) -> str:
    """The URL as it may be printed: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an URL SQLAlchemy cannot parse)"


@contextlib.contextmanager
def disposing_engine(url: str, **kwargs: Any) -> Iterator[Engine]:
    """``make_engine`` for one command or one check: its connections are closed when the block ends."""
    engine = make_engine(url, **kwargs)
    try:
        yield engine
    finally:
        engine.dispose()


def check_database(url: str, timeout_s: int = 5) -> None:
    """Raise ``DatabaseUnavailable`` unless one connection opens and answers ``SELECT 1`` within ``timeout_s``."""
    try:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = make_engine(url, poolclass=NullPool, connect_args={"timeout": timeout_s})
        else:
            engine = make_engine(url, poolclass=NullPool, connect_args={"connect_timeout": max(2, timeout_s)})
    except (ArgumentError, ValueError, OSError) as exc:  # a malformed URL, a driver that is not installed
        raise DatabaseUnavailable(f"cannot use the database at {safe_url(url)} ({exc})") from exc
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise DatabaseUnavailable(f"cannot reach the database at {safe_url(url)} ({reason})") from exc
    finally:
        engine.dispose()


def dialect_insert(engine: Engine, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ``on_conflict_do_nothing/do_update`` on both supported backends."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"leadpipe supports PostgreSQL and SQLite, not {engine.dialect.name}")


def _sql_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    return type_.impl_instance if isinstance(type_, TypeDecorator) else type_


def any_of(engine: Engine, column: ColumnElement[Any] | InstrumentedAttribute[Any], name: str) -> ColumnElement[bool]:
    """``column IN (<the list bound as name>)``. On PostgreSQL ``= ANY(array)``: one statement whatever the count
    (prepared once by the driver, no SQL rendered per list length); elsewhere an expanding IN."""
    if engine.dialect.name == "postgresql":
        return column == any_(cast(bindparam(name), postgresql.ARRAY(_sql_type(column.type))))
    return column.in_(bindparam(name, expanding=True))


#: Values per statement when a list is bound for ``any_of`` (``rows_any_of``): SQLite's limit on bound parameters
#: is far above this.
ANY_OF_CHUNK = 500


def rows_any_of(
    conn: Connection, statement: Executable, name: str, values: Sequence[Any], params: Mapping[str, Any] | None = None
) -> list[Any]:
    """The rows (``Row``) of ``statement`` (an ``any_of`` list bound as ``name``) for all of ``values``,
    ``ANY_OF_CHUNK`` at a time, with ``params`` bound alongside."""
    rows: list[Any] = []
    for start in range(0, len(values), ANY_OF_CHUNK):
        rows.extend(conn.execute(statement, {**(params or {}), name: list(values[start : start + ANY_OF_CHUNK])}).all())
    return rows


@functools.lru_cache(maxsize=64)
def _unnest_insert(table: Table, names: tuple[str, ...], returning: tuple[str, ...] = ()) -> Executable:
    arrays = [func.unnest(cast(bindparam(n), postgresql.ARRAY(_sql_type(table.c[n].type)))) for n in names]
    insert = postgresql.insert(table).from_select(list(names), select(*arrays)).on_conflict_do_nothing()
    return insert.returning(*(table.c[n] for n in returning)) if returning else insert


@contextlib.contextmanager
def within(engine: Engine, conn: Connection | None) -> Iterator[Connection]:
    """``conn``, the caller's transaction (the caller commits), when given; else a transaction of its own on
    ``engine``, committed on leaving. Lets a store's write join a caller's one database trip or stand alone."""
    if conn is not None:
        yield conn
        return
    with engine.begin() as own:
        yield own


class KeptConnection:
    """One connection kept from use to use, for a hot path of many short database trips.

    A pooled connection per trip costs a checkout, a ping (``pool_pre_ping``: a round trip) and a reset, and a
    transaction a BEGIN and a ROLLBACK or COMMIT (psycopg sends each as a round trip): for the processing worker's
    one-statement key reads that was four round trips for one, ~35 % of its CPU at 1,000 events/s (issue 20).
    ``autocommit`` suits reads and self-contained statements; without it ``work`` commits what it wrote. A
    connection the server closed since its last use (a restart, a failover) is replaced and ``work`` runs once
    more, as a ping would have done; any other failure drops the connection (rolling back what it began) and is
    raised. Uses from several threads take turns.
    """

    def __init__(self, engine: Engine, *, autocommit: bool = False) -> None:
        self._engine = engine
        self._autocommit = autocommit
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[Connection], _T]) -> _T:
        with self._lock:
            try:
                return work(self._connection())
            except DBAPIError as exc:
                self._drop()
                if not exc.connection_invalidated:
                    raise
            except BaseException:
                self._drop()
                raise
            try:
                return work(self._connection())
            except BaseException:
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            self._conn = conn.execution_options(isolation_level="AUTOCOMMIT") if self._autocommit else conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(DBAPIError):
                conn.close()


def insert_ignoring_duplicates(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], returning: tuple[str, ...] = ()
) -> Sequence[Row[Any]]:
    """INSERT many rows (each with the same keys), skipping those that conflict with a row already there; with
    ``returning``, those columns of the rows inserted (a skipped row returns nothing), saving the read-back.

    On PostgreSQL one statement whose parameters are one array per column (``INSERT ... SELECT unnest(...)``),
    prepared once by the driver, instead of an executemany's statement per row. Values go to the driver as they
    are: give aware datetimes."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        names = tuple(rows[0])
        result = conn.execute(_unnest_insert(table, names, returning), {n: [row[n] for row in rows] for n in names})
    else:
        insert = dialect_insert(conn.engine, table).on_conflict_do_nothing()
        statement = insert.returning(*(table.c[n] for n in returning)) if returning else insert
        result = conn.execute(statement, list(rows))
    return result.all() if returning else []


@functools.lru_cache(maxsize=64)
def _unnest_update(table: Table, keys: tuple[str, ...], names: tuple[str, ...]) -> Executable:
    arrays = select(
        *(func.unnest(cast(bindparam(f"v_{n}"), postgresql.ARRAY(_sql_type(table.c[n].type)))).label(n) for n in names)
    ).subquery()
    values: dict[str, Any] = {n: arrays.c[n] for n in names if n not in keys}
    return update(table).where(*(table.c[k] == arrays.c[k] for k in keys)).values(values)


@functools.lru_cache(maxsize=64)
def _update_each(table: Table, keys: tuple[str, ...], names: tuple[str, ...]) -> Executable:
    values: dict[str, Any] = {n: bindparam(f"v_{n}") for n in names if n not in keys}
    return update(table).where(*(table.c[k] == bindparam(f"v_{k}") for k in keys)).values(values)


def update_rows(conn: Connection, table: Table, keys: tuple[str, ...], rows: Sequence[Mapping[str, Any]]) -> None:
    """UPDATE the row matching each of ``rows`` on the ``keys`` columns to that row's other values (each row with the
    same columns).

    On PostgreSQL one statement whose parameters are one array per column (``UPDATE ... FROM unnest(...)``), as
    ``insert_ignoring_duplicates`` inserts; elsewhere an executemany."""
    if not rows:
        return
    names = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        conn.execute(_unnest_update(table, keys, names), {f"v_{n}": [row[n] for row in rows] for n in names})
    else:
        conn.execute(_update_each(table, keys, names), [{f"v_{n}": row[n] for n in names} for row in rows])


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


#: The Alembic script directory: ``env.py`` and ``versions/``.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: PostgreSQL advisory lock key for migrations ("leadpipe" as a 63-bit number).
PG_LOCK_KEY = 0x6C65616470697065 & 0x7FFFFFFFFFFFFFFF


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at the migrations; the engine travels in ``attributes`` to env.py."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if engine is not None:
        config.attributes["engine"] = engine
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    migration_log = logging.getLogger("alembic.runtime.migration")
    level = migration_log.level
    migration_log.setLevel(logging.WARNING)  # "Context impl ..." on every read is noise
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        migration_log.setLevel(level)


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Alembic's ``context`` is module-global: one migration at a time per process (other processes: the DB locks).
_PROCESS_LOCK = threading.Lock()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade to ``revision`` (default head); returns the revision the database is at afterwards."""
    if revision == "head" and current_revision(engine) == head_revision():
        return head_revision()
    with _PROCESS_LOCK, _sqlite_file_lock(engine):
        command.upgrade(alembic_config(engine), revision)
    return current_revision(engine)


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the current schema. Every process calls this at start; it is idempotent."""
    upgrade(engine)
