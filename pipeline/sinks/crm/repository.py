"""The CRM repository: batched idempotent writes of accepted events, reads for sales, and the rights effects.

Writes are keyed on ``event_id``: one batch is one transaction of three reads and one bulk statement per table
(PostgreSQL: COPY; SQLite: executemany) of only what is new, plus one ``INSERT ... ON CONFLICT DO UPDATE`` merging
the profiles of existing subjects. Only events that were new in this transaction change a subject, add identities,
consents or audit rows. Redelivering a batch therefore changes nothing.

The rights effects (erase, flag objection/restriction, rectify, withdraw consent, export, delete expired
interactions) are methods here with small result objects, so the rights engine calls them and records what they
returned as evidence. Every change writes a ``crm_audit`` row naming the event or request that caused it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from itertools import chain
from operator import itemgetter
from typing import Any, cast
from uuid import UUID

import orjson
import psycopg
from psycopg.types.json import set_json_dumps
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    RowMapping,
    Table,
    any_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement

from pipeline.crm.schema import (
    PERSONAL_SUBJECT_COLUMNS,
    CrmAudit,
    CrmConsent,
    CrmIdentity,
    CrmInteraction,
    CrmSubject,
)
from pipeline.crm.views import (
    ConsentView,
    IdentityView,
    InteractionView,
    PurposeView,
    SubjectSummary,
    SubjectView,
)
from pipeline.db import dialect_insert
from pipeline.models.common import LegalBasis
from pipeline.models.contact import PROFILE_FIELDS
from pipeline.models.tagged import TaggedEvent
from pipeline.normalize import NormalizationError, canonical_email, canonical_phone

#: Person fields that are also identities (search keys), with their identity kind.
IDENTITY_FIELDS: tuple[tuple[str, str], ...] = (
    ("email", "email"),
    ("phone", "phone"),
    ("skype_id", "skype"),
    ("linkedin_url", "linkedin"),
)

SINK_ACTOR = "sink:crm"

subjects = cast(Table, CrmSubject.__table__)
identities = cast(Table, CrmIdentity.__table__)
interactions = cast(Table, CrmInteraction.__table__)
consents = cast(Table, CrmConsent.__table__)
audit = cast(Table, CrmAudit.__table__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# ---- results of writes and rights effects --------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteReport:
    """What one ``write_events`` call changed: new interactions, redelivered ones, subjects created."""

    new: frozenset[UUID]
    duplicates: frozenset[UUID]
    subjects_created: frozenset[str]
    subjects_recollected: frozenset[str] = frozenset()
    superseded: frozenset[UUID] = frozenset()
    """Received before their subject's erasure: not written (they would resurrect erased data)."""


@dataclass(frozen=True)
class ErasureResult:
    subject_key: str
    found: bool
    already_erased: bool = False
    interactions_deleted: int = 0
    identities_deleted: int = 0
    consents_deleted: int = 0
    erased_at: datetime | None = None

    def evidence(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "already_erased": self.already_erased,
            "interactions_deleted": self.interactions_deleted,
            "identities_deleted": self.identities_deleted,
            "consents_deleted": self.consents_deleted,
            "erased_at": self.erased_at.isoformat() if self.erased_at else None,
        }


@dataclass(frozen=True)
class FlagChange:
    """An objection or a restriction (or its lifting): whether the flag moved, and how many purposes stopped."""

    subject_key: str
    found: bool
    changed: bool = False
    purposes_stopped: int = 0


@dataclass(frozen=True)
class Rectification:
    subject_key: str
    found: bool
    changed_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsentWithdrawal:
    subject_key: str
    found: bool
    purposes_withdrawn: tuple[str, ...] = ()
    purposes_stopped: int = 0


@dataclass(frozen=True)
class InteractionDeletion:
    subject_key: str
    deleted: int
    remaining: int


@dataclass(frozen=True)
class ExpiredInteraction:
    subject_key: str
    event_id: UUID
    retention_expires_at: datetime


@dataclass
class _SubjectBatch:
    """The events of one subject inside a batch, merged into one profile (newest non-empty value wins)."""

    subject_key: str
    profile: dict[str, Any] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    marketing_allowed: bool | None = None

    def add(self, tagged: TaggedEvent) -> None:
        event = tagged.event
        at = event.occurred_at
        newest = self.last_seen is None or at >= self.last_seen
        for name in PROFILE_FIELDS:
            value = getattr(event.person, name)
            if value is not None and (newest or name not in self.profile):
                self.profile[name] = value
        if newest:
            self.marketing_allowed = tagged.tags.marketing_allowed
            self.last_seen = at
        if self.first_seen is None or at < self.first_seen:
            self.first_seen = at


