"""The CRM sink's write path: batched, idempotent writes of accepted events.

Writes are keyed on ``event_id``: one batch is one transaction of three reads and one bulk statement per table
(PostgreSQL: binary COPY, ``pgcopy``; SQLite: executemany) of only what is new, plus one
``INSERT ... ON CONFLICT DO UPDATE`` merging the profiles of existing subjects. Only events that were new in this
transaction change a subject, add identities, consents or audit rows (built in ``rows``). Redelivering a batch
therefore changes nothing. Every change writes a ``crm_audit`` row naming the event that caused it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from typing import Any
from uuid import UUID

from sqlalchemy import Column, Connection, Engine, Table, any_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement

from pipeline.crm.schema import (
    LINK_COLUMNS,
    audit,
    audit_row,
    consents,
    identities,
    interactions,
    subjects,
    visitor_links,
)
from pipeline.crm.stitching import Link, earliest
from pipeline.models.contact import PROFILE_FIELDS
from pipeline.models.marketing import MarketingState
from pipeline.models.tagged import TaggedEvent
from pipeline.sinks.crm.pgcopy import copy_rows, copy_to_stage
from pipeline.sinks.crm.rows import (
    consent_rows,
    identity_key,
    identity_rows,
    interaction_row,
    recorded_audit_rows,
    subject_batches,
    subject_row,
    visitor_link_row,
    visitor_links_of,
)

SINK_ACTOR = "sink:crm"


@dataclass(frozen=True)
class WriteReport:
    """What one ``write_events`` call changed: new interactions, redelivered ones, subjects created."""

    new: frozenset[UUID]
    duplicates: frozenset[UUID]
    subjects_created: frozenset[str]
    subjects_recollected: frozenset[str] = frozenset()
    superseded: frozenset[UUID] = frozenset()
    """Received before their subject's erasure: not written (they would resurrect erased data)."""


def _fold_profile(new: Any) -> dict[str, Any]:
    """ON CONFLICT DO UPDATE of a subject: newer events overwrite the profile, older ones only fill its gaps."""
    newer: ColumnElement[bool] = or_(subjects.c.profile_at.is_(None), new.profile_at >= subjects.c.profile_at)
    set_: dict[str, Any] = {
        name: case(
            (newer, func.coalesce(new[name], subjects.c[name])), else_=func.coalesce(subjects.c[name], new[name])
        )
        for name in PROFILE_FIELDS
    }
    set_.update(
        profile_at=case((newer, new.profile_at), else_=subjects.c.profile_at),
        marketing_allowed=case((newer, new.marketing_allowed), else_=subjects.c.marketing_allowed),
        last_seen_at=case((newer, new.last_seen_at), else_=subjects.c.last_seen_at),
        first_seen_at=case(
            (or_(subjects.c.first_seen_at.is_(None), new.first_seen_at < subjects.c.first_seen_at), new.first_seen_at),
            else_=subjects.c.first_seen_at,
        ),
        updated_at=new.updated_at,
        erased_at=None,  # a new collection after an erasure (the chain let it through): not erased any more
    )
    return set_


