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
endpoint as failing); nothing is published again. A signed request that was rejected (400, 422, 500: dead-lettered)
is remembered the same way with its answer (``Rejection``), and a replay gets that answer, the same dead letter's
id, without a second dead letter; a 413 or 503 is not remembered (a retry may be accepted).
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

#: Answered signatures kept in one process's memory (the database holds them all).
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
    rejection: Mapped[str | None] = mapped_column(Text, nullable=True)
    """A rejected request's answer (``Rejection``, JSON); ``event_ids`` is then ``[]``."""


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


@dataclass(frozen=True)
class Rejection:
    """A rejected signed request's answer (the ``Rejected`` JSON with its dead letter's id), repeated to a replay."""

    status: int
    body: bytes

    def dumps(self) -> str:
        return json.dumps({"status": self.status, "body": self.body.decode()})

    @classmethod
    def loads(cls, text: str) -> Rejection:
        stored = json.loads(text)
        return cls(int(stored["status"]), str(stored["body"]).encode())


#: What a signed request was answered: accepted with these event ids, or rejected.
Outcome = tuple[uuid.UUID, ...] | Rejection
#: A signed request and its outcome.
Answered = tuple[ReplayKey, Outcome]


class ReplayStore:
    """``ingest_replays``: what every API process has accepted, shared through the database.

    Each batch's lookup and insert are one fixed statement each whatever the batch's size (``pipeline.db.any_of``,
    ``insert_ignoring_duplicates``) in one transaction: a batch of 30 cost 5.9 ms of CPU as a per-row insert, a
    delete and a tuple IN in two transactions, 4.1 ms so (issue 20, diagnosis at load ~5)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._table = cast(Table, IngestReplay.__table__)
        self._find = select(
            IngestReplay.source_id, IngestReplay.signature_hash, IngestReplay.event_ids, IngestReplay.rejection
        ).where(
            # both key columns, so that the primary key's index serves it; the exact pairs are picked below
            any_of(engine, IngestReplay.source_id, "sources"),
            any_of(engine, IngestReplay.signature_hash, "hashes"),
            IngestReplay.expires_at > bindparam("cutoff"),
        )
        self._purge = delete(IngestReplay).where(IngestReplay.expires_at <= bindparam("cutoff"))
        self._purged_at = 0.0

    def exchange(
        self,
        answered: Sequence[Answered],
        keys: Sequence[ReplayKey],
        now: float,
        conn: Connection | None = None,
    ) -> dict[tuple[str, str], Outcome]:
        """Remember the ``answered`` signatures (a key already there stays: same signature, same answer), drop expired
        ones (at most every ``PURGE_INTERVAL_S``), and return the outcome of those ``keys`` that were answered
        before (not expired): one transaction, one pooled connection (each costs a ping and a reset). ``conn``: in
        the caller's transaction, which the caller commits (the API's group commit: with the batch's data keys)."""
        rows = [
            {
                "source_id": key.source_id,
                "signature_hash": key.signature_hash,
                "expires_at": datetime.fromtimestamp(key.expires_at, UTC),
                "event_ids": "[]" if isinstance(outcome, Rejection) else json.dumps([str(i) for i in outcome]),
                "rejection": outcome.dumps() if isinstance(outcome, Rejection) else None,
            }
            for key, outcome in answered
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
        return {
            (s, h): Rejection.loads(rejection) if rejection else tuple(uuid.UUID(i) for i in json.loads(ids))
            for s, h, ids, rejection in found
            if (s, h) in wanted
        }


class ReplayGuard:
    """This process's memory of answered signatures, the requests in flight, and what waits to be stored."""

    def __init__(
        self, store: ReplayStore | None, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self._max_entries = max_entries
        self._clock = clock
        self._answered: collections.OrderedDict[tuple[str, str], tuple[float, Outcome]] = collections.OrderedDict()
        self._in_flight: dict[tuple[str, str], asyncio.Future[Outcome | None]] = {}
        self._unstored: list[Answered] = []
        self._lock = threading.Lock()

    def answered(self, key: ReplayKey) -> Outcome | None:
        """The original's outcome when this signature was answered here before (and is still in its window)."""
        hit = self._answered.get(key.ident)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._answered[key.ident]
            return None
        return hit[1]

    def in_flight(self, key: ReplayKey) -> asyncio.Future[Outcome | None] | None:
        """The pending answer of an identical request being processed now, if any."""
        return self._in_flight.get(key.ident)

    def begin(self, key: ReplayKey) -> None:
        self._in_flight[key.ident] = asyncio.get_running_loop().create_future()

    def finish(self, key: ReplayKey, outcome: Outcome | None) -> None:
        """The request with this key was answered: ``outcome``, or None when a retry may fare otherwise (413, 503)."""
        waiting = self._in_flight.pop(key.ident, None)
        if outcome is not None:
            self.remember(key, outcome)
            with self._lock:
                self._unstored.append((key, outcome))
        if waiting is not None and not waiting.done():
            waiting.set_result(outcome)

    def remember(self, key: ReplayKey, outcome: Outcome) -> None:
        self._answered[key.ident] = (key.expires_at, outcome)
        self._answered.move_to_end(key.ident)
        while len(self._answered) > self._max_entries:
            self._answered.popitem(last=False)

    @property
    def has_unstored(self) -> bool:
        """Whether answered signatures wait for a database trip (never without a store: a sealer would make trips
        for them forever)."""
        return self.store is not None and bool(self._unstored)

    def take_unstored(self) -> list[Answered]:
        """The answered signatures not yet in the database (the caller stores them, or hands them back)."""
        with self._lock:
            taken, self._unstored = self._unstored, []
        return taken

    def give_back(self, unstored: list[Answered]) -> None:
        """Storing failed (the database is down): keep them for the next trip."""
        with self._lock:
            self._unstored[:0] = unstored
