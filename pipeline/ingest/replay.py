"""The replay guard: a signed request accepted once is never published again while its signature is still valid.

A source signs ``"<timestamp>.<body>"``; the signature is accepted for ``ingest_signature_tolerance_s`` either side
of the server's clock. Whoever captured one request (a proxy log, a leaked HAR file) could send it again inside
that window, and after an erasure the person would come back. So every accepted signature is remembered, keyed by
source and a hash of the signature, until its timestamp leaves the window:

- in this process (``ReplayGuard``: bounded, ``MAX_ENTRIES``, oldest first out), checked before the payload is
  even parsed, with identical requests that are in flight at the same moment waiting for the first one's answer;
- in the database the key store uses (``ingest_replays``), shared by every API process and replica: written in the
  group commit's next database trip after the broker confirmed the request (batched, no extra hop on the request's
  path) and read in the trip that seals each batch, so a replay arriving at another process is caught there too.

Precise bound: a replay is published again only when it reaches ANOTHER process before the original's record is in
the database (the time from the broker's acknowledgement to the next database trip of the original's process, a
few milliseconds under load, at most ``FLUSH_INTERVAL_S`` when idle), or when a process died in that interval. It
then carries the same event ids (they derive from the signed timestamp or delivery id), which the stages downstream
deduplicate, and which stay tombstoned after an erasure.

A replay is answered like the original: 202 with the original's event ids and ``"replayed": true``. A webhook
sender retrying a delivery whose answer it lost expects exactly that (a 409 would make it retry, or flag the
endpoint as failing); nothing is published again.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Connection, DateTime, Engine, String, Table, Text, bindparam, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.db import Base, any_of, insert_ignoring_duplicates, within

#: Accepted signatures kept in one process's memory (the database holds them all).
MAX_ENTRIES = 100_000

#: How long a confirmed signature may wait for the group commit's next database trip before one is made for it.
FLUSH_INTERVAL_S = 0.2


class IngestReplay(Base):
    """One accepted signed request, until its signature's timestamp leaves the tolerance window."""

    __tablename__ = "ingest_replays"

    source_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    signature_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    event_ids: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class ReplayKey:
    """A signed request: its source and the SHA-256 of its signature header (the signature is not stored)."""

    source_id: str
    signature_hash: str
    expires_at: float
    """Unix time at which the signature's timestamp leaves the window: no replay can be accepted after it."""

    @classmethod
    def of(cls, source_id: str, signature: str, timestamp: int, tolerance_s: int) -> ReplayKey:
        digest = hashlib.sha256(signature.strip().lower().encode()).hexdigest()
        return cls(source_id, digest, float(timestamp + tolerance_s))

    @property
    def ident(self) -> tuple[str, str]:
        return self.source_id, self.signature_hash


#: Expired signatures are deleted at most this often (a lookup ignores them anyway): not a statement per batch.
PURGE_INTERVAL_S = 10.0


#: An accepted signed request and the event ids it was answered with.
Accepted = tuple[ReplayKey, tuple[uuid.UUID, ...]]


