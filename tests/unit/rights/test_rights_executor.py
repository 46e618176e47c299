"""The executor's guarantees, with scripted effects: order, retries with backoff, failures recorded (never lost),
sinks that confirmed are not run again (a replayed erasure cannot erase a later collection), retention decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from identity_helpers import person

from pipeline.kafka.producer import Outgoing
from pipeline.models.rights import RightKind, RightsStatus, SinkStatus
from pipeline.rights.commands import build_command
from pipeline.rights.effects.base import Context, Effect, EffectError, EffectResult, Handover
from pipeline.rights.executor import RightsExecutor
from pipeline.rights.plan import PLAN
from pipeline.rights.tracker import RequestState, RequestTracker
from pipeline.runtime import Runtime

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
SK = "sk_" + "e" * 40


class RecordingPublisher:
    """Stands in for the confirming producer (this is a unit test: no broker); keeps what would be published."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def publish(self, records: Any, timeout_s: float = 30.0) -> int:
        batch = list(records)
        self.sent.extend(batch)
        return len(batch)

    def topic(self, name: str) -> list[Any]:
        return [o.value for o in self.sent if o.topic == name]


class Scripted(Effect):
    """An effect that answers from a script: results or exceptions, one per call."""

    def __init__(self, sink: str, *script: EffectResult | Exception, handover: Handover | None = None) -> None:
        self.sink = sink  # type: ignore[misc]
        self.script = list(script)
        self.calls: list[Context] = []
        self._handover = handover or Handover()

    def apply(self, ctx: Context) -> EffectResult:
        self.calls.append(ctx)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return step

    def handover(self, subject_key: str) -> Handover:
        return self._handover


def executor(runtime: Runtime, effects: list[Effect], sleeps: list[float] | None = None) -> RightsExecutor:
    waits = sleeps if sleeps is not None else []
    return RightsExecutor(
        tracker=RequestTracker(runtime.engine),
        effects=effects,
        publisher=RecordingPublisher(),  # type: ignore[arg-type]
        sealer=runtime.codec.sealer,
        keystore=runtime.keystore,
        max_attempts=4,
        retry_base_s=0.5,
        clock=lambda: NOW,
        sleep=waits.append,
    )


def ok(**evidence: Any) -> EffectResult:
    return EffectResult.done(**evidence)


def all_ok(kind: RightKind) -> list[Effect]:
    return [Scripted(sink, ok()) for sink in PLAN[kind]]


def test_sinks_run_in_plan_order_and_the_request_completes(runtime: Runtime) -> None:
    order: list[str] = []

    class Ordered(Scripted):
        def apply(self, ctx: Context) -> EffectResult:
            order.append(self.sink)
            return super().apply(ctx)

    ex = executor(runtime, [Ordered(s, ok()) for s in ("export", "hubspot", "crm", "kafka", "suppression")])
    cmd = build_command(RightKind.ERASURE, SK, issued_by=person("dpo"), now=NOW)
    statuses = ex.execute(cmd)
    assert order == ["suppression", "kafka", "crm", "hubspot", "export"]  # suppression first: the chain stops at once
    assert [s.status for s in statuses] == [SinkStatus.DONE] * 5
    view = ex.tracker.get(cmd.request_id)
    assert view is not None and view.state is RequestState.COMPLETED and view.completed_at == NOW
    published = ex.publisher.topic("rights.status")  # type: ignore[attr-defined]
    assert [s.sink for s in published] == ["suppression", "kafka", "crm", "hubspot", "export"]
    actions = [a.action for a in ex.tracker.audit_trail(request_id=cmd.request_id)]
    assert actions[0] == "rights.request_received" and actions[-1] == "rights.request_completed"
    assert "rights.crm.done" in actions


def test_transient_failures_are_retried_with_growing_backoff(runtime: Runtime) -> None:
    sleeps: list[float] = []
    flaky = Scripted("hubspot", EffectError("hubspot_unavailable", "503"), RuntimeError("reset"), ok(purged=1))
    effects: list[Effect] = [Scripted(s, ok()) for s in ("suppression", "crm")] + [flaky]
    ex = executor(runtime, effects, sleeps)
    cmd = build_command(RightKind.OBJECTION, SK, issued_by=person("dpo"), now=NOW)
    statuses = {s.sink: s for s in ex.execute(cmd)}
    assert statuses["hubspot"].status is SinkStatus.DONE and statuses["hubspot"].evidence == {"purged": 1}
    assert len(flaky.calls) == 3
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0
    hub = next(s for s in ex.tracker.get(cmd.request_id).sinks if s.sink == "hubspot")  # type: ignore[union-attr]
    assert hub.attempts == 3


