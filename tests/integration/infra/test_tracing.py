"""One submission, one trace: the ingest request, its processing and each sink's write are spans of one connected
trace, carried across the real broker in the records' ``traceparent`` header (issue 21 item 6).

Real parts: the Kafka broker, the faust worker (processing chain and both sink agents), the CRM on SQLite and the
fake HubSpot over HTTP; the spans go to OpenTelemetry's in-memory exporter.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes.hubspot import running_fake
from fastapi.testclient import TestClient
from identity_helpers import key_for
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanKind
from worker_thread import WorkerThread

from pipeline import tracing
from pipeline.agents import processing, rights, sinks
from pipeline.agents.worker import create_app
from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.ingest.api import sign
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.identity import Role
from pipeline.rights.tracker import RequestState, RequestTracker
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "tracing-secret"
#: A caller's own trace context (W3C example ids): the request's span must join it.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def _wait(what: str, check: Callable[[], bool], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_one_submission_is_one_trace_across_api_processing_and_each_sink(
    kafka_settings: Settings, make_settings: Callable[..., Settings], tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    email, first, last = "ines.ferreira@example.org", "Inês", "Ferreira"
    with running_fake(rate_limit=None, search_rate_limit=None) as hub:
        settings = make_settings(
            kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
            topic_prefix=kafka_settings.topic_prefix,
            database_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}",
            hubspot_access_token=hub.token,
            hubspot_base_url=hub.url,
            batch_timeout_s=0.05,
            sources={"site-form": {"channel": "web_form", "hmac_secret": SECRET}},
        )
        runtime = Runtime(settings)
        ensure_schema(runtime.engine)
        publisher = ConfirmingPublisher(settings)
        app = create_app(runtime, [processing.register, sinks.register])
        try:
            with WorkerThread(app).start(
                wait_for_topics=(settings.topic("contacts.normalized"), settings.topic("contacts.accepted"))
            ):
                body = json.dumps(
                    {
                        "email": email,
                        "first_name": first,
                        "last_name": last,
                        "company": "Quartzworks",
                        "message": f"Question about pricing ({uuid.uuid4().hex[:8]})",
                    }
                ).encode()
                headers = {"content-type": "application/json", "traceparent": CALLER, **sign(SECRET, body)}
                response = TestClient(create_api(runtime, publisher)).post(
                    "/v1/sources/site-form", content=body, headers=headers
                )
                assert response.status_code == 202, response.text

                def sink_spans() -> list[ReadableSpan]:
                    return [s for s in exporter.get_finished_spans() if s.name.endswith("contacts.accepted")]

                _wait(
                    "a span from each sink",
                    lambda: (
                        {s.attributes["leadpipe.sink"] for s in sink_spans()}
                        >= {
                            "crm",
                            "hubspot",
                        }
                    ),
                )
                assert hub.contact(email) is not None
                accepted = read_to_end(settings, ["contacts.accepted"])
        finally:
            publisher.close()
            runtime.engine.dispose()

    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    (process,) = [s for s in spans if s.name == f"process {settings.topic('contacts.normalized')}"]
    by_sink = {s.attributes["leadpipe.sink"]: s for s in sink_spans()}
    assert set(by_sink) == {"crm", "hubspot"}

    # one trace, joined to the caller's, and each stage the child of the one before
    assert {format(s.context.trace_id, "032x") for s in spans} == {CALLER_TRACE}
    assert request.name == "POST /v1/sources/{source_id}"
    assert request.parent is not None and format(request.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert process.parent is not None and process.parent.span_id == request.context.span_id
    for sink in by_sink.values():
        assert sink.parent is not None and sink.parent.span_id == process.context.span_id
        assert sink.kind is SpanKind.CONSUMER
        assert sink.attributes["leadpipe.outcome"] == "written"
        assert sink.attributes["messaging.system"] == "kafka"
        assert sink.attributes["messaging.consumer.group.name"] == settings.topic(settings.app_id)
    assert process.attributes["messaging.destination.partition.id"] == str(accepted[0].partition)
    assert request.attributes["http.response.status_code"] == 202

    # the record on contacts.accepted carries the processing span's context, as the sinks read it
    (record,) = accepted
    assert dict(record.headers or [])[tracing.TRACEPARENT] == tracing.traceparent(_as_span(process))

    # no personal data in any attribute or span name
    texts = " ".join([s.name for s in spans] + [str(v) for s in spans for v in (s.attributes or {}).values()])
    for value in (email, first, last, "Quartzworks", "pricing", "ines", "ferreira"):
        assert value.lower() not in texts.lower()


def test_one_rights_request_is_one_trace_from_the_dpo_through_the_rights_worker_to_each_sink_and_its_evidence(
    kafka_settings: Settings, make_settings: Callable[..., Settings], tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    """The DPO's erasure (``POST /v1/dpo/requests``), the rights worker's processing of the command it became, each
    sink's effect, and the evidence each sink left on ``rights.status``: one connected trace (issue 21 item 6)."""
    email, first, last = "joana.matos@example.org", "Joana", "Matos"
    with running_fake(rate_limit=None, search_rate_limit=None) as hub:
        settings = make_settings(
            kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
            topic_prefix=kafka_settings.topic_prefix,
            database_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}",
            hubspot_access_token=hub.token,
            hubspot_base_url=hub.url,
            batch_timeout_s=0.05,
            rights_retry_base_s=0.05,
            sources={"site-form": {"channel": "web_form", "hmac_secret": SECRET}},
        )
        runtime = Runtime(settings)
        ensure_schema(runtime.engine)
        dpo_key = key_for(settings, Role.DPO, "dora")
        publisher = ConfirmingPublisher(settings)
        app = create_app(runtime, [processing.register, sinks.register, rights.register])
        try:
            with WorkerThread(app).start(
                wait_for_topics=(settings.topic("contacts.accepted"), settings.topic("rights.commands"))
            ):
                api = TestClient(create_api(runtime, publisher))
                body = json.dumps({"email": email, "first_name": first, "last_name": last}).encode()
                headers = {"content-type": "application/json", **sign(SECRET, body)}
                assert api.post("/v1/sources/site-form", content=body, headers=headers).status_code == 202
                _wait("HubSpot to hold the person", lambda: hub.contact(email) is not None)
                exporter.clear()  # the contact's own trace is the other test's

                answer = api.post(
                    "/v1/dpo/requests",
                    json={"kind": "erasure", "email": email},
                    headers={"Authorization": f"Bearer {dpo_key}", "traceparent": CALLER},
                )
                assert answer.status_code == 202, answer.text
                request_id = answer.json()["request_id"]
                tracker = RequestTracker(runtime.engine)

                def completed() -> bool:
                    view = tracker.get(uuid.UUID(request_id))
                    return view is not None and view.state is RequestState.COMPLETED

                _wait("the erasure to complete", completed)
                sinks_planned = {s.sink for s in tracker.get(uuid.UUID(request_id)).sinks}  # type: ignore[union-attr]
                _wait(
                    "a span from each sink's effect",
                    lambda: {s.name for s in exporter.get_finished_spans()} >= {f"rights {s}" for s in sinks_planned},
                )
                evidence = [
                    r for r in read_to_end(settings, ["rights.status"]) if request_id.encode() in (r.value or b"")
                ]
                commands = read_to_end(settings, ["rights.commands"])
        finally:
            publisher.close()
            runtime.engine.dispose()

    spans = exporter.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans} == {CALLER_TRACE}  # one trace, the caller's
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == "POST /v1/dpo/requests"
    assert request.attributes["http.response.status_code"] == 202
    (command,) = commands
    assert dict(command.headers or [])[tracing.TRACEPARENT] == tracing.traceparent(_as_span(request))
    (process,) = [s for s in spans if s.name == f"process {settings.topic('rights.commands')}"]
    assert process.parent is not None and process.parent.span_id == request.context.span_id
    assert process.kind is SpanKind.CONSUMER
    assert process.attributes["messaging.consumer.group.name"] == settings.topic(settings.app_id)
    effects = {s.attributes["leadpipe.sink"]: s for s in spans if s.name.startswith("rights ")}
    assert set(effects) == sinks_planned and {"crm", "hubspot", "suppression"} <= sinks_planned
    for sink, span in effects.items():
        assert span.parent is not None and span.parent.span_id == process.context.span_id, sink
        assert span.attributes["leadpipe.right"] == "erasure"
        assert span.attributes["leadpipe.outcome"] in {"done", "not_applicable"}, (sink, span.attributes)
    # each sink's evidence on rights.status carries its effect's span context
    carried = {dict(r.headers or [])[tracing.TRACEPARENT] for r in evidence}
    assert carried == {tracing.traceparent(_as_span(s)) for s in effects.values()}
    assert len(evidence) == len(effects)

    texts = " ".join([s.name for s in spans] + [str(v) for s in spans for v in (s.attributes or {}).values()])
    for value in (email, first, last, "joana", "matos", "example.org"):
        assert value.lower() not in texts.lower()


