"""A request that can never succeed (the HubSpot contact was deleted by hand already, HubSpot refuses for good, a sink
was decommissioned) stayed in ``attention`` for ever: the retry timer kept trying and the DPO had no way to close
it. The DPO now closes one step by hand, in their name and with a reason (``leadpipe dpo close-step``,
``POST /v1/dpo/requests/{id}/sinks/{sink}/close``): the step keeps its evidence beside who, when and why, the request
completes once every step is done or closed, and neither the retry timer nor a late answer of the sink reopens it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from identity_helpers import key_for, person
from ingest_helpers import RecordingPublisher
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import get_settings
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.models.identity import Role
from pipeline.models.rights import RightKind, RightsCommand, RightsStatus, SinkStatus
from pipeline.rights import cli as rights_cli
from pipeline.rights.commands import build_command
from pipeline.rights.dpo import STEP_CLOSED_BY_HAND, DpoTools
from pipeline.rights.effects.base import Context, Effect, EffectError, EffectResult, Handover
from pipeline.rights.executor import RightsExecutor
from pipeline.rights.tracker import RequestState, RequestTracker, StepClosure, UnknownSink
from pipeline.runtime import Runtime

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
SK = "sk_" + "c" * 40
REASON = "Contact deleted by hand in HubSpot, ticket DPO-118"


class Scripted(Effect):
    """An effect that answers what it is told to (a result or an exception), counting its calls."""

    def __init__(self, sink: str, answer: EffectResult | Exception, handover: Handover | None = None) -> None:
        self.sink = sink  # type: ignore[misc]
        self.answer = answer
        self.calls = 0
        self._handover = handover or Handover()

    def apply(self, ctx: Context) -> EffectResult:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def handover(self, subject_key: str) -> Handover:
        return self._handover


def _executor(runtime: Runtime, effects: list[Effect]) -> RightsExecutor:
    return RightsExecutor(
        tracker=RequestTracker(runtime.engine),
        effects=effects,
        publisher=RecordingPublisher(),  # type: ignore[arg-type]
        sealer=runtime.codec.sealer,
        keystore=runtime.keystore,
        max_attempts=2,
        clock=lambda: NOW,
        sleep=lambda _s: None,
    )


def _refused() -> EffectError:
    return EffectError("hubspot_404", "contact gone", retryable=False, status=404)


def _in_attention(runtime: Runtime, kind: RightKind = RightKind.OBJECTION) -> tuple[RightsExecutor, RightsCommand]:
    """A request whose HubSpot step failed for good (the others confirmed): ``attention``."""
    effects: list[Effect] = [
        Scripted("suppression", EffectResult.done()),
        Scripted("crm", EffectResult.done(), handover=Handover(emails=("zoe@example.com",))),
        Scripted("hubspot", _refused()),
        Scripted("kafka", EffectResult.done(keys_destroyed=1)),
        Scripted("export", EffectResult.done()),
    ]
    ex = _executor(runtime, effects)
    command = build_command(kind, SK, issued_by=person("dpo"), now=NOW)
    ex.execute(command)
    view = ex.tracker.get(command.request_id)
    assert view is not None and view.state is RequestState.ATTENTION
    return ex, command


def _tools(runtime: Runtime) -> DpoTools:
    return DpoTools(runtime, RecordingPublisher(), migrate=False)  # type: ignore[arg-type]


def _hubspot(ex: RightsExecutor, command: RightsCommand) -> Any:
    view = ex.tracker.get(command.request_id)
    assert view is not None
    return next(s for s in view.sinks if s.sink == "hubspot")


def test_the_dpo_closes_a_failed_step_and_the_request_completes_in_their_name(runtime: Runtime) -> None:
    ex, command = _in_attention(runtime)
    failed = _hubspot(ex, command)
    tools = _tools(runtime)
    view = tools.close_step(command.request_id, "hubspot", StepClosure.DONE_BY_HAND, f"  {REASON}  ", by=person("dora"))
    assert view.state is RequestState.COMPLETED and view.completed_at is not None
    step = next(s for s in view.sinks if s.sink == "hubspot")
    assert step.status is SinkStatus.DONE and step.closed is not None
    assert (step.closed.closed_as, step.closed.reason) == (StepClosure.DONE_BY_HAND, REASON)
    assert step.closed.closed_by is not None and step.closed.closed_by.display_name == "Dora"
    assert step.evidence == failed.evidence and step.error == failed.error  # the sink's own record is kept
    assert step.attempts == failed.attempts
    published = [o.value for o in tools.publisher.records]  # type: ignore[attr-defined]
    assert [r.action for r in published] == [STEP_CLOSED_BY_HAND, "rights.request_completed"]
    closed_line = published[0]
    assert closed_line.principal.display_name == "Dora" and closed_line.request_id == command.request_id
    assert closed_line.detail == {
        "kind": "objection",
        "sink": "hubspot",
        "closed_as": "done_by_hand",
        "status_before": "failed",
    }
    trail = [r.action for r in tools.tracker.audit_trail(request_id=command.request_id)]
    assert STEP_CLOSED_BY_HAND in trail and "rights.request_completed" in trail
    assert all(REASON not in json.dumps(r.model_dump(mode="json")) for r in published)  # free text: not audited
    assert tools.open_requests() == []  # the retry timer has nothing left to run
    assert ex.retry_unfinished(timedelta(0)) == 0


def test_a_step_that_cannot_be_done_is_closed_as_such(runtime: Runtime) -> None:
    _ex, command = _in_attention(runtime)
    view = _tools(runtime).close_step(
        str(command.request_id), "hubspot", StepClosure.CANNOT_BE_DONE, "HubSpot portal decommissioned", by=person("d")
    )
    step = next(s for s in view.sinks if s.sink == "hubspot")
    assert view.state is RequestState.COMPLETED
    assert step.status is SinkStatus.NOT_APPLICABLE and step.closed is not None
    assert step.closed.closed_as is StepClosure.CANNOT_BE_DONE


def test_refusals_name_what_is_wrong_and_change_nothing(runtime: Runtime) -> None:
    ex, command = _in_attention(runtime)
    tools, dora = _tools(runtime), person("dora")
    with pytest.raises(KeyError, match="no rights request"):
        tools.close_step(uuid.uuid4(), "hubspot", StepClosure.DONE_BY_HAND, REASON, by=dora)
    with pytest.raises(UnknownSink, match=r"no 'kafka' step \(its steps: crm, hubspot, suppression\)"):
        tools.close_step(command.request_id, "kafka", StepClosure.DONE_BY_HAND, REASON, by=dora)
    with pytest.raises(ValueError, match=r"crm step .* is done already"):
        tools.close_step(command.request_id, "crm", StepClosure.DONE_BY_HAND, REASON, by=dora)
    for reason in ("", "   ", "too short"):
        with pytest.raises(ValueError, match="needs a reason"):
            tools.close_step(command.request_id, "hubspot", StepClosure.DONE_BY_HAND, reason, by=dora)
    with pytest.raises(ValueError, match="at most 500 characters"):
        tools.close_step(command.request_id, "hubspot", StepClosure.DONE_BY_HAND, "x" * 501, by=dora)
    assert _hubspot(ex, command).closed is None and _hubspot(ex, command).status is SinkStatus.FAILED
    assert tools.publisher.records == []  # type: ignore[attr-defined]
    tools.close_step(command.request_id, "hubspot", StepClosure.DONE_BY_HAND, REASON, by=dora)
    with pytest.raises(ValueError, match=r"closed by hand already .*Dora"):
        tools.close_step(command.request_id, "hubspot", StepClosure.CANNOT_BE_DONE, REASON, by=person("ed"))


def test_the_retry_timer_neither_runs_nor_reopens_a_closed_step(runtime: Runtime) -> None:
    """HubSpot is closed by hand while the CRM is still failing: the timer runs the CRM again, never HubSpot, and a
    failure of a run that was under way when the step was closed is not written over it."""
    hub = Scripted("hubspot", _refused())
    crm = Scripted("crm", EffectError("crm_down", "database unavailable"))
    ex = _executor(runtime, [Scripted("suppression", EffectResult.done()), crm, hub])
    command = build_command(RightKind.OBJECTION, SK, issued_by=person("dpo"), now=NOW)
    ex.execute(command)
    _tools(runtime).close_step(command.request_id, "hubspot", StepClosure.DONE_BY_HAND, REASON, by=person("dora"))
    view = ex.tracker.get(command.request_id)
    assert view is not None and view.state is RequestState.ATTENTION  # the CRM still failed
    calls = hub.calls
    ex.retry_unfinished(timedelta(0))
    assert hub.calls == calls  # the closed step is not run again
    late_failure = RightsStatus(
        request_id=command.request_id, subject_key=SK, sink="hubspot", status=SinkStatus.FAILED, at=NOW, evidence={}
    )
    ex.tracker.set_sink(late_failure, error="hubspot_404: contact gone", attempts=9)
    step = _hubspot(ex, command)
    assert step.status is SinkStatus.DONE and step.closed is not None and step.attempts != 9
    crm.answer = EffectResult.done()
    ex.retry_unfinished(timedelta(0))
    view = ex.tracker.get(command.request_id)
    assert view is not None and view.state is RequestState.COMPLETED and hub.calls == calls


def test_a_late_success_is_recorded_as_evidence_and_reopens_nothing(runtime: Runtime) -> None:
    ex, command = _in_attention(runtime)
    view = _tools(runtime).close_step(
        command.request_id, "hubspot", StepClosure.CANNOT_BE_DONE, "HubSpot refuses: portal locked", by=person("dora")
    )
    completed_at = view.completed_at
    late = RightsStatus(
        request_id=command.request_id,
        subject_key=SK,
        sink="hubspot",
        status=SinkStatus.DONE,
        at=NOW + timedelta(hours=1),
        evidence={"contacts": 1, "outcome": "updated"},
    )
    ex.tracker.set_sink(late, attempts=3, by=person("agent"))
    step = _hubspot(ex, command)
    assert step.status is SinkStatus.DONE and step.evidence == {"contacts": 1, "outcome": "updated"}
    assert step.closed is not None and step.closed.closed_as is StepClosure.CANNOT_BE_DONE  # who closed it stays
    assert step.closed.closed_by is not None and step.closed.closed_by.display_name == "Dora"
    after = ex.tracker.get(command.request_id)
    assert after is not None and after.state is RequestState.COMPLETED and after.completed_at == completed_at


def test_closing_the_last_step_of_an_erasure_destroys_its_handover(runtime: Runtime) -> None:
    """The rights agent destroys an erasure's sealed identities when it completes; a completion by hand does too."""
    ex, command = _in_attention(runtime, RightKind.ERASURE)
    sealed = ex.tracker.handover(command.request_id)
    assert sealed is not None
    runtime.codec.sealer.open(sealed)  # still readable: HubSpot's retries need it
    _tools(runtime).close_step(command.request_id, "hubspot", StepClosure.DONE_BY_HAND, REASON, by=person("dora"))
    with pytest.raises(KeyDestroyedError):
        runtime.codec.sealer.open(sealed)


