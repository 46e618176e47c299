"""Which events a sink without idempotency keys already delivered: HubSpot's effects once, across crashes.

HubSpot keeps no event ids: a batch delivered again after a crash (its results were not committed yet) would be
upserted a second time (measured before this ledger: 47 duplicate upserts after two SIGKILLs). The ledger is a
table in the one database, one row per sink and event id (no personal data: ids and HubSpot's contact id):

- ``sending``, written before a call: the call may have happened (the process can die while it is in flight);
- ``delivered``, written when HubSpot confirmed it, with HubSpot's contact id.

Before each call the sink asks the ledger about its events: delivered ones are answered from it (the same
``written`` result, nothing sent); ``sending`` ones, whose fate died with the process, are read back from HubSpot
(the contact's ``leadpipe_source_event_id`` says whether that upsert landed) and sent only if it did not. So an
upsert reaches HubSpot once, whatever the crash; a row is kept ``retention`` long (longer than
``contacts.accepted`` keeps a record, so a replay of that topic does not upsert again either) and pruned by the
sink as it goes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Engine, String, Table, Uuid, bindparam, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.db import (
    Base,
    KeptConnection,
    UtcDateTime,
    any_of,
    insert_ignoring_duplicates,
    rows_any_of,
    update_rows,
)

SENDING = "sending"
DELIVERED = "delivered"


class SinkDelivery(Base):
    """One event handed to a sink that cannot recognise it again by itself (HubSpot)."""

    __tablename__ = "sink_deliveries"

    sink: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


_TABLE = cast(Table, SinkDelivery.__table__)


@dataclass(frozen=True, slots=True)
class Delivery:
    state: str
    external_id: str | None


class DeliveryLedger:
    """The ``sink_deliveries`` rows of one sink. Database errors propagate (the sink turns them into backpressure)."""

    def __init__(
        self,
        engine: Engine,
        sink: str,
        retention: timedelta = timedelta(days=8),
        prune_every_s: float = 3600.0,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.retention = retention
        self.prune_every_s = prune_every_s
        self._pruned_at = 0.0
        # Read before every call of a sink batch: a kept autocommit connection and one array-bound statement
        # (``RightsHistory`` reads the same way), not a pooled checkout and an IN list rendered per call.
        self._reader = KeptConnection(engine, autocommit=True)
        self._writer = KeptConnection(engine)  # before and after every call: one statement and a commit each
        table = _TABLE
        self._lookup = select(table.c.event_id, table.c.state, table.c.external_id).where(
            table.c.sink == bindparam("sink"), any_of(engine, table.c.event_id, "ids")
        )

    def lookup(self, event_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Delivery]:
        ids = sorted(set(event_ids))
        if not ids:
            return {}

        rows = self._reader.run(lambda conn: rows_any_of(conn, self._lookup, "ids", ids, {"sink": self.sink}))
        return {row.event_id: Delivery(row.state, row.external_id) for row in rows}

    def sending(self, event_ids: Collection[uuid.UUID]) -> None:
        """Before a call: these events may reach the sink from now on (rows already there are left as they are)."""
        if not event_ids:
            return
        now = datetime.now(UTC)
        rows = [
            {"sink": self.sink, "event_id": e, "state": SENDING, "external_id": None, "updated_at": now}
            for e in set(event_ids)
        ]

        def write(conn: Connection) -> None:
            insert_ignoring_duplicates(conn, _TABLE, rows)
            conn.commit()

        self._writer.run(write)
        self._maybe_prune()

    def delivered(self, external_ids: Mapping[uuid.UUID, str | None]) -> None:
        """After the sink confirmed: these events are there (with the sink's id for them)."""
        if not external_ids:
            return
        now = datetime.now(UTC)
        rows = [
            {"sink": self.sink, "event_id": e, "state": DELIVERED, "external_id": x, "updated_at": now}
            for e, x in external_ids.items()
        ]

        def write(conn: Connection) -> None:
            update_rows(conn, _TABLE, ("sink", "event_id"), rows)
            conn.commit()

        self._writer.run(write)

    def _maybe_prune(self) -> None:
        if time.monotonic() - self._pruned_at < self.prune_every_s:
            return
        self._pruned_at = time.monotonic()
        table = _TABLE
        with self.engine.begin() as conn:
            conn.execute(
                delete(table).where(table.c.sink == self.sink, table.c.updated_at < datetime.now(UTC) - self.retention)
            )