def test_exhausted_retries_are_recorded_failed_and_retried_later_not_forgotten(runtime: Runtime) -> None:
    down = Scripted("hubspot", EffectError("hubspot_unavailable", "HubSpot down"))
    effects: list[Effect] = [Scripted(s, ok()) for s in ("suppression", "crm")] + [down]
    ex = executor(runtime, effects)
    cmd = build_command(RightKind.OBJECTION, SK, issued_by=person("dpo"), now=NOW)
    statuses = {s.sink: s for s in ex.execute(cmd)}
    assert statuses["hubspot"].status is SinkStatus.FAILED and "HubSpot down" in statuses["hubspot"].evidence["error"]
    assert len(down.calls) == 4
    view = ex.tracker.get(cmd.request_id)
    assert view is not None and view.state is RequestState.ATTENTION
    failed = next(s for s in view.sinks if s.sink == "hubspot")
    assert failed.error is not None and "HubSpot down" in failed.error

    # HubSpot is back: the retry timer runs only what has not confirmed
    down.script = [ok(purged=1)]
    crm = next(e for e in effects if e.sink == "crm")
    crm_calls = len(crm.calls)  # type: ignore[attr-defined]
    assert ex.retry_unfinished(timedelta(0)) == 1
    assert len(crm.calls) == crm_calls  # type: ignore[attr-defined]
    view = ex.tracker.get(cmd.request_id)
    assert view is not None and view.state is RequestState.COMPLETED
    assert next(s for s in view.sinks if s.sink == "hubspot").attempts == 5


def test_non_retryable_failure_is_not_hammered(runtime: Runtime) -> None:
    refused = Scripted("hubspot", EffectError("hubspot_400", "VALIDATION_ERROR", retryable=False, status=400))
    ex = executor(runtime, [Scripted(s, ok()) for s in ("suppression", "crm")] + [refused])
    statuses = {s.sink: s for s in ex.execute(build_command(RightKind.OBJECTION, SK, issued_by=person("d"), now=NOW))}
    assert len(refused.calls) == 1
    assert statuses["hubspot"].status is SinkStatus.FAILED and statuses["hubspot"].evidence["status"] == 400


def test_a_database_error_is_recorded_without_the_values_it_quotes(runtime: Runtime) -> None:
    """SQLAlchemy's message carries the statement's parameters (a corrected name, an address): the request's error,
    its evidence, its audit and its status record say what failed, never with what."""
    from sqlalchemy.exc import DataError

    class TooLong(Exception):
        def __str__(self) -> str:
            return "value too long for type character varying(200)\nDETAIL:  Failing row contains (Zbigniew Kowalczyk)."

    refused = DataError(
        "UPDATE crm_subjects SET last_name=%(last_name)s", {"last_name": "Zbigniew Kowalczyk"}, TooLong()
    )
    crm = Scripted("crm", refused)
    ex = executor(runtime, [Scripted("suppression", ok()), crm, Scripted("hubspot", ok())])
    cmd = build_command(RightKind.OBJECTION, SK, issued_by=person("dpo"), now=NOW)
    statuses = {s.sink: s for s in ex.execute(cmd)}
    error = statuses["crm"].evidence["error"]
    assert error == "DataError: TooLong: value too long for type character varying(200)"
    view = ex.tracker.get(cmd.request_id)
    assert view is not None and next(s for s in view.sinks if s.sink == "crm").error == error
    published = [o.value for o in ex.publisher.sent]  # type: ignore[attr-defined]
    trail = ex.tracker.audit_trail(request_id=cmd.request_id)
    for where in [*published, *trail]:
        assert "Kowalczyk" not in where.model_dump_json()


def test_replayed_command_does_not_run_confirmed_sinks_again(runtime: Runtime) -> None:
    effects = all_ok(RightKind.ERASURE)
    ex = executor(runtime, effects)
    cmd = build_command(RightKind.ERASURE, SK, issued_by=person("dpo"), now=NOW)
    ex.execute(cmd)
    assert ex.execute(cmd) == []  # e.g. the rights topic replayed after the person came back: nothing re-erased
    assert all(len(e.calls) == 1 for e in effects)  # type: ignore[attr-defined]


