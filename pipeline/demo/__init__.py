"""``leadpipe demo``: the whole product end to end on embedded defaults, in one command.

Starts (or reuses) the local Kafka broker, applies topics.yaml, migrates the SQLite CRM, starts a worker, sends one
realistic payload per channel (plus spam, a child and a malformed form) through the same ingest path the HTTP API
uses, waits until each one is accounted for (accepted and written by both sinks, quarantined, dropped or
dead-lettered), then carries out an erasure and shows its evidence. HubSpot runs in dry-run mode: what it would have
sent is in a JSONL file. The erasure is issued by a person, the demo's DPO account (``demo-dpo``), whom the tracker
and the audit name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import Settings, get_settings
from pipeline.db import ensure_schema
from pipeline.identity.store import IdentityStore
from pipeline.ingest.service import IngestService, Submission
from pipeline.kafka.consumer import Record, read_until
from pipeline.kafka.launcher import LocalKafka, kafka_answers
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.kafka.topics import apply_topics
from pipeline.logging import configure_logging
from pipeline.models.common import Channel
from pipeline.models.identity import Principal, PrincipalKind, Role, system_principal
from pipeline.models.rights import RightKind
from pipeline.rights.dpo import DpoTools
from pipeline.rights.tracker import RequestState
from pipeline.runtime import Runtime
from pipeline.topics import ACCEPTED_TOPIC, DROPS_TOPIC, PROCESSING_DLQ_TOPIC, QUARANTINE_TOPIC, SINK_RESULTS_TOPIC

#: The person the demo erases: the sender of the packaged demo-request form.
ERASED_EMAIL = "priya.raman@bigcorp.example.co.uk"
#: The DPO account the demo's erasure is issued by.
DEMO_DPO = "demo-dpo"

CONTENT_TYPES = {
    ".txt": "application/x-www-form-urlencoded",
    ".json": "application/json",
    ".eml": "message/rfc822",
    ".csv": "text/csv",
}

#: Where an event can end up after processing, and the outcome shown for it.
OUTCOME_TOPICS = {
    ACCEPTED_TOPIC: "accepted",
    QUARANTINE_TOPIC: "quarantined (spam review)",
    DROPS_TOPIC: "dropped",
    PROCESSING_DLQ_TOPIC: "dead-lettered (processing)",
}


@dataclass
class Sample:
    name: str
    channel: Channel
    raw: bytes
    content_type: str
    event_ids: list[UUID] = field(default_factory=list)
    outcome: str = "pending"
    sinks: set[str] = field(default_factory=set)


def load_samples() -> list[Sample]:
    """The demo payloads packaged under ``pipeline/demo/samples`` (``<channel>--<name>.<ext>``)."""
    samples = []
    for entry in sorted(resources.files("pipeline.demo").joinpath("samples").iterdir(), key=lambda e: e.name):
        stem, suffix = entry.name.rsplit(".", 1)
        channel, name = stem.split("--", 1)
        samples.append(Sample(name, Channel(channel), entry.read_bytes(), CONTENT_TYPES[f".{suffix}"]))
    return samples


def _worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """The faust worker as a child process, logging to a file (its settings come from the same environment)."""
    env = dict(os.environ)
    env["LEADPIPE_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    if settings.topic_partitions:
        env["LEADPIPE_TOPIC_PARTITIONS"] = str(settings.topic_partitions)
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _event_id(record: Record) -> str | None:
    if record.value is None:
        return None
    try:
        value = json.loads(record.value)
    except ValueError:
        return None
    found = value.get("event_id")
    return str(found) if found else None


def run_demo(settings: Settings, console: Console, timeout_s: float, keep_running: bool) -> int:
    """Returns the exit code: 0 when every sample ended where it should and the erasure was confirmed."""
    console.rule("leadpipe demo")
    broker = LocalKafka.from_settings(settings)
    if kafka_answers(settings.kafka_bootstrap_servers):
        console.print(f"Kafka: using the broker at {settings.kafka_bootstrap_servers}")
    else:
        console.print(f"Kafka: starting a local Apache Kafka {settings.kafka_version} (first run downloads its jars)")
        broker.up()
        console.print(f"Kafka: up at {broker.bootstrap_servers}, log {broker.log_file}")
    report = apply_topics(settings)
    console.print(f"Topics: {len(report.created)} created, {len(report.altered)} altered")
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    console.print(f"CRM: {settings.resolved_database_url}")
    settings.home.mkdir(parents=True, exist_ok=True)
    worker_log = settings.home / "demo-worker.log"
    worker = _worker(settings, worker_log)
    console.print(f"Worker: pid {worker.pid}, log {worker_log}")
    try:
        return _exercise(settings, runtime, console, timeout_s)
    finally:
        if not keep_running:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
            if broker.started_here:
                broker.down()


def _exercise(settings: Settings, runtime: Runtime, console: Console, timeout_s: float) -> int:
    samples = load_samples()
    # Event ids derive from the source and the payload: a source id of this run keeps an earlier run's records (on a
    # broker that outlived it) from being taken for this run's outcomes.
    source_id = f"demo-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    service = IngestService(runtime, ConfirmingPublisher(settings))
    rejected = 0
    for sample in samples:
        result = service.submit_many([Submission(source_id, sample.channel, sample.raw, sample.content_type)])[0]
        if result.accepted:
            sample.event_ids = list(result.event_ids)
        else:
            sample.outcome = f"rejected at ingest ({result.reason}), dead-lettered"
            rejected += 1
    by_event = {str(e): s for s in samples for e in s.event_ids}
    console.print(f"Ingest: {len(by_event)} events from {len(samples)} payloads, {rejected} payload(s) rejected")

    outcomes: dict[str, str] = {}
    written: dict[str, dict[str, str]] = {}  # event id -> sink -> status on sinks.results

    def settled(records: list[Record]) -> bool:
        for record in records[len(outcomes_seen) :]:
            outcomes_seen.append(record)
            event_id = _event_id(record)
            if event_id not in by_event:
                continue
            if record.topic in OUTCOME_TOPICS:
                outcomes[event_id] = OUTCOME_TOPICS[record.topic]
            elif record.topic == SINK_RESULTS_TOPIC and record.value:
                result = json.loads(record.value)
                written.setdefault(event_id, {})[result["sink"]] = result["status"]
        accepted = [e for e, o in outcomes.items() if o == "accepted"]
        return len(outcomes) == len(by_event) and all(len(written.get(e, ())) >= 2 for e in accepted)

    outcomes_seen: list[Record] = []
    started = time.monotonic()
    read_until(settings, [*OUTCOME_TOPICS, SINK_RESULTS_TOPIC], settled, timeout_s=timeout_s)
    console.print(f"Processing: every event accounted for in {time.monotonic() - started:.1f}s")

    for event_id, sample in by_event.items():
        sample.outcome = outcomes[event_id]
        sample.sinks |= {
            s if status == "done" else f"{s} ({status})" for s, status in written.get(event_id, {}).items()
        }
    table = Table(title="What happened to each payload")
    for column in ("channel", "payload", "events", "outcome", "written to"):
        table.add_column(column)
    for sample in samples:
        table.add_row(
            sample.channel.value,
            sample.name,
            str(len(sample.event_ids)),
            sample.outcome,
            ", ".join(sorted(sample.sinks)) or "-",
        )
    console.print(table)
    counts = Counter(outcomes.values())
    console.print("Outcomes: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))
    console.print(f"HubSpot (dry run): requests it would have sent are in {settings.resolved_dry_run_file}")
    return _erase_one(settings, runtime, console, timeout_s)


def demo_dpo(settings: Settings, runtime: Runtime) -> Principal:
    """The demo's DPO: a person with the dpo role, created on the first run (the audit names them)."""
    store = IdentityStore(runtime.engine, settings.api_key_pepper_bytes())
    info = store.get(DEMO_DPO)
    if info is None:
        info = store.add_principal(
            DEMO_DPO, display_name="Demo DPO", kind=PrincipalKind.PERSON, roles=[Role.DPO], by=system_principal("demo")
        )
    return info.principal("local")


