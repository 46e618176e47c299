"""The subject's suppression state (rights, policy section 9) applied to one event.

- erased: events RECEIVED BEFORE the erasure took effect are dropped, and so is every event erased with the subject
  (its tombstone, ``SuppressionRecord.erased_events``) whenever it comes again: the same signed request replayed
  gets the same event id and a new receipt time, and must not bring the person back. A new submission received
  after the erasure is a new collection (the person came back; the key store gave them a fresh data key): it is
  accepted, and the subject's other flags (objection, withdrawal, restriction) still apply to it.
  ``policy.suppression.accept_after_erasure`` turns this off (then every later event of an erased subject is
  dropped too).
- restricted (9.4): dropped from further processing; the data stays where it is stored; counted.
- marketing_objected (9.6): kept, but ``marketing_allowed=False`` and no direct-marketing purpose.
- consent_withdrawn (9.8): those purposes are removed, except a purpose the event itself carries a consent to that
  the person gave, by their own act, after it was withdrawn (9.8: consent given again case by case, a ticked box on
  a later form): that event rests on the new consent; the person's other events stay withdrawn. A consent imported
  from elsewhere, or dated before the withdrawal (an old request replayed), does not count again.

The chain applies it when it tags an event (``apply_suppression``); the sink agents apply it again, to the state
of the moment, right before they write an event the chain accepted earlier (``suppress_accepted``): a right
exercised while the event waited (a lagging consumer, a sink outage, a dead letter replayed) must win.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.models.common import Purpose
from pipeline.models.contact import OWN_ACT_METHODS, ContactEvent, latest_choices
from pipeline.models.marketing import MarketingState, may_market
from pipeline.models.processing import DropReason
from pipeline.models.rights import SuppressionRecord
from pipeline.models.tagged import PurposeTag, TaggedEvent
from pipeline.policy.model import Policy


@dataclass(frozen=True, slots=True)
class SuppressionEffect:
    """What a suppression state that does not drop the event changes in its tags."""

    marketing_objected: bool = False
    withdrawn: frozenset[Purpose] = frozenset()


NO_EFFECT = SuppressionEffect()


def apply_suppression(
    event: ContactEvent, state: SuppressionRecord | None, policy: Policy
) -> DropReason | SuppressionEffect:
    """A drop reason, or the effect the state has on tagging."""
    if state is None:
        return NO_EFFECT
    if state.subject_key != event.subject_key:
        raise ValueError("suppression state of another subject")
    if state.event_erased(event.event_id):
        return DropReason.SUBJECT_ERASED
    if state.erased:
        erased_at = state.erased_at or state.updated_at
        if not policy.suppression.accept_after_erasure or event.received_at <= erased_at:
            return DropReason.SUBJECT_ERASED
    if state.restricted and policy.suppression.drop_restricted:
        return DropReason.SUBJECT_RESTRICTED
    if not state.marketing_objected and not state.consent_withdrawn:
        return NO_EFFECT
    withdrawn = frozenset(state.consent_withdrawn)
    if withdrawn and event.consents:
        withdrawn -= consented_again(event, state)
        if not withdrawn and not state.marketing_objected:
            return NO_EFFECT
    return SuppressionEffect(state.marketing_objected, withdrawn)


def with_linked(own: SuppressionRecord | None, linked: SuppressionRecord, subject_key: str) -> SuppressionRecord:
    """The subject's state with what the person asked under the key of their phone number (``linked``: the key a
    contact known only by that number had) added: an objection, a restriction and a withdrawal are the person's,
    whichever key they were made under (policy 9.4, 9.6, 9.8). An erasure is not carried over: it erased what that
    key held, and a new contact that names an e-mail as well is a new collection."""
    base = own or SuppressionRecord(subject_key=subject_key, updated_at=linked.updated_at, request_id=linked.request_id)
    if not (linked.marketing_objected or linked.restricted or linked.consent_withdrawn):
        return base
    withdrawn_at = {p: t for p in base.consent_withdrawn if (t := base.withdrawn_since(p))}
    for purpose in linked.consent_withdrawn:
        if (when := linked.withdrawn_since(purpose)) is not None:
            withdrawn_at[purpose] = max(when, withdrawn_at.get(purpose, when))
    return base.model_copy(
        update={
            "marketing_objected": base.marketing_objected or linked.marketing_objected,
            "restricted": base.restricted or linked.restricted,
            "consent_withdrawn": tuple(sorted({*base.consent_withdrawn, *linked.consent_withdrawn})),
            "consent_withdrawn_at": withdrawn_at,
        }
    )


def consented_again(event: ContactEvent, state: SuppressionRecord) -> frozenset[Purpose]:
    """The withdrawn purposes whose latest choice in ``event`` is a consent the person gave, by their own act, after
    the withdrawal (policy 9.8). Whether it is a valid basis on this channel is the tagging rule's to decide."""
    again: set[Purpose] = set()
    for purpose, choice in latest_choices(event.consents).items():
        since = state.withdrawn_since(purpose)
        if since is not None and choice.granted and choice.method in OWN_ACT_METHODS and choice.given_at > since:
            again.add(purpose)
    return frozenset(again)


def restate_purposes(
    purposes: tuple[PurposeTag, ...], effect: SuppressionEffect
) -> tuple[tuple[PurposeTag, ...], bool]:
    """The purposes left under ``effect`` and whether direct marketing is still allowed (policy 9.6, 9.8)."""
    kept = tuple(
        t
        for t in purposes
        if t.purpose not in effect.withdrawn and not (effect.marketing_objected and t.direct_marketing)
    )
    return kept, may_market(kept, MarketingState(objected=effect.marketing_objected, withdrawn=effect.withdrawn))


def suppress_accepted(tagged: TaggedEvent, state: SuppressionRecord | None, policy: Policy) -> DropReason | TaggedEvent:
    """The chain's suppression rule applied again, to the state of now, to an event it accepted earlier.

    A drop reason (as the chain would give it today), the same event (nothing changed), or the event with the
    purposes an objection or withdrawal stopped removed and ``marketing_allowed`` recomputed.
    """
    effect = apply_suppression(tagged.event, state, policy)
    if isinstance(effect, DropReason):
        return effect
    if effect == NO_EFFECT:
        return tagged
    tags = tagged.tags
    purposes, marketing_allowed = restate_purposes(tags.purposes, effect)
    if not purposes:
        return DropReason.NO_LAWFUL_PURPOSE
    if purposes == tags.purposes and marketing_allowed == tags.marketing_allowed:
        return tagged
    restated = tags.model_copy(update={"purposes": purposes, "marketing_allowed": marketing_allowed})
    return tagged.model_copy(update={"tags": restated})