def test_the_api_closes_a_step_for_rights_issue_and_refuses_clearly(client: TestClient, runtime: Runtime) -> None:
    ex, command = _in_attention(runtime)
    base = f"/v1/dpo/requests/{command.request_id}"
    body = {"closed_as": "done_by_hand", "reason": REASON}
    unknown = client.post(f"/v1/dpo/requests/{uuid.uuid4()}/sinks/hubspot/close", json=body)
    assert unknown.status_code == 404 and unknown.json()["detail"]["reason"] == "unknown_request"
    no_sink = client.post(f"{base}/sinks/kafka/close", json=body)
    assert no_sink.status_code == 404 and no_sink.json()["detail"]["reason"] == "unknown_sink"
    assert no_sink.json()["detail"]["sinks"] == ["crm", "hubspot", "suppression"]
    done = client.post(f"{base}/sinks/crm/close", json=body)
    assert done.status_code == 422 and done.json()["detail"]["reason"] == "step_not_closable"
    for bad in ({"closed_as": "done_by_hand"}, {**body, "reason": "x" * 501}, {**body, "closed_as": "whatever"}):
        assert client.post(f"{base}/sinks/hubspot/close", json=bad).status_code == 422
    assert client.post(f"{base}/sinks/hubspot/close", json={**body, "reason": " " * 12}).status_code == 422
    closed = client.post(f"{base}/sinks/hubspot/close", json=body)
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "completed"
    shown = client.get(base).json()
    step = next(s for s in shown["sinks"] if s["sink"] == "hubspot")
    assert step["status"] == "done" and step["evidence"] == _hubspot(ex, command).evidence
    assert step["closed"]["closed_as"] == "done_by_hand" and step["closed"]["reason"] == REASON
    assert step["closed"]["closed_by"]["display_name"] == "Dora"
    audit = [r["action"] for r in client.get(f"{base}/audit").json()]
    assert STEP_CLOSED_BY_HAND in audit
    again = client.post(f"{base}/sinks/hubspot/close", json=body)
    assert again.status_code == 422 and "closed by hand already" in again.json()["detail"]["message"]