class ReplayStore:
    """``ingest_replays``: what every API process has accepted, shared through the database.

    Each batch's lookup and insert are one fixed statement each whatever the batch's size (``pipeline.db.any_of``,
    ``insert_ignoring_duplicates``) in one transaction: a batch of 30 cost 5.9 ms of CPU as a per-row insert, a
    delete and a tuple IN in two transactions, 4.1 ms so (issue 20, diagnosis at load ~5)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._table = cast(Table, IngestReplay.__table__)
        self._find = select(IngestReplay.source_id, IngestReplay.signature_hash, IngestReplay.event_ids).where(
            # both key columns, so that the primary key's index serves it; the exact pairs are picked below
            any_of(engine, IngestReplay.source_id, "sources"),
            any_of(engine, IngestReplay.signature_hash, "hashes"),
            IngestReplay.expires_at > bindparam("cutoff"),
        )
        self._purge = delete(IngestReplay).where(IngestReplay.expires_at <= bindparam("cutoff"))
        self._purged_at = 0.0

    def exchange(
        self,
        accepted: Sequence[Accepted],
        keys: Sequence[ReplayKey],
        now: float,
        conn: Connection | None = None,
    ) -> dict[tuple[str, str], tuple[uuid.UUID, ...]]:
        """Remember the ``accepted`` signatures (a key already there stays: same signature, same ids), drop expired
        ones (at most every ``PURGE_INTERVAL_S``), and return the event ids of those ``keys`` that were accepted
        before (not expired): one transaction, one pooled connection (each costs a ping and a reset). ``conn``: in
        the caller's transaction, which the caller commits (the API's group commit: with the batch's data keys)."""
        rows = [
            {
                "source_id": key.source_id,
                "signature_hash": key.signature_hash,
                "expires_at": datetime.fromtimestamp(key.expires_at, UTC),
                "event_ids": json.dumps([str(i) for i in ids]),
            }
            for key, ids in accepted
        ]
        purge = now - self._purged_at >= PURGE_INTERVAL_S
        if not rows and not purge and not keys:
            return {}
        cutoff = datetime.fromtimestamp(now, UTC)
        with within(self._engine, conn) as db:
            insert_ignoring_duplicates(db, self._table, rows)
            if purge:
                db.execute(self._purge, {"cutoff": cutoff})
            found = (
                db.execute(
                    self._find,
                    {
                        "sources": list({k.source_id for k in keys}),
                        "hashes": list({k.signature_hash for k in keys}),
                        "cutoff": cutoff,
                    },
                ).all()
                if keys
                else []
            )
        if purge:
            self._purged_at = now
        wanted = {k.ident for k in keys}
        return {(s, h): tuple(uuid.UUID(i) for i in json.loads(ids)) for s, h, ids in found if (s, h) in wanted}


class ReplayGuard:
    """This process's memory of accepted signatures, the requests in flight, and what waits to be stored."""

    def __init__(
        self, store: ReplayStore | None, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self._max_entries = max_entries
        self._clock = clock
        self._accepted: collections.OrderedDict[tuple[str, str], tuple[float, tuple[uuid.UUID, ...]]] = (
            collections.OrderedDict()
        )
        self._in_flight: dict[tuple[str, str], asyncio.Future[tuple[uuid.UUID, ...] | None]] = {}
        self._unstored: list[Accepted] = []
        self._lock = threading.Lock()

    def accepted(self, key: ReplayKey) -> tuple[uuid.UUID, ...] | None:
        """The original's event ids when this signature was accepted here before (and is still in its window)."""
        hit = self._accepted.get(key.ident)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._accepted[key.ident]
            return None
        return hit[1]

    def in_flight(self, key: ReplayKey) -> asyncio.Future[tuple[uuid.UUID, ...] | None] | None:
        """The pending answer of an identical request being processed now, if any."""
        return self._in_flight.get(key.ident)

    def begin(self, key: ReplayKey) -> None:
        self._in_flight[key.ident] = asyncio.get_running_loop().create_future()

    def finish(self, key: ReplayKey, event_ids: tuple[uuid.UUID, ...] | None) -> None:
        """The request with this key was answered: accepted with ``event_ids``, or not accepted (None)."""
        waiting = self._in_flight.pop(key.ident, None)
        if event_ids is not None:
            self.remember(key, event_ids)
            with self._lock:
                self._unstored.append((key, event_ids))
        if waiting is not None and not waiting.done():
            waiting.set_result(event_ids)

    def remember(self, key: ReplayKey, event_ids: tuple[uuid.UUID, ...]) -> None:
        self._accepted[key.ident] = (key.expires_at, event_ids)
        self._accepted.move_to_end(key.ident)
        while len(self._accepted) > self._max_entries:
            self._accepted.popitem(last=False)

    @property
    def has_unstored(self) -> bool:
        """Whether accepted signatures wait for a database trip (never without a store: a sealer would make trips
        for them forever)."""
        return self.store is not None and bool(self._unstored)

    def take_unstored(self) -> list[Accepted]:
        """The accepted signatures not yet in the database (the caller stores them, or hands them back)."""
        with self._lock:
            taken, self._unstored = self._unstored, []
        return taken

    def give_back(self, unstored: list[Accepted]) -> None:
        """Storing failed (the database is down): keep them for the next trip."""
        with self._lock:
            self._unstored[:0] = unstored