def _subject_batches(events: Iterable[TaggedEvent]) -> dict[str, _SubjectBatch]:
    batches: dict[str, _SubjectBatch] = {}
    for tagged in sorted(events, key=lambda t: t.event.occurred_at):
        key = tagged.event.subject_key
        batches.setdefault(key, _SubjectBatch(key)).add(tagged)
    return batches


def _identity_rows(tagged: TaggedEvent, now: datetime) -> list[dict[str, Any]]:
    event = tagged.event
    person = event.person
    pairs = [(kind, getattr(person, name)) for name, kind in IDENTITY_FIELDS]
    pairs = [(kind, value.lower() if kind == "email" and value else value) for kind, value in pairs]
    pairs += [(f"messenger:{name.lower()}", handle) for name, handle in sorted(person.messenger_handles.items())]
    return [
        {
            "subject_key": event.subject_key,
            "kind": kind,
            "value": value,
            "first_event_id": event.event_id,
            "created_at": now,
        }
        for kind, value in pairs
        if value
    ]


def _identity_key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    return (row["subject_key"], row["kind"], row["value"])


def _interaction_row(tagged: TaggedEvent, now: datetime) -> dict[str, Any]:
    event, tags = tagged.event, tagged.tags
    inter, prov = event.interaction, event.provenance
    return {
        "event_id": event.event_id,
        "subject_key": event.subject_key,
        "channel": event.channel.value,
        "kind": inter.kind.value,
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
        "written_at": now,
        "source_id": prov.source_id,
        "source_ref": prov.form_id or prov.bot_id or prov.mailbox_id,
        "subject_line": inter.subject,
        "message": inter.message,
        "transcript": [u.model_dump(mode="json") for u in inter.transcript] or None,
        "call_duration_s": inter.call_duration_s,
        "recording_ref": inter.recording_ref,
        "page_url": inter.page_url,
        "event_name": inter.event_name,
        "event_date": inter.event_date,
        "last_service_delivery_at": inter.last_service_delivery_at,
        "ip": prov.ip,
        "user_agent": prov.user_agent,
        "device_id": prov.device_id,
        "policy_version": tags.policy_version,
        "retention_clock": tags.retention_clock,
        "retention_anchor_at": tags.retention_anchor_at,
        "retention_expires_at": tags.retention_expires_at,
        "marketing_allowed": tags.marketing_allowed,
        "spam_score": tags.spam.score,
        "purposes": [
            {
                "purpose": p.purpose.value,
                "legal_basis": p.legal_basis.value,
                "policy_section": p.policy_section,
                "direct_marketing": p.direct_marketing,
                "stopped_at": None,
                "stopped_request_id": None,
            }
            for p in tags.purposes
        ],
    }


def _consent_rows(events: Iterable[TaggedEvent], now: datetime) -> Iterator[dict[str, Any]]:
    """One ``crm_consents`` row per consent an event records (given or withdrawn), caused by that event."""
    for t in events:
        for c in t.event.consents:
            yield {
                "subject_key": t.event.subject_key,
                "purpose": c.purpose.value,
                "granted": c.granted,
                "given_at": c.given_at,
                "method": c.method,
                "wording": c.wording,
                "cause_event_id": t.event.event_id,
                "recorded_at": now,
            }


def _subject_row(batch: _SubjectBatch, now: datetime) -> dict[str, Any]:
    return {
        "subject_key": batch.subject_key,
        "created_at": now,
        "updated_at": now,
        "first_seen_at": batch.first_seen,
        "last_seen_at": batch.last_seen,
        **{name: batch.profile.get(name) for name in PROFILE_FIELDS},
        "profile_at": batch.last_seen,
        "marketing_allowed": batch.marketing_allowed,
        "marketing_objected": False,
        "restricted": False,
    }


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


def _audit_row(
    at: datetime, subject_key: str, action: str, *, actor: str, event_id: UUID | None, detail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "at": at,
        "subject_key": subject_key,
        "action": action,
        "actor": actor,
        "event_id": event_id,
        "request_id": None,
        "detail": detail,
    }


