"""pipeline.tracing: W3C trace context in and out of Kafka record headers, spans by OpenTelemetry's messaging
conventions, and nothing at all while tracing is off."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pipeline import tracing
from pipeline.config import explicit_settings

PARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_off_by_default_no_span_no_header() -> None:
    settings = explicit_settings(environment="test")
    assert settings.otlp_traces_endpoint is None
    assert tracing.configure(settings, "leadpipe-test") is False
    assert not tracing.enabled()
    span = tracing.start_process("contacts.accepted", None)
    assert not span.is_recording() and tracing.traceparent(span) is None
    assert tracing.record_headers(tracing.traceparent(span)) == []


def test_a_process_span_continues_the_record_s_trace_and_hands_its_own_context_on(
    exporter: InMemorySpanExporter,
) -> None:
    headers = [("other", b"x"), (tracing.TRACEPARENT, PARENT)]
    parent = tracing.header_value(headers)
    assert parent == PARENT and tracing.header_value({tracing.TRACEPARENT: PARENT}) == PARENT
    assert tracing.header_value(None) is None and tracing.header_value([("other", b"x")]) is None

    span = tracing.start_process("p.contacts.accepted", parent, partition=3, offset=41, group="p.leadpipe", sink="crm")
    carried = tracing.traceparent(span)
    tracing.end(span, failed="hubspot_rejected", outcome="failed")

    (done,) = exporter.get_finished_spans()
    assert done.name == "process p.contacts.accepted" and done.kind is SpanKind.CONSUMER
    assert format(done.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert done.parent is not None and format(done.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert dict(done.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "p.contacts.accepted",
        "messaging.destination.partition.id": "3",
        "messaging.kafka.offset": 41,
        "messaging.consumer.group.name": "p.leadpipe",
        "leadpipe.sink": "crm",
        "leadpipe.outcome": "failed",
        "error.type": "hubspot_rejected",
    }
    assert done.status.status_code is StatusCode.ERROR
    assert carried == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{done.context.span_id:016x}-01".encode()
    assert tracing.record_headers(carried) == [(tracing.TRACEPARENT, carried)]


def test_a_record_without_trace_starts_one(exporter: InMemorySpanExporter) -> None:
    tracing.end(tracing.start_process("t", None))
    (done,) = exporter.get_finished_spans()
    assert done.parent is None and done.status.status_code is StatusCode.UNSET
