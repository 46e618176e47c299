"""The suppression state of a subject, folded from their rights requests (pure).

The suppression topic is compacted and keyed by subject key, so each record must carry the FULL latest state:
it is computed from the previous state and the new command, never from the command alone. Applying the same
command twice gives the same state, so a redelivered command publishes an identical record.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pipeline.models.common import Purpose
from pipeline.models.rights import RightKind, RightsCommand, SuppressionRecord

#: Requests that change what the chain and the sinks may do with a subject's later events.
STATE_CHANGING = frozenset(
    {
        RightKind.ERASURE,
        RightKind.OBJECTION,
        RightKind.OBJECTION_LIFTED,
        RightKind.RESTRICTION,
        RightKind.UNRESTRICTION,
        RightKind.CONSENT_WITHDRAWAL,
    }
)


def next_state(
    previous: SuppressionRecord | None,
    command: RightsCommand,
    at: datetime,
    *,
    consent_purposes: Iterable[Purpose] = (),
    erase: bool | None = None,
    erased_events: Iterable[str] = (),
) -> SuppressionRecord | None:
    """The subject's state after ``command``, or None when the command does not change it (access, rectification).

    ``consent_purposes`` are the purposes that rest on consent under the policy: a withdrawal that names no
    purpose withdraws all of them. ``erase`` overrides whether a retention expiry erased the whole subject
    (decided when it runs: only when nothing is left). Earlier flags survive an erasure: an objection or a
    withdrawal still holds if the person comes back later. ``erased_events``: the tombstones an erasure adds
    (``erased_event_tag`` of each event erased), kept with every later state.
    """
    kind = command.kind
    erasing = kind is RightKind.ERASURE if erase is None else erase
    if kind not in STATE_CHANGING and not erasing:
        return None
    base = previous or SuppressionRecord(subject_key=command.subject_key, updated_at=at, request_id=command.request_id)
    if base.subject_key != command.subject_key:
        raise ValueError("the previous state belongs to another subject")
    if previous is not None and previous.request_id == command.request_id:
        return previous  # the same request redelivered: nothing changes, not even the timestamps
    changes: dict[str, object] = {"updated_at": at, "request_id": command.request_id}
    if erasing:
        changes.update(erased=True, erased_at=at, erased_events=tuple(sorted({*base.erased_events, *erased_events})))
    if kind is RightKind.OBJECTION:
        changes["marketing_objected"] = True
    elif kind is RightKind.OBJECTION_LIFTED:
        changes["marketing_objected"] = False
    elif kind is RightKind.RESTRICTION:
        changes["restricted"] = True
    elif kind is RightKind.UNRESTRICTION:
        changes["restricted"] = False
    elif kind is RightKind.CONSENT_WITHDRAWAL:
        withdrawn = set(command.purposes or consent_purposes)
        if not withdrawn:
            raise ValueError("a consent withdrawal must name purposes, or the policy must list consent purposes")
        changes["consent_withdrawn"] = tuple(sorted(set(base.consent_withdrawn) | withdrawn))
        # each purpose named is withdrawn as of now, also when it was before (a consent given again in between ends)
        changes["consent_withdrawn_at"] = _withdrawn_at(base) | dict.fromkeys(withdrawn, at)
    return base.model_copy(update=changes)


def moved_states(
    previous: SuppressionRecord | None, target: SuppressionRecord | None, command: RightsCommand, at: datetime
) -> tuple[SuppressionRecord, SuppressionRecord]:
    """A corrected e-mail address: the states of the new key and of the old one afterwards.

    The new key carries every flag either key had (an objection, a restriction or a withdrawal follows the person;
    an erasure the new address saw before stays, so its old events are never written). The old key is left as if
    erased at ``at``: an event of the old address received before the correction is never written; one received
    later is somebody new (or, for an alias, never carries the old key: ingest moves it to the new one).
    """
    new_key = command.new_subject_key
    if new_key is None:
        raise ValueError("only a corrected e-mail address moves a subject")
    if previous is not None and previous.request_id == command.request_id and target is not None:
        return target, previous  # the same request redelivered: nothing changes
    old = previous or SuppressionRecord(subject_key=command.subject_key, updated_at=at, request_id=command.request_id)
    base = target or SuppressionRecord(subject_key=new_key, updated_at=at, request_id=command.request_id)
    withdrawals = (_withdrawn_at(base), _withdrawn_at(old))
    moved = base.model_copy(
        update={
            "marketing_objected": base.marketing_objected or old.marketing_objected,
            "restricted": base.restricted or old.restricted,
            "consent_withdrawn": tuple(sorted({*base.consent_withdrawn, *old.consent_withdrawn})),
            "consent_withdrawn_at": {
                purpose: max(times[purpose] for times in withdrawals if purpose in times)
                for purpose in {*base.consent_withdrawn, *old.consent_withdrawn}
            },
            "updated_at": at,
            "request_id": command.request_id,
        }
    )
    emptied = SuppressionRecord(
        subject_key=command.subject_key,
        erased=True,
        erased_at=at,
        updated_at=at,
        request_id=command.request_id,
        erased_events=old.erased_events,  # an event erased under the old address stays erased
    )
    return moved, emptied


def _withdrawn_at(state: SuppressionRecord) -> dict[Purpose, datetime]:
    """When each withdrawn purpose of ``state`` was withdrawn (a state written before the times were kept: its
    ``updated_at``)."""
    return {purpose: when for purpose in state.consent_withdrawn if (when := state.withdrawn_since(purpose))}
