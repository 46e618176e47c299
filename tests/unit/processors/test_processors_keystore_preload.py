"""``SqlKeyStore.preload``: the processor reads a batch's keys with one query and never creates keys."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.crypto import Sealer, SqlKeyStore, SubjectKey, subject_scope
from pipeline.db import ensure_schema, make_engine


def test_preload_reads_keys_and_creates_none(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.sqlite3'}")
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
