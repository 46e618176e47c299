"""The fault suite's system under test and its accounting, all through the product's public interfaces.

- ``PrivatePostgres``: a PostgreSQL cluster of the suite's own (``initdb``/``pg_ctl`` on a free port), so stopping
  it for a scenario leaves the shared one alone.
- ``System``: one scenario's pipeline: ``leadpipe serve`` (signed HTTP ingest, the DPO's requests go through
  ``leadpipe dpo``), one or more ``leadpipe worker`` processes (processing, review, sinks, rights) as real
  subprocesses, the stateful fake HubSpot on 127.0.0.1, a real broker (the shared one, or a private one started
  with the project's launcher).
- ``Load``: signed web-form submissions at a steady rate, recording every request and every accepted event id.
- ``account``: reads the CRM (SQL), the fake HubSpot's state and requests, ``sinks.results`` (read_committed) and
  every dead-letter topic, and says which accepted event is lost, written or evidenced twice, dead-lettered, and
  whether an erased person came back anywhere.

All traffic stays on 127.0.0.1. Sizes come from ``LEADPIPE_FAULTS_EVENTS`` / ``LEADPIPE_FAULTS_RATE`` (CI keeps them
small; a bigger run only needs the variables); ``LEADPIPE_FAULTS_LOG_LEVEL`` sets the workers' log level.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fakes.hubspot import FakeHubSpot
from identity_helpers import key_for

from pipeline.agents.launch import WorkerProcess, worker_env
from pipeline.config import Settings
from pipeline.ingest.api import sign
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.launcher import free_port
from pipeline.models.identity import Role
from pipeline.models.records import DeadLetter
from pipeline.models.rights import SinkResult
from pipeline.normalize import subject_key
from pipeline.topics import DLQ_TOPICS, SINK_RESULTS_TOPIC

LEADPIPE = str(Path(sys.executable).parent / "leadpipe")
SOURCE_ID = "faults-form"
SOURCE_SECRET = "faults-secret-0123456789"
SINKS = ("crm", "hubspot")
UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def events_per_scenario(default: int) -> int:
    return int(os.environ.get("LEADPIPE_FAULTS_EVENTS", default))


def rate_per_s(default: float) -> float:
    return float(os.environ.get("LEADPIPE_FAULTS_RATE", default))


def email_key(email: str, settings: Settings) -> str:
    return subject_key(settings.pepper_bytes(), email=email)


def pg_url(settings: Settings) -> str:
    """The settings' database URL as psycopg takes it."""
    return settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://")


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
        except Exception:  # a component is still coming up (or is the fault): ask again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


# ---- a private PostgreSQL cluster -------------------------------------------------------------------------------


def pg_binary(name: str) -> str:
    """A PostgreSQL server program: on PATH, or Debian's (``/usr/lib/postgresql/<version>/bin``, not on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise FileNotFoundError(f"{name} not found (PATH, /usr/lib/postgresql/*/bin): scripts/ensure-postgres.sh")
    return str(versions[-1])


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` in a directory of its own on a free port; trust authentication on 127.0.0.1 only."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lp-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0  # initdb refuses root: run the cluster as the postgres user

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        return subprocess.run([*prefix, *command], capture_output=True, check=check, timeout=120)

    def init(self) -> PrivatePostgres:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            pg_binary("initdb"), "-D", str(self.data), "-U", "leadpipe", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        return self.start()

    def start(self) -> PrivatePostgres:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            pg_binary("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "pg.log"), "-w", "start"
        )
        return self

    def stop(self) -> None:
        """A fast shutdown: every connection is cut, as when the database host goes away."""
        self._run(pg_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://leadpipe@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"faults_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# ---- the system -------------------------------------------------------------------------------------------------


class ApiProcess:
    """``leadpipe serve`` on a free port, output appended to a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [LEADPIPE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200, 60, "leadpipe serve")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class Sent:
    """One submission as the load generator sent it, and what the API answered."""

    index: int
    email: str
    body: bytes
    headers: dict[str, str]
    at: float
    status: int | None = None
    event_ids: tuple[str, ...] = ()
    error: str | None = None


