"""Per-subject data keys in the CRM database, wrapped (RFC 3394) by the key-encryption key from settings.

Destroying a scope's keys is how erasure reaches Kafka logs and backups: the ciphertext stays, the key does not.
A scope whose keys were destroyed gets a new generation when new data arrives for it (a person who comes back
after erasure is a new, lawful collection; their old records stay unreadable). A destroyed generation never gets
a key again: nothing writes ``wrapped_key`` of an existing row, so a replayed old record stays unreadable.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import ColumnElement

from pipeline.db import Base, KeptConnection, any_of, insert_ignoring_duplicates, rows_any_of, within


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


@dataclass(frozen=True)
class Warmed:
    """What ``SqlKeyStore.warm_in`` did in a transaction: ``created`` keys (then the transaction must commit), and
    ``activate``, which puts the batch's keys in the cache once it did."""

    created: int
    activate: Callable[[], None]


class KeyStore(Protocol):
    def warm(self, scopes: Iterable[str]) -> None: ...
    def active_key(self, scope: str) -> tuple[str, bytes]: ...
    def key(self, key_id: str) -> bytes | None: ...
    def destroy(self, scope: str, reason: str) -> int: ...
    def link(self, scope: str, subject_scopes: Iterable[str]) -> None: ...
    def link_all(self, pairs: Iterable[tuple[str, str]]) -> None: ...


