"""OpenTelemetry traces across the stages: ingest request -> processing -> each sink, and the DPO's request -> the
rights worker -> each sink's effect and its evidence. Off unless configured.

Off by default: without ``LEADPIPE_OTLP_TRACES_ENDPOINT`` no tracer provider is installed, every span is
OpenTelemetry's no-op and no record gets a header. When configured, spans go to that OTLP/HTTP endpoint in batches.

Context crosses Kafka in the W3C ``traceparent`` record header, following OpenTelemetry's messaging semantic
conventions: a ``process <topic>`` CONSUMER span per record, child of the context the record carries, whose own
context the stage's outputs carry on. Span attributes never hold personal data: topic, partition, offset, consumer
group, channel, sink and outcome only (no keys: a subject key identifies a person).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pipeline.config import Settings

#: The W3C trace-context header, on Kafka records as on HTTP requests.
TRACEPARENT = "traceparent"
MESSAGING_SYSTEM = "kafka"

_propagator = TraceContextTextMapPropagator()
_NOOP = trace.NoOpTracer()
_tracer: trace.Tracer | None = None

Headers = Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None


def configure(settings: Settings, service: str) -> bool:
    """Install the OTLP exporter when ``settings.otlp_traces_endpoint`` is set; whether tracing is on."""
    if not settings.otlp_traces_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415 (only when on)
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint)))
    trace.set_tracer_provider(provider)
    install(provider)
    return True


def install(provider: trace.TracerProvider | None) -> None:
    """Trace through ``provider`` from now on; None turns tracing off (``configure``; tests install an in-memory one,
    which OpenTelemetry's global provider, set once per process, would not allow)."""
    global _tracer  # noqa: PLW0603 (one tracer per process, like OpenTelemetry's own global)
    _tracer = provider.get_tracer("leadpipe") if provider is not None else None


def enabled() -> bool:
    """Whether spans are recorded (a provider was installed): without, no span is made and no header sent."""
    return _tracer is not None


def traceparent(span: Span | None = None) -> bytes | None:
    """The ``traceparent`` of ``span`` (default: the current span), or None when it is not recording."""
    span = span if span is not None else trace.get_current_span()
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    value = carrier.get(TRACEPARENT)
    return value.encode() if value else None


def header_value(headers: Headers) -> bytes | None:
    """The ``traceparent`` a Kafka record carries, if any."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    return next((bytes(v) for k, v in items if k == TRACEPARENT and v), None)


def record_headers(value: bytes | None) -> list[tuple[str, bytes]]:
    """Kafka record headers that carry ``value`` on (none without a trace)."""
    return [(TRACEPARENT, value)] if value else []


def _context(parent: bytes | None) -> Context | None:
    return _propagator.extract({TRACEPARENT: parent.decode("ascii", "replace")}) if parent else None


def start_process(
    topic: str,
    parent: bytes | None,
    *,
    partition: int | None = None,
    offset: int | None = None,
    group: str | None = None,
    start_time: int | None = None,
    **attributes: str,
) -> Span:
    """A ``process <topic>`` CONSUMER span for one record, child of the context it carries (end it when done)."""
    attrs: dict[str, Any] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": topic,
    }
    if partition is not None:
        attrs["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attrs["messaging.kafka.offset"] = offset
    if group is not None:
        attrs["messaging.consumer.group.name"] = group
    attrs.update({f"leadpipe.{name}": value for name, value in attributes.items()})
    return (_tracer or _NOOP).start_span(
        f"process {topic}", context=_context(parent), kind=SpanKind.CONSUMER, attributes=attrs, start_time=start_time
    )


def start_request(method: str, route: str, parent: str | None = None, **attributes: str) -> Span:
    """A SERVER span for one HTTP request (the route template, never the path with its values), child of the
    caller's ``traceparent`` header when it sent one."""
    attrs: dict[str, Any] = {"http.request.method": method, "http.route": route}
    attrs.update({f"leadpipe.{name}": value for name, value in attributes.items()})
    context = _context(parent.encode()) if parent else None
    return (_tracer or _NOOP).start_span(f"{method} {route}", context=context, kind=SpanKind.SERVER, attributes=attrs)


def start_step(name: str, *, parent: bytes | None = None, **attributes: str | int) -> Span:
    """An INTERNAL span for one step of a stage (one sink's effect of a rights request), child of the current span
    (``current``), or of ``parent`` (a stored ``traceparent``: work resumed later, e.g. a retried request); without
    either it starts a trace (a timer's run). ``attributes`` are codes and counts, never a value from a record."""
    attrs: dict[str, Any] = {f"leadpipe.{key}": value for key, value in attributes.items()}
    return (_tracer or _NOOP).start_span(name, context=_context(parent), kind=SpanKind.INTERNAL, attributes=attrs)


@contextmanager
def current(span: Span) -> Iterator[Span]:
    """Make ``span`` the current span inside the block: ``traceparent()`` and ``start_step`` read it, also in work
    handed to ``asyncio.to_thread`` (which copies the context). Neither ends it nor records an exception (its
    message might quote a value): end it with ``end``."""
    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        yield span


def end(span: Span, *, failed: str | None = None, **attributes: str) -> None:
    """End ``span``; ``failed`` is the error's reason code (never a message that might quote a value)."""
    for name, value in attributes.items():
        span.set_attribute(f"leadpipe.{name}", value)
    if failed is not None:
        span.set_attribute("error.type", failed)
        span.set_status(Status(StatusCode.ERROR))
    span.end()


__all__ = [
    "TRACEPARENT",
    "configure",
    "current",
    "enabled",
    "end",
    "header_value",
    "install",
    "record_headers",
    "start_process",
    "start_request",
    "start_step",
    "traceparent",
]