class Load:
    """Signed web-form submissions (one new person each) at a steady rate, in a thread; records every answer."""

    def __init__(self, api_url: str, tag: str, count: int, rate: float, timeout_s: float = 15.0) -> None:
        self.url = f"{api_url}/v1/sources/{SOURCE_ID}"
        self.tag = tag
        self.count = count
        self.rate = rate
        self.timeout_s = timeout_s
        self.sent: list[Sent] = []
        self._thread = threading.Thread(target=self._run, name="fault-load", daemon=True)
        self.finished_at: float | None = None

    def body(self, index: int) -> tuple[str, bytes]:
        email = f"fault.{self.tag}.{index}@example.com"
        fields = {
            "your-name": f"Ann Fault{index}",
            "your-email": email,
            "your-message": f"Please call me about the data platform, request {index}.",
            "acceptance-marketing": "1",
        }
        return email, urllib.parse.urlencode(fields).encode()

    def post(self, client: httpx.Client, item: Sent) -> Sent:
        try:
            response = client.post(self.url, content=item.body, headers=item.headers, timeout=self.timeout_s)
            item.status = response.status_code
            if response.status_code == 202:
                item.event_ids = tuple(response.json()["event_ids"])
        except httpx.HTTPError as exc:
            item.error = type(exc).__name__
        return item

    def _run(self) -> None:
        started = time.monotonic()
        with httpx.Client() as client:
            for index in range(self.count):
                due = started + index / self.rate
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                email, body = self.body(index)
                headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SOURCE_SECRET, body)}
                self.sent.append(self.post(client, Sent(index, email, body, headers, time.monotonic())))
        self.finished_at = time.monotonic()

    def start(self) -> Load:
        self._thread.start()
        return self

    def join(self, timeout_s: float = 300.0) -> Load:
        self._thread.join(timeout_s)
        return self

    def accepted(self) -> dict[str, Sent]:
        """event id -> the submission it came from (202 answers only)."""
        return {event_id: item for item in self.sent for event_id in item.event_ids}

    def burst(self, count: int, parallel: int = 8) -> list[Sent]:
        """``count`` more submissions at once (``parallel`` at a time): a backlog for the workers right now."""
        first = self.count + len(self.sent)
        items: list[Sent] = []
        for index in range(first, first + count):
            email, body = self.body(index)
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SOURCE_SECRET, body)}
            items.append(Sent(index, email, body, headers, time.monotonic()))
        with httpx.Client() as client, ThreadPoolExecutor(parallel) as pool:
            done = list(pool.map(lambda item: self.post(client, item), items))
        self.sent.extend(done)
        return done

    def replay(self, item: Sent) -> Sent:
        """The same bytes and headers again (a captured request replayed)."""
        with httpx.Client() as client:
            return self.post(client, Sent(item.index, item.email, item.body, dict(item.headers), time.monotonic()))


@dataclass
class Progress:
    """When each sink last wrote more: the CRM's interactions and the fake HubSpot's contacts, polled."""

    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def recovered_after(self, cleared_at: float) -> float | None:
        """Seconds from ``cleared_at`` until both sinks had written more than they had then (0: nothing pending)."""
        before = [s for s in self.samples if s[0] <= cleared_at]
        if not before:
            return None
        _, crm0, hub0 = before[-1]
        crm_at = next((t for t, crm, _ in self.samples if t > cleared_at and crm > crm0), None)
        hub_at = next((t for t, _, hub in self.samples if t > cleared_at and hub > hub0), None)
        if crm_at is None or hub_at is None:
            return None
        return max(crm_at, hub_at) - cleared_at


