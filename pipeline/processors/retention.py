"""Retention clock (policy sections 2.4-7.5): an expiry per interaction from the channel's period.

For customers (6.4) and event attendees (7.5) the clock restarts: the anchor is the latest of the stored anchor
and this event's delivery / event date, so a new delivery or registration moves the subject's expiry forward and
an old one arriving late never moves it back. The stored anchor is state the agent keeps in a table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from pipeline.models.contact import ContactEvent
from pipeline.policy.model import ClockKind, Policy


class RetentionClock(NamedTuple):
    """An event's retention clock. A named tuple, immutable like a frozen dataclass at a third of its cost to build
    (~1 us less per event: the chain builds one for every event it keeps)."""

    clock: ClockKind
    anchor_at: datetime
    expires_at: datetime
    update: tuple[str, datetime] | None
    """(anchor key, new anchor) to store when this event moves the subject's anchor; None otherwise."""


def anchor_key(clock: ClockKind, subject_key: str) -> str:
    return f"{clock}:{subject_key}"


class MissingAnchorError(ValueError):
    """A restarting clock with no date in the event and no fallback in the policy."""


def retention_clock(event: ContactEvent, policy: Policy, anchors: Mapping[str, datetime]) -> RetentionClock:
    rule = policy.channels[event.channel]
    if rule.clock == "interaction":
        anchor = event.occurred_at
        return RetentionClock(rule.clock, anchor, rule.retention.after(anchor), None)
    interaction = event.interaction
    candidate = (
        interaction.last_service_delivery_at if rule.clock == "last_service_delivery" else interaction.event_date
    )
    if candidate is None:
        if rule.anchor_fallback != "occurred_at":
            field = "last_service_delivery_at" if rule.clock == "last_service_delivery" else "event_date"
            raise MissingAnchorError(
                f"interaction.{field}: required by the {rule.clock} clock of channel {event.channel.value} "
                "(the policy sets no anchor_fallback)"
            )
        candidate = event.occurred_at
    key = anchor_key(rule.clock, event.subject_key)
    stored = anchors.get(key)
    anchor = candidate if stored is None or candidate > stored else stored
    update = (key, anchor) if stored is None or anchor > stored else None
    return RetentionClock(rule.clock, anchor, rule.retention.after(anchor), update)
