"""The rows the CRM's write path stores for a batch of accepted events (pure: events in, row mappings out).

One subject row per subject (its profile merged from the batch's events, newest non-empty value first), one
interaction row per event (with the tags: purposes and legal bases, retention clock and expiry), one identity row
per address, one consent row per consent choice, one visitor link per website visitor a person identified on, one
audit row per change. The writer decides which of them are new.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pipeline.crm.schema import IDENTITY_FIELDS, audit_row
from pipeline.crm.stitching import Link, earliest
from pipeline.models.contact import PROFILE_FIELDS
from pipeline.models.marketing import NO_RIGHTS_EXERCISED, MarketingState, may_market
from pipeline.models.tagged import TaggedEvent


@dataclass
class SubjectBatch:
    """The events of one subject inside a batch, merged into one profile (newest non-empty value wins)."""

    subject_key: str
    profile: dict[str, Any] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    marketing_allowed: bool | None = None
    rights: MarketingState = NO_RIGHTS_EXERCISED
    """The subject's objection and restriction as the CRM holds them (flags of an existing subject row)."""

    def add(self, tagged: TaggedEvent) -> None:
        event = tagged.event
        at = event.occurred_at
        newest = self.last_seen is None or at >= self.last_seen
        for name in PROFILE_FIELDS:
            value = getattr(event.person, name)
            if value is not None and (newest or name not in self.profile):
                self.profile[name] = value
        if newest:
            self.marketing_allowed = marketing_allowed(tagged, self.rights)
            self.last_seen = at
        if self.first_seen is None or at < self.first_seen:
            self.first_seen = at


def marketing_allowed(tagged: TaggedEvent, rights: MarketingState) -> bool:
    """The event's ``marketing_allowed`` as stored: the chain's tags, under the rights the CRM holds now (an objection
    or restriction recorded while the event waited wins, whatever the tags say)."""
    return may_market(tagged.tags.purposes, rights) if tagged.tags.marketing_allowed else False


def subject_batches(
    events: Iterable[TaggedEvent], rights: Mapping[str, MarketingState] | None = None
) -> dict[str, SubjectBatch]:
    """The batch's events by subject, each subject's profile merged in the order the events occurred."""
    batches: dict[str, SubjectBatch] = {}
    for tagged in sorted(events, key=lambda t: t.event.occurred_at):
        key = tagged.event.subject_key
        if key not in batches:
            batches[key] = SubjectBatch(key, rights=(rights or {}).get(key, NO_RIGHTS_EXERCISED))
        batches[key].add(tagged)
    return batches


def identity_rows(tagged: TaggedEvent, now: datetime) -> list[dict[str, Any]]:
    """Every address the event names (e-mail lowercased, ``messenger:<name>`` handles), first seen in this event."""
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


def identity_key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """What makes an identity row unique (the table's unique constraint)."""
    return (row["subject_key"], row["kind"], row["value"])


def interaction_row(tagged: TaggedEvent, now: datetime, rights: MarketingState = NO_RIGHTS_EXERCISED) -> dict[str, Any]:
    """The event as stored, with its tags: one entry per purpose (``PURPOSE_KEYS``), retention clock and expiry;
    ``marketing_allowed`` under the subject's ``rights`` as the CRM holds them (``marketing_allowed``)."""
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
        "marketing_allowed": marketing_allowed(tagged, rights),
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


def consent_rows(events: Iterable[TaggedEvent], now: datetime) -> Iterator[dict[str, Any]]:
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


def subject_row(batch: SubjectBatch, now: datetime) -> dict[str, Any]:
    """A new subject's row (or the values an existing one is merged with): the merged profile, no flags set."""
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


def recorded_audit_rows(
    new_events: Sequence[TaggedEvent],
    *,
    now: datetime,
    actor: str,
    created: Set[str],
    recollected: Mapping[str, datetime],
    identities_added: Mapping[UUID, Sequence[str]],
) -> Iterator[dict[str, Any]]:
    """One ``interaction_recorded`` audit row per new event, oldest first; before the first event of a subject that
    was erased (``recollected``: subject -> erased at), a ``subject_recollected`` row. Details name fields, not values.

    A generator: on PostgreSQL each row is built while the server stores the ones sent before it.
    """
    first_of_subject: set[str] = set()
    for t in sorted(new_events, key=lambda t: t.event.occurred_at):
        event = t.event
        key = event.subject_key
        is_first = key not in first_of_subject
        first_of_subject.add(key)
        if is_first and key in recollected:
            yield audit_row(
                now,
                key,
                "subject_recollected",
                actor=actor,
                event_id=event.event_id,
                detail={"previously_erased_at": recollected[key].isoformat()},
            )
        detail = {
            "channel": event.channel.value,
            "kind": event.interaction.kind.value,
            "purposes": {p.purpose.value: p.legal_basis.value for p in t.tags.purposes},
            "retention_expires_at": t.tags.retention_expires_at.isoformat(),
            "subject_created": is_first and key in created,
            "identities_added": sorted(identities_added.get(event.event_id, [])),
            "consents": {c.purpose.value: c.granted for c in event.consents},
            "profile_fields": [n for n in PROFILE_FIELDS if getattr(event.person, n) is not None],
        }
        yield audit_row(now, key, "interaction_recorded", actor=actor, event_id=event.event_id, detail=detail)


def visitor_links_of(events: Iterable[TaggedEvent]) -> dict[tuple[str, str], Link]:
    """(visitor key, subject key) -> the earliest link these events make: each event naming a person that carried a
    website visitor's id (``provenance.visitor_key``) identified that person on the visitor's device."""
    found: dict[tuple[str, str], Link] = {}
    for t in events:
        event = t.event
        visitor = event.provenance.visitor_key
        if visitor is None or visitor == event.subject_key:  # the visitor's own anonymous event
            continue
        pair = (visitor, event.subject_key)
        found[pair] = earliest(found.get(pair), Link(visitor, event.subject_key, event.occurred_at, event.event_id))
    return found


def visitor_link_row(link: Link, now: datetime) -> dict[str, Any]:
    return {
        "visitor_key": link.visitor_key,
        "subject_key": link.subject_key,
        "linked_at": link.linked_at,
        "event_id": link.event_id,
        "created_at": now,
    }