_STAGE_METADATA = MetaData()


#: psycopg type names of the SQL types the CRM tables use, for binary COPY (``copy.set_types``).
_PG_COPY_TYPES: dict[str, str] = {
    "VARCHAR": "text",
    "TEXT": "text",
    "UUID": "uuid",
    "BOOLEAN": "bool",
    "FLOAT": "float8",
    "BIGINT": "int8",
    "INTEGER": "int4",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "JSONB": "jsonb",
}


def _row_values(columns: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values in ``columns`` order: itemgetter does it in C (but returns a bare value for one key)."""
    if len(columns) == 1:
        (only,) = columns
        return lambda row: (row[only],)
    return cast(Callable[[Mapping[str, Any]], tuple[Any, ...]], itemgetter(*columns))


@cache
def copy_types(table: Table, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The psycopg type names of ``columns`` of ``table``, for ``COPY ... (FORMAT BINARY)``.

    Binary COPY lets psycopg's C dumpers encode datetimes, UUIDs, numbers and text, and spares the server parsing
    them from text; it needs the type of every column up front.
    """
    dialect: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    names = []
    for column in columns:
        compiled = table.c[column].type.compile(dialect=dialect).split("(")[0].strip()
        if compiled not in _PG_COPY_TYPES:
            raise TypeError(f"no binary COPY type for {table.name}.{column} ({compiled})")
        names.append(_PG_COPY_TYPES[compiled])
    return tuple(names)  # cached: immutable


def _copy_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, into: str = ""
) -> None:
    """PostgreSQL binary COPY of rows (mappings with at least ``columns``) into ``into`` (default: ``table``),
    inside the connection's current transaction. ``table`` gives the column types.

    JSON values are dicts/lists encoded by orjson (psycopg's default is the stdlib ``json``, several times slower).
    """
    driver = conn.connection.driver_connection
    if driver is None:
        raise RuntimeError("no database connection")
    cols = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{into or table.name}" ({cols}) FROM STDIN (FORMAT BINARY)'
    values = _row_values(columns)
    try:
        with driver.cursor() as cur:
            set_json_dumps(orjson.dumps, context=cur)
            with cur.copy(statement) as copy:
                copy.set_types(copy_types(table, tuple(columns)))
                for row in rows:
                    copy.write_row(values(row))
    except psycopg.Error as exc:  # the same exception types as every other statement (DataError, IntegrityError...)
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def _copy_to_stage(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Table:
    """COPY rows into a session-local staging table shaped like ``columns`` of ``table`` (emptied at commit)."""
    name = f"stage_{table.name}"
    stage = _STAGE_METADATA.tables.get(name)
    if stage is None:
        stage = Table(name, _STAGE_METADATA, *[Column(c, table.c[c].type) for c in columns])
    cols = ", ".join(f'"{c}"' for c in columns)
    # every time, not cached per connection: a rolled-back transaction takes the table it created with it
    conn.exec_driver_sql(
        f'CREATE TEMPORARY TABLE IF NOT EXISTS "{name}" ON COMMIT DELETE ROWS AS '
        f'SELECT {cols} FROM "{table.name}" WITH NO DATA'
    )
    _copy_rows(conn, table, columns, rows, into=name)
    return stage


class CrmRepository:
    """All access to the CRM tables. Thread-safe (one engine, a connection per call)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self._clock = clock
        self._dialect = engine.dialect.name
        if self._dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"the CRM supports PostgreSQL and SQLite, not {self._dialect}")

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        return dialect_insert(self.engine, table)

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
            _copy_rows(conn, table, list(first), chain((first,), it))
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
            staged = _copy_to_stage(conn, table, columns, rows)
            stmt = postgresql.insert(table).from_select(columns, select(*[staged.c[c] for c in columns]))
        else:
            stmt = sqlite.insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=list(conflict), set_=dict(update(stmt.excluded)))
        if self._dialect == "postgresql":
            conn.execute(stmt)
        else:
            conn.execute(stmt, list(rows))

    # ---- the sink's write path ---------------------------------------------------------------------------------

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
            known: dict[str, datetime | None] = {
                row.subject_key: row.erased_at
                for row in conn.execute(
                    select(subjects.c.subject_key, subjects.c.erased_at)
                    .where(self._member_of(subjects.c.subject_key, {t.event.subject_key for t in batch}))
                    .order_by(subjects.c.subject_key)
                    .with_for_update(key_share=True)
                )
            }
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
            by_subject = _subject_batches(batch)
            created = {key for key in by_subject if key not in known}
            self._insert_new(conn, subjects, (_subject_row(by_subject[key], now) for key in sorted(created)))
            # in key order, like the subjects: two writers of overlapping batches wait for each other, never deadlock
            ordered = sorted(batch, key=lambda t: t.event.event_id)
            self._insert_new(conn, interactions, (_interaction_row(t, now) for t in ordered))
            self._restart_clocks(conn, batch)
            self._upsert(
                conn,
                subjects,
                [_subject_row(b, now) for key, b in by_subject.items() if key not in created],
                conflict=["subject_key"],
                update=_fold_profile,
            )
            recollected = {key for key in by_subject if key in erased_before}
            self._insert_children(
                conn,
                new_events=batch,
                created=created,
                recollected=recollected,
                erased_before=erased_before,
                now=now,
                actor=actor,
            )
        return WriteReport(
            new=frozenset(t.event.event_id for t in batch),
            duplicates=frozenset(stored),
            subjects_created=frozenset(created),
            subjects_recollected=frozenset(recollected),
            superseded=superseded,
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
        recollected: set[str],
        erased_before: Mapping[str, datetime],
        now: datetime,
        actor: str,
    ) -> None:
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
            for row in _identity_rows(t, now):
                identity = _identity_key(row)
                if identity not in seen:
                    seen.add(identity)
                    new_identities.append(row)
                    added_identities[t.event.event_id].append(row["kind"])
        self._insert_new(conn, identities, sorted(new_identities, key=_identity_key))
        self._insert_new(conn, consents, _consent_rows(new_events, now))  # only for events new in this transaction

        def audit_rows() -> Iterator[dict[str, Any]]:  # built while the server stores the ones sent before
            first_of_subject: set[str] = set()
            for t in sorted(new_events, key=lambda t: t.event.occurred_at):
                event = t.event
                key = event.subject_key
                is_first = key not in first_of_subject
                first_of_subject.add(key)
                if is_first and key in recollected:
                    yield _audit_row(
                        now,
                        key,
                        "subject_recollected",
                        actor=actor,
                        event_id=event.event_id,
                        detail={"previously_erased_at": erased_before[key].isoformat()},
                    )
                detail = {
                    "channel": event.channel.value,
                    "kind": event.interaction.kind.value,
                    "purposes": {p.purpose.value: p.legal_basis.value for p in t.tags.purposes},
                    "retention_expires_at": t.tags.retention_expires_at.isoformat(),
                    "subject_created": is_first and key in created,
                    "identities_added": sorted(added_identities.get(event.event_id, [])),
                    "consents": {c.purpose.value: c.granted for c in event.consents},
                    "profile_fields": [n for n in PROFILE_FIELDS if getattr(event.person, n) is not None],
                }
                yield _audit_row(now, key, "interaction_recorded", actor=actor, event_id=event.event_id, detail=detail)

        self._insert_new(conn, audit, audit_rows())

    # ---- reads for sales ---------------------------------------------------------------------------------------

    def subject_key_for(self, *, email: str | None = None, phone: str | None = None) -> str | None:
        """The subject an e-mail or phone belongs to (canonicalised first); None when nobody has it."""
        kind = "email" if email is not None else "phone"
        value = _canonical_identity(kind, email if email is not None else phone)
        if value is None:
            return None
        with self.engine.connect() as conn:
            key = conn.execute(
                select(identities.c.subject_key)
                .where(identities.c.kind == kind, identities.c.value == value)
                .order_by(identities.c.id)
                .limit(1)
            ).scalar()
        return key

    def search(
        self, *, email: str | None = None, phone: str | None = None, name: str | None = None, limit: int = 50
    ) -> list[SubjectSummary]:
        """Subjects matching every given criterion (e-mail and phone exactly, canonicalised; name by substring)."""
        stmt = select(subjects)
        criteria = 0
        for kind, value in (("email", email), ("phone", phone)):
            if value is None:
                continue
            criteria += 1
            canonical = _canonical_identity(kind, value)
            if canonical is None:
                return []
            stmt = stmt.where(
                subjects.c.subject_key.in_(
                    select(identities.c.subject_key).where(identities.c.kind == kind, identities.c.value == canonical)
                )
            )
        if name and name.strip():
            criteria += 1
            pattern = f"%{_escape_like(name.strip().lower())}%"
            full = func.lower(func.coalesce(subjects.c.first_name, "") + " " + func.coalesce(subjects.c.last_name, ""))
            stmt = stmt.where(full.like(pattern, escape="\\"))
        if not criteria:
            raise ValueError("search needs an e-mail, a phone or a name")
        stmt = stmt.order_by(subjects.c.last_seen_at.desc(), subjects.c.subject_key).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
            counts = self._interaction_counts(conn, [r["subject_key"] for r in rows])
        return [_summary(row, counts.get(row["subject_key"], 0)) for row in rows]

    def show(self, subject_key: str) -> SubjectView | None:
        """Everything about one subject for sales: profile, status, identities, interactions with basis, consents."""
        with self.engine.connect() as conn:
            row = conn.execute(select(subjects).where(subjects.c.subject_key == subject_key)).mappings().first()
            if row is None:
                return None
            idents = conn.execute(
                select(identities).where(identities.c.subject_key == subject_key).order_by(identities.c.id)
            ).mappings()
            inters = conn.execute(
                select(interactions)
                .where(interactions.c.subject_key == subject_key)
                .order_by(interactions.c.occurred_at, interactions.c.event_id)
            ).mappings()
            inter_views = [dict(r) for r in inters]
            cons = conn.execute(
                select(consents)
                .where(consents.c.subject_key == subject_key)
                .order_by(consents.c.given_at, consents.c.id)
            ).mappings()
            consent_views = [ConsentView.model_validate(dict(c)) for c in cons]
            identity_views = [IdentityView.model_validate(dict(i)) for i in idents]
        state: dict[str, bool] = {}
        for consent in consent_views:
            state[consent.purpose] = consent.granted
        summary = _summary(row, len(inter_views))
        return SubjectView(
            **summary.model_dump(),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            first_seen_at=row["first_seen_at"],
            location=row["location"],
            country_code=row["country_code"],
            company_address=row["company_address"],
            skype_id=row["skype_id"],
            linkedin_url=row["linkedin_url"],
            marketing_allowed=row["marketing_allowed"],
            marketing_objected_at=row["marketing_objected_at"],
            restricted=row["restricted"],
            restricted_at=row["restricted_at"],
            erased_at=row["erased_at"],
            erasure_request_id=row["erasure_request_id"],
            identities=identity_views,
            interactions_detail=[
                InteractionView.model_validate(
                    {**i, "purposes": [PurposeView.model_validate(p) for p in sorted(i["purposes"], key=_by_purpose)]}
                )
                for i in inter_views
            ],
            consents=consent_views,
            consent_state=state,
        )

    def interaction_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(interactions)).scalar_one())

    def _interaction_counts(self, conn: Connection, keys: Sequence[str]) -> dict[str, int]:
        if not keys:
            return {}
        rows = conn.execute(
            select(interactions.c.subject_key, func.count())
            .where(interactions.c.subject_key.in_(list(keys)))
            .group_by(interactions.c.subject_key)
        ).all()
        return {key: int(count) for key, count in rows}

    # ---- rights effects (called by the rights engine) ----------------------------------------------------------

    def export_subject(self, subject_key: str) -> dict[str, list[dict[str, Any]]] | None:
        """Everything held about a subject, by category, JSON-ready (access and portability); None if unknown."""
        view = self.show(subject_key)
        if view is None:
            return None
        subject = view.model_dump(mode="json", exclude={"identities", "interactions_detail", "consents"})
        with self.engine.connect() as conn:
            audit_rows = conn.execute(
                select(audit).where(audit.c.subject_key == subject_key).order_by(audit.c.at, audit.c.id)
            ).mappings()
            audit_docs = [
                {
                    "at": r["at"].isoformat(),
                    "action": r["action"],
                    "actor": r["actor"],
                    "event_id": str(r["event_id"]) if r["event_id"] else None,
                    "request_id": str(r["request_id"]) if r["request_id"] else None,
                    "detail": r["detail"],
                }
                for r in audit_rows
            ]
        return {
            "subject": [subject],
            "identities": [i.model_dump(mode="json") for i in view.identities],
            "interactions": [i.model_dump(mode="json") for i in view.interactions_detail],
            "consents": [c.model_dump(mode="json") for c in view.consents],
            "audit": audit_docs,
        }

    def erase_subject(
        self, subject_key: str, request_id: UUID, *, at: datetime | None = None, actor: str = "rights"
    ) -> ErasureResult:
        """Delete the subject's personal data; keep the minimal record (key, timestamps, flags, request id).

        Idempotent: erasing an erased subject with nothing left reports ``already_erased`` and changes nothing.
        """
        at = at or self._clock()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(subjects.c.erased_at).where(subjects.c.subject_key == subject_key).with_for_update()
            ).first()
            if row is None:
                return ErasureResult(subject_key, found=False)
            n_inter = _rowcount(conn.execute(delete(interactions).where(interactions.c.subject_key == subject_key)))
            n_ident = _rowcount(conn.execute(delete(identities).where(identities.c.subject_key == subject_key)))
            n_cons = _rowcount(conn.execute(delete(consents).where(consents.c.subject_key == subject_key)))
            if row.erased_at is not None and not (n_inter or n_ident or n_cons):
                return ErasureResult(subject_key, found=True, already_erased=True, erased_at=row.erased_at)
            conn.execute(
                update(subjects)
                .where(subjects.c.subject_key == subject_key)
                .values(
                    **dict.fromkeys(PERSONAL_SUBJECT_COLUMNS),
                    marketing_allowed=None,
                    erased_at=at,
                    erasure_request_id=request_id,
                    updated_at=at,
                )
            )
            result = ErasureResult(
                subject_key,
                found=True,
                interactions_deleted=n_inter,
                identities_deleted=n_ident,
                consents_deleted=n_cons,
                erased_at=at,
            )
            self._audit(
                conn, subject_key, "subject_erased", at=at, actor=actor, request_id=request_id, detail=result.evidence()
            )
        return result

    def delete_interactions(
        self, subject_key: str, event_ids: Sequence[UUID], request_id: UUID, *, actor: str = "rights"
    ) -> InteractionDeletion:
        """Delete given interactions of a subject (retention expiry); says how many the subject has left."""
        at = self._clock()
        with self.engine.begin() as conn:
            deleted = 0
            for chunk in _chunks(list(event_ids), 500):
                deleted += _rowcount(
                    conn.execute(
                        delete(interactions).where(
                            interactions.c.subject_key == subject_key, interactions.c.event_id.in_(chunk)
                        )
                    )
                )
            remaining = int(
                conn.execute(
                    select(func.count()).select_from(interactions).where(interactions.c.subject_key == subject_key)
                ).scalar_one()
            )
            if deleted:
                self._audit(
                    conn,
                    subject_key,
                    "interactions_deleted",
                    at=at,
                    actor=actor,
                    request_id=request_id,
                    detail={"deleted": deleted, "remaining": remaining, "event_ids": [str(e) for e in event_ids]},
                )
        return InteractionDeletion(subject_key, deleted=deleted, remaining=remaining)

    def expired_interactions(self, now: datetime, limit: int = 10_000) -> list[ExpiredInteraction]:
        """Interactions whose retention expiry is at or before ``now``, oldest expiry first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(interactions.c.subject_key, interactions.c.event_id, interactions.c.retention_expires_at)
                .where(interactions.c.retention_expires_at <= now)
                .order_by(interactions.c.retention_expires_at, interactions.c.event_id)
                .limit(limit)
            ).all()
        return [ExpiredInteraction(r.subject_key, r.event_id, r.retention_expires_at) for r in rows]

    def interaction_counts(self, subject_keys: Sequence[str]) -> dict[str, int]:
        """How many interactions each subject has (subjects with none are absent)."""
        with self.engine.connect() as conn:
            return self._interaction_counts(conn, subject_keys)

    def set_marketing_objection(
        self, subject_key: str, request_id: UUID, *, objected: bool = True, actor: str = "rights"
    ) -> FlagChange:
        """Objection to direct marketing (policy 9.6): flag the subject and stop every direct-marketing purpose."""
        at = self._clock()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(subjects.c.marketing_objected).where(subjects.c.subject_key == subject_key)
            ).first()
            if row is None:
                return FlagChange(subject_key, found=False)
            changed = bool(row.marketing_objected) != objected
            if changed:
                conn.execute(
                    update(subjects)
                    .where(subjects.c.subject_key == subject_key)
                    .values(marketing_objected=objected, marketing_objected_at=at if objected else None, updated_at=at)
                )
            stopped = 0
            if objected:
                stopped = self._stop_purposes(
                    conn, subject_key, lambda p: bool(p["direct_marketing"]), request_id=request_id, at=at
                )
            if changed or stopped:
                self._audit(
                    conn,
                    subject_key,
                    "marketing_objected" if objected else "marketing_objection_lifted",
                    at=at,
                    actor=actor,
                    request_id=request_id,
                    detail={"purposes_stopped": stopped},
                )
        return FlagChange(subject_key, found=True, changed=changed, purposes_stopped=stopped)

    def set_restriction(
        self, subject_key: str, request_id: UUID, *, restricted: bool, actor: str = "rights"
    ) -> FlagChange:
        """Restriction of processing (policy 9.4) or its lifting: the data stays, the flag tells every reader."""
        at = self._clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(subjects.c.restricted).where(subjects.c.subject_key == subject_key)).first()
            if row is None:
                return FlagChange(subject_key, found=False)
            changed = bool(row.restricted) != restricted
            if changed:
                conn.execute(
                    update(subjects)
                    .where(subjects.c.subject_key == subject_key)
                    .values(restricted=restricted, restricted_at=at if restricted else None, updated_at=at)
                )
                self._audit(
                    conn,
                    subject_key,
                    "restricted" if restricted else "restriction_lifted",
                    at=at,
                    actor=actor,
                    request_id=request_id,
                    detail={},
                )
        return FlagChange(subject_key, found=True, changed=changed)

    def rectify(
        self, subject_key: str, request_id: UUID, changes: Mapping[str, str | None], *, actor: str = "rights"
    ) -> Rectification:
        """Correct profile fields (policy 9.2); a corrected phone/Skype/LinkedIn is added as an identity too."""
        unknown = sorted(set(changes) - set(PROFILE_FIELDS))
        if unknown:
            raise ValueError(f"not rectifiable CRM fields: {', '.join(unknown)}")
        at = self._clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(subjects).where(subjects.c.subject_key == subject_key)).mappings().first()
            if row is None:
                return Rectification(subject_key, found=False)
            changed = tuple(sorted(name for name, value in changes.items() if row[name] != value))
            if changed:
                conn.execute(
                    update(subjects)
                    .where(subjects.c.subject_key == subject_key)
                    .values(**{name: changes[name] for name in changed}, profile_at=at, updated_at=at)
                )
                for name, kind in IDENTITY_FIELDS:
                    value = changes.get(name)
                    if name in changed and value:
                        conn.execute(
                            self._insert(identities).on_conflict_do_nothing(
                                index_elements=["subject_key", "kind", "value"]
                            ),
                            [
                                {
                                    "subject_key": subject_key,
                                    "kind": kind,
                                    "value": value,
                                    "first_event_id": None,
                                    "created_at": at,
                                }
                            ],
                        )
                    if name in changed and row[name] and value != row[name]:
                        conn.execute(
                            delete(identities).where(
                                identities.c.subject_key == subject_key,
                                identities.c.kind == kind,
                                identities.c.value == row[name],
                            )
                        )
                self._audit(
                    conn,
                    subject_key,
                    "rectified",
                    at=at,
                    actor=actor,
                    request_id=request_id,
                    detail={"fields": list(changed)},
                )
        return Rectification(subject_key, found=True, changed_fields=changed)

    def withdraw_consent(
        self, subject_key: str, request_id: UUID, purposes: Sequence[str] = (), *, actor: str = "rights"
    ) -> ConsentWithdrawal:
        """Withdrawal of consent (policy 9.8): record it, and stop every stored purpose that rests on consent.

        With no ``purposes``, every purpose the subject ever consented to or that rests on consent is withdrawn.
        Purposes on another legal basis continue. A repeated request changes nothing.
        """
        at = self._clock()
        with self.engine.begin() as conn:
            if (
                conn.execute(select(subjects.c.subject_key).where(subjects.c.subject_key == subject_key)).first()
                is None
            ):
                return ConsentWithdrawal(subject_key, found=False)
            wanted = set(purposes)
            if not wanted:
                wanted |= set(
                    conn.execute(select(consents.c.purpose).where(consents.c.subject_key == subject_key)).scalars()
                )
                for stored in conn.execute(
                    select(interactions.c.purposes).where(interactions.c.subject_key == subject_key)
                ).scalars():
                    wanted |= {p["purpose"] for p in stored if p["legal_basis"] == LegalBasis.CONSENT}
            ordered = tuple(sorted(wanted))
            inserted: list[str] = []
            if ordered:
                inserted = list(
                    conn.execute(
                        self._insert(consents)
                        .on_conflict_do_nothing(index_elements=["cause_request_id", "purpose"])
                        .returning(consents.c.purpose),
                        [
                            {
                                "subject_key": subject_key,
                                "purpose": purpose,
                                "granted": False,
                                "given_at": at,
                                "method": "rights_request",
                                "wording": None,
                                "cause_event_id": None,
                                "cause_request_id": request_id,
                                "recorded_at": at,
                            }
                            for purpose in ordered
                        ],
                    ).scalars()
                )
            stopped = 0
            if ordered:
                stopped = self._stop_purposes(
                    conn,
                    subject_key,
                    lambda p: p["legal_basis"] == LegalBasis.CONSENT and p["purpose"] in ordered,
                    request_id=request_id,
                    at=at,
                )
            if inserted or stopped:
                self._audit(
                    conn,
                    subject_key,
                    "consent_withdrawn",
                    at=at,
                    actor=actor,
                    request_id=request_id,
                    detail={"purposes": sorted(inserted), "purposes_stopped": stopped},
                )
        return ConsentWithdrawal(
            subject_key, found=True, purposes_withdrawn=tuple(sorted(inserted)), purposes_stopped=stopped
        )

    def audit_entries(self, subject_key: str) -> list[dict[str, Any]]:
        """The audit rows of one subject, oldest first (evidence for the rights tracker and tests)."""
        export = self.export_subject(subject_key)
        return [] if export is None else export["audit"]

    # ---- helpers -------------------------------------------------------------------------------------------------

    def _stop_purposes(
        self,
        conn: Connection,
        subject_key: str,
        which: Callable[[Mapping[str, Any]], bool],
        *,
        request_id: UUID,
        at: datetime,
    ) -> int:
        """Mark the subject's stored purposes that ``which`` selects as stopped; returns how many were stopped now."""
        stopped = 0
        updates: list[dict[str, Any]] = []
        for event_id, stored in conn.execute(
            select(interactions.c.event_id, interactions.c.purposes).where(interactions.c.subject_key == subject_key)
        ).all():
            changed = False
            entries = []
            for entry in stored:
                if entry.get("stopped_at") is None and which(entry):
                    entries.append({**entry, "stopped_at": at.isoformat(), "stopped_request_id": str(request_id)})
                    changed = True
                    stopped += 1
                else:
                    entries.append(entry)
            if changed:
                updates.append({"b_event_id": event_id, "b_purposes": entries})
        if updates:
            conn.execute(
                update(interactions)
                .where(interactions.c.event_id == bindparam("b_event_id"))
                .values(purposes=bindparam("b_purposes", type_=interactions.c.purposes.type)),
                updates,
            )
        return stopped

    @staticmethod
    def _audit(
        conn: Connection,
        subject_key: str,
        action: str,
        *,
        at: datetime,
        actor: str,
        request_id: UUID | None,
        detail: dict[str, Any],
    ) -> None:
        conn.execute(
            audit.insert().values(
                at=at,
                subject_key=subject_key,
                action=action,
                actor=actor,
                event_id=None,
                request_id=request_id,
                detail=detail,
            )
        )


def _canonical_identity(kind: str, value: str | None) -> str | None:
    """The stored form of an e-mail (canonical, lowercased: mailboxes are matched case-insensitively) or a phone
    (E.164); None when the input is not a valid address or number."""
    if value is None:
        return None
    try:
        return canonical_email(value).lower() if kind == "email" else canonical_phone(value)
    except NormalizationError:
        return None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _summary(row: RowMapping, count: int) -> SubjectSummary:
    status = "erased" if row["erased_at"] is not None else "restricted" if row["restricted"] else "active"
    return SubjectSummary(
        subject_key=row["subject_key"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        email=row["email"],
        phone=row["phone"],
        company=row["company"],
        position=row["position"],
        last_seen_at=row["last_seen_at"],
        interactions=count,
        status=status,
        marketing_objected=bool(row["marketing_objected"]),
    )


def _by_purpose(entry: Mapping[str, Any]) -> str:
    return str(entry["purpose"])


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _chunks(items: list[UUID], size: int) -> Iterable[list[UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