def test_a_reader_may_not_close_a_step(client: TestClient, runtime: Runtime) -> None:
    _ex, command = _in_attention(runtime)
    client.headers["authorization"] = f"Bearer {key_for(runtime.settings, Role.SALES, display_name='Sam')}"
    answer = client.post(
        f"/v1/dpo/requests/{command.request_id}/sinks/hubspot/close",
        json={"closed_as": "done_by_hand", "reason": REASON},
    )
    assert answer.status_code == 403


@pytest.fixture
def cli_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """The CLI's own settings (SQLite under a fresh home, a DPO's key) and a runtime over the same database."""
    monkeypatch.setenv("LEADPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("LEADPIPE_DATABASE_URL", f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    get_settings.cache_clear()
    runtime = Runtime(get_settings())
    from pipeline.db import ensure_schema

    ensure_schema(runtime.engine)
    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(get_settings(), Role.DPO, display_name="Dora"))
    yield runtime
    runtime.engine.dispose()
    get_settings.cache_clear()


def test_the_cli_closes_a_step_and_status_and_show_say_so(
    cli_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(``close-step`` runs on ``dpo_app``: the root app's preflight would look for a broker; the publisher records.)"""
    _ex, command = _in_attention(cli_runtime)
    monkeypatch.setattr(rights_cli, "ConfirmingPublisher", lambda _settings: RecordingPublisher())
    request_id = str(command.request_id)
    invoke = CliRunner().invoke

    def close(sink: str, closed_as: str, reason: str) -> Any:
        result = invoke(rights_cli.dpo_app, ["close-step", request_id, sink, "--as", closed_as, "--reason", reason])
        result.text = " ".join(result.output.replace("│", " ").split())
        return result

    short = close("hubspot", "done_by_hand", "x")
    assert short.exit_code == 2 and "needs a reason" in short.text
    unknown = close("kafka", "done_by_hand", REASON)
    assert unknown.exit_code == 2 and "no 'kafka' step" in unknown.text
    closed = close("hubspot", "cannot_be_done", REASON)
    assert closed.exit_code == 0, closed.output
    assert "closed by hand (cannot_be_done); the request is completed" in closed.output
    status = invoke(app, ["dpo", "status"])
    assert status.exit_code == 0, status.output
    assert "hubspot:cannot_be_done" in status.output
    assert "hubspot closed by hand (cannot_be_done) by Dora" in status.output and REASON in status.output
    shown = invoke(app, ["dpo", "show", request_id, "--json"])
    document = json.loads(shown.output)
    step = next(s for s in document["request"]["sinks"] if s["sink"] == "hubspot")
    assert step["closed"]["reason"] == REASON and step["closed"]["closed_by"]["display_name"] == "Dora"
    assert STEP_CLOSED_BY_HAND in [a["action"] for a in document["audit"]]


def test_a_broker_outage_leaves_the_step_closed_and_the_handover_destroyed(
    client: TestClient, runtime: Runtime
) -> None:
    """The audit topic is the last thing written: when the broker does not confirm, the caller is told (503), the
    step stays closed (the tracker's trail has the line) and the erasure's identities are gone all the same."""
    ex, command = _in_attention(runtime, RightKind.ERASURE)
    sealed = ex.tracker.handover(command.request_id)
    assert sealed is not None
    client.app.state.publisher.fail = True  # type: ignore[attr-defined]
    answer = client.post(
        f"/v1/dpo/requests/{command.request_id}/sinks/hubspot/close",
        json={"closed_as": "done_by_hand", "reason": REASON},
    )
    assert answer.status_code == 503 and answer.json()["detail"]["reason"] == "audit_not_published"
    assert _hubspot(ex, command).closed is not None
    assert STEP_CLOSED_BY_HAND in [r.action for r in ex.tracker.audit_trail(request_id=command.request_id)]
    with pytest.raises(KeyDestroyedError):
        runtime.codec.sealer.open(sealed)
