"""``leadpipe demo``: the whole product end to end on embedded defaults, in one command.

Starts (or reuses) the local Kafka broker, applies topics.yaml, migrates the SQLite CRM, starts a worker, sends one
realistic payload per channel (plus spam, a child and a malformed form) through the same ingest path the HTTP API
uses, waits until each one is accounted for (accepted and written by both sinks, quarantined, dropped or
dead-lettered), then carries out an erasure and shows its evidence. HubSpot runs in dry-run mode: what it would have
sent is in a JSONL file. The erasure is issued by a person, the demo's DPO account (``demo-dpo``), whom the tracker
and the audit name.

Every run starts clean: its topics carry a prefix of their own (``demo-<run>.``), and its CRM, HubSpot dry-run file
and logs live under ``<home>/demo/<run>/``; an earlier run's topics and files are deleted when the next one starts,
so its spam item and dead letter are not queued again. The last run stays for inspection until then. The report is
the command's output; the log lines (this process's and the worker's) go to files in the run's directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import Settings, get_settings
from pipeline.db import ensure_schema
from pipeline.demo.console import serve_console
from pipeline.identity.bootstrap import write_secret_file
from pipeline.identity.store import IdentityStore
from pipeline.ingest.service import IngestService, Submission
from pipeline.kafka.consumer import Record, read_until
from pipeline.kafka.launcher import KafkaLaunchError, LocalKafka, kafka_answers
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.kafka.topics import apply_topics, delete_prefixed_topics, make_admin
from pipeline.logging import configure_logging
from pipeline.models.common import Channel
from pipeline.models.identity import Principal, PrincipalKind, Role, system_principal
from pipeline.models.rights import RightKind
from pipeline.rights.dpo import DpoTools
from pipeline.rights.tracker import RequestState
from pipeline.runtime import Runtime
from pipeline.spam.launcher import LocalSpamEngine, SpamEngineLaunchError
from pipeline.topics import ACCEPTED_TOPIC, DROPS_TOPIC, PROCESSING_DLQ_TOPIC, QUARANTINE_TOPIC, SINK_RESULTS_TOPIC

#: The sample whose sender the demo erases (channel, payload name): the packaged HubSpot demo-request form.
ERASED_SAMPLE = (Channel.WEB_FORM, "demo_request")
#: Runs' topic prefixes are ``<LEADPIPE_TOPIC_PREFIX>demo-<run>.``; their files are under ``<home>/demo/<run>/``.
RUN_PREFIX = "demo-"

#: What a sink's ``not_applicable`` means for the reasons a demo event can have, for the legend under the table.
NOT_APPLICABLE_HELP = "not applicable = the sink had nothing to do for the event, which is not a failure"

#: What the demo does after the erasure, while the worker and the broker still run (the console,
#: ``pipeline.demo.console``): gets the run's settings and the console, returns the exit code.
Then = Callable[[Settings, Console], int]
#: The DPO account the demo's erasure is issued by.
DEMO_DPO = "demo-dpo"
#: The account of the commands the demo prints for looking around its run, and the file its key is in.
DEMO_OPERATOR = "demo-operator"
OPERATOR_KEY_FILE = "operator-key"

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
    #: sink -> event id -> (status, detail) from sinks.results
    sinks: dict[str, dict[str, tuple[str, str | None]]] = field(default_factory=dict)
    #: who the sample is about (its first event's person): shown by the demo, the sample being its own fixture
    person: tuple[str | None, str] | None = None

    @property
    def label(self) -> str:
        return f"{self.channel.value}/{self.name}"

    def written_to(self, notes: dict[str, str]) -> str:
        """Per sink: written, or how many events were not, why in a numbered note (``notes``: reason -> mark)."""
        parts = []
        for sink, results in sorted(self.sinks.items()):
            done = sum(status == "done" for status, _ in results.values())
            others = Counter((status, detail) for status, detail in results.values() if status != "done")
            if not others:
                parts.append(sink)
                continue
            text = f"{sink}: {done} written" if done else sink
            for (status, detail), count in sorted(others.items(), key=str):
                code, _, why = (detail or "").partition(": ")
                said = status.replace("_", " ")
                mark = notes.setdefault(f"{said}, {code}: {why or code}", f"[{len(notes) + 1}]")
                text += f", {count} {said} {mark}" if done else f" {said} {mark}"
            parts.append(text)
        return "; ".join(parts) or "-"


def load_samples() -> list[Sample]:
    """The demo payloads packaged under ``pipeline/demo/samples`` (``<channel>--<name>.<ext>``)."""
    samples = []
    for entry in sorted(resources.files("pipeline.demo").joinpath("samples").iterdir(), key=lambda e: e.name):
        stem, suffix = entry.name.rsplit(".", 1)
        channel, name = stem.split("--", 1)
        samples.append(Sample(name, Channel(channel), entry.read_bytes(), CONTENT_TYPES[f".{suffix}"]))
    return samples


@dataclass(frozen=True)
class DemoRun:
    """One run's own state: its topic prefix, and a directory with its CRM, HubSpot dry-run file and logs."""

    run_id: str
    settings: Settings
    directory: Path

    @classmethod
    def new(cls, base: Settings) -> DemoRun:
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")[:-3]
        directory = base.home / "demo" / run_id
        metrics_port = _free_port()  # the worker's /metrics, which the console's charts read
        settings = base.model_copy(
            update={
                "topic_prefix": f"{base.topic_prefix}{RUN_PREFIX}{run_id}.",
                "database_url": f"sqlite:///{directory / 'crm.sqlite3'}",
                "hubspot_dry_run_file": directory / "hubspot-dry-run.jsonl",
                "rights_exports_dir": directory / "exports",
                "worker_web_enabled": True,
                "worker_web_port": metrics_port,
                "console_metrics_urls": [f"http://127.0.0.1:{metrics_port}/metrics"],
            }
        )
        return cls(run_id, settings, directory)


