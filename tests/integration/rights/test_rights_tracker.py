"""The request tracker on both supported databases: deadlines, extensions, per-sink settlement, audit, state."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from identity_helpers import person

from pipeline.db import ensure_schema, make_engine
from pipeline.models.identity import Role
from pipeline.models.rights import AuditRecord, RightKind, RightsStatus, SinkStatus, SuppressionRecord
from pipeline.rights.commands import build_command
from pipeline.rights.tracker import RequestState, RequestTracker

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 15, 10, tzinfo=UTC)
DPO = person("dana", "Dana Privacy", Role.DPO)
ANA = person("ana", "Ana Garcia", Role.DPO)
BO = person("bo", "Bo Berg", Role.DPO)


@pytest.fixture
def tracker(db_url: str) -> RequestTracker:
    engine = make_engine(db_url)
    ensure_schema(engine)
    return RequestTracker(engine)


def status(cmd_id: object, sink: str, st: SinkStatus, **evidence: object) -> RightsStatus:
    return RightsStatus(
        request_id=cmd_id,
        subject_key="sk_t0000000",
        sink=sink,
        status=st,
        at=T0 + timedelta(minutes=1),
        evidence=evidence,
    )


def test_request_is_recorded_once_with_its_deadline_and_settles_when_every_sink_confirms(
    tracker: RequestTracker,
) -> None:
    cmd = build_command(RightKind.ERASURE, "sk_t0000000", issued_by=person("dpo:anna"), now=T0)
    assert tracker.record(cmd, ["crm", "hubspot"]) is True
    assert tracker.record(cmd, ["crm", "hubspot"]) is False
    view = tracker.get(cmd.request_id)
    assert view is not None and view.state is RequestState.OPEN
    assert view.due_at == datetime(2025, 2, 15, 10, tzinfo=UTC)
    assert [s.status for s in view.sinks] == [SinkStatus.PENDING, SinkStatus.PENDING]
    assert tracker.command(cmd.request_id) == cmd

    tracker.set_sink(status(cmd.request_id, "crm", SinkStatus.DONE, deleted=3))
    assert tracker.get(cmd.request_id).state is RequestState.OPEN  # type: ignore[union-attr]
    tracker.set_sink(status(cmd.request_id, "hubspot", SinkStatus.FAILED), error="HubSpot 503")
    view = tracker.get(cmd.request_id)
    assert view is not None and view.state is RequestState.ATTENTION
    tracker.set_sink(status(cmd.request_id, "hubspot", SinkStatus.DONE, status_code=204))
    view = tracker.get(cmd.request_id)
    assert view is not None and view.state is RequestState.COMPLETED
    assert view.completed_at == T0 + timedelta(minutes=1)
    hub = next(s for s in view.sinks if s.sink == "hubspot")
    assert hub.attempts == 2 and hub.evidence == {"status_code": 204} and hub.error is None
    assert tracker.open_requests() == []


def test_overdue_and_extension_with_reason(tracker: RequestTracker) -> None:
    cmd = build_command(RightKind.OBJECTION, "sk_t0000000", issued_by=person("dpo"), now=T0)
    tracker.record(cmd, ["crm"])
    assert tracker.overdue(T0 + timedelta(days=20)) == []
    assert [r.request_id for r in tracker.overdue(T0 + timedelta(days=32))] == [str(cmd.request_id)]
    with pytest.raises(ValueError, match="reason"):
        tracker.extend(cmd.request_id, 2, "busy", by=DPO)
    with pytest.raises(ValueError, match="1 to 2 months"):
        tracker.extend(cmd.request_id, 3, "numerous requests from the same person", by=DPO)
    view = tracker.extend(cmd.request_id, 2, "numerous requests from the same person", by=DPO)
    assert view.effective_due_at == datetime(2025, 4, 15, 10, tzinfo=UTC)
    assert view.extended_by == DPO and tracker.get(cmd.request_id).extended_by == DPO  # type: ignore[union-attr]
    assert [(e.principal, e.extended_by) for e in view.extensions] == [(DPO, DPO.actor)]  # each extension: who
    assert view.extension_reason == "numerous requests from the same person"
    assert tracker.overdue(T0 + timedelta(days=32)) == []
    assert len(tracker.overdue(T0 + timedelta(days=91))) == 1


def test_extensions_add_up_to_two_months_never_shorten_and_keep_every_reason(tracker: RequestTracker) -> None:
    """Policy 9.1: "as much as two additional months" in all; the person is told every reason."""
    cmd = build_command(RightKind.PORTABILITY, "sk_t0000009", issued_by=DPO, now=T0)
    tracker.record(cmd, ["export"])
    first = tracker.extend(cmd.request_id, 1, "a complex request across two systems", by=ANA)
    assert first.effective_due_at == datetime(2025, 3, 15, 10, tzinfo=UTC)
    second = tracker.extend(cmd.request_id, 1, "numerous requests from the same person", by=BO)
    assert second.effective_due_at == datetime(2025, 4, 15, 10, tzinfo=UTC)  # added, not replaced
    assert [(e.months, e.reason, e.extended_by, e.principal) for e in second.extensions] == [
        (1, "a complex request across two systems", ANA.actor, ANA),
        (1, "numerous requests from the same person", BO.actor, BO),
    ]
    assert second.extended_by == BO  # the latest
    assert second.extension_reason == "a complex request across two systems; numerous requests from the same person"
    with pytest.raises(ValueError, match="already extended by 2 month"):
        tracker.extend(cmd.request_id, 1, "yet another reason to wait", by=DPO)
    after = tracker.get(cmd.request_id)
    assert after is not None and after.effective_due_at == second.effective_due_at
    assert len(after.extensions) == 2 and tracker.requests()[0].extensions == after.extensions

    other = build_command(RightKind.PORTABILITY, "sk_t0000010", issued_by=DPO, now=T0)
    tracker.record(other, ["export"])
    tracker.extend(other.request_id, 2, "numerous requests from the same person", by=DPO)
    with pytest.raises(ValueError, match="cannot be extended again"):  # --months 1 after --months 2
        tracker.extend(other.request_id, 1, "one more month please", by=DPO)
    kept = tracker.get(other.request_id)
    assert kept is not None and kept.effective_due_at == datetime(2025, 4, 15, 10, tzinfo=UTC)
    assert kept.extension_reason == "numerous requests from the same person"


def test_pending_counts_agree_with_the_request_views(tracker: RequestTracker) -> None:
    """The metrics' counts come from SQL; they must say what ``open_requests``/``overdue`` say, extensions included."""
    assert tracker.pending_counts(T0) == ({}, 0)
    late = build_command(RightKind.OBJECTION, "sk_t0000001", issued_by=person("dpo"), now=T0)
    extended = build_command(RightKind.RESTRICTION, "sk_t0000002", issued_by=person("dpo"), now=T0)
    failing = build_command(RightKind.ERASURE, "sk_t0000003", issued_by=person("dpo"), now=T0 + timedelta(days=10))
    done = build_command(RightKind.OBJECTION, "sk_t0000004", issued_by=person("dpo"), now=T0)
    for cmd in (late, extended, failing, done):
        tracker.record(cmd, ["crm"])
    tracker.extend(extended.request_id, 1, "numerous requests from the same person", by=DPO)
    tracker.set_sink(status(failing.request_id, "crm", SinkStatus.FAILED), error="database down")
    tracker.set_sink(status(done.request_id, "crm", SinkStatus.DONE))
    for days, overdue in ((20, 0), (32, 1), (42, 2), (62, 3)):
        at = T0 + timedelta(days=days)
        by_state, count = tracker.pending_counts(at)
        assert by_state == {"open": 2, "attention": 1}
        assert count == overdue == len(tracker.overdue(at)), days


