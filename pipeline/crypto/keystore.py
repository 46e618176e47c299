"""Per-subject data keys in the CRM database, wrapped (RFC 3394) by the key-encryption key from settings.

Destroying a scope's keys is how erasure reaches Kafka logs and backups: the ciphertext stays, the key does not.
A scope whose keys were destroyed gets a new generation when new data arrives for it (a person who comes back
after erasure is a new, lawful collection; their old records stay unreadable).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap
from sqlalchemy import DateTime, Engine, Integer, LargeBinary, String, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from pipeline.db import Base, dialect_insert


class SubjectKey(Base):
    """One generation of a data key. ``wrapped_key`` is NULL once destroyed; the row stays as evidence."""

    __tablename__ = "data_keys"
    __table_args__ = (UniqueConstraint("scope", "generation"),)

    key_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    scope: Mapped[str] = mapped_column(String(190), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    destroyed_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class DataKeyLink(Base):
    """A payload that names several people (a CSV, an order with attendees) is sealed once under a key of its own;
    the links make erasing ANY of those people destroy that shared key too."""

    __tablename__ = "data_key_links"

    scope: Mapped[str] = mapped_column(String(190), primary_key=True)
    subject_scope: Mapped[str] = mapped_column(String(190), primary_key=True, index=True)


class KeyStore(Protocol):
    def warm(self, scopes: Iterable[str]) -> None: ...
    def active_key(self, scope: str) -> tuple[str, bytes]: ...
    def key(self, key_id: str) -> bytes | None: ...
    def destroy(self, scope: str, reason: str) -> int: ...
    def link(self, scope: str, subject_scopes: Iterable[str]) -> None: ...


class SqlKeyStore:
    """Key store over SQLAlchemy with a short in-process cache (keys are read on every sealed record)."""

    def __init__(self, engine: Engine, kek: bytes, cache_ttl_s: float = 30.0) -> None:
        if len(kek) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._engine = engine
        self._kek = kek
        self._ttl = cache_ttl_s
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[float, bytes]] = {}
        self._active: dict[str, tuple[float, str]] = {}

    def _fresh(self, stamp: float) -> bool:
        return time.monotonic() - stamp < self._ttl

    def key(self, key_id: str) -> bytes | None:
        with self._lock:
            hit = self._by_id.get(key_id)
        if hit and self._fresh(hit[0]):
            return hit[1]
        with Session(self._engine) as session:
            wrapped = session.scalar(select(SubjectKey.wrapped_key).where(SubjectKey.key_id == key_id))
        if wrapped is None:
            return None
        key = aes_key_unwrap(self._kek, wrapped)
        with self._lock:
            self._by_id[key_id] = (time.monotonic(), key)
        return key

    def warm(self, scopes: Iterable[str]) -> None:
        """Load or create the active keys of many scopes with one commit (a new key costs a commit: ~5-10 ms).

        Batch paths (import, the API's group commit, the processors) call this first; ``active_key`` then hits
        the cache. Losing a creation race to another process is harmless: its key is read back and used.
        """
        now = time.monotonic()
        with self._lock:
            wanted = [
                s for s in dict.fromkeys(scopes) if not ((hit := self._active.get(s)) and now - hit[0] < self._ttl)
            ]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            table = SubjectKey.__table__
            with self._engine.begin() as conn:
                rows = conn.execute(
                    select(SubjectKey.scope, SubjectKey.key_id, SubjectKey.wrapped_key, SubjectKey.generation).where(
                        SubjectKey.scope.in_(chunk)
                    )
                ).all()
                latest: dict[str, Any] = {}
                for row in rows:
                    if row.scope not in latest or row.generation > latest[row.scope].generation:
                        latest[row.scope] = row
                new_rows = []
                for scope in chunk:
                    prior = latest.get(scope)
                    if prior is None or prior.wrapped_key is None:
                        generation = 1 if prior is None else prior.generation + 1
                        new_rows.append(
                            {
                                "key_id": f"{scope}#{generation}",
                                "scope": scope,
                                "generation": generation,
                                "wrapped_key": aes_key_wrap(self._kek, os.urandom(32)),
                                "created_at": datetime.now(UTC),
                            }
                        )
                if new_rows:
                    conn.execute(dialect_insert(self._engine, table).on_conflict_do_nothing(), new_rows)  # type: ignore[arg-type]
                    created = conn.execute(
                        select(SubjectKey.scope, SubjectKey.key_id, SubjectKey.wrapped_key).where(
                            SubjectKey.key_id.in_([r["key_id"] for r in new_rows])
                        )
                    ).all()
                    for made in created:
                        latest[made.scope] = made
            stamp = time.monotonic()
            with self._lock:
                for scope in chunk:
                    found = latest.get(scope)
                    if found is not None and found.wrapped_key is not None:
                        self._by_id[found.key_id] = (stamp, aes_key_unwrap(self._kek, found.wrapped_key))
                        self._active[scope] = (stamp, found.key_id)

    def preload(self, key_ids: Iterable[str]) -> None:
        """Read many keys by id with one query, creating nothing (unlike ``warm``).

        Batch readers (the stream processor opening a batch of records) call this first; ``key`` then hits the
        cache. Destroyed or unknown ids are not cached, so ``key`` still answers None for them.
        """
        now = time.monotonic()
        with self._lock:
            wanted = [
                k for k in dict.fromkeys(key_ids) if not ((hit := self._by_id.get(k)) and now - hit[0] < self._ttl)
            ]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            with Session(self._engine) as session:
                rows = session.execute(
                    select(SubjectKey.key_id, SubjectKey.wrapped_key).where(
                        SubjectKey.key_id.in_(chunk), SubjectKey.wrapped_key.is_not(None)
                    )
                ).all()
            unwrapped = [(row.key_id, aes_key_unwrap(self._kek, row.wrapped_key)) for row in rows]
            stamp = time.monotonic()
            with self._lock:
                for key_id, key in unwrapped:
                    self._by_id[key_id] = (stamp, key)

    def active_key(self, scope: str) -> tuple[str, bytes]:
        with self._lock:
            hit = self._active.get(scope)
        if hit and self._fresh(hit[0]):
            key = self.key(hit[1])
            if key is not None:
                return hit[1], key
        for _attempt in range(5):
            with Session(self._engine) as session:
                row = session.execute(
                    select(SubjectKey.key_id, SubjectKey.wrapped_key, SubjectKey.generation)
                    .where(SubjectKey.scope == scope)
                    .order_by(SubjectKey.generation.desc())
                    .limit(1)
                ).first()
                if row is not None and row.wrapped_key is not None:
                    key_id, key = row.key_id, aes_key_unwrap(self._kek, row.wrapped_key)
                else:
                    generation = 1 if row is None else row.generation + 1
                    key = os.urandom(32)
                    key_id = f"{scope}#{generation}"
                    session.add(
                        SubjectKey(
                            key_id=key_id,
                            scope=scope,
                            generation=generation,
                            wrapped_key=aes_key_wrap(self._kek, key),
                            created_at=datetime.now(UTC),
                        )
                    )
                    try:
                        session.commit()
                    except IntegrityError:  # another process created this generation first: read theirs
                        session.rollback()
                        continue
            now = time.monotonic()
            with self._lock:
                self._by_id[key_id] = (now, key)
                self._active[scope] = (now, key_id)
            return key_id, key
        raise RuntimeError(f"could not create a data key for {scope} after 5 attempts")

    def link(self, scope: str, subject_scopes: Iterable[str]) -> None:
        """Tie a shared payload key to every subject it covers (see ``DataKeyLink``)."""
        rows = [{"scope": scope, "subject_scope": s} for s in dict.fromkeys(subject_scopes)]
        if rows:
            with self._engine.begin() as conn:
                conn.execute(dialect_insert(self._engine, DataKeyLink.__table__).on_conflict_do_nothing(), rows)  # type: ignore[arg-type]

    def destroy(self, scope: str, reason: str) -> int:
        """Destroy every generation of a scope and of the shared payload keys linked to it; returns how many."""
        with Session(self._engine) as session:
            linked = list(session.scalars(select(DataKeyLink.scope).where(DataKeyLink.subject_scope == scope)))
            result = session.execute(
                update(SubjectKey)
                .where(SubjectKey.scope.in_([scope, *linked]), SubjectKey.wrapped_key.is_not(None))
                .values(wrapped_key=None, destroyed_at=datetime.now(UTC), destroyed_reason=reason)
            )
            session.commit()
            destroyed = int(getattr(result, "rowcount", 0) or 0)
        for each in (scope, *linked):
            self.forget_cached(each)
        return destroyed

    def forget_cached(self, scope: str) -> None:
        """Drop a scope from this process's cache (another process destroyed its keys)."""
        with self._lock:
            self._active.pop(scope, None)
            for key_id in [k for k in self._by_id if k.startswith(f"{scope}#")]:
                del self._by_id[key_id]
