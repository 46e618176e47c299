"""What the rights machinery already did to each subject, as the HubSpot sink needs it to refuse stale events.

HubSpot keeps no event ids, so replaying ``contacts.accepted`` (or an event that waited out a HubSpot outage)
would upsert old properties again: an erased person would come back, a rectified name would be undone. The sink
asks this guard, right before each call, when each subject was last erased and rectified, and:

- skips an event received at or before its subject's erasure (a later one is a new collection), like the CRM;
- leaves the person properties out of an event received at or before a rectification of its subject.

The answers come from the rights request tracker, the one record of what rights requests did: the suppression
state (``rights_subject_state``, the same full state published on the compacted ``suppression`` topic; its
``erased_at`` is saved before any sink erases anything) and the recorded requests (``rights_requests``, a
rectification's ``received_at``). Reads only; one query per table per call, whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from pipeline.db import ensure_schema
from pipeline.models.rights import RightKind, SuppressionRecord
from pipeline.rights.tracker import RightsRequest, RightsSubjectState

#: Subject keys per ``IN (...)`` list (SQLite's default limit on bound parameters is far above this).
_CHUNK = 500


@dataclass(frozen=True)
class SubjectRights:
    """When the subject was last erased and last rectified (None: never)."""

    erased_at: datetime | None = None
    rectified_at: datetime | None = None

    def erased_since(self, received_at: datetime) -> bool:
        """An event received at or before the erasure must not bring the subject back."""
        return self.erased_at is not None and received_at <= self.erased_at

    def rectified_since(self, received_at: datetime) -> bool:
        """An event received at or before a rectification must not undo it."""
        return self.rectified_at is not None and received_at <= self.rectified_at


NO_RIGHTS = SubjectRights()


class RightsHistory:
    """Reads the rights tracker's tables for a batch of subjects (the tracker lives in the CRM database)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def setup(self) -> None:
        """The tracker's tables exist even when no CRM sink or rights worker has started yet."""
        ensure_schema(self.engine)

    def of(self, subject_keys: Collection[str]) -> dict[str, SubjectRights]:
        """The subjects that had an erasure or a rectification; the others are absent."""
        keys = sorted(set(subject_keys))
        erased: dict[str, datetime] = {}
        rectified: dict[str, datetime] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                for key, state in conn.execute(
                    select(RightsSubjectState.subject_key, RightsSubjectState.state).where(
                        RightsSubjectState.subject_key.in_(chunk)
                    )
                ):
                    at = SuppressionRecord.model_validate_json(state).erased_at
                    if at is not None:
                        erased[key] = at
                for key, at in conn.execute(
                    select(RightsRequest.subject_key, func.max(RightsRequest.received_at))
                    .where(RightsRequest.subject_key.in_(chunk), RightsRequest.kind == RightKind.RECTIFICATION.value)
                    .group_by(RightsRequest.subject_key)
                ):
                    rectified[key] = at
        return {
            key: SubjectRights(erased_at=erased.get(key), rectified_at=rectified.get(key))
            for key in erased.keys() | rectified.keys()
        }