def test_a_lifted_restriction_records_that_a_notice_is_due(tracker: RequestTracker) -> None:
    """Due once a restriction was lifted (the suppression step marks it), not merely asked for; never again once
    the notice was sent."""
    cmd = build_command(RightKind.UNRESTRICTION, "sk_t0000000", issued_by=person("dpo"), now=T0)
    tracker.record(cmd)
    assert not tracker.get(cmd.request_id).notice_due  # type: ignore[union-attr]
    tracker.mark_notice_due(cmd.request_id)
    assert tracker.get(cmd.request_id).notice_due  # type: ignore[union-attr]
    tracker.mark_notice_sent(cmd.request_id, by=DPO)
    tracker.mark_notice_due(cmd.request_id)  # a retried step
    view = tracker.get(cmd.request_id)
    assert view is not None and not view.notice_due and view.notice_sent_by == DPO


def test_subject_state_and_audit_round_trip(tracker: RequestTracker) -> None:
    assert tracker.state("sk_t0000000") is None
    rec = SuppressionRecord(subject_key="sk_t0000000", erased=True, erased_at=T0, updated_at=T0, request_id=uuid4())
    tracker.save_state(rec)
    tracker.save_state(rec.model_copy(update={"marketing_objected": True}))
    got = tracker.state("sk_t0000000")
    assert got is not None and got.erased and got.marketing_objected and got.erased_at == T0
    entry = AuditRecord(audit_id=uuid4(), at=T0, actor="dpo", action="x", subject_key="sk_t0000000", detail={"n": 1})
    tracker.audit(entry)
    tracker.audit(entry)
    assert tracker.audit_trail(subject_key="sk_t0000000") == [entry]


