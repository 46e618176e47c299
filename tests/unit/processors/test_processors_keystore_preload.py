"""``SqlKeyStore.preload``: the processor reads a batch's keys with one query and never creates keys."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.crypto import Sealer, SqlKeyStore, SubjectKey, subject_scope
from pipeline.db import ensure_schema, make_engine


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