def test_retention_expiry_erases_the_subject_only_when_nothing_is_left(runtime: Runtime) -> None:
    def run(remaining: int) -> dict[str, RightsStatus]:
        crm = Scripted("crm", ok(interactions_deleted=1, remaining_interactions=remaining))
        seen: dict[str, bool] = {}

        class Probe(Scripted):
            def apply(self, ctx: Context) -> EffectResult:
                seen[self.sink] = ctx.erase_subject
                return super().apply(ctx)

        effects: list[Effect] = [crm] + [Probe(s, ok()) for s in ("suppression", "kafka", "hubspot")]
        cmd = build_command(RightKind.RETENTION_EXPIRY, SK, issued_by=person("retention-sweep"), event_ids=[uuid4()])
        statuses = {s.sink: s for s in executor(runtime, effects).execute(cmd)}
        assert seen == dict.fromkeys(("suppression", "kafka", "hubspot"), remaining == 0)
        return statuses

    assert run(0)["crm"].status is SinkStatus.DONE
    assert run(3)["crm"].evidence["remaining_interactions"] == 3


def test_handover_is_sealed_per_request_and_its_key_destroyed_when_done(runtime: Runtime) -> None:
    crm = Scripted("crm", ok(), handover=Handover(emails=("zoe@example.com",)))
    hub = Scripted("hubspot", EffectError("hubspot_unavailable", "down"))
    effects: list[Effect] = [crm, hub, Scripted("suppression", ok()), Scripted("kafka", ok()), Scripted("export", ok())]
    ex = executor(runtime, effects)
    cmd = build_command(RightKind.ERASURE, SK, issued_by=person("dpo"), now=NOW)
    ex.execute(cmd)
    sealed = ex.tracker.handover(cmd.request_id)
    assert sealed is not None and "zoe@example.com" not in sealed.model_dump_json()
    # the CRM has erased the subject meanwhile: the retry still knows where to erase in HubSpot
    crm._handover = Handover()
    hub.script = [ok()]
    ex.execute(cmd)
    assert hub.calls[-1].handover.emails == ("zoe@example.com",)
    from pipeline.crypto.sealing import KeyDestroyedError

    with pytest.raises(KeyDestroyedError):
        runtime.codec.sealer.open(sealed)


def test_unknown_sink_effect_is_recorded_as_failed(runtime: Runtime) -> None:
    ex = executor(runtime, [Scripted("crm", ok())])
    statuses = {
        s.sink: s
        for s in ex.execute(
            build_command(
                RightKind.RECTIFICATION,
                SK,
                issued_by=person("d"),
                now=NOW,
                sealer=runtime.codec.sealer,
                rectify={"position": "x"},
            )
        )
    }
    assert statuses["hubspot"].status is SinkStatus.FAILED and statuses["hubspot"].evidence == {
        "reason": "not_configured",
        "error": "no effect for sink hubspot",
    }


def test_a_corrected_address_destroys_the_old_key_only_after_every_other_sink_confirmed(runtime: Runtime) -> None:
    """The old key's data keys go last: until HubSpot confirmed, the request's sealed details are still needed."""
    from pipeline.crypto.keystore import SqlKeyStore
    from pipeline.crypto.sealing import subject_scope
    from pipeline.rights.effects.keys import KeyShredding
    from pipeline.rights.plan import REKEY_PLAN

    down = Scripted("hubspot", EffectError("hubspot_unavailable", "HubSpot down"))
    effects: list[Effect] = [Scripted(s, ok()) for s in ("suppression", "crm", "export")]
    effects += [down, KeyShredding(runtime.keystore)]
    ex = executor(runtime, effects)
    key_id, _ = runtime.keystore.active_key(subject_scope(SK))  # the old address's records were sealed under it

    def alive() -> bool:  # asked of the database, as another process would
        return SqlKeyStore(runtime.engine, runtime.settings.kek_bytes()).key(key_id) is not None

    cmd = build_command(
        RightKind.RECTIFICATION,
        SK,
        issued_by=person("dpo"),
        now=NOW,
        sealer=runtime.codec.sealer,
        rectify={"email": "new@example.com"},
        new_subject_key="sk_" + "f" * 40,
    )
    assert ex.sinks_for(cmd) == REKEY_PLAN
    statuses = {s.sink: s for s in ex.execute(cmd)}  # HubSpot down for all 4 attempts
    assert statuses["hubspot"].status is SinkStatus.FAILED
    assert statuses["kafka"].status is SinkStatus.PENDING and statuses["kafka"].evidence == {"waiting_for": ["hubspot"]}
    assert alive()
    down.script = [ok(outcome="email corrected")]
    statuses = {s.sink: s for s in ex.execute(cmd)}  # the retry timer runs it again
    assert set(statuses) == {"hubspot", "kafka"} and statuses["kafka"].evidence["keys_destroyed"] == 1
    assert ex.tracker.get(cmd.request_id).state is RequestState.COMPLETED  # type: ignore[union-attr]
    assert not alive()
