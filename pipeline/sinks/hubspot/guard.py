"""What the rights machinery already did to each subject, as the HubSpot sink needs it to refuse stale events.

HubSpot keeps no event ids, so replaying ``contacts.accepted`` (or an event that waited out a HubSpot outage)
would upsert old properties again: an erased person would come back, a rectified name would be undone. The sink
asks this guard, right before each call, when each subject was last erased and rectified, and:

- skips an event received at or before its subject's erasure (a later one is a new collection), like the CRM,
  and any event erased with the subject (its tombstone), whenever it was received again;
- leaves the person properties out of an event received at or before a rectification of its subject.

The answers come from the rights request tracker, the one record of what rights requests did
(``pipeline.rights.history.RightsHistory`` reads it; the worker wires it in): the sink only knows this protocol, so
the sinks layer does not depend on the rights layer.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from pipeline.models.rights import erased_event_tag


@dataclass(frozen=True)
class SubjectRights:
    """When the subject was last erased and last rectified (None: never)."""

    erased_at: datetime | None = None
    rectified_at: datetime | None = None
    erased_events: frozenset[str] = frozenset()
    """Tombstones of the events erased with the subject (``SuppressionRecord.erased_events``)."""

    def superseded(self, event_id: UUID, received_at: datetime) -> bool:
        """An event erased with the subject, or received at or before the erasure, must not bring it back."""
        return self.erased_since(received_at) or (
            bool(self.erased_events) and erased_event_tag(event_id) in self.erased_events
        )

    def erased_since(self, received_at: datetime) -> bool:
        """An event received at or before the erasure must not bring the subject back."""
        return self.erased_at is not None and received_at <= self.erased_at

    def rectified_since(self, received_at: datetime) -> bool:
        """An event received at or before a rectification must not undo it."""
        return self.rectified_at is not None and received_at <= self.rectified_at


NO_RIGHTS = SubjectRights()


class RightsGuard(Protocol):
    """What the HubSpot sink asks before each call (``pipeline.rights.history.RightsHistory`` answers it)."""

    def setup(self) -> None: ...

    def of(self, subject_keys: Collection[str]) -> dict[str, SubjectRights]:
        """The subjects that had an erasure or a rectification; the others are absent."""
        ...