class SqlKeyStore:
    """Key store over SQLAlchemy with a short in-process cache (keys are read on every sealed record).

    Erasure destroys keys in the database, usually from another process than this one, and the suppression record
    is published before the keys are destroyed, so no Kafka signal can tell this cache when to let go. The database
    is the signal instead: a cached key is trusted for at most ``recheck_s`` after the database last confirmed it,
    and the batch paths confirm a whole batch with one query every time (``warm`` before sealing, in the
    transaction that creates the missing keys; ``preload`` before opening). So a key another process destroyed is
    never used to seal new data (a new generation is created instead) and stops opening records at the next batch.
    """

    def __init__(
        self,
        engine: Engine,
        kek: bytes,
        recheck_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_cached: int = 50_000,
    ) -> None:
        if len(kek) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._engine = engine
        self._kek = kek
        self._recheck_s = recheck_s
        self._clock = clock
        self._max_cached = max_cached
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[float, bytes]] = {}  # key id -> (confirmed at, key)
        self._active: dict[str, tuple[float, str]] = {}  # scope -> (confirmed at, key id of its live generation)
        self._reader = KeptConnection(engine, autocommit=True)  # ``preload``'s: one round trip per read
        self._batch = threading.local()  # per thread: the key ids and scopes its last preload/warm confirmed
        # ``warm``'s lookups, one fixed statement each whatever the batch's size (``pipeline.db.any_of``)
        self._scopes_query = select(
            SubjectKey.scope, SubjectKey.key_id, SubjectKey.wrapped_key, SubjectKey.generation
        ).where(any_of(engine, SubjectKey.scope, "scopes"))
        self._ids_query = select(SubjectKey.scope, SubjectKey.key_id, SubjectKey.wrapped_key).where(
            any_of(engine, SubjectKey.key_id, "ids")
        )
        # ``preload``'s: the key ids and wrapped keys of the given ids that were not destroyed. On PostgreSQL one
        # array, not an expanding IN of up to 500 binds that SQLAlchemy renders into the SQL on every batch.
        self._live_query = select(SubjectKey.key_id, SubjectKey.wrapped_key).where(
            any_of(engine, SubjectKey.key_id, "ids"), SubjectKey.wrapped_key.is_not(None)
        )

    def _in_batch(self, name: str, value: str) -> bool:
        """Whether this thread's last ``preload``/``warm`` confirmed ``value``: trusted for the rest of that batch.

        A batch can take longer than ``recheck_s`` (measured: about a second for 1,000 records on a loaded 2-core
        machine), and going back to the database for every later key of the batch cost ~15% of the stream
        processor's time. The batch, not the second, is the unit the confirmation promises.
        """
        confirmed: frozenset[str] = getattr(self._batch, name, frozenset())
        return value in confirmed

    def _fresh(self, stamp: float) -> bool:
        return self._clock() - stamp < self._recheck_s

    def _unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """The clear key; the cached copy when there is one (the database only confirmed that it still exists)."""
        return self._unwrap_all([(key_id, wrapped)])[0][1]

    def _unwrap_all(self, rows: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """``_unwrap`` of many (key id, wrapped key) rows, taking the lock once (once per row cost ~2 us a record)."""
        with self._lock:
            hits = [self._by_id.get(key_id) for key_id, _ in rows]
        kek = self._kek
        return [
            (key_id, hit[1] if hit is not None else aes_key_unwrap(kek, wrapped))
            for (key_id, wrapped), hit in zip(rows, hits, strict=True)
        ]

    def _confirm(self, stamp: float, alive: Iterable[tuple[str, bytes]], gone: Iterable[str] = ()) -> None:
        """Record what the database just said: these key ids hold these keys, those ids are destroyed or unknown."""
        with self._lock:
            for key_id in gone:
                self._by_id.pop(key_id, None)
                scope = key_id.rpartition("#")[0]
                if (hit := self._active.get(scope)) is not None and hit[1] == key_id:
                    del self._active[scope]
            for key_id, key in alive:
                self._by_id[key_id] = (stamp, key)
            if len(self._by_id) > self._max_cached or len(self._active) > self._max_cached:
                self._prune(stamp)

    def _prune(self, stamp: float) -> None:
        """Bound the cache (a long-running API or import meets a new person, so a new key, with nearly every
        request: unbounded, it grew by ~1 KB a person for as long as the process lived). What the database confirmed
        more than ``recheck_s`` before ``stamp`` is trusted no more (only this batch's confirmations and fresh ones
        are), so it goes; if half the bound is still taken, everything but ``stamp``'s own confirmations goes. Either
        way a key is only read again from the database, never used unconfirmed. Amortised: runs once the bound is
        crossed, and leaves at most half of it. Call with the lock held."""
        cutoff = stamp - self._recheck_s
        for kept in (self._by_id, self._active):
            stale = [name for name, entry in kept.items() if entry[0] < cutoff]
            for name in stale:
                del kept[name]
        if len(self._by_id) > self._max_cached // 2 or len(self._active) > self._max_cached // 2:
            for kept in (self._by_id, self._active):
                older = [name for name, entry in kept.items() if entry[0] != stamp]
                for name in older:
                    del kept[name]

    def _activate(self, stamp: float, scope: str, key_id: str, key: bytes) -> None:
        """Make ``key_id`` the scope's sealing key; every older generation is destroyed (only the latest can live)."""
        generation = int(key_id.rpartition("#")[2])
        self._confirm(stamp, [(key_id, key)], [f"{scope}#{n}" for n in range(1, generation)])
        with self._lock:
            self._active[scope] = (stamp, key_id)

    def key(self, key_id: str) -> bytes | None:
        with self._lock:
            hit = self._by_id.get(key_id)
        if hit and (self._fresh(hit[0]) or self._in_batch("ids", key_id)):
            return hit[1]
        if self._in_batch("gone", key_id):
            return None  # this batch's preload found it destroyed or unknown: no second query mid-batch
        with Session(self._engine) as session:
            wrapped = session.scalar(select(SubjectKey.wrapped_key).where(SubjectKey.key_id == key_id))
        stamp = self._clock()
        if wrapped is None:
            self._confirm(stamp, [], [key_id])
            return None
        key = aes_key_unwrap(self._kek, wrapped)
        self._confirm(stamp, [(key_id, key)])
        return key

    def warm(self, scopes: Iterable[str]) -> None:
        """Confirm or create the active keys of many scopes with one query and one commit (a new key costs a commit:
        ~5-10 ms); ``active_key`` then hits the cache.

        Batch sealers (import, the API's group commit) call this first. Every scope is read again, cached or not,
        in the transaction that creates the missing keys: a scope whose key was destroyed meanwhile (by another
        process) gets a new generation instead of having new data sealed under the destroyed key. Losing a creation
        race to another process is harmless: its key is read back and used.
        """
        with self._engine.connect() as conn:
            warmed = self.warm_in(conn, scopes)
            if warmed.created:
                conn.commit()  # only when keys were created: confirming existing ones costs no commit
        warmed.activate()

    def warm_in(self, conn: Connection, scopes: Iterable[str]) -> Warmed:
        """``warm`` inside the caller's transaction, which other statements share (the API's group commit makes one
        database trip per batch with its replay lookup). Its ``activate`` makes the keys active in this process's
        cache: call it once the transaction committed, never before (a key whose creation rolled back must never
        seal)."""
        wanted = list(dict.fromkeys(scopes))
        stamp = self._clock()
        rows = rows_any_of(conn, self._scopes_query, "scopes", wanted)
        latest: dict[str, Any] = {}
        for row in rows:
            if row.scope not in latest or row.generation > latest[row.scope].generation:
                latest[row.scope] = row
        new_rows = []
        for scope in wanted:
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
            table = cast(Table, SubjectKey.__table__)
            made_rows: list[Any] = list(
                insert_ignoring_duplicates(conn, table, new_rows, ("scope", "key_id", "wrapped_key"))
            )
            if len(made_rows) < len(new_rows):  # another process created some of them first: read theirs
                made_ids = {made.key_id for made in made_rows}
                lost = [r["key_id"] for r in new_rows if r["key_id"] not in made_ids]
                made_rows += rows_any_of(conn, self._ids_query, "ids", lost)
            for made in made_rows:
                latest[made.scope] = made
        gone = [row.key_id for row in rows if row.wrapped_key is None]
        activations = [
            (scope, found.key_id, found.wrapped_key)
            for scope in wanted
            if (found := latest.get(scope)) is not None and found.wrapped_key is not None
        ]

        def activate() -> None:
            self._confirm(stamp, [], gone)
            for scope, key_id, wrapped in activations:
                self._activate(stamp, scope, key_id, self._unwrap(key_id, wrapped))
            self._batch.scopes = frozenset(scope for scope, _, _ in activations)

        return Warmed(len(new_rows), activate)

    def preload(self, key_ids: Iterable[str]) -> None:
        """Read many keys by id with one query, creating nothing (unlike ``warm``).

        Batch readers (the stream processor opening a batch of records) call this first; ``key`` then hits the
        cache. Every id is read again, cached or not: an id destroyed meanwhile (by another process) leaves the
        cache here, so ``key`` answers None for it from this batch on, without asking the database again (a batch
        then touches the database once, so an outage stops it before it started, never half-way); unknown ids are
        not cached either.

        One prepared statement on a plain connection (no ORM session, no per-call coercion of 500 literals) and one
        lock for the batch's cache hits (a diagnosis, timed alone on batches of 500: 7.5 -> 3.3 us per record).
        """
        wanted = list(dict.fromkeys(key_ids))
        self._batch.ids = self._batch.gone = frozenset()  # a preload that fails confirms nothing
        rows = self._reader.run(lambda conn: rows_any_of(conn, self._live_query, "ids", wanted))
        alive = self._unwrap_all([(row.key_id, row.wrapped_key) for row in rows])
        found = frozenset(key_id for key_id, _ in alive)
        self._confirm(self._clock(), alive, [k for k in wanted if k not in found])
        self._batch.ids = found
        self._batch.gone = frozenset(wanted) - found

    def active_key(self, scope: str) -> tuple[str, bytes]:
        with self._lock:
            hit = self._active.get(scope)
            cached = self._by_id.get(hit[1]) if hit else None
        if hit and cached and (self._fresh(hit[0]) or self._in_batch("scopes", scope)):
            return hit[1], cached[1]
        for _attempt in range(5):
            with Session(self._engine) as session:
                row = session.execute(
                    select(SubjectKey.key_id, SubjectKey.wrapped_key, SubjectKey.generation)
                    .where(SubjectKey.scope == scope)
                    .order_by(SubjectKey.generation.desc())
                    .limit(1)
                ).first()
                if row is not None and row.wrapped_key is not None:
                    key_id, key = row.key_id, self._unwrap(row.key_id, row.wrapped_key)
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
            self._activate(self._clock(), scope, key_id, key)
            return key_id, key
        raise RuntimeError(f"could not create a data key for {scope} after 5 attempts")

    def link(self, scope: str, subject_scopes: Iterable[str]) -> None:
        """Tie a shared payload key to every subject it covers (see ``DataKeyLink``)."""
        self.link_all((scope, s) for s in subject_scopes)

    def link_all(self, pairs: Iterable[tuple[str, str]], conn: Connection | None = None) -> None:
        """``link`` for many (scope, subject scope) pairs in one transaction: erasing the subject destroys the scope.

        Also what ties an anonymous website visitor's key to each person who identified on that visitor's device
        (``subject:vk_...`` to ``subject:sk_...``): erasing the person shreds the visitor's history too. ``conn``:
        in the caller's transaction (the caller commits), else in one of its own.
        """
        rows = [{"scope": scope, "subject_scope": subject} for scope, subject in dict.fromkeys(pairs)]
        if rows:
            with within(self._engine, conn) as db:
                insert_ignoring_duplicates(db, cast(Table, DataKeyLink.__table__), rows)

    def destroy(self, scope: str, reason: str, *, created_by: datetime | None = None) -> int:
        """Destroy every generation of a scope and of the shared payload keys linked to it; returns how many.

        ``created_by``: only the keys created up to then. Re-applying an erasure after a restore
        (``pipeline.rights.restore``) destroys what existed when the erasure took effect, never a generation created
        later for a person who came back (a new, lawful collection).
        """
        live: list[ColumnElement[bool]] = [SubjectKey.wrapped_key.is_not(None)]
        if created_by is not None:
            live.append(SubjectKey.created_at <= created_by.astimezone(UTC))
        with Session(self._engine) as session:
            linked = list(session.scalars(select(DataKeyLink.scope).where(DataKeyLink.subject_scope == scope)))
            result = session.execute(
                update(SubjectKey)
                .where(SubjectKey.scope.in_([scope, *linked]), *live)
                .values(wrapped_key=None, destroyed_at=datetime.now(UTC), destroyed_reason=reason)
            )
            session.commit()
            destroyed = int(getattr(result, "rowcount", 0) or 0)
        for each in (scope, *linked):
            self.forget_cached(each)
        return destroyed

    def live_keys(self, cutoffs: Mapping[str, datetime]) -> dict[str, list[str]]:
        """Of ``cutoffs`` (scope -> a moment), the scopes that still have live keys created up to their moment, in
        the scope itself or in a shared payload key linked to it, with those key ids: what ``destroy(scope, ...,
        created_by=moment)`` would destroy. Read in chunks of 500 scopes, three queries each."""
        found: dict[str, list[str]] = {}
        scopes = list(cutoffs)
        for start in range(0, len(scopes), 500):
            chunk = scopes[start : start + 500]
            with self._engine.connect() as conn:
                links = conn.execute(
                    select(DataKeyLink.scope, DataKeyLink.subject_scope).where(DataKeyLink.subject_scope.in_(chunk))
                ).all()
                owners: dict[str, list[str]] = {scope: [scope] for scope in chunk}
                for link in links:
                    owners.setdefault(link.scope, []).append(link.subject_scope)
                rows = conn.execute(
                    select(SubjectKey.key_id, SubjectKey.scope, SubjectKey.created_at).where(
                        SubjectKey.scope.in_(list(owners)), SubjectKey.wrapped_key.is_not(None)
                    )
                ).all()
            for row in rows:
                created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)  # SQLite
                for owner in owners[row.scope]:
                    if owner in cutoffs and created <= cutoffs[owner]:
                        found.setdefault(owner, []).append(row.key_id)
        return {scope: sorted(ids) for scope, ids in found.items()}

    def live_scopes(self, prefix: str) -> set[str]:
        """The scopes starting with ``prefix`` that still have a live key."""
        with self._engine.connect() as conn:
            return set(
                conn.execute(
                    select(SubjectKey.scope)
                    .where(SubjectKey.scope.startswith(prefix, autoescape=True), SubjectKey.wrapped_key.is_not(None))
                    .distinct()
                ).scalars()
            )

    def forget_cached(self, scope: str) -> None:
        """Drop a scope from this process's cache (its keys were just destroyed)."""
        with self._lock:
            self._active.pop(scope, None)
            for key_id in [k for k in self._by_id if k.startswith(f"{scope}#")]:
                del self._by_id[key_id]