def test_a_step_closed_by_hand_keeps_its_evidence_completes_the_request_and_stays_closed(
    tracker: RequestTracker,
) -> None:
    """A request that can never succeed left ``attention`` only if the sink came back: the DPO now closes the step
    (the migration's columns on both databases), and no later failure of the sink writes over it."""
    from pipeline.rights.tracker import StepClosure, UnknownSink

    cmd = build_command(RightKind.ERASURE, "sk_t0000000", issued_by=person("dpo:anna"), now=T0)
    tracker.record(cmd, ["crm", "hubspot"])
    tracker.set_sink(status(cmd.request_id, "crm", SinkStatus.DONE, deleted=3))
    tracker.set_sink(status(cmd.request_id, "hubspot", SinkStatus.FAILED, code=400), error="hubspot_400", attempts=5)
    with pytest.raises(UnknownSink):
        tracker.close_step(cmd.request_id, "kafka", StepClosure.CANNOT_BE_DONE, "sink decommissioned", by=ANA)
    with pytest.raises(ValueError, match="done already"):
        tracker.close_step(cmd.request_id, "crm", StepClosure.CANNOT_BE_DONE, "sink decommissioned", by=ANA)
    closed = tracker.close_step(
        cmd.request_id, "hubspot", StepClosure.CANNOT_BE_DONE, "HubSpot refuses: ticket 42", by=ANA, at=T0
    )
    assert closed.completed and closed.previous is SinkStatus.FAILED
    assert closed.view.state is RequestState.COMPLETED and closed.view.completed_at == T0
    step = next(s for s in closed.view.sinks if s.sink == "hubspot")
    assert (step.status, step.evidence, step.error, step.attempts) == (
        SinkStatus.NOT_APPLICABLE,
        {"code": 400},
        "hubspot_400",
        5,
    )
    assert step.closed is not None and step.closed.closed_at == T0 and step.closed.closed_by == ANA
    tracker.set_sink(status(cmd.request_id, "hubspot", SinkStatus.FAILED), error="late")
    view = tracker.get(cmd.request_id)
    assert view is not None and view.state is RequestState.COMPLETED
    assert next(s for s in view.sinks if s.sink == "hubspot").error == "hubspot_400"