def _free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def forget_earlier_runs(base: Settings, run: DemoRun) -> int:
    """Delete every earlier run's topics and directory; how many runs that was."""
    earlier_prefix = f"{base.topic_prefix}{RUN_PREFIX}"
    names = make_admin(base).list_topics(timeout=10).topics
    prefixes = {
        name[: name.index(".", len(earlier_prefix)) + 1]
        for name in names
        if name.startswith(earlier_prefix) and "." in name[len(earlier_prefix) :]
    }
    prefixes.discard(run.settings.topic_prefix)
    for prefix in sorted(prefixes):
        delete_prefixed_topics(base.model_copy(update={"topic_prefix": prefix}))
    runs = {prefix.removeprefix(earlier_prefix).rstrip(".") for prefix in prefixes}
    demo_home = base.home / "demo"
    for directory in demo_home.iterdir() if demo_home.is_dir() else ():
        if directory.is_dir() and directory != run.directory:
            runs.add(directory.name)
            shutil.rmtree(directory, ignore_errors=True)
    return len(runs)


def _worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """The faust worker as a child process on the run's settings, logging JSON to a file."""
    env = dict(os.environ)
    env["LEADPIPE_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    env["LEADPIPE_TOPIC_PREFIX"] = settings.topic_prefix
    env["LEADPIPE_DATABASE_URL"] = settings.resolved_database_url
    env["LEADPIPE_HUBSPOT_DRY_RUN_FILE"] = str(settings.resolved_dry_run_file)
    env["LEADPIPE_RIGHTS_EXPORTS_DIR"] = str(settings.resolved_exports_dir)
    env["LEADPIPE_LOG_FORMAT"] = "json"
    env["LEADPIPE_WORKER_WEB_ENABLED"] = str(settings.worker_web_enabled).lower()
    env["LEADPIPE_WORKER_WEB_PORT"] = str(settings.worker_web_port)
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


def run_demo(
    settings: Settings, console: Console, timeout_s: float, keep_running: bool, then: Then | None = None
) -> int:
    """Returns the exit code: 0 when every sample ended where it should and the erasure was confirmed.

    ``then`` runs after the erasure on the run's settings, with the worker and the broker still up.
    """
    console.rule("leadpipe demo")
    run = DemoRun.new(settings)
    run.directory.mkdir(parents=True, exist_ok=True)
    with (run.directory / "demo.log").open("a") as log_file:
        # the report is the output: log lines (librdkafka's too) go to the run's file, never between its lines
        configure_logging("INFO", "json", stream=log_file)
        try:
            return _run(run, settings, console, timeout_s, keep_running=keep_running, then=then)
        finally:
            configure_logging(settings.log_level, settings.log_format)


def _run(
    run: DemoRun, settings: Settings, console: Console, timeout_s: float, *, keep_running: bool, then: Then | None
) -> int:
    broker = LocalKafka.from_settings(settings)
    try:
        if kafka_answers(settings.kafka_bootstrap_servers):
            console.print(f"Kafka: using the broker at {settings.kafka_bootstrap_servers}")
        else:
            version = settings.kafka_version
            console.print(f"Kafka: starting a local Apache Kafka {version} (first run downloads its jars)")
            broker.up()
            console.print(f"Kafka: up at {broker.bootstrap_servers}, log {broker.log_file}")
        spam_engine = LocalSpamEngine.from_settings(settings) if settings.spam_engine_enabled else None
        if spam_engine is not None:
            console.print("Spam engine: starting rspamd + Redis (first start compiles its rules, ~10-30 s)")
            console.print(f"Spam engine: {spam_engine.up()}")
    except (KafkaLaunchError, SpamEngineLaunchError) as exc:  # what is missing and what to do: no traceback
        console.print(f"The demo cannot start: {exc}", style="red", markup=False, highlight=False)
        if broker.started_here:
            broker.down()
        return 1
    earlier = forget_earlier_runs(settings, run)
    console.print(
        f"This run: topics {run.settings.topic_prefix}*, files in {run.directory}; "
        + (f"{earlier} earlier run(s) deleted, nothing carries over" if earlier else "nothing from earlier runs")
    )
    report = apply_topics(run.settings)
    console.print(f"Topics: {len(report.created)} created, {len(report.altered)} altered")
    runtime = Runtime(run.settings)
    ensure_schema(runtime.engine)
    console.print(f"CRM: {run.settings.resolved_database_url}")
    key_file = operator_key(run.settings, runtime, run.directory)
    worker_log = run.directory / "worker.log"
    worker = _worker(run.settings, worker_log)
    console.print(f"Worker: pid {worker.pid}, log {worker_log}")
    publisher = ConfirmingPublisher(run.settings)
    try:
        code = _exercise(run.settings, runtime, publisher, console, timeout_s)
        if code == 0 and then is not None:
            code = then(run.settings, console)
        return code
    finally:
        publisher.close()
        console.print(f"Logs: {run.directory / 'demo.log'} (this command), {worker_log} (the worker)")
        look = f"LEADPIPE_TOPIC_PREFIX={run.settings.topic_prefix} LEADPIPE_DATABASE_URL={run.settings.database_url}"
        up = "" if keep_running or not broker.started_here else "`leadpipe kafka up`, then "
        console.print(
            f"To look around this run: {up}{look} leadpipe --key-file {key_file} spam review list "
            "(or dlq list, crm search ...)"
        )
        if not keep_running:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
            if broker.started_here:
                broker.down()
            if spam_engine is not None and spam_engine.started_here:
                spam_engine.release()


def _exercise(
    settings: Settings, runtime: Runtime, publisher: ConfirmingPublisher, console: Console, timeout_s: float
) -> int:
    samples = load_samples()
    source_id = "demo"  # the run's own topics: event ids may repeat across runs without meeting
    service = IngestService(runtime, publisher)
    rejected = 0
    for sample in samples:
        result = service.submit_many([Submission(source_id, sample.channel, sample.raw, sample.content_type)])[0]
        if result.accepted:
            sample.event_ids = list(result.event_ids)
            person = result.events[0].person
            name = " ".join(p for p in (person.first_name, person.last_name) if p) or "(no name)"
            sample.person = (person.email, name)
        else:
            sample.outcome = f"rejected at ingest ({result.reason}), dead-lettered"
            rejected += 1
    by_event = {str(e): s for s in samples for e in s.event_ids}
    console.print(f"Ingest: {len(by_event)} events from {len(samples)} payloads, {rejected} payload(s) rejected")

    outcomes: dict[str, str] = {}
    written: dict[str, dict[str, tuple[str, str | None]]] = {}  # event id -> sink -> (status, detail)

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
                written.setdefault(event_id, {})[result["sink"]] = (result["status"], result.get("detail"))
        accepted = [e for e, o in outcomes.items() if o == "accepted"]
        return len(outcomes) == len(by_event) and all(len(written.get(e, ())) >= 2 for e in accepted)

    outcomes_seen: list[Record] = []
    started = time.monotonic()
    read_until(settings, [*OUTCOME_TOPICS, SINK_RESULTS_TOPIC], settled, timeout_s=timeout_s)
    console.print(f"Processing: every event accounted for in {time.monotonic() - started:.1f}s")

    for event_id, sample in by_event.items():
        sample.outcome = outcomes[event_id]
        for sink, status in written.get(event_id, {}).items():
            sample.sinks.setdefault(sink, {})[event_id] = status
    notes: dict[str, str] = {}
    table = Table(title="What happened to each payload")
    for column in ("channel", "payload", "events", "outcome", "written to"):
        table.add_column(column)
    for sample in samples:
        table.add_row(
            sample.channel.value,
            sample.name,
            str(len(sample.event_ids)),
            sample.outcome,
            sample.written_to(notes),
        )
    console.print(table)
    for text, mark in notes.items():
        help_ = f" ({NOT_APPLICABLE_HELP})" if text.startswith("not applicable") else ""
        console.print(f"{mark} {text}{help_}")
    counts = Counter(outcomes.values())
    console.print("Outcomes: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())))
    console.print(f"HubSpot (dry run): requests it would have sent are in {settings.resolved_dry_run_file}")
    erased = next(s for s in samples if (s.channel, s.name) == ERASED_SAMPLE)
    return _erase_one(runtime, publisher, console, timeout_s, erased)


def operator_key(settings: Settings, runtime: Runtime, directory: Path) -> Path:
    """An API key of the demo's operator in the run's directory (mode 0600), for the commands the demo prints to look
    around its run: on the run's database (a database URL) a command needs a key (docs/identity.md). The operator
    holds what those commands need: the reviewer's queue, the DPO's CRM and requests, the admin's dead letters."""
    store = IdentityStore(runtime.engine, settings.api_key_pepper_bytes())
    by = system_principal("demo")
    if store.get(DEMO_OPERATOR) is None:
        store.add_principal(
            DEMO_OPERATOR,
            display_name="Demo operator",
            kind=PrincipalKind.PERSON,
            roles=[Role.REVIEWER, Role.DPO, Role.ADMIN],
            by=by,
        )
    created = store.create_key(DEMO_OPERATOR, by=by, label="the demo's look-around", expires_in=timedelta(days=7))
    path = directory / OPERATOR_KEY_FILE
    write_secret_file(path, created.secret)
    return path


def demo_dpo(settings: Settings, runtime: Runtime) -> Principal:
    """The demo's DPO: a person with the dpo role, created on the first run (the audit names them)."""
    store = IdentityStore(runtime.engine, settings.api_key_pepper_bytes())
    info = store.get(DEMO_DPO)
    if info is None:
        info = store.add_principal(
            DEMO_DPO, display_name="Demo DPO", kind=PrincipalKind.PERSON, roles=[Role.DPO], by=system_principal("demo")
        )
    return info.principal("local")


def _evidence(evidence: dict[str, Any]) -> str:
    """A sink's evidence as a line a person reads: HubSpot's contacts by what happened to them."""
    parts = []
    for key, value in evidence.items():
        if key == "contacts" and isinstance(value, list):
            parts += [str(c.get("result") or json.dumps(c)) if isinstance(c, dict) else str(c) for c in value]
        elif isinstance(value, dict | list):
            parts.append(f"{key}: {json.dumps(value, default=str)}")
        else:
            parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _erase_one(
    runtime: Runtime, publisher: ConfirmingPublisher, console: Console, timeout_s: float, sample: Sample
) -> int:
    """The DPO erases the person the sample is about; every sink confirms with evidence, their data key is destroyed,
    and the HubSpot dry-run file no longer names them."""
    email, name = sample.person or (None, "")
    if email is None:
        raise ValueError(f"the erased sample {sample.label} names no e-mail address")
    settings = runtime.settings
    dry_run = settings.resolved_dry_run_file
    before = _naming(dry_run, email)
    tools = DpoTools(runtime, publisher)
    dpo = demo_dpo(settings, runtime)
    submitted = tools.request(RightKind.ERASURE, by=dpo, email=email)
    request_id = submitted.command.request_id
    console.print(
        f"{dpo.display_name}: erasing the person of sample {sample.label} ({name}): request {request_id}, "
        f"subject {submitted.command.subject_key}"
    )
    view = tools.wait(request_id, timeout_s)
    if view is None or view.state is not RequestState.COMPLETED:
        console.print(f"[red]DPO: erasure not confirmed by every sink within {timeout_s}s: {view}[/red]")
        return 1
    table = Table(title=f"Erasure of {name} ({sample.label}): evidence per sink")
    for column in ("sink", "status", "completed by", "evidence"):
        table.add_column(column)
    for sink in view.sinks:
        by = sink.completed_by.display_name if sink.completed_by else "-"
        table.add_row(sink.sink, sink.status.value.replace("_", " "), by, _evidence(sink.evidence))
    console.print(table)
    after = _naming(dry_run, email)
    console.print(
        f"HubSpot dry-run file: {before} request(s) named {name} before the erasure, {after} after"
        + ("" if after else " (rewritten without them)")
    )
    assert view.completed_at is not None
    console.print(f"DPO: completed in {(view.completed_at - view.received_at).total_seconds():.2f}s")
    return 0 if after == 0 else 1


def _naming(path: Path, email: str) -> int:
    """Lines of a file that name ``email`` (case-insensitive)."""
    if not path.exists():
        return 0
    needle = email.lower().encode()
    return sum(needle in line.lower() for line in path.read_bytes().splitlines())


def demo(
    timeout: float = typer.Option(180.0, help="Seconds to wait for every event to be accounted for."),
    keep_running: bool = typer.Option(False, help="Leave the worker and the broker running afterwards."),
    serve: bool = typer.Option(
        True,
        "--serve/--no-serve",
        envvar="LEADPIPE_DEMO_SERVE",
        help="Then serve the console on the demo's data, with a sign-in link per role, until Ctrl-C "
        "(--no-serve or LEADPIPE_DEMO_SERVE=false: exit once the erasure is confirmed, as CI does).",
    ),
    host: str = typer.Option("127.0.0.1", help="Where the console listens (with --serve)."),
    port: int = typer.Option(8000, envvar="LEADPIPE_DEMO_PORT", help="The console's port (with --serve)."),
) -> None:
    """Run the whole pipeline end to end on embedded defaults (local Kafka, SQLite CRM, dry-run HubSpot), then
    serve the console on its data until Ctrl-C.

    Each run starts clean (its own topics and files); the previous run's are deleted when the next one starts.

    Example: leadpipe demo --no-serve
    """
    then: Then | None = None
    if serve:

        def then(settings: Settings, console: Console) -> int:
            return serve_console(settings, console, host, port)

    with terminated_like_interrupted():
        code = run_demo(get_settings(), Console(), timeout, keep_running, then=then)
    raise typer.Exit(code)


@contextmanager
def terminated_like_interrupted() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, a service manager) ends the demo the way Ctrl-C does: through its clean-up,
    which stops the worker it started (in a session of its own: no signal to the demo reaches it) and the broker.
    Without it the process died at once, and the worker ran on."""

    def leave(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