def _erase_one(settings: Settings, runtime: Runtime, console: Console, timeout_s: float) -> int:
    """The DPO erases the demo-request sender; every sink confirms with evidence, and their data key is destroyed."""
    tools = DpoTools(runtime, ConfirmingPublisher(settings))
    dpo = demo_dpo(settings, runtime)
    submitted = tools.request(RightKind.ERASURE, by=dpo, email=ERASED_EMAIL)
    request_id = submitted.command.request_id
    console.print(
        f"DPO: erasure {request_id} for subject {submitted.command.subject_key} submitted by {dpo.display_name}"
    )
    view = tools.wait(request_id, timeout_s)
    if view is None or view.state is not RequestState.COMPLETED:
        console.print(f"[red]DPO: erasure not confirmed by every sink within {timeout_s}s: {view}[/red]")
        return 1
    table = Table(title=f"Erasure {request_id}: evidence per sink")
    for column in ("sink", "status", "completed by", "evidence"):
        table.add_column(column)
    for sink in view.sinks:
        by = sink.completed_by.display_name if sink.completed_by else "-"
        table.add_row(sink.sink, sink.status.value, by, json.dumps(sink.evidence, default=str)[:200])
    console.print(table)
    assert view.completed_at is not None
    console.print(f"DPO: completed in {(view.completed_at - view.received_at).total_seconds():.2f}s")
    return 0


def demo(
    timeout: float = typer.Option(180.0, help="Seconds to wait for every event to be accounted for."),
    keep_running: bool = typer.Option(False, help="Leave the worker and the broker running afterwards."),
) -> None:
    """Run the whole pipeline end to end on embedded defaults (local Kafka, SQLite CRM, dry-run HubSpot)."""
    settings = get_settings()
    configure_logging("WARNING", settings.log_format)  # the demo's own output is the report; logs stay quiet
    raise typer.Exit(run_demo(settings, Console(), timeout, keep_running))