def _as_span(span: ReadableSpan) -> NonRecordingSpan:
    return NonRecordingSpan(span.context)


def test_tracing_is_off_by_default_and_then_sends_no_header(kafka_settings: Settings) -> None:
    """Without a configured endpoint nothing is traced, and a caller's traceparent is not carried into Kafka."""
    assert kafka_settings.otlp_traces_endpoint is None
    assert tracing.configure(kafka_settings, "leadpipe-test") is False
    assert not tracing.enabled()
    settings = kafka_settings.model_copy(
        update={
            "sources": Settings.model_validate(
                {"sources": {"f": {"channel": "web_form", "hmac_secret": SECRET}}}
            ).sources
        }
    )
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    publisher = ConfirmingPublisher(settings)
    try:
        body = json.dumps({"email": "a.b@example.org", "first_name": "Ana", "last_name": "B"}).encode()
        headers = {"content-type": "application/json", "traceparent": CALLER, **sign(SECRET, body)}
        response = TestClient(create_api(runtime, publisher)).post("/v1/sources/f", content=body, headers=headers)
        assert response.status_code == 202, response.text
    finally:
        publisher.close()
        runtime.engine.dispose()
    records = read_to_end(settings, ["contacts.normalized", "contacts.raw.web_form"])
    assert len(records) == 2
    assert all(not r.headers for r in records)
