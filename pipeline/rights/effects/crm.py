"""The internal CRM's part of each rights request: what each right means in the CRM's tables.

``CrmRights`` carries out one right on the CRM in one transaction, idempotently, writes a ``crm_audit`` row naming
the request, and answers with a small result; ``CrmEffect`` picks the right for a command and turns the result into
the evidence on ``rights.status``. What the CRM holds is read through its read model (``pipeline.crm.read``).

- erasure (policy 9.3): personal data deleted, the subject row kept as the minimal record (key, flags, request);
- retention expiry (section 8): the expired interactions deleted, the whole subject erased when nothing is left;
- objection (9.6): flagged, every direct-marketing purpose stopped; restriction (9.4): flagged (or lifted);
  after either, and after a withdrawal, ``marketing_allowed`` of the subject and of each interaction is restated by
  the one rule (``pipeline.models.marketing.may_market``);
- rectification (9.2): profile fields corrected, a corrected phone/Skype/LinkedIn replacing the old identity;
- withdrawal of consent (9.8): recorded, every purpose that rests on it stopped;
- access and portability (9.1, 9.7): ``export_subject`` for the export effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, RowMapping, bindparam, delete, func, or_, select, update

from pipeline.crm.read import CrmReadModel
from pipeline.crm.schema import (
    IDENTITY_FIELDS,
    LINK_COLUMNS,
    PERSONAL_SUBJECT_COLUMNS,
    audit,
    audit_row,
    consents,
    identities,
    interactions,
    subject_aliases,
    subjects,
    visitor_links,
)
from pipeline.crm.stitching import Link, earliest
from pipeline.crm.views import PurposeView
from pipeline.db import dialect_insert
from pipeline.models.common import LegalBasis
from pipeline.models.contact import PROFILE_FIELDS
from pipeline.models.marketing import MarketingState, may_market
from pipeline.models.rights import RightKind, SuppressionRecord
from pipeline.normalize import is_visitor_key
from pipeline.rights.bodies import RectificationBody
from pipeline.rights.effects.base import Context, Effect, EffectError, EffectResult, Handover
from pipeline.rights.plan import rekeys
from pipeline.rights.retention import StoredInteraction

NOT_IN_CRM = "subject_not_in_crm"
#: The ``crm_audit`` action of an erasure (``erase_subject``).
SUBJECT_ERASED = "subject_erased"
RIGHTS_ACTOR = "rights"
#: Event ids per DELETE statement of a retention expiry (a command carries up to 1,000).
_DELETE_CHUNK = 500


@dataclass(frozen=True)
class CrmOutcome:
    """Whom a right was carried out for, and whether the CRM knew the subject at all."""

    subject_key: str
    found: bool


@dataclass(frozen=True)
class ErasureResult(CrmOutcome):
    already_erased: bool = False
    interactions_deleted: int = 0
    identities_deleted: int = 0
    consents_deleted: int = 0
    aliases_deleted: int = 0
    erased_at: datetime | None = None
    visitors_erased: int = 0
    """Website visitors (devices) the person had identified on, whose anonymous history went with them."""
    visitor_interactions_deleted: int = 0
    visitor_links_deleted: int = 0
    interaction_audit_deleted: int = 0
    """The CRM's audit rows of the erased interactions (``interaction_recorded``, ``subject_recollected``: an event id,
    its kind, channel, purposes, consents and which fields the person gave): they went with what they describe."""

    def evidence(self) -> dict[str, Any]:
        """Every field but the subject key (the evidence is kept beside it), in field order, JSON-ready."""
        kept = {name: value for name, value in asdict(self).items() if name != "subject_key"}
        return kept | {"erased_at": self.erased_at.isoformat() if self.erased_at else None}


@dataclass(frozen=True)
class FlagChange(CrmOutcome):
    """An objection or a restriction (or its lifting): whether the flag moved, and how many purposes stopped."""

    changed: bool = False
    purposes_stopped: int = 0
    marketing_allowed: bool | None = None


@dataclass(frozen=True)
class Rectification(CrmOutcome):
    changed_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Move(Rectification):
    """A corrected e-mail address: where the subject went, whether it met itself there, and whether the old key
    stays an alias."""

    new_subject_key: str = ""
    merged: bool = False
    alias: bool = False
    marketing_allowed: bool | None = None


@dataclass(frozen=True)
class ConsentWithdrawal(CrmOutcome):
    purposes_withdrawn: tuple[str, ...] = ()
    purposes_stopped: int = 0
    marketing_allowed: bool | None = None


@dataclass(frozen=True)
class InteractionDeletion:
    subject_key: str
    deleted: int
    remaining: int


class CrmRights:
    """Each right carried out on the CRM tables. Thread-safe (one engine, a connection per call)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.read = CrmReadModel(engine)
        self._clock = clock or partial(datetime.now, UTC)

    # ---- what the rights read --------------------------------------------------------------------------------

    def event_ids(self, subject_key: str) -> list[UUID]:
        """The ids of the events stored for the subject (an erasure tombstones them before deleting the rows)."""
        with self.engine.connect() as conn:
            return list(conn.scalars(select(interactions.c.event_id).where(interactions.c.subject_key == subject_key)))

    def expired_interactions(self, now: datetime, limit: int = 10_000) -> list[StoredInteraction]:
        """Interactions whose retention expiry is at or before ``now``, oldest expiry first (the sweep's input)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(interactions.c.subject_key, interactions.c.event_id, interactions.c.retention_expires_at)
                .where(interactions.c.retention_expires_at <= now)
                .order_by(interactions.c.retention_expires_at, interactions.c.event_id)
                .limit(limit)
            ).all()
        return [StoredInteraction(r.subject_key, r.event_id, r.retention_expires_at) for r in rows]

    def export_subject(self, subject_key: str) -> dict[str, list[dict[str, Any]]] | None:
        """Everything held about a subject, by category, JSON-ready (access and portability); None if unknown."""
        view = self.read.show(subject_key)
        if view is None:
            return None
        subject = view.model_dump(
            mode="json", exclude={"identities", "interactions_detail", "consents", "website_history"}
        )
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
            # the anonymous browsing attributed to the person (pipeline.crm.stitching), by device
            "website_history": [h.model_dump(mode="json") for h in view.website_history],
            "audit": audit_docs,
        }

    def held_before(self, erasures: Mapping[str, datetime]) -> set[str]:
        """Of ``erasures`` (subject key -> when the erasure took effect), the subjects whose CRM rows still hold
        personal data collected before it: an interaction received, an identity or a consent recorded by then, or
        the profile of a subject row created by then that no CRM erasure at or after that moment cleared. What a
        database restored from an older backup brings back (``pipeline.rights.restore``); what a person gave after
        the erasure is not counted."""
        held: set[str] = set()
        keys = list(erasures)
        personal = or_(*(subjects.c[name].is_not(None) for name in PERSONAL_SUBJECT_COLUMNS))
        for start in range(0, len(keys), _DELETE_CHUNK):
            chunk = keys[start : start + _DELETE_CHUNK]
            earliest: dict[str, list[datetime]] = {}
            with self.engine.connect() as conn:
                for table, column in (
                    (interactions, interactions.c.received_at),
                    (identities, identities.c.created_at),
                    (consents, consents.c.recorded_at),
                ):
                    for key, first in conn.execute(
                        select(table.c.subject_key, func.min(column))
                        .where(table.c.subject_key.in_(chunk))
                        .group_by(table.c.subject_key)
                    ):
                        earliest.setdefault(key, []).append(first)
                profiles = dict(
                    conn.execute(
                        select(subjects.c.subject_key, subjects.c.created_at).where(
                            subjects.c.subject_key.in_(chunk), personal
                        )
                    )
                    .tuples()
                    .all()
                )
                cleared = dict(
                    conn.execute(
                        select(audit.c.subject_key, func.max(audit.c.at))
                        .where(audit.c.subject_key.in_(chunk), audit.c.action == SUBJECT_ERASED)
                        .group_by(audit.c.subject_key)
                    )
                    .tuples()
                    .all()
                )
            for key in chunk:
                at = erasures[key]
                collected_before = any(first <= at for first in earliest.get(key, ()))
                profile_before = key in profiles and profiles[key] <= at and (key not in cleared or cleared[key] < at)
                if collected_before or profile_before:
                    held.add(key)
        return held

    def flags_behind(self, states: Mapping[str, SuppressionRecord]) -> set[str]:
        """Of ``states`` (subject key -> its latest suppression state), the subjects whose CRM row says otherwise:
        restricted or not against the state, not objected though the state is, or a purpose the state withdrew whose
        newest consent (as ``CrmReadModel`` orders them) is a grant given before the withdrawal (one given after it
        is the person's consent given again, policy 9.8). What a database restored from an older backup brings back
        (``pipeline.rights.restore``)."""
        behind: set[str] = set()
        keys = list(states)
        for start in range(0, len(keys), _DELETE_CHUNK):
            chunk = keys[start : start + _DELETE_CHUNK]
            withdrawing = [key for key in chunk if states[key].consent_withdrawn]
            with self.engine.connect() as conn:
                flags = {
                    row.subject_key: (bool(row.marketing_objected), bool(row.restricted))
                    for row in conn.execute(
                        select(subjects.c.subject_key, subjects.c.marketing_objected, subjects.c.restricted).where(
                            subjects.c.subject_key.in_(chunk)
                        )
                    )
                }
                newest: dict[tuple[str, str], tuple[bool, datetime]] = {}
                for row in conn.execute(
                    select(consents.c.subject_key, consents.c.purpose, consents.c.granted, consents.c.given_at)
                    .where(consents.c.subject_key.in_(withdrawing))
                    .order_by(consents.c.given_at, consents.c.id)
                ):
                    newest[(row.subject_key, row.purpose)] = (row.granted, row.given_at)
            for key, (objected, restricted) in flags.items():
                state = states[key]
                granted_before = (
                    (choice := newest.get((key, purpose.value))) is not None
                    and choice[0]
                    and choice[1] <= (state.withdrawn_since(purpose) or state.updated_at)
                    for purpose in state.consent_withdrawn
                )
                if restricted != state.restricted or (state.marketing_objected and not objected) or any(granted_before):
                    behind.add(key)
        return behind

    def audit_entries(self, subject_key: str) -> list[dict[str, Any]]:
        """The audit rows of one subject, oldest first (evidence for the rights tracker and tests)."""
        export = self.export_subject(subject_key)
        return [] if export is None else export["audit"]

    # ---- the rights ------------------------------------------------------------------------------------------

    def erase_subject(
        self, subject_key: str, request_id: UUID, *, at: datetime | None = None, actor: str = RIGHTS_ACTOR
    ) -> ErasureResult:
        """Delete the subject's personal data; keep the minimal record (key, timestamps, flags, request id).

        A person's erasure takes the anonymous history of every website visitor (device) they identified on with
        it, since any of it may be theirs (``pipeline.crm.stitching``), and drops their links; a visitor's own
        erasure (the DPO knows only the cookie id, or its history expired) drops every link of that visitor. The
        data keys follow the same lines (``IngestService`` links a visitor's key to the person's).

        Idempotent: erasing an erased subject with nothing left reports ``already_erased`` and changes nothing.
        The subject rows are locked first: a sink batch writing them waits, or is waited for and then sees the
        erasure (``CrmWriter.write_events``).
        """
        at = at or self._clock()
        visitor = is_visitor_key(subject_key)
        with self.engine.begin() as conn:
            row = _lock_subject(conn, subject_key)
            mine = visitor_links.c.visitor_key if visitor else visitor_links.c.subject_key
            visitors = (
                []
                if visitor
                else sorted(conn.execute(select(visitor_links.c.visitor_key).where(mine == subject_key)).scalars())
            )
            n_links = _rowcount(conn.execute(delete(visitor_links).where(mine == subject_key)))
            if row is None:
                if not n_links:
                    return ErasureResult(subject_key, found=False)
                _insert_bare(self.engine, conn, subject_key, at)  # a visitor known only from a person's link
            n_inter, n_ident, n_cons = _delete_personal(conn, subject_key)
            n_audit = _delete_interaction_audit(conn, subject_key)
            # an old address kept as an alias of the person is forgotten with them
            n_alias = _rowcount(
                conn.execute(delete(subject_aliases).where(subject_aliases.c.subject_key == subject_key))
            )
            n_visited = 0
            for key in visitors:  # sorted, like the sink's locks: never a deadlock
                n_visited += self._erase_visitor(conn, key, subject_key, request_id, at=at, actor=actor)
            if (
                row is not None
                and row.erased_at is not None
                and not (n_inter or n_ident or n_cons or n_alias or n_links or n_audit)
            ):
                return ErasureResult(subject_key, found=True, already_erased=True, erased_at=row.erased_at)
            _empty(conn, subject_key, request_id, at)
            result = ErasureResult(
                subject_key,
                found=True,
                interactions_deleted=n_inter,
                identities_deleted=n_ident,
                consents_deleted=n_cons,
                aliases_deleted=n_alias,
                erased_at=at,
                visitors_erased=len(visitors),
                visitor_interactions_deleted=n_visited,
                visitor_links_deleted=n_links,
                interaction_audit_deleted=n_audit,
            )
            _audit(
                conn, subject_key, SUBJECT_ERASED, at=at, actor=actor, request_id=request_id, detail=result.evidence()
            )
        return result

    def _erase_visitor(
        self, conn: Connection, visitor_key: str, person_key: str, request_id: UUID, *, at: datetime, actor: str
    ) -> int:
        """Erase a visitor's anonymous history along with a person who identified on it; how many events went.

        The visitor's row is marked erased (created so when none is stored yet), so an anonymous event received
        before this moment and still on its way to the sink is never written (``CrmWriter.write_events``). The
        links other people have to the visitor stay: they are those people's, and the history is gone for all.
        """
        if _lock_subject(conn, visitor_key) is None:
            _insert_bare(self.engine, conn, visitor_key, at)
        n_inter, _, _ = _delete_personal(conn, visitor_key)
        _delete_interaction_audit(conn, visitor_key)
        _empty(conn, visitor_key, request_id, at)
        detail = {"interactions_deleted": n_inter, "with_subject": person_key}
        _audit(conn, visitor_key, "visitor_history_erased", at=at, actor=actor, request_id=request_id, detail=detail)
        return n_inter

    def delete_interactions(
        self, subject_key: str, event_ids: Sequence[UUID], request_id: UUID, *, actor: str = RIGHTS_ACTOR
    ) -> InteractionDeletion:
        """Delete given interactions of a subject (retention expiry); says how many the subject has left."""
        at = self._clock()
        ids = list(event_ids)
        with self.engine.begin() as conn:
            deleted = 0
            for start in range(0, len(ids), _DELETE_CHUNK):
                chunk = ids[start : start + _DELETE_CHUNK]
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
                detail = {"deleted": deleted, "remaining": remaining, "event_ids": [str(e) for e in event_ids]}
                _audit(
                    conn, subject_key, "interactions_deleted", at=at, actor=actor, request_id=request_id, detail=detail
                )
        return InteractionDeletion(subject_key, deleted=deleted, remaining=remaining)

    def set_marketing_objection(
        self, subject_key: str, request_id: UUID, *, objected: bool = True, actor: str = RIGHTS_ACTOR
    ) -> FlagChange:
        """Objection to direct marketing (policy 9.6): flag the subject and stop every direct-marketing purpose.

        An objection received before the CRM knows the person (they answered a cold e-mail) is kept on a bare row
        (key, timestamps, the flag; no personal data): the row their first contact creates then carries the
        objection (the CRM sink keeps a row's flags), as sales must see it, and as ``restore verify`` compares it
        with the suppression state. The result still says the CRM did not know the subject (``found`` false)."""
        change = self._set_flag(
            subject_key,
            request_id,
            "marketing_objected",
            objected,
            actions=("marketing_objected", "marketing_objection_lifted"),
            actor=actor,
            stops=lambda p: bool(p["direct_marketing"]),
        )
        if change.found or not objected or is_visitor_key(subject_key):
            return change
        at = self._clock()
        bare = {
            "subject_key": subject_key,
            "created_at": at,
            "updated_at": at,
            "marketing_objected": True,
            "marketing_objected_at": at,
            "marketing_allowed": False,
        }
        with self.engine.begin() as conn:
            insert = dialect_insert(self.engine, subjects).on_conflict_do_nothing(index_elements=["subject_key"])
            kept = _rowcount(conn.execute(insert.values(**bare))) > 0
            if kept:
                detail = {"marketing_allowed": False, "purposes_stopped": 0, "before_first_contact": True}
                _audit(
                    conn, subject_key, "marketing_objected", at=at, actor=actor, request_id=request_id, detail=detail
                )
        if not kept:  # the person's first contact was written meanwhile: flag it as for a known subject
            return self.set_marketing_objection(subject_key, request_id, objected=objected, actor=actor)
        return FlagChange(subject_key, found=False, changed=True, marketing_allowed=False)

    def set_restriction(
        self, subject_key: str, request_id: UUID, *, restricted: bool, actor: str = RIGHTS_ACTOR
    ) -> FlagChange:
        """Restriction of processing (policy 9.4) or its lifting: the data stays, the flag tells every reader."""
        return self._set_flag(
            subject_key, request_id, "restricted", restricted, actions=("restricted", "restriction_lifted"), actor=actor
        )

    def rectify(
        self, subject_key: str, request_id: UUID, changes: Mapping[str, str | None], *, actor: str = RIGHTS_ACTOR
    ) -> Rectification:
        """Correct profile fields (policy 9.2); a corrected phone/Skype/LinkedIn/e-mail replaces the old identity.

        An e-mail corrected to an address that gives another subject key is ``move_subject``'s work."""
        unknown = sorted(set(changes) - set(PROFILE_FIELDS))
        if unknown:
            raise ValueError(f"not rectifiable CRM fields: {', '.join(unknown)}")
        at = self._clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(subjects).where(subjects.c.subject_key == subject_key)).mappings().first()
            if row is None:
                return Rectification(subject_key, found=False)
            changed = _correct(conn, row, changes, at=at)
            if changed:
                detail = {"fields": list(changed)}
                _audit(conn, subject_key, "rectified", at=at, actor=actor, request_id=request_id, detail=detail)
        return Rectification(subject_key, found=True, changed_fields=changed)

    def move_subject(
        self,
        subject_key: str,
        new_key: str,
        request_id: UUID,
        changes: Mapping[str, str | None],
        *,
        alias: bool,
        actor: str = RIGHTS_ACTOR,
    ) -> Move:
        """A corrected e-mail address (policy 9.2): the person, with their whole history, moves to the key the new
        address gives, in one transaction.

        Interactions, consents, identities and audit rows move; the old address is removed from the identities; the
        profile takes the corrections. Someone already under the new key is the same person: the two are merged
        (flags ORed, the new key's profile first, its gaps filled from the old). The old key keeps only the minimal
        record of an erasure (key, timestamps, this request), so an event of the old address received before the
        correction is never written under it. ``alias`` keeps a redirect from the old key (no address) for ingest
        and the DPO's tools; earlier aliases of the person follow to the new key either way.
        """
        if new_key == subject_key:
            raise ValueError("the new address gives the same key: a plain rectification")
        at = self._clock()
        with self.engine.begin() as conn:
            old = (
                conn.execute(select(subjects).where(subjects.c.subject_key == subject_key).with_for_update())
                .mappings()
                .first()
            )
            if old is None or old["erased_at"] is not None:
                return Move(subject_key, found=False, new_subject_key=new_key)
            target = (
                conn.execute(select(subjects).where(subjects.c.subject_key == new_key).with_for_update())
                .mappings()
                .first()
            )
            if target is None:
                conn.execute(subjects.insert().values({**old, "subject_key": new_key}))
            else:
                conn.execute(update(subjects).where(subjects.c.subject_key == new_key).values(_merged(target, old)))
            old_email = (old["email"] or "").lower()
            for table in (interactions, consents, audit):
                conn.execute(update(table).where(table.c.subject_key == subject_key).values(subject_key=new_key))
            moved_identities = conn.execute(
                select(identities.c.kind, identities.c.value, identities.c.first_event_id, identities.c.created_at)
                .where(identities.c.subject_key == subject_key)
                .order_by(identities.c.id)
            ).all()
            conn.execute(delete(identities).where(identities.c.subject_key == subject_key))
            if moved_identities:
                conn.execute(
                    dialect_insert(self.engine, identities).on_conflict_do_nothing(
                        index_elements=["subject_key", "kind", "value"]
                    ),
                    [{"subject_key": new_key, **r._mapping} for r in moved_identities],
                )
            conn.execute(  # the corrected address goes: from the profile below, from the identities here
                delete(identities).where(
                    identities.c.subject_key == new_key, identities.c.kind == "email", identities.c.value == old_email
                )
            )
            # earlier aliases follow the person; the new address is their own key now, not an alias of anyone
            conn.execute(
                update(subject_aliases).where(subject_aliases.c.subject_key == subject_key).values(subject_key=new_key)
            )
            conn.execute(delete(subject_aliases).where(subject_aliases.c.alias_key.in_([new_key, subject_key])))
            if alias:
                conn.execute(
                    subject_aliases.insert().values(
                        alias_key=subject_key, subject_key=new_key, request_id=request_id, created_at=at
                    )
                )
            _move_links(conn, subject_key, new_key, at)
            _empty(conn, subject_key, request_id, at, flags_too=True)  # the flags went with the person
            row = conn.execute(select(subjects).where(subjects.c.subject_key == new_key)).mappings().one()
            changed = _correct(conn, row, {**changes, "email": changes.get("email") or row["email"]}, at=at)
            allowed = _restate_marketing(conn, new_key)
            detail = {
                "from_subject_key": subject_key,
                "to_subject_key": new_key,
                "old_address": "alias" if alias else "forget",
                "merged": target is not None,
                "fields": sorted({*changed, "email"}),
            }
            _audit(conn, new_key, "email_rectified", at=at, actor=actor, request_id=request_id, detail=detail)
            _audit(conn, subject_key, "moved_to_new_key", at=at, actor=actor, request_id=request_id, detail=detail)
        return Move(
            subject_key,
            found=True,
            changed_fields=tuple(sorted({*changed, "email"})),
            new_subject_key=new_key,
            merged=target is not None,
            alias=alias,
            marketing_allowed=allowed,
        )

    def withdraw_consent(
        self, subject_key: str, request_id: UUID, purposes: Sequence[str] = (), *, actor: str = RIGHTS_ACTOR
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
            stopped = 0
            if ordered:
                inserted = list(
                    conn.execute(
                        dialect_insert(self.engine, consents)
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
                stopped = _stop_purposes(
                    conn,
                    subject_key,
                    lambda p: p["legal_basis"] == LegalBasis.CONSENT and p["purpose"] in ordered,
                    request_id=request_id,
                    at=at,
                )
            allowed = _restate_marketing(conn, subject_key)
            if inserted or stopped:
                detail = {"purposes": sorted(inserted), "purposes_stopped": stopped, "marketing_allowed": allowed}
                _audit(conn, subject_key, "consent_withdrawn", at=at, actor=actor, request_id=request_id, detail=detail)
        return ConsentWithdrawal(
            subject_key,
            found=True,
            purposes_withdrawn=tuple(sorted(inserted)),
            purposes_stopped=stopped,
            marketing_allowed=allowed,
        )

    def _set_flag(
        self,
        subject_key: str,
        request_id: UUID,
        flag: str,
        value: bool,
        *,
        actions: tuple[str, str],
        actor: str,
        stops: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> FlagChange:
        """Set or clear a subject's flag (``<flag>`` and ``<flag>_at``); once set, stop the purposes ``stops``
        selects. Audited as ``actions[0]`` (set) or ``actions[1]`` (cleared) when anything changed."""
        at = self._clock()
        with self.engine.begin() as conn:
            current = conn.execute(select(subjects.c[flag]).where(subjects.c.subject_key == subject_key)).first()
            if current is None:
                return FlagChange(subject_key, found=False)
            changed = bool(current[0]) != value
            if changed:
                conn.execute(
                    update(subjects)
                    .where(subjects.c.subject_key == subject_key)
                    .values({flag: value, f"{flag}_at": at if value else None, "updated_at": at})
                )
            stopped = 0
            if value and stops is not None:
                stopped = _stop_purposes(conn, subject_key, stops, request_id=request_id, at=at)
            allowed = _restate_marketing(conn, subject_key)
            if changed or stopped:
                detail = {"marketing_allowed": allowed} | ({} if stops is None else {"purposes_stopped": stopped})
                _audit(
                    conn,
                    subject_key,
                    actions[0] if value else actions[1],
                    at=at,
                    actor=actor,
                    request_id=request_id,
                    detail=detail,
                )
        return FlagChange(subject_key, found=True, changed=changed, purposes_stopped=stopped, marketing_allowed=allowed)


def _stop_purposes(
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


def _empty(conn: Connection, subject_key: str, request_id: UUID, at: datetime, *, flags_too: bool = False) -> None:
    """Leave a subject row as the minimal record of an erasure: key, timestamps, the request (and, unless
    ``flags_too``, its flags: an objection survives an erasure for when the person comes back)."""
    flags = (
        {"marketing_objected": False, "marketing_objected_at": None, "restricted": False, "restricted_at": None}
        if flags_too
        else {}
    )
    conn.execute(
        update(subjects)
        .where(subjects.c.subject_key == subject_key)
        .values(
            **dict.fromkeys(PERSONAL_SUBJECT_COLUMNS),
            **flags,
            marketing_allowed=None,
            erased_at=at,
            erasure_request_id=request_id,
            updated_at=at,
        )
    )


def _correct(conn: Connection, row: RowMapping, changes: Mapping[str, str | None], *, at: datetime) -> tuple[str, ...]:
    """Apply corrected profile fields to a subject row; a corrected identity field (e-mail, phone, Skype, LinkedIn)
    replaces the old value among the identities. Returns the fields that changed."""
    subject_key = row["subject_key"]
    changed = tuple(sorted(name for name, value in changes.items() if row[name] != value))
    if not changed:
        return changed
    conn.execute(
        update(subjects)
        .where(subjects.c.subject_key == subject_key)
        .values(**{name: changes[name] for name in changed}, profile_at=at, updated_at=at)
    )
    for name, kind in IDENTITY_FIELDS:
        if name not in changed:
            continue
        value, before = changes.get(name), row[name]
        if kind == "email":  # identities hold e-mails lowercased (``rows.identity_rows``)
            value, before = value and value.lower(), before and before.lower()
        if value:
            conn.execute(
                dialect_insert(conn.engine, identities).on_conflict_do_nothing(
                    index_elements=["subject_key", "kind", "value"]
                ),
                [{"subject_key": subject_key, "kind": kind, "value": value, "first_event_id": None, "created_at": at}],
            )
        if before and value != before:
            conn.execute(
                delete(identities).where(
                    identities.c.subject_key == subject_key, identities.c.kind == kind, identities.c.value == before
                )
            )
    return changed


def _merged(target: RowMapping, old: RowMapping) -> dict[str, Any]:
    """The subject row when the person under the new key and the one under the old key are merged: the new key's
    profile first, gaps filled from the old; flags ORed; seen from the earliest to the latest; no longer erased."""

    def earliest(name: str) -> Any:
        return min((v for v in (target[name], old[name]) if v is not None), default=None)

    def latest(name: str) -> Any:
        return max((v for v in (target[name], old[name]) if v is not None), default=None)

    return {
        **{name: target[name] if target[name] is not None else old[name] for name in PROFILE_FIELDS},
        "created_at": earliest("created_at"),
        "first_seen_at": earliest("first_seen_at"),
        "last_seen_at": latest("last_seen_at"),
        "profile_at": latest("profile_at"),
        "marketing_objected": bool(target["marketing_objected"] or old["marketing_objected"]),
        "marketing_objected_at": earliest("marketing_objected_at"),
        "restricted": bool(target["restricted"] or old["restricted"]),
        "restricted_at": earliest("restricted_at"),
        "erased_at": None,
    }


def _restate_marketing(conn: Connection, subject_key: str) -> bool | None:
    """``marketing_allowed`` of each stored interaction and of the subject again, by the one rule, after a right
    changed the subject's flags or stopped purposes; the subject's is its newest interaction's (as the write path
    keeps it). Returns the subject's (None for an erased subject, which has nothing left to market to)."""
    row = conn.execute(
        select(
            subjects.c.marketing_objected, subjects.c.restricted, subjects.c.marketing_allowed, subjects.c.erased_at
        ).where(subjects.c.subject_key == subject_key)
    ).first()
    if row is None:
        return None
    rights = MarketingState(bool(row.marketing_objected), bool(row.restricted))
    newest: bool | None = None
    updates: list[dict[str, Any]] = []
    for event_id, stored, allowed in conn.execute(
        select(interactions.c.event_id, interactions.c.purposes, interactions.c.marketing_allowed)
        .where(interactions.c.subject_key == subject_key)
        .order_by(interactions.c.occurred_at, interactions.c.event_id)
    ).all():
        newest = may_market([PurposeView.model_validate(p) for p in stored], rights)
        if newest != allowed:
            updates.append({"b_event_id": event_id, "b_allowed": newest})
    if updates:
        conn.execute(
            update(interactions)
            .where(interactions.c.event_id == bindparam("b_event_id"))
            .values(marketing_allowed=bindparam("b_allowed")),
            updates,
        )
    subject_allowed = newest
    if newest is None:  # nothing stored: no purpose to market on (an erased subject keeps None)
        subject_allowed = None if row.erased_at is not None else False
    if subject_allowed != row.marketing_allowed:
        conn.execute(
            update(subjects).where(subjects.c.subject_key == subject_key).values(marketing_allowed=subject_allowed)
        )
    return subject_allowed


def _audit(
    conn: Connection,
    subject_key: str,
    action: str,
    *,
    at: datetime,
    actor: str,
    request_id: UUID,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        audit.insert().values(audit_row(at, subject_key, action, actor=actor, request_id=request_id, detail=detail))
    )


def _move_links(conn: Connection, old_key: str, new_key: str, at: datetime) -> None:
    """The website visitors (devices) a person identified on follow them to their new key; a device both keys were
    linked to keeps the earlier link (``crm.stitching.earliest``), as the sink would have."""
    moving = [Link(*row) for row in conn.execute(select(*LINK_COLUMNS).where(visitor_links.c.subject_key == old_key))]
    if not moving:
        return
    devices = [link.visitor_key for link in moving]
    theirs = {
        link.visitor_key: link
        for link in (
            Link(*row)
            for row in conn.execute(
                select(*LINK_COLUMNS).where(
                    visitor_links.c.subject_key == new_key, visitor_links.c.visitor_key.in_(devices)
                )
            )
        )
    }
    conn.execute(
        delete(visitor_links).where(
            visitor_links.c.subject_key.in_([old_key, new_key]), visitor_links.c.visitor_key.in_(devices)
        )
    )
    kept = [earliest(theirs.get(link.visitor_key), replace(link, subject_key=new_key)) for link in moving]
    conn.execute(visitor_links.insert(), [{**asdict(link), "created_at": at} for link in kept])


def _lock_subject(conn: Connection, subject_key: str) -> Any:
    """The subject's row (its ``erased_at``), locked until the transaction ends; None when there is none."""
    return conn.execute(
        select(subjects.c.erased_at).where(subjects.c.subject_key == subject_key).with_for_update()
    ).first()


def _insert_bare(engine: Engine, conn: Connection, subject_key: str, at: datetime) -> None:
    """A subject row with nothing but its key, for an erasure to mark (a sink batch may insert it meanwhile)."""
    conn.execute(
        dialect_insert(engine, subjects).on_conflict_do_nothing(index_elements=["subject_key"]),
        [{"subject_key": subject_key, "created_at": at, "updated_at": at}],
    )


def _delete_personal(conn: Connection, subject_key: str) -> tuple[int, int, int]:
    """Delete a subject's interactions, identities and consents; how many of each."""
    return (
        _rowcount(conn.execute(delete(interactions).where(interactions.c.subject_key == subject_key))),
        _rowcount(conn.execute(delete(identities).where(identities.c.subject_key == subject_key))),
        _rowcount(conn.execute(delete(consents).where(consents.c.subject_key == subject_key))),
    )


def _delete_interaction_audit(conn: Connection, subject_key: str) -> int:
    """Delete the audit rows that describe a subject's interactions one by one (the CRM sink's
    ``interaction_recorded`` and ``subject_recollected``, each naming its event): after an erasure they would tell
    anyone reading the subject's audit (and the person, in a later access copy) what they sent, when, through which
    channel, what they consented to and which fields they filled in, though the data is gone. The rights' own rows
    (a request id, no event) stay: they are the record of the rights the person exercised, and the erasure's row
    (``subject_erased``, with its counts) is what a restore is checked against."""
    return _rowcount(
        conn.execute(delete(audit).where(audit.c.subject_key == subject_key, audit.c.event_id.is_not(None)))
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _answer(outcome: CrmOutcome, **evidence: Any) -> EffectResult:
    """Done with ``evidence``; not applicable when the CRM never knew the subject."""
    if not outcome.found:
        return EffectResult.not_applicable(NOT_IN_CRM)
    return EffectResult.done(**evidence)


def _flag(change: FlagChange) -> EffectResult:
    if not change.found and change.changed:  # an objection kept for the person's first contact
        return EffectResult.not_applicable(NOT_IN_CRM, kept_for_first_contact=True)
    return _answer(
        change,
        changed=change.changed,
        purposes_stopped=change.purposes_stopped,
        marketing_allowed=change.marketing_allowed,
    )


class CrmEffect(Effect):
    """The CRM's part of a command: which right to carry out, and the evidence it leaves."""

    sink = "crm"

    def __init__(self, crm: CrmRights) -> None:
        self.crm = crm

    def handover(self, subject_key: str) -> Handover:
        view = self.crm.read.show(subject_key)
        if view is None:
            return Handover()
        emails = {i.value for i in view.identities if i.kind == "email"}
        if view.email:
            emails.add(view.email.lower())
        phones = {i.value for i in view.identities if i.kind == "phone"} | ({view.phone} if view.phone else set())
        return Handover(emails=tuple(sorted(emails)), phones=tuple(sorted(phones)))

    def apply(self, ctx: Context) -> EffectResult:
        command, crm = ctx.command, self.crm
        key, request_id = command.subject_key, command.request_id
        kind = command.kind
        if kind is RightKind.ERASURE:
            erased = crm.erase_subject(key, request_id, at=ctx.now)
            return _answer(erased, **erased.evidence())
        if kind is RightKind.RETENTION_EXPIRY:
            deleted = crm.delete_interactions(key, command.event_ids, request_id)
            evidence: dict[str, object] = {
                "interactions_deleted": deleted.deleted,
                "remaining_interactions": deleted.remaining,
            }
            if deleted.remaining == 0:  # nothing left: the subject is erased entirely (policy section 8)
                erased = crm.erase_subject(key, request_id, at=ctx.now)
                evidence["subject_erased"] = erased.found
                evidence |= {f"erasure_{k}": v for k, v in erased.evidence().items() if k != "found"}
            return EffectResult.done(**evidence)
        if kind in (RightKind.OBJECTION, RightKind.OBJECTION_LIFTED):
            objected = kind is RightKind.OBJECTION
            return _flag(crm.set_marketing_objection(key, request_id, objected=objected))
        if kind is RightKind.RESTRICTION:
            return _flag(crm.set_restriction(key, request_id, restricted=True))
        if kind is RightKind.UNRESTRICTION:
            return _flag(crm.set_restriction(key, request_id, restricted=False))
        if kind is RightKind.RECTIFICATION:
            if command.sealed is None:
                raise EffectError("missing_values", "a rectification without sealed values", retryable=False)
            body = ctx.open(command.sealed, RectificationBody)
            changes = {str(k): v for k, v in body.changes.items()}
            if rekeys(command):
                assert command.new_subject_key is not None
                moved = crm.move_subject(
                    key, command.new_subject_key, request_id, changes, alias=body.old_address == "alias"
                )
                return _answer(
                    moved,
                    changed_fields=list(moved.changed_fields),
                    new_subject_key=moved.new_subject_key,
                    merged=moved.merged,
                    old_address=body.old_address,
                    marketing_allowed=moved.marketing_allowed,
                )
            rectified = crm.rectify(key, request_id, changes)
            return _answer(rectified, changed_fields=list(rectified.changed_fields))
        if kind is RightKind.CONSENT_WITHDRAWAL:
            withdrawn = crm.withdraw_consent(key, request_id, [p.value for p in command.purposes])
            return _answer(
                withdrawn,
                purposes_withdrawn=list(withdrawn.purposes_withdrawn),
                purposes_stopped=withdrawn.purposes_stopped,
                marketing_allowed=withdrawn.marketing_allowed,
            )
        return EffectResult.not_applicable(f"no_crm_effect_for_{kind.value}")