class CrmWriter:
    """The sink's writes to the CRM tables. Thread-safe (one engine, a connection per call)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self._clock = clock or partial(datetime.now, UTC)
        self._dialect = engine.dialect.name
        if self._dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"the CRM supports PostgreSQL and SQLite, not {self._dialect}")

    def _member_of(self, column: Column[Any], values: Iterable[Any]) -> ColumnElement[bool]:
        """``column IN (values)``; on PostgreSQL one array parameter (``= ANY``): a 500-item IN list costs more to
        render, convert and parse than the lookup itself."""
        if self._dialect == "postgresql":
            return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
        return column.in_(list(values))

    def _insert_new(self, conn: Connection, table: Table, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert rows this transaction found absent (all with the same keys): no ON CONFLICT needed.

        PostgreSQL: one binary COPY. SQLite: one executemany. A concurrent writer that inserted the same keys
        meanwhile makes this raise ``IntegrityError``: the transaction rolls back and the sink offers the batch
        again, which then finds those rows stored. ``rows`` may be a generator: on PostgreSQL each row is built
        while the server is still storing the ones sent before it (COPY streams), so both CPUs work at once.
        """
        it = iter(rows)
        first = next(it, None)
        if first is None:
            return
        if self._dialect == "postgresql":
            copy_rows(conn, table, list(first), chain((first,), it))
        else:
            conn.execute(table.insert(), [first, *it])

    def _upsert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        conflict: Sequence[str],
        update: Callable[[Any], Mapping[str, Any]],
    ) -> None:
        """``INSERT ... ON CONFLICT DO UPDATE`` of many rows (all with the same keys).

        PostgreSQL: the rows are COPYed into a session-local staging table and merged with one
        ``INSERT ... SELECT ... ON CONFLICT``. SQLite: the same statement as an executemany.
        """
        if not rows:
            return
        columns = list(rows[0])
        stmt: postgresql.Insert | sqlite.Insert
        if self._dialect == "postgresql":
            staged = copy_to_stage(conn, table, columns, rows)
            stmt = postgresql.insert(table).from_select(columns, select(*[staged.c[c] for c in columns]))
        else:
            stmt = sqlite.insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=list(conflict), set_=dict(update(stmt.excluded)))
        if self._dialect == "postgresql":
            conn.execute(stmt)
        else:
            conn.execute(stmt, list(rows))

    def write_events(self, events: Sequence[TaggedEvent], actor: str = SINK_ACTOR) -> WriteReport:
        """Write a batch in one transaction; events already stored (same ``event_id``) change nothing.

        Reads first what is there (stored event ids; the batch's subjects, locked against a concurrent erasure;
        their identities), then inserts only what is new without conflict handling, and merges the profiles of
        existing subjects. A concurrent writer of the same rows makes it raise ``IntegrityError`` (see
        ``_insert_new``); the sink retries the batch, and the retry finds them stored.
        """
        unique: dict[UUID, TaggedEvent] = {}
        for tagged in events:
            unique.setdefault(tagged.event.event_id, tagged)
        if not unique:
            return WriteReport(frozenset(), frozenset(), frozenset())
        now = self._clock()
        with self.engine.begin() as conn:
            stored = set(
                conn.execute(
                    select(interactions.c.event_id).where(self._member_of(interactions.c.event_id, unique))
                ).scalars()
            )
            batch = [t for event_id, t in unique.items() if event_id not in stored]
            if not batch:
                return WriteReport(frozenset(), frozenset(unique), frozenset())
            # FOR NO KEY UPDATE (PostgreSQL): an erasure (SELECT ... FOR UPDATE) of one of these subjects waits for
            # this batch, or this batch waits for it and then sees its erased_at. Sorted: two writers never deadlock.
            known: dict[str, datetime | None] = {}
            rights: dict[str, MarketingState] = {}  # an objection or restriction the CRM holds beats older tags
            for row in conn.execute(
                select(
                    subjects.c.subject_key, subjects.c.erased_at, subjects.c.marketing_objected, subjects.c.restricted
                )
                .where(self._member_of(subjects.c.subject_key, {t.event.subject_key for t in batch}))
                .order_by(subjects.c.subject_key)
                .with_for_update(key_share=True)
            ):
                known[row.subject_key] = row.erased_at
                if row.marketing_objected or row.restricted:
                    rights[row.subject_key] = MarketingState(bool(row.marketing_objected), bool(row.restricted))
            erased_before = {key: at for key, at in known.items() if at is not None}
            # An event received before its subject's erasure (accepted just before it, or replayed) must never bring
            # the data back; only what arrives after the erasure is a new collection.
            superseded = frozenset(
                t.event.event_id
                for t in batch
                if (at := erased_before.get(t.event.subject_key)) is not None and t.event.received_at <= at
            )
            batch = [t for t in batch if t.event.event_id not in superseded]
            if not batch:
                return WriteReport(frozenset(), frozenset(stored), frozenset(), superseded=superseded)
            by_subject = subject_batches(batch, rights)
            created = {key for key in by_subject if key not in known}
            self._insert_new(conn, subjects, (subject_row(by_subject[key], now) for key in sorted(created)))
            # in key order, like the subjects: two writers of overlapping batches wait for each other, never deadlock
            ordered = sorted(batch, key=lambda t: t.event.event_id)
            self._insert_new(
                conn, interactions, (interaction_row(t, now, by_subject[t.event.subject_key].rights) for t in ordered)
            )
            self._restart_clocks(conn, batch)
            self._upsert(
                conn,
                subjects,
                [subject_row(b, now) for key, b in by_subject.items() if key not in created],
                conflict=["subject_key"],
                update=_fold_profile,
            )
            recollected = {key: at for key, at in erased_before.items() if key in by_subject}
            self._insert_children(
                conn, new_events=batch, created=created, recollected=recollected, now=now, actor=actor
            )
            self._link_visitors(conn, batch, now=now, actor=actor)
        return WriteReport(
            new=frozenset(t.event.event_id for t in batch),
            duplicates=frozenset(stored),
            subjects_created=frozenset(created),
            subjects_recollected=frozenset(recollected),
            superseded=superseded,
        )

    def _link_visitors(self, conn: Connection, new_events: Sequence[TaggedEvent], *, now: datetime, actor: str) -> None:
        """Link each website visitor a new event identified a person on (``crm_visitor_links``), keeping per
        (visitor, person) the earliest identifying event: a link is stored once, and moved only to an earlier event
        that arrived late, so redelivery and arrival order change nothing (``pipeline.crm.stitching``)."""
        links = visitor_links_of(new_events)
        if not links:
            return
        visitors = {visitor for visitor, _ in links}
        rows = conn.execute(select(*LINK_COLUMNS).where(self._member_of(visitor_links.c.visitor_key, visitors)))
        stored = {(row.visitor_key, row.subject_key): Link(*row) for row in rows}
        added: list[Link] = []
        moved: list[Link] = []
        for pair, link in sorted(links.items()):
            before = stored.get(pair)
            if before is None:
                added.append(link)
            elif earliest(before, link) is link:
                moved.append(link)
        self._insert_new(conn, visitor_links, (visitor_link_row(link, now) for link in added))
        if moved:
            conn.execute(
                update(visitor_links)
                .where(
                    visitor_links.c.visitor_key == bindparam("b_visitor"),
                    visitor_links.c.subject_key == bindparam("b_subject"),
                )
                .values(linked_at=bindparam("b_at"), event_id=bindparam("b_event")),
                [
                    {"b_visitor": m.visitor_key, "b_subject": m.subject_key, "b_at": m.linked_at, "b_event": m.event_id}
                    for m in moved
                ],
            )
        self._insert_new(
            conn,
            audit,
            (
                audit_row(
                    now,
                    link.subject_key,
                    "visitor_linked",
                    actor=actor,
                    event_id=link.event_id,
                    detail={"visitor_key": link.visitor_key, "earlier_event": link in moved},
                )
                for link in (*added, *moved)
            ),
        )

    def _restart_clocks(self, conn: Connection, batch: Sequence[TaggedEvent]) -> None:
        """Move the stored interactions of a restarting clock to the latest anchor (policy 6.4, 7.5).

        A customer's data is kept six years from the *last* service delivery, an attendee's from the last event
        registered for: a new delivery or registration extends what is stored on that clock, never shortens it.
        """
        latest: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        for t in batch:
            tags = t.tags
            if tags.retention_clock == "interaction":
                continue
            key = (t.event.subject_key, tags.retention_clock)
            seen = latest.get(key)
            if seen is None or tags.retention_expires_at > seen[1]:
                latest[key] = (tags.retention_anchor_at, tags.retention_expires_at)
        if not latest:
            return
        conn.execute(
            update(interactions)
            .where(
                interactions.c.subject_key == bindparam("b_subject"),
                interactions.c.retention_clock == bindparam("b_clock"),
                interactions.c.retention_expires_at < bindparam("b_expires"),
            )
            .values(retention_anchor_at=bindparam("b_anchor"), retention_expires_at=bindparam("b_expires")),
            [
                {"b_subject": subject, "b_clock": clock, "b_anchor": anchor, "b_expires": expires}
                for (subject, clock), (anchor, expires) in sorted(latest.items())
            ],
        )

    def _insert_children(
        self,
        conn: Connection,
        *,
        new_events: Sequence[TaggedEvent],
        created: set[str],
        recollected: Mapping[str, datetime],
        now: datetime,
        actor: str,
    ) -> None:
        """Identities, consents and audit rows of the new events (identities only where the subject has none alike).

        ``recollected``: subjects erased before that this batch collects again, with when they were erased.
        """
        existing_subjects = {t.event.subject_key for t in new_events} - created
        seen: set[tuple[str, str, str]] = set()
        if existing_subjects:
            seen.update(
                (row.subject_key, row.kind, row.value)
                for row in conn.execute(
                    select(identities.c.subject_key, identities.c.kind, identities.c.value).where(
                        self._member_of(identities.c.subject_key, existing_subjects)
                    )
                )
            )
        new_identities: list[dict[str, Any]] = []
        added_identities: dict[UUID, list[str]] = defaultdict(list)
        for t in new_events:
            for row in identity_rows(t, now):
                identity = identity_key(row)
                if identity not in seen:
                    seen.add(identity)
                    new_identities.append(row)
                    added_identities[t.event.event_id].append(row["kind"])
        self._insert_new(conn, identities, sorted(new_identities, key=identity_key))
        self._insert_new(conn, consents, consent_rows(new_events, now))  # only for events new in this transaction
        rows = recorded_audit_rows(
            new_events,
            now=now,
            actor=actor,
            created=created,
            recollected=recollected,
            identities_added=added_identities,
        )
        self._insert_new(conn, audit, rows)  # a generator: built while the server stores the rows sent before