class System:
    """One scenario's pipeline: API, workers, fake HubSpot, a database of the private cluster, a broker."""

    def __init__(self, settings: Settings, workdir: Path, hubspot: FakeHubSpot, *, workers: int = 1) -> None:
        self.settings = settings
        self.workdir = workdir
        self.hub = hubspot
        self.env = self._env()
        self.api = ApiProcess(self.env, workdir / "api.log")
        self.workers = [
            WorkerProcess(settings, workdir / f"worker-{n}.log", env=dict(self.env)) for n in range(workers)
        ]
        self.progress = Progress()
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None
        self.erased: dict[str, float] = {}  # e-mail -> when its erasure was issued (monotonic)

    def _env(self) -> dict[str, str]:
        s = self.settings
        assert s.hubspot_access_token is not None
        return worker_env(
            s,
            LEADPIPE_LOG_LEVEL=os.environ.get("LEADPIPE_FAULTS_LOG_LEVEL", "INFO"),
            LEADPIPE_SOURCES=json.dumps({SOURCE_ID: {"channel": "web_form", "hmac_secret": SOURCE_SECRET}}),
            LEADPIPE_HUBSPOT_ACCESS_TOKEN=s.hubspot_access_token.get_secret_value(),
            LEADPIPE_HUBSPOT_BASE_URL=s.hubspot_base_url,
            LEADPIPE_HUBSPOT_TIMEOUT_S=str(s.hubspot_timeout_s),
            LEADPIPE_HUBSPOT_BACKOFF_BASE_S=str(s.hubspot_backoff_base_s),
            LEADPIPE_HUBSPOT_BACKOFF_MAX_S=str(s.hubspot_backoff_max_s),
            LEADPIPE_HUBSPOT_MAX_RETRIES=str(s.hubspot_max_retries),
            LEADPIPE_SINK_RETRY_MAX_S=str(s.sink_retry_max_s),
            LEADPIPE_RIGHTS_RETRY_INTERVAL_S=str(s.rights_retry_interval_s),
            LEADPIPE_ADMIN_PORT=str(free_port()),  # /metrics and the docs: a port of this scenario's own
        )

    # -- lifecycle --

    def start(self) -> System:
        self.api.start()
        # the DPO's command line acts as a named person with the DPO role (issue 15): one of this scenario's own
        self.env["LEADPIPE_API_KEY"] = key_for(self.settings, Role.DPO, display_name="Fault Suite DPO")
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            self.wait_ready(worker)
        self._watcher = threading.Thread(target=self._watch, name="fault-progress", daemon=True)
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._watching.set()
        for worker in self.workers:
            worker.stop()
        self.api.stop()

    def _watch(self) -> None:
        url = pg_url(self.settings)
        while not self._watching.wait(0.25):
            try:
                with psycopg.connect(url, connect_timeout=1) as conn:
                    crm = conn.execute("SELECT count(*) FROM crm_interactions").fetchone()
            except psycopg.Error:
                continue  # the database is the fault, or not migrated yet
            self.progress.samples.append((time.monotonic(), int(crm[0]) if crm else 0, len(self.hub.contacts)))

    def wait_ready(self, worker: WorkerProcess, timeout_s: float = 90.0) -> None:
        """Until the worker's latest start has recovered its tables and processes (faust's ``Worker ready``)."""

        def ready() -> bool:
            text = worker.log_path.read_text(errors="replace")
            return "Worker ready" in text.rpartition(f"---- start {worker.starts - 1} ----")[2]

        wait_for(ready, timeout_s, f"{worker.log_path.name} to be ready")

    def log_count(self, text: str) -> int:
        """How often ``text`` occurs in every worker's log (all its starts)."""
        return sum(w.log_path.read_text(errors="replace").count(text) for w in self.workers)

    def log_tails(self, lines: int = 30) -> str:
        """Each worker's exit code and the errors of its last start first (a failure report is often cut short at
        its end), then the tail of its log."""
        parts = []
        for w in self.workers:
            code = None if w.process is None else w.process.poll()
            last_start = w.log_path.read_text(errors="replace").rpartition(f"---- start {w.starts - 1} ----")[2]
            errors = [
                line[:400]
                for line in last_start.splitlines()
                if any(mark in line for mark in ('"level": "error"', '"level": "critical"', "Traceback", "crash"))
            ]
            parts.append(
                f"--- {w.log_path} (exit code {code}; {len(errors)} error lines in its last start, the last 15:)\n"
                + "\n".join(errors[-15:])
                + f"\n--- its last {lines} lines:\n{w.log_tail(lines)}"
            )
        return "\n".join(parts)

    # -- the DPO --

    def erase(self, email: str) -> None:
        """``leadpipe dpo erase`` (the DPO's command line), without waiting for the sinks."""
        self.erased[email] = time.monotonic()
        subprocess.run(
            [LEADPIPE, "dpo", "erase", "--email", email, "--yes"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def erasure_done(self, email: str) -> bool:
        key = email_key(email, self.settings)
        with psycopg.connect(pg_url(self.settings)) as c:
            row = c.execute(
                "SELECT count(*) FROM rights_requests"
                " WHERE subject_key = %s AND kind = 'erasure' AND state = 'completed'",
                (key,),
            ).fetchone()
        return bool(row and row[0])


# ---- the accounting ---------------------------------------------------------------------------------------------


@dataclass
class Accounting:
    """What one scenario's checker found; ``row`` is its line in the README's table."""

    scenario: str
    sent: int
    accepted: int
    lost: list[str]
    duplicated: dict[str, str]
    dead_lettered: list[str]
    resurrected: list[str]
    unconfirmed_written: int
    recover_s: float | None
    drained_s: float | None
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        recover = "-" if self.recover_s is None else f"{self.recover_s:.1f}"
        return (
            f"| {self.scenario} | {self.sent} | {self.accepted} | {len(self.lost)} | {len(self.duplicated)} | "
            f"{len(self.dead_lettered)} | {len(self.resurrected)} | {recover} |"
        )

    def report(self) -> str:
        load = os.getloadavg()
        lines = [
            f"FAULTS {self.scenario}: sent={self.sent} accepted={self.accepted} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)} dead_lettered={len(self.dead_lettered)} "
            f"resurrected={len(self.resurrected)} recover_s={self.recover_s} drained_s={self.drained_s} "
            f"unconfirmed_written={self.unconfirmed_written} load={load[0]:.2f},{load[1]:.2f},{load[2]:.2f}",
            f"FAULTS-ROW {self.row()}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  lost: {e}" for e in self.lost[:10]]
        lines += [f"  duplicated: {e} ({why})" for e, why in list(self.duplicated.items())[:10]]
        lines += [f"  resurrected: {e}" for e in self.resurrected[:10]]
        return "\n".join(lines)

    def assert_clean(self) -> None:
        """Print the report (the README's table comes from these lines), then fail on anything lost, doubled or
        resurrected."""
        print(self.report())
        assert not self.lost, f"{len(self.lost)} accepted events lost:\n{self.report()}"
        assert not self.duplicated, f"{len(self.duplicated)} events written or evidenced twice:\n{self.report()}"
        assert not self.resurrected, f"erased people came back:\n{self.report()}"


@dataclass
class Evidence:
    """Everything the checker reads, once."""

    results: dict[tuple[str, str], list[SinkResult]]
    dead_letters: dict[str, list[DeadLetter]]
    crm_events: Counter[str]
    crm_subjects: dict[str, tuple[Any, ...]]
    hubspot_writes: Counter[str]
    hubspot_emails: set[str]
    result_places: dict[tuple[str, str], list[str]]


def gather(system: System) -> Evidence:
    settings = system.settings
    results: dict[tuple[str, str], list[SinkResult]] = {}
    where: dict[tuple[str, str], list[str]] = {}
    for record in read_to_end(settings, [SINK_RESULTS_TOPIC], timeout_s=60):
        if record.value is not None:
            result = SinkResult.model_validate_json(record.value)
            results.setdefault((str(result.event_id), result.sink), []).append(result)
            where[(str(result.event_id), result.sink)] = [
                *where.get((str(result.event_id), result.sink), []),
                f"p{record.partition}@{record.offset} {result.status.value} {result.at.time()} {result.detail or ''}",
            ]
    dead: dict[str, list[DeadLetter]] = {}
    for record in read_to_end(settings, list(DLQ_TOPICS), timeout_s=60):
        if record.value is not None:
            letter = DeadLetter.model_validate_json(record.value)
            dead.setdefault(str(letter.event_id) if letter.event_id else f"{record.topic}:{record.offset}", []).append(
                letter
            )
    url = pg_url(settings)
    with psycopg.connect(url) as conn:
        crm_events = Counter(str(row[0]) for row in conn.execute("SELECT event_id FROM crm_interactions"))
        subjects = {
            row[0]: tuple(row[1:])
            for row in conn.execute("SELECT subject_key, email, first_name, last_name, erased_at FROM crm_subjects")
        }
    writes: Counter[str] = Counter()
    for call in system.hub.calls("POST", UPSERT):
        if call.status not in (200, 207) or not isinstance(call.body, dict):
            continue
        for item in call.body.get("inputs") or []:
            event_id = (item.get("properties") or {}).get("leadpipe_source_event_id")
            email = str(item.get("id", "")).lower()
            if event_id and email not in system.hub.reject_emails:
                writes[event_id] += 1
    with system.hub.lock:
        emails = set(system.hub.by_email)
    return Evidence(results, dead, crm_events, subjects, writes, emails, where)


def settle(system: System, accepted: dict[str, Sent], timeout_s: float, quiet_s: float = 30.0) -> bool:
    """Wait until every accepted event has a committed result per sink or a dead letter; give up at ``timeout_s``,
    or once nothing new was evidenced for ``quiet_s`` (what is missing then stays missing)."""
    deadline = time.monotonic() + timeout_s
    last_change, seen = time.monotonic(), -1
    wanted = {(event_id, sink) for event_id in accepted for sink in SINKS}
    while True:
        done: set[tuple[str, str]] = set()
        with contextlib.suppress(Exception):  # the broker is the fault, or still coming back
            for record in read_to_end(system.settings, [SINK_RESULTS_TOPIC, *DLQ_TOPICS], timeout_s=30):
                if record.value is None:
                    continue
                if record.topic == SINK_RESULTS_TOPIC:
                    result = SinkResult.model_validate_json(record.value)
                    done.add((str(result.event_id), result.sink))
                else:
                    letter = DeadLetter.model_validate_json(record.value)
                    done.update((str(letter.event_id), sink) for sink in SINKS)
        if wanted <= done:
            return True
        now = time.monotonic()
        if len(done) != seen:
            seen, last_change = len(done), now
        if now > deadline or now - last_change > quiet_s:
            return False
        time.sleep(2.0)


def account(
    scenario: str,
    system: System,
    load: Load,
    *,
    cleared_at: float | None,
    settle_timeout_s: float = 180.0,
    notes: Sequence[str] = (),
) -> Accounting:
    """Wait until every accepted event is accounted for (or the time is up), then check everything."""
    accepted = load.accepted()
    started = time.monotonic()
    settle(system, accepted, settle_timeout_s)
    drained = time.monotonic()
    time.sleep(3.0)  # anything beyond is a duplicate: give it the chance to show up
    evidence = gather(system)
    erased_emails = set(system.erased)
    erased_keys = {email_key(e, system.settings): e for e in erased_emails}

    lost: list[str] = []
    duplicated: dict[str, str] = {}
    dead_lettered: list[str] = []
    for event_id, item in accepted.items():
        letters = evidence.dead_letters.get(event_id, [])
        if letters:
            dead_lettered.append(event_id)
        erased = item.email in erased_emails
        for sink in SINKS:
            found = evidence.results.get((event_id, sink), [])
            if not found and not letters:
                lost.append(f"{event_id} no {sink} result")
            if len(found) > 1:
                duplicated[event_id] = f"{len(found)} {sink} results: {evidence.result_places[(event_id, sink)]}"
        if not erased and not letters:
            if evidence.crm_events[event_id] == 0:
                lost.append(f"{event_id} not in the CRM")
            if item.email not in evidence.hubspot_emails:
                lost.append(f"{event_id} not in HubSpot")
        if evidence.hubspot_writes[event_id] > 1:
            duplicated[event_id] = f"{evidence.hubspot_writes[event_id]} HubSpot upserts"
        if evidence.crm_events[event_id] > 1:
            duplicated[event_id] = f"{evidence.crm_events[event_id]} CRM interactions"

    resurrected: list[str] = []
    for key, email in erased_keys.items():
        subject = evidence.crm_subjects.get(key)
        if subject is not None and any(subject[:3]):
            resurrected.append(f"{email}: personal data in crm_subjects")
        if subject is not None and subject[3] is None:
            resurrected.append(f"{email}: erasure mark cleared in the CRM")
        if email in evidence.hubspot_emails:
            resurrected.append(f"{email}: a HubSpot contact")
    for event_id, item in accepted.items():
        if item.email in erased_emails and evidence.crm_events[event_id]:
            resurrected.append(f"{event_id}: CRM interaction of an erased person")

    if system.api.process is not None and system.api.process.poll() is not None:
        notes = [*notes, f"leadpipe serve exited during the scenario (code {system.api.process.returncode})"]
    answers = Counter(str(item.status or item.error) for item in load.sent)
    notes = [*notes, "answers: " + ", ".join(f"{k} x{n}" for k, n in sorted(answers.items()))]
    confirmed = set(accepted)
    unconfirmed = sum(1 for e in evidence.crm_events if e not in confirmed)
    recover = None if cleared_at is None else system.progress.recovered_after(cleared_at)
    drained_s = None if cleared_at is None else round(drained - max(cleared_at, started), 1)
    return Accounting(
        scenario=scenario,
        sent=len(load.sent),
        accepted=len(accepted),
        lost=lost,
        duplicated=duplicated,
        dead_lettered=dead_lettered,
        resurrected=resurrected,
        unconfirmed_written=unconfirmed,
        recover_s=None if recover is None else round(recover, 1),
        drained_s=drained_s,
        notes=list(notes),
    )


@contextlib.contextmanager
def running(system: System) -> Iterator[System]:
    system.start()
    try:
        yield system
    finally:
        system.stop()


def stop_signal(worker: WorkerProcess, sig: signal.Signals) -> None:
    if worker.process is not None and worker.process.poll() is None:
        worker.process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(60)
    if worker.alive():
        worker.kill()


def pause(worker: WorkerProcess) -> None:
    """SIGSTOP: the process stops answering (heartbeats too) without leaving its group, as in a long pause."""
    if worker.process is not None and worker.process.poll() is None:
        worker.process.send_signal(signal.SIGSTOP)


def resume(worker: WorkerProcess) -> None:
    if worker.process is not None and worker.process.poll() is None:
        worker.process.send_signal(signal.SIGCONT)
