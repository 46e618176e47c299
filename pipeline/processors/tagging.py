"""Purposes and legal bases (policy sections 2.3-7.3, 9.6, 9.8), from the policy's tables only.

1. The (channel, interaction kind) entry of ``policy.interactions`` gives the default purposes and sections.
2. A consent the person gave (``event.consents``, never inferred) adds a consent-based purpose, when the channel
   may collect consent, the method is accepted and the consent is not dated after the contact.
   An explicit refusal of a direct-marketing purpose removes it (``consent.refusal_removes_direct_marketing``).
3. The subject's suppression state removes withdrawn consent purposes and, after an objection, every
   direct-marketing purpose.
``marketing_allowed`` is the one rule of ``pipeline.models.marketing.may_market``: no objection stands and a
direct-marketing purpose remains (a restricted subject's events never reach tagging).
"""

from __future__ import annotations

from pipeline.models.common import Purpose
from pipeline.models.contact import Consent, ContactEvent, latest_choices
from pipeline.models.tagged import PurposeTag
from pipeline.processors.compiled import CompiledPolicy
from pipeline.processors.suppression import SuppressionEffect, restate_purposes


def consent_counts(event: ContactEvent, consent: Consent, compiled: CompiledPolicy) -> bool:
    """Whether a granted consent is a valid basis for its purpose on this event."""
    rules = compiled.policy.consent
    if event.channel not in rules.sections:
        return False
    if consent.method not in rules.accepted_methods:
        return False
    if consent.method == "import" and event.channel not in rules.import_channels:
        return False
    return consent.given_at <= event.occurred_at + compiled.consent_skew


def tag_purposes(
    event: ContactEvent, compiled: CompiledPolicy, effect: SuppressionEffect
) -> tuple[tuple[PurposeTag, ...], bool]:
    """The purpose tags of an event and whether direct marketing to the subject is allowed."""
    policy = compiled.policy
    row = compiled.row_for(event.channel, event.interaction.kind)
    if not event.consents and not effect.withdrawn and not effect.marketing_objected:  # the policy's row as it is
        return row
    defaults = row[0]
    tags: dict[Purpose, PurposeTag] = {t.purpose: t for t in defaults}
    if event.consents:
        for purpose, choice in latest_choices(event.consents).items():
            if choice.granted:
                if (
                    purpose in compiled.consent_based
                    and purpose not in tags
                    and consent_counts(event, choice, compiled)
                ):
                    tags[purpose] = compiled.tag(purpose, policy.consent.sections[event.channel])
            elif purpose in compiled.consent_based or (
                policy.consent.refusal_removes_direct_marketing and purpose in compiled.direct_marketing
            ):
                tags.pop(purpose, None)
    return restate_purposes(tuple(tags.values()), effect)
