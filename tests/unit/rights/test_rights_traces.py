"""Rights work resumed later stays in the trace it belongs to: a request keeps the trace context it arrived in, the
retry timer's run of it continues that trace (and a request it publishes again carries it), and the retention sweep
is the trace its own requests continue. Spans are read from OpenTelemetry's in-memory exporter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fakes.contacts import BASE_TIME, make_tagged
from identity_helpers import person
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_rights_executor import NOW, SK, RecordingPublisher, Scripted, executor, ok

from pipeline import tracing
from pipeline.models.rights import RightKind
from pipeline.rights.commands import RightsDesk, build_command
from pipeline.rights.effects.base import Effect, EffectError
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.executor import RightsExecutor
from pipeline.rights.plan import plan_for
from pipeline.rights.sweep import RetentionSweep
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter

#: The DPO's request as the API's span carried it (trace 4bf9..., span 00f0...).
ORIGIN = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ORIGIN_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736


def context_of(span: ReadableSpan) -> bytes:
    """The trace and span ids of the ``traceparent`` a finished span handed on (its flags left out)."""
    return f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}".encode()


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_a_retried_request_continues_the_trace_it_arrived_in(runtime: Runtime, exporter: InMemorySpanExporter) -> None:
    down = Scripted("hubspot", EffectError("hubspot_unavailable", "HubSpot down"))
    effects: list[Effect] = [Scripted(s, ok()) for s in ("suppression", "crm")] + [down]
    ex = executor(runtime, effects)
    cmd = build_command(RightKind.OBJECTION, SK, issued_by=person("dpo"), now=NOW)
    arrived = tracing.start_process("rights.commands", ORIGIN)  # the rights worker's span of the command's record
    with tracing.current(arrived):
        ex.execute(cmd)  # first seen here: recorded with its trace context
    tracing.end(arrived)
    assert ex.tracker.trace(cmd.request_id) == tracing.traceparent(arrived)
    exporter.clear()
    ex.publisher.sent.clear()  # type: ignore[attr-defined]

    down.script = [ok(purged=1)]
    assert ex.retry_unfinished(timedelta(0)) == 1  # the timer: no span of its own is current
    spans = exporter.get_finished_spans()
    (retry,) = named(spans, "rights retry")
    assert retry.parent is not None and retry.parent.span_id == arrived.get_span_context().span_id
    assert retry.context.trace_id == ORIGIN_TRACE and dict(retry.attributes or {})["leadpipe.outcome"] == "executed"
    (effect,) = named(spans, "rights hubspot")  # only the sink that had not confirmed runs again
    assert effect.parent is not None and effect.parent.span_id == retry.context.span_id
    (status,) = [o for o in ex.publisher.sent if o.topic == "rights.status"]  # type: ignore[attr-defined]
    assert status.trace is not None and f"{ORIGIN_TRACE:032x}" in status.trace.decode()


def later(runtime: Runtime) -> RightsExecutor:
    """An executor whose clock is past the tracker's own (which stamps a pending sink with the wall clock)."""
    ex = executor(runtime, [])
    ex.clock = lambda: datetime.now(UTC) + timedelta(hours=1)
    return ex


def test_a_request_published_again_carries_its_trace(runtime: Runtime, exporter: InMemorySpanExporter) -> None:
    ex = later(runtime)
    cmd = build_command(RightKind.ERASURE, SK, issued_by=person("dpo"), now=NOW)
    ex.tracker.record(cmd, plan_for(cmd), ORIGIN)  # recorded by the DPO's tool, which crashed before publishing
    assert ex.retry_unfinished(timedelta(0)) == 1
    (again,) = ex.publisher.sent  # type: ignore[attr-defined]
    (retry,) = named(exporter.get_finished_spans(), "rights retry")
    assert again.topic == "rights.commands" and again.trace is not None and again.trace[:52] == context_of(retry)
    assert retry.context.trace_id == ORIGIN_TRACE and dict(retry.attributes or {})["leadpipe.outcome"] == "republished"


def test_without_a_stored_trace_a_retry_starts_its_own(runtime: Runtime, exporter: InMemorySpanExporter) -> None:
    ex = later(runtime)
    cmd = build_command(RightKind.ERASURE, SK, issued_by=person("dpo"), now=NOW)
    ex.tracker.record(cmd, plan_for(cmd))  # recorded while tracing was off
    assert ex.tracker.trace(cmd.request_id) is None
    assert ex.retry_unfinished(timedelta(0)) == 1
    (retry,) = named(exporter.get_finished_spans(), "rights retry")
    assert retry.parent is None


def test_the_retention_sweep_is_the_trace_its_requests_continue(
    runtime: Runtime, exporter: InMemorySpanExporter
) -> None:
    CrmWriter(runtime.engine).write_events([make_tagged("jane.doe@example.com", occurred_at=BASE_TIME)])
    publisher = RecordingPublisher()
    desk = RightsDesk(RequestTracker(runtime.engine), publisher)  # type: ignore[arg-type]
    report = RetentionSweep(CrmRights(runtime.engine), desk).run(BASE_TIME + timedelta(days=365 * 40))
    (command,) = report.commands
    (sweep,) = named(exporter.get_finished_spans(), "retention sweep")
    assert sweep.parent is None and dict(sweep.attributes or {})["leadpipe.commands"] == 1
    (sent,) = [o for o in publisher.sent if o.topic == "rights.commands"]
    assert sent.trace == desk.tracker.trace(command.request_id)
    assert sent.trace is not None and sent.trace[:52] == context_of(sweep)
