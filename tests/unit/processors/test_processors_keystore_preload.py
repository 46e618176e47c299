"""``SqlKeyStore.preload``: the processor reads a batch's keys with one query, on a kept connection
(``KeptConnection``), and never creates keys."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from pipeline.crypto import Sealer, SqlKeyStore, SubjectKey, subject_scope
from pipeline.db import ANY_OF_CHUNK, KeptConnection, ensure_schema, make_engine


def test_preload_reads_keys_and_creates_none(db_url: str) -> None:
    """On both backends: PostgreSQL reads the batch's ids as one array (``any_of``), SQLite as an IN list."""
    engine = make_engine(db_url)
    ensure_schema(engine)
    writer = SqlKeyStore(engine, b"k" * 32)
    sealed = [Sealer(writer).seal(subject_scope(f"sk_{i}"), b"x") for i in range(5)]
    writer.destroy(subject_scope("sk_0"), "erasure")

    reader = SqlKeyStore(engine, b"k" * 32)
    reader.preload([s.key_id for s in sealed] + ["subject:sk_unknown#1"])
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(SubjectKey)) == 5
    cached = reader._by_id
    assert set(cached) == {s.key_id for s in sealed[1:]}
    assert all(reader.key(s.key_id) is not None for s in sealed[1:])
    assert reader.key(sealed[0].key_id) is None


def test_preload_reads_more_ids_than_one_statement_binds(db_url: str) -> None:
    """Past ``ANY_OF_CHUNK`` ids the batch is read in further statements (``pipeline.db.rows_any_of``): every live
    key of every statement is cached, every destroyed one answers None, and nothing more is asked afterwards."""
    engine = make_engine(db_url)
    ensure_schema(engine)
    writer = SqlKeyStore(engine, b"k" * 32)
    scopes = [subject_scope(f"sk_{i}") for i in range(2 * ANY_OF_CHUNK + 7)]
    writer.warm(scopes)
    ids = [writer.active_key(scope)[0] for scope in scopes]
    destroyed = {3, ANY_OF_CHUNK + 1, 2 * ANY_OF_CHUNK + 6}  # one in each statement's part
    for i in destroyed:
        writer.destroy(scopes[i], "erasure")

    reader = SqlKeyStore(engine, b"k" * 32)
    reader.preload(ids[:1])  # connects
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    reader.preload(ids)
    assert [reader.key(key_id) is None for key_id in ids] == [i in destroyed for i in range(len(ids))]
    assert set(reader._by_id) == {key_id for i, key_id in enumerate(ids) if i not in destroyed}
    assert len(statements) == 3
    engine.dispose()


def test_preloaded_keys_are_the_keys_each_lookup_finds(tmp_path: Path) -> None:
    """``preload`` unwraps a batch under one lock, reusing cached keys: the same keys as one query per id."""
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.sqlite3'}")
    ensure_schema(engine)
    writer = SqlKeyStore(engine, b"k" * 32)
    sealed = [Sealer(writer).seal(subject_scope(f"sk_{i}"), f"secret {i}".encode()) for i in range(8)]
    writer.destroy(subject_scope("sk_3"), "erasure")
    ids = [s.key_id for s in sealed] + ["subject:sk_unknown#1"]

    reader = SqlKeyStore(engine, b"k" * 32)
    reader.key(ids[0])  # some keys cached already, the others unwrapped by the preload
    reader.preload(reversed(ids))
    reference = SqlKeyStore(engine, b"k" * 32)
    assert [reader.key(key_id) for key_id in ids] == [reference.key(key_id) for key_id in ids]
    assert [reader.key(key_id) is None for key_id in ids] == [i in (3, 8) for i in range(9)]
    assert [Sealer(reader).open(s) for i, s in enumerate(sealed) if i != 3] == [
        f"secret {i}".encode() for i in range(8) if i != 3
    ]


def test_preload_reads_on_a_kept_connection_in_one_round_trip(db_url: str) -> None:
    """Issue 20: a pooled connection per preload cost a checkout, a ping, a BEGIN and a ROLLBACK around the one
    SELECT (~35 % of the processing worker's CPU at 1,000 events/s). The reads keep one autocommit connection."""
    engine = make_engine(db_url)
    ensure_schema(engine)
    writer = SqlKeyStore(engine, b"k" * 32)
    sealed = Sealer(writer).seal(subject_scope("sk_1"), b"x")
    reader = SqlKeyStore(engine, b"k" * 32)
    reader.preload([sealed.key_id])  # the first read connects
    checkouts: list[object] = []
    statements: list[str] = []
    event.listen(engine, "checkout", lambda *args: checkouts.append(args))
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for _ in range(3):
        reader.preload([sealed.key_id])
    assert checkouts == [] and len(statements) == 3 and all(s.lstrip().upper().startswith("SELECT") for s in statements)
    engine.dispose()


def test_a_kept_connection_is_replaced_when_the_server_closed_it_and_dropped_after_a_failure(pg_url: str) -> None:
    engine = make_engine(pg_url)
    kept = KeptConnection(engine)
    backend = kept.run(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    assert kept.run(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar_one()) == backend  # kept
    with psycopg.connect(pg_url, autocommit=True) as admin:  # the server closes it (a restart, a failover)
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    replaced = kept.run(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    assert replaced != backend  # run once more on a new connection, no error
    with pytest.raises(ProgrammingError):  # any other failure is raised, and its aborted transaction not kept
        kept.run(lambda conn: conn.execute(text("SELECT * FROM no_such_table")))
    assert kept.run(lambda conn: conn.execute(text("SELECT 1")).scalar_one()) == 1
    kept.close()
    engine.dispose()
