"""When each subject was last erased and rectified, read from the rights tracker for the HubSpot sink's guard.

The suppression state (``rights_subject_state``, the same full state published on the compacted ``suppression``
topic; its ``erased_at`` is saved before any sink erases anything) and the recorded requests (``rights_requests``,
a rectification's ``received_at``). Reads only; one query per table per call, whatever the batch size. The sink
side (what is skipped, what is left out) is ``pipeline.sinks.hubspot.guard``; the sink agents read the full states
(``states``) to apply the chain's suppression rule again before every write.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from pipeline.db import KeptConnection, any_of, ensure_schema, rows_any_of
from pipeline.models.rights import RightKind, SuppressionRecord
from pipeline.rights.tracker import RightsRequest, RightsSubjectState
from pipeline.sinks.hubspot.guard import SubjectRights


def _states(rows: list[Any]) -> dict[str, SuppressionRecord]:
    return {key: SuppressionRecord.model_validate_json(state) for key, state in rows}


class RightsHistory:
    """Reads the rights tracker's tables for a batch of subjects (the tracker lives in the CRM database)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Read several times per sink batch (each sink's screen, HubSpot's guard before every call): one kept
        # autocommit connection and one array-bound statement per table, not a pooled checkout (ping, reset) and an
        # IN list rendered and planned per call.
        self._reader = KeptConnection(engine, autocommit=True)
        self._states = select(RightsSubjectState.subject_key, RightsSubjectState.state).where(
            any_of(engine, RightsSubjectState.subject_key, "keys")
        )
        self._rectified = (
            select(RightsRequest.subject_key, func.max(RightsRequest.received_at))
            .where(
                any_of(engine, RightsRequest.subject_key, "keys"),
                RightsRequest.kind == RightKind.RECTIFICATION.value,
            )
            .group_by(RightsRequest.subject_key)
        )

    def setup(self) -> None:
        """The tracker's tables exist even when no CRM sink or rights worker has started yet."""
        ensure_schema(self.engine)

    def states(self, subject_keys: Collection[str]) -> dict[str, SuppressionRecord]:
        """The suppression state of the subjects that have one (the sink agents' last check before a write)."""
        keys = sorted(set(subject_keys))
        if not keys:
            return {}
        return _states(self._reader.run(lambda conn: rows_any_of(conn, self._states, "keys", keys)))

    def of(self, subject_keys: Collection[str]) -> dict[str, SubjectRights]:
        """The subjects that had an erasure or a rectification; the others are absent."""
        keys = sorted(set(subject_keys))
        if not keys:
            return {}
        state_rows, rectified_rows = self._reader.run(
            lambda conn: (
                rows_any_of(conn, self._states, "keys", keys),
                rows_any_of(conn, self._rectified, "keys", keys),
            )
        )
        states = _states(state_rows)
        erased = {key: state.erased_at for key, state in states.items() if state.erased_at is not None}
        tombstones = {key: frozenset(state.erased_events) for key, state in states.items() if state.erased_events}
        rectified: dict[str, datetime] = dict(rectified_rows)
        return {
            key: SubjectRights(
                erased_at=erased.get(key),
                rectified_at=rectified.get(key),
                erased_events=tombstones.get(key, frozenset()),
            )
            for key in erased.keys() | rectified.keys() | tombstones.keys()
        }
