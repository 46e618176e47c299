"""The CRM's read model: what sales reads (``leadpipe crm search|show``, ``GET /v1/crm/...``) and what the rights
effects read before they change anything (whom to hand over to HubSpot, what an export holds).

Nothing here writes. Identities are looked up in their stored form (canonical e-mail, lowercased; E.164 phone),
so a search finds a person however the e-mail or phone is spelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, RowMapping, String, Text, column, func, select, table

from pipeline.crm.schema import LINK_COLUMNS, consents, identities, interactions, subjects, visitor_links
from pipeline.crm.stitching import Link, attribute
from pipeline.crm.views import (
    ConsentView,
    IdentityView,
    InteractionView,
    LeadQuery,
    LeadView,
    PurposeView,
    SubjectSummary,
    SubjectView,
    VisitorLinkView,
)
from pipeline.db import any_of
from pipeline.models.contact import OWN_ACT_METHODS
from pipeline.models.rights import SuppressionRecord
from pipeline.normalize import NormalizationError, canonical_email, canonical_phone

#: The subjects' suppression states, as the rights tracker keeps them (``pipeline.rights.tracker.RightsSubjectState``:
#: a SuppressionRecord as JSON per subject key), read here without importing the rights layer, which reads the CRM.
_SUPPRESSION_STATES = table("rights_subject_state", column("subject_key", String), column("state", Text))


class CrmReadModel:
    """Reads of the CRM tables. Thread-safe (one engine, a connection per call)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def subject_key_for(self, *, email: str | None = None, phone: str | None = None) -> str | None:
        """The subject an e-mail or phone belongs to (canonicalised first); None when nobody has it."""
        kind = "email" if email is not None else "phone"
        value = _stored_identity(kind, email if email is not None else phone)
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

    def holders(self, *, email: str | None = None, phone: str | None = None) -> tuple[str, ...]:
        """Every subject holding this e-mail or phone among their identities (canonicalised first), sorted: a key is
        an e-mail's or, without one, a phone's, so a person who wrote with an address is held under it whatever
        number they gave, and a number on a switchboard may be held by several people."""
        kind = "email" if email is not None else "phone"
        value = _stored_identity(kind, email if email is not None else phone)
        if value is None:
            return ()
        query = (
            select(identities.c.subject_key)
            .where(identities.c.kind == kind, identities.c.value == value)
            .distinct()
            .order_by(identities.c.subject_key)
        )
        with self.engine.connect() as conn:
            return tuple(conn.execute(query).scalars())

    def holds(self, subject_key: str) -> bool:
        """Whether the CRM holds a person under this key (an erased subject's minimal record is nobody's data, and so
        is an objection kept for a person not yet seen: a row never seen, ``first_seen_at`` empty)."""
        query = select(subjects.c.subject_key).where(
            subjects.c.subject_key == subject_key,
            subjects.c.erased_at.is_(None),
            subjects.c.first_seen_at.is_not(None),
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def sharing_a_phone(self, subject_key: str) -> tuple[str, ...]:
        """The other subjects that hold a phone number this one holds: the same person known by another key (one who
        wrote with an e-mail address and called or messaged from the number alone, or the other way round), or
        someone sharing a number (a switchboard). A subject key is an e-mail's or, without one, a phone's: a right
        carried out for one key does not reach the others, so the DPO is shown them (never what they hold)."""
        mine = select(identities.c.value).where(identities.c.subject_key == subject_key, identities.c.kind == "phone")
        query = (
            select(identities.c.subject_key)
            .where(identities.c.kind == "phone", identities.c.value.in_(mine), identities.c.subject_key != subject_key)
            .distinct()
            .order_by(identities.c.subject_key)
        )
        with self.engine.connect() as conn:
            return tuple(conn.execute(query).scalars())

    def search(
        self, *, email: str | None = None, phone: str | None = None, name: str | None = None, limit: int = 50
    ) -> list[SubjectSummary]:
        """Subjects matching every given criterion (e-mail and phone exactly, canonicalised; name by substring).

        Restricted subjects match a search by e-mail alone, never one that names a phone or a name.
        """
        criteria = _subject_criteria(email=email, phone=phone, name=name)
        if criteria is None:
            return []
        if not criteria:
            raise ValueError("search needs an e-mail, a phone or a name")
        stmt = select(subjects).where(*criteria)
        stmt = stmt.order_by(subjects.c.last_seen_at.desc(), subjects.c.subject_key).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
            counts = self._interaction_counts(conn, [r["subject_key"] for r in rows])
        return [_summary(row, counts.get(row["subject_key"], 0)) for row in rows]

    def leads(self, query: LeadQuery | None = None) -> list[LeadView]:
        """The lead inbox: interactions newest first (by arrival), each with its subject, filtered by ``query``.

        Sales are shown ``for_sales()`` of each (a restricted subject's lead withheld), as with ``show``.
        """
        q = query or LeadQuery()
        criteria = _subject_criteria(email=q.email, phone=q.phone, name=q.name, company=q.company)
        if criteria is None:
            return []
        stmt = (
            select(interactions, *(subjects.c[c] for c in _SUBJECT_COLUMNS))
            .join(subjects, subjects.c.subject_key == interactions.c.subject_key)
            .where(*criteria)
        )
        if q.channel:
            stmt = stmt.where(interactions.c.channel == q.channel)
        if q.received_from is not None:
            stmt = stmt.where(interactions.c.received_at >= q.received_from)
        if q.received_before is not None:
            stmt = stmt.where(interactions.c.received_at < q.received_before)
        if q.marketing_at is not None:
            stmt = stmt.where(
                interactions.c.marketing_allowed.is_(True),
                interactions.c.retention_expires_at > q.marketing_at,
                subjects.c.restricted.is_(False),
                subjects.c.erased_at.is_(None),
                subjects.c.marketing_objected.is_(False),
            )
        stmt = stmt.order_by(interactions.c.received_at.desc(), interactions.c.event_id).limit(q.limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        leads = [_lead(row) for row in rows]
        return leads if q.marketing_at is None else [lead for lead in leads if not lead.marketing_stopped()]

    def show(self, subject_key: str) -> SubjectView | None:
        """Everything about one subject: profile, status, identities, interactions with basis, consents.

        Sales are shown ``for_sales()`` of it (a restricted subject withheld); the rights effects read all of it.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(subjects).where(subjects.c.subject_key == subject_key)).mappings().first()
            if row is None:
                return None
            idents = conn.execute(
                select(identities).where(identities.c.subject_key == subject_key).order_by(identities.c.id)
            ).mappings()
            identity_views = [IdentityView.model_validate(dict(i)) for i in idents]
            inters = conn.execute(
                select(interactions)
                .where(interactions.c.subject_key == subject_key)
                .order_by(interactions.c.occurred_at, interactions.c.event_id)
            ).mappings()
            inter_views = [_interaction(i) for i in inters]
            cons = conn.execute(
                select(consents)
                .where(consents.c.subject_key == subject_key)
                .order_by(consents.c.given_at, consents.c.id)
            ).mappings()
            consent_views = [ConsentView.model_validate(dict(c)) for c in cons]
            history = self._website_history(conn, subject_key)
            suppression = conn.execute(
                select(_SUPPRESSION_STATES.c.state).where(_SUPPRESSION_STATES.c.subject_key == subject_key)
            ).scalar()
        state = None if suppression is None else SuppressionRecord.model_validate_json(suppression)
        withdrawn = {} if state is None else {p.value: state.withdrawn_since(p) for p in state.consent_withdrawn}
        return SubjectView.model_validate(
            {
                **row,
                **_summary(row, len(inter_views)).model_dump(),
                "identities": identity_views,
                "interactions_detail": inter_views,
                "consents": consent_views,
                "consent_state": _consent_state(consent_views, withdrawn),
                "website_history": history,
            }
        )

    def leads_per_day(self, since: datetime) -> list[tuple[date, str, int]]:
        """How many leads arrived per UTC day and channel since ``since``: (day, channel, count), oldest first.

        UTC whatever the database server's own zone: PostgreSQL's ``date()`` of a timestamptz takes the session's
        ``TimeZone``, which would move a lead at 23:30 UTC to the next day on a server set to Berlin."""
        received = interactions.c.received_at
        day = func.date(func.timezone("UTC", received) if self.engine.dialect.name == "postgresql" else received)
        stmt = (
            select(day, interactions.c.channel, func.count())
            .where(interactions.c.received_at >= since)
            .group_by(day, interactions.c.channel)
            .order_by(day, interactions.c.channel)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [(_as_date(d), str(channel), int(count)) for d, channel, count in rows]

    def visitor_keys(self, subject_key: str) -> list[str]:
        """Every website visitor the person identified on (whoever the history is attributed to), sorted."""
        with self.engine.connect() as conn:
            return sorted(
                conn.execute(
                    select(visitor_links.c.visitor_key).where(visitor_links.c.subject_key == subject_key)
                ).scalars()
            )

    def visitor_links(self, visitor_key: str) -> list[Link]:
        """The links of one visitor: every person who identified on its device, with their earliest event."""
        with self.engine.connect() as conn:
            return _links(conn, [visitor_key]).get(visitor_key, [])

    @staticmethod
    def _website_history(conn: Connection, subject_key: str) -> list[VisitorLinkView]:
        """The visitors the person identified on, each with the anonymous events attributed to the person."""
        mine = conn.execute(
            select(visitor_links.c.visitor_key).where(visitor_links.c.subject_key == subject_key)
        ).scalars()
        by_visitor = _links(conn, sorted(mine))
        views: list[VisitorLinkView] = []
        for visitor_key, links in by_visitor.items():
            attribution = attribute(links)
            own = next(link for link in links if link.subject_key == subject_key)
            attributed = attribution is not None and attribution.owner.subject_key == subject_key
            events: list[InteractionView] = []
            if attribution is not None and attributed:
                stmt = select(interactions).where(interactions.c.subject_key == visitor_key)
                if attribution.until is not None:
                    stmt = stmt.where(interactions.c.occurred_at < attribution.until)
                rows = conn.execute(stmt.order_by(interactions.c.occurred_at, interactions.c.event_id)).mappings()
                events = [_interaction(row) for row in rows]
            views.append(
                VisitorLinkView(
                    visitor_key=visitor_key,
                    linked_at=own.linked_at,
                    linked_by_event_id=own.event_id,
                    attributed=attributed,
                    shared_at=attribution.until if attribution is not None else None,
                    interactions=events,
                )
            )
        return sorted(views, key=lambda view: (view.linked_at, view.visitor_key))

    def interaction_count(self) -> int:
        """How many interactions the CRM holds, of everyone."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(interactions)).scalar_one())

    def interaction_counts(self, subject_keys: Sequence[str]) -> dict[str, int]:
        """How many interactions each subject has (subjects with none are absent)."""
        with self.engine.connect() as conn:
            return self._interaction_counts(conn, subject_keys)

    @staticmethod
    def _interaction_counts(conn: Connection, keys: Sequence[str]) -> dict[str, int]:
        if not keys:
            return {}
        rows = conn.execute(  # one array bind on PostgreSQL: no SQL rendered and planned per list length
            select(interactions.c.subject_key, func.count())
            .where(any_of(conn.engine, interactions.c.subject_key, "keys"))
            .group_by(interactions.c.subject_key),
            {"keys": list(keys)},
        ).all()
        return {key: int(count) for key, count in rows}


#: The subject's columns a lead row carries (the interaction's own columns come whole).
_SUBJECT_COLUMNS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "position",
    "restricted",
    "erased_at",
    "marketing_objected",
)


def _subject_criteria(
    *, email: str | None = None, phone: str | None = None, name: str | None = None, company: str | None = None
) -> list[ColumnElement[bool]] | None:
    """WHERE clauses on ``crm_subjects`` for every given criterion; None when one can match nobody (an e-mail or a
    phone that is no valid address or number)."""
    criteria: list[ColumnElement[bool]] = []
    for kind, value in (("email", email), ("phone", phone)):
        if value is None:
            continue
        canonical = _stored_identity(kind, value)
        if canonical is None:
            return None
        criteria.append(
            subjects.c.subject_key.in_(
                select(identities.c.subject_key).where(identities.c.kind == kind, identities.c.value == canonical)
            )
        )
    if name and name.strip():
        pattern = f"%{_escape_like(name.strip().lower())}%"
        full = func.lower(func.coalesce(subjects.c.first_name, "") + " " + func.coalesce(subjects.c.last_name, ""))
        criteria.append(full.like(pattern, escape="\\"))
    if company and company.strip():
        pattern = f"%{_escape_like(company.strip().lower())}%"
        criteria.append(func.lower(func.coalesce(subjects.c.company, "")).like(pattern, escape="\\"))
    if name or phone or company:
        # A restricted subject (9.4) is found by its subject key or its exact e-mail alone: a name, phone or company
        # that only narrowed the hits would tell, letter by letter, what is withheld.
        criteria.append(subjects.c.restricted.is_not(True))
    return criteria


def _as_date(value: object) -> date:
    """SQL's date(): a date on PostgreSQL, an ISO string on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _links(conn: Connection, visitor_keys: Sequence[str]) -> dict[str, list[Link]]:
    """Every link of these visitors, by visitor."""
    if not visitor_keys:
        return {}
    found: dict[str, list[Link]] = {}
    for row in conn.execute(select(*LINK_COLUMNS).where(visitor_links.c.visitor_key.in_(list(visitor_keys)))):
        found.setdefault(row.visitor_key, []).append(Link(*row))
    return found


def _stored_identity(kind: str, value: str | None) -> str | None:
    """The stored form of an e-mail (canonical, lowercased: mailboxes are matched case-insensitively) or a phone
    (E.164); None when the input is not a valid address or number."""
    if value is None:
        return None
    try:
        return canonical_email(value).lower() if kind == "email" else canonical_phone(value)
    except NormalizationError:
        return None


def _escape_like(text: str) -> str:
    """``text`` matched literally inside a ``LIKE ... ESCAPE '\\'`` pattern (``%`` and ``_`` are no wildcards)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _person(row: RowMapping) -> dict[str, Any]:
    """A subject row's columns with what ``PersonView`` derives from them: its status and objection flag."""
    status = "erased" if row["erased_at"] is not None else "restricted" if row["restricted"] else "active"
    return {**row, "status": status, "marketing_objected": bool(row["marketing_objected"])}


def _summary(row: RowMapping, count: int) -> SubjectSummary:
    return SubjectSummary.model_validate({**_person(row), "interactions": count})


def _lead(row: RowMapping) -> LeadView:
    purposes = sorted(row["purposes"], key=lambda entry: str(entry["purpose"]))
    return LeadView.model_validate({**_person(row), "purposes": [PurposeView.model_validate(p) for p in purposes]})


def _interaction(row: RowMapping) -> InteractionView:
    purposes = sorted(row["purposes"], key=lambda entry: str(entry["purpose"]))
    return InteractionView.model_validate({**row, "purposes": [PurposeView.model_validate(p) for p in purposes]})


def _consent_state(choices: Sequence[ConsentView], withdrawn: Mapping[str, datetime | None]) -> dict[str, bool]:
    """Whether each purpose rests on a consent now: the newest choice (``choices`` are oldest first), as the chain
    acts on it. A withdrawal made through the DPO (policy 9.8: a choice with ``cause_request_id``, or one the
    subject's suppression state holds, ``withdrawn``: purpose -> when, which outlives an erasure) stands against a
    later "yes" unless the person gave it by their own act after the withdrawal (a ticked box on a later form: the
    chain counts it again, ``pipeline.processors.suppression.consented_again``); an old "yes" imported again, or one
    dated before the withdrawal, stays in the history of choices without making the state say granted: what the
    state says must be what is done."""
    purposes = {c.purpose for c in choices}
    state: dict[str, bool] = dict.fromkeys(sorted(p for p in withdrawn if p in purposes), False)
    since = {purpose: at for purpose, at in withdrawn.items() if at is not None}
    for choice in choices:
        withdrawn_at = since.get(choice.purpose)
        if choice.cause_request_id is not None and not choice.granted:
            since[choice.purpose] = choice.given_at if withdrawn_at is None else max(withdrawn_at, choice.given_at)
        elif choice.granted and withdrawn_at is not None and not _given_again(choice, withdrawn_at):
            continue
        state[choice.purpose] = choice.granted
    return state


def _given_again(choice: ConsentView, withdrawn_at: datetime) -> bool:
    """Whether a granted choice is the person's own, given after the withdrawal (the chain's rule for 9.8)."""
    return choice.method in OWN_ACT_METHODS and choice.given_at > withdrawn_at
