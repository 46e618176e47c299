"""The compacted suppression topic: the subject's full latest state, read by the chain and the sinks.

An erasure also tombstones the subject's events (``stored_events``: those the CRM holds, read before it erases
them): their hashes ride in the state, so a replay of any of them is dropped by the chain and by every sink.

The previous state is kept in the tracker (``rights_subject_state``) so each record is the full state, whatever
the order in which consumers start; publishing is confirmed before the effect reports DONE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from uuid import UUID

from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Purpose
from pipeline.models.rights import RightKind, SuppressionRecord, erased_event_tag
from pipeline.rights.effects.base import Context, Effect, EffectResult
from pipeline.rights.plan import rekeys
from pipeline.rights.state import moved_states, next_state
from pipeline.rights.tracker import RequestTracker
from pipeline.topics import SUPPRESSION_TOPIC


class SuppressionPublisher(Effect):
    sink = "suppression"

    def __init__(
        self,
        tracker: RequestTracker,
        publisher: ConfirmingPublisher,
        consent_purposes: Callable[[], Sequence[Purpose]] = tuple,
        stored_events: Callable[[str], Iterable[UUID]] = lambda _key: (),
    ) -> None:
        self._tracker = tracker
        self._publisher = publisher
        self._consent_purposes = consent_purposes
        self._stored_events = stored_events

    def apply(self, ctx: Context) -> EffectResult:
        command = ctx.command
        if rekeys(command):
            return self._move(ctx)
        erase = ctx.erase_subject if command.kind is RightKind.RETENTION_EXPIRY else None
        previous = self._tracker.state(command.subject_key)
        consent_based = {*self._consent_purposes()}
        consent_based |= {Purpose(p) for p in ctx.evidence.get("crm", {}).get("purposes_withdrawn", ())}
        if command.kind is RightKind.CONSENT_WITHDRAWAL and not command.purposes and not consent_based:
            return EffectResult.not_applicable("no_consent_purposes_known")
        erasing = command.kind is RightKind.ERASURE if erase is None else erase
        tombstones = [erased_event_tag(e) for e in self._stored_events(command.subject_key)] if erasing else []
        state = next_state(
            previous, command, ctx.now, consent_purposes=sorted(consent_based), erase=erase, erased_events=tombstones
        )
        if state is None:
            return EffectResult.not_applicable("state_unchanged")
        if command.kind is RightKind.UNRESTRICTION and previous is not None and previous.restricted:
            self._tracker.mark_notice_due(command.request_id)  # before the state is saved: a retry marks it again
        self._publisher.publish([Outgoing(SUPPRESSION_TOPIC, state.subject_key, state)])
        self._tracker.save_state(state)
        return EffectResult.done(**_flags(state))

    def _move(self, ctx: Context) -> EffectResult:
        """A corrected e-mail address: the state follows the person to the new key; the old key is left erased."""
        command = ctx.command
        assert command.new_subject_key is not None
        moved, emptied = moved_states(
            self._tracker.state(command.subject_key), self._tracker.state(command.new_subject_key), command, ctx.now
        )
        self._publisher.publish([Outgoing(SUPPRESSION_TOPIC, s.subject_key, s) for s in (moved, emptied)])
        for state in (moved, emptied):
            self._tracker.save_state(state)
        return EffectResult.done(
            **_flags(moved), moved_to=moved.subject_key, old_key_erased_at=emptied.updated_at.isoformat()
        )


def _flags(state: SuppressionRecord) -> dict[str, object]:
    return {
        "erased": state.erased,
        "marketing_objected": state.marketing_objected,
        "restricted": state.restricted,
        "consent_withdrawn": [p.value for p in state.consent_withdrawn],
        "updated_at": state.updated_at.isoformat(),
    }
