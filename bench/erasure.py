"""Time from an erasure request to confirmation by every sink, p50/p99, idle and under ~1,000 events/s of traffic.

The pipeline here is the real worker (faust, real broker): the CRM and HubSpot sink agents (in a process of their
own) and the rights agent (in a worker of its own), against the CRM database (PostgreSQL when
``LEADPIPE_TEST_POSTGRES_URL`` is set, else SQLite) and the fake HubSpot over real HTTP with HubSpot's rate limit
(190 requests / 10 s). Each erasure is issued the way the DPO issues it (``DpoTools.request``: tracker + confirmed
publish) and timed until the tracker records that the suppression topic, the key store, the CRM and HubSpot all
confirmed. The baseline is the same erasures on the idle pipeline, measured in the same run; the loaded phase runs
while a producer thread feeds ``contacts.accepted`` at ``BENCH_RATE`` events/s (sealed records of
``BENCH_SUBJECTS`` other people). It prints what the sinks actually wrote meanwhile, so the load is stated, not
assumed.

Layout: the recommended one (the Helm chart's default), a rights worker of its own; ``BENCH_COMBINED=1`` runs the
rights agent inside the sink worker instead (as ``worker.separateRightsWorker=false`` or ``make demo``'s single
worker do; their processing agents would be idle here, as this bench feeds ``contacts.accepted`` directly).

Bounded: about a minute and a half. Target: p99 under 5 s under load.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration" / "rights")]

from _bench_db import database  # noqa: E402
from fakes.contacts import make_tagged  # noqa: E402
from fakes.hubspot import running_fake  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from rights_helpers import wait_until  # noqa: E402
from worker_thread import WorkerThread  # noqa: E402

from pipeline.agents import rights, sinks  # noqa: E402
from pipeline.agents.worker import Registrar, create_app  # noqa: E402
from pipeline.config import Settings, explicit_settings  # noqa: E402
from pipeline.crm.read import CrmReadModel  # noqa: E402
from pipeline.db import ensure_schema  # noqa: E402
from pipeline.kafka.launcher import LocalKafka  # noqa: E402
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing  # noqa: E402
from pipeline.kafka.topics import apply_topics, delete_prefixed_topics  # noqa: E402
from pipeline.logging import configure_logging  # noqa: E402
from pipeline.models.identity import system_principal  # noqa: E402
from pipeline.models.rights import RightKind  # noqa: E402
from pipeline.rights.dpo import DpoTools  # noqa: E402
from pipeline.rights.tracker import RequestState  # noqa: E402
from pipeline.runtime import Runtime  # noqa: E402

RATE = float(os.environ.get("BENCH_RATE", "1000"))
IDLE_N = int(os.environ.get("BENCH_IDLE_ERASURES", "12"))
LOADED_N = int(os.environ.get("BENCH_LOADED_ERASURES", "40"))
SPACING_S = float(os.environ.get("BENCH_SPACING_S", "0.3"))
SUBJECTS = int(os.environ.get("BENCH_SUBJECTS", "500"))
COMBINED = os.environ.get("BENCH_COMBINED", "") not in ("", "0")
SINK_REGISTRARS: list[Registrar] = [sinks.register]
RIGHTS_REGISTRARS: list[Registrar] = [rights.register]


class Traffic(threading.Thread):
    """Publishes sealed accepted records at a steady rate until stopped (pre-sealed, so sealing is not the limit)."""

    def __init__(self, publisher: ConfirmingPublisher, records: list[Outgoing], rate: float) -> None:
        super().__init__(name="traffic", daemon=True)
        self.publisher, self.records, self.rate = publisher, records, rate
        self.stop_flag = threading.Event()
        self.sent = 0
        self.elapsed = 0.0

    def run(self) -> None:
        tick = 0.05
        per_tick = max(1, round(self.rate * tick))
        start = time.perf_counter()
        i = 0
        while not self.stop_flag.is_set() and i < len(self.records):
            batch = self.records[i : i + per_tick]
            self.publisher.publish(batch)
            i += len(batch)
            self.sent += len(batch)
            delay = start + (self.sent / self.rate) - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        self.elapsed = time.perf_counter() - start


def plain(settings: Settings) -> dict[str, Any]:
    """Settings as plain values for another process (secrets included: it is this benchmark's own)."""
    values = settings.model_dump()
    for name, value in values.items():
        if isinstance(value, SecretStr):
            values[name] = value.get_secret_value()
    return values


def run_sinks(values: dict[str, Any], registrars: list[Registrar], ready: Any, done: Any) -> None:
    """The sink worker in its own process: CRM and HubSpot agents on ``contacts.accepted`` (and the rights agent,
    when the combined layout is measured)."""
    configure_logging("WARNING", "console")
    runtime = Runtime(explicit_settings(**values))
    worker = WorkerThread(create_app(runtime, registrars))
    topics = ["contacts.accepted", *(["rights.commands"] if RIGHTS_REGISTRARS[0] in registrars else [])]
    worker.start(wait_for_topics=tuple(runtime.settings.topic(t) for t in topics))
    ready.set()
    done.wait()
    worker.stop()
    runtime.engine.dispose()


def erase_and_time(tools: DpoTools, email: str) -> float:
    start = time.perf_counter()
    submitted = tools.request(RightKind.ERASURE, by=system_principal("bench"), email=email)
    while True:
        view = tools.get(submitted.command.request_id)
        if view is not None and view.state is RequestState.COMPLETED:
            return time.perf_counter() - start
        if view is not None and view.state is RequestState.ATTENTION:
            raise RuntimeError(f"erasure {view.request_id} failed in a sink: {[(s.sink, s.error) for s in view.sinks]}")
        if time.perf_counter() - start > 60:
            raise RuntimeError("an erasure did not complete within 60 s")
        time.sleep(0.02)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def broker() -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` (``scripts/run-benches.py`` sets it), else the launcher's test broker."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if servers:
        yield servers
        return
    local = LocalKafka.for_tests()
    local.up()
    try:
        yield local.bootstrap_servers
    finally:
        local.release()


def main() -> None:
    configure_logging("WARNING", "console")
    home = Path(tempfile.mkdtemp(prefix="bench-erasure-"))
    with broker() as servers, database(home, "bench_erasure") as database_url, running_fake() as hub:
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        settings = explicit_settings(
            environment="test",
            home=home,
            kafka_bootstrap_servers=servers,
            topic_prefix=prefix,
            topic_partitions=1,
            database_url=database_url,
            subject_key_pepper="bench-pepper",
            key_encryption_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            hubspot_access_token=hub.token,
            hubspot_base_url=hub.url,
            log_level="WARNING",
        )
        apply_topics(settings)
        runtime = Runtime(settings)
        ensure_schema(runtime.engine)
        publisher = ConfirmingPublisher(settings)
        traffic_publisher = ConfirmingPublisher(settings)
        tools = DpoTools(runtime, publisher)
        crm = CrmReadModel(runtime.engine)
        # the rights agent runs in a worker of its own (own consumer): a sink's full buffer pauses fetching for the
        # whole worker it is in, and an erasure must not wait behind a backlog of ordinary traffic
        # (and the sinks run in a process of their own, as they do in production: one GIL per worker)
        # (BENCH_COMBINED=1 measures the other layout: the rights agent inside the sink worker, one process)
        rights_runtime = Runtime(settings.model_copy(update={"app_id": "leadpipe-rights"}))
        rights = None if COMBINED else WorkerThread(create_app(rights_runtime, RIGHTS_REGISTRARS))
        registrars = SINK_REGISTRARS + (RIGHTS_REGISTRARS if COMBINED else [])
        ready = multiprocessing.get_context("spawn").Event()
        done = multiprocessing.get_context("spawn").Event()
        sinks = multiprocessing.get_context("spawn").Process(
            target=run_sinks, args=(plain(settings), registrars, ready, done), name="sinks", daemon=True
        )
        try:
            sinks.start()
            if rights is not None:
                rights.start(wait_for_topics=(settings.topic("rights.commands"),))
            if not ready.wait(90):
                raise RuntimeError("the sink worker did not start")

            # the people to erase, already in the CRM and HubSpot
            targets = [f"erase-{i}@bench.example.com" for i in range(IDLE_N + LOADED_N)]
            events = [
                make_tagged(email, first_name="Erin", last_name=f"Target{i}", pepper=runtime.pepper)
                for i, email in enumerate(targets)
            ]
            publisher.publish(
                Outgoing("contacts.accepted", t.event.subject_key, runtime.codec.seal_accepted(t)) for t in events
            )
            wait_until(lambda: all(hub.contact(e) for e in targets), timeout_s=60, what="targets in HubSpot")

            # background traffic: other people, pre-sealed (their keys created now, cached like a running ingest)
            n_traffic = int(RATE * (LOADED_N * SPACING_S + 30))
            people = [
                make_tagged(
                    f"lead-{i}@traffic.example.org",
                    first_name="Lee",
                    last_name=f"Traffic{i}",
                    pepper=runtime.pepper,
                    expires_in=timedelta(days=365),
                )
                for i in range(SUBJECTS)
            ]
            sealed = [runtime.codec.seal_accepted(p) for p in people]
            records = [
                Outgoing("contacts.accepted", r.subject_key, r.model_copy(update={"event_id": uuid.uuid4()}))
                for i in range(n_traffic)
                for r in (sealed[i % SUBJECTS],)
            ]

            idle = []
            for email in targets[:IDLE_N]:
                idle.append(erase_and_time(tools, email))
                time.sleep(SPACING_S)

            before = crm.interaction_count()
            traffic = Traffic(traffic_publisher, records, RATE)
            traffic.start()
            time.sleep(5)  # let the sinks reach a steady state under the load
            loaded = []
            load_start, count_start = time.perf_counter(), crm.interaction_count()
            for email in targets[IDLE_N:]:
                loaded.append(erase_and_time(tools, email))
                time.sleep(SPACING_S)
            carried = (crm.interaction_count() - count_start) / (time.perf_counter() - load_start)
            traffic.stop_flag.set()
            traffic.join()
            offered = traffic.sent / traffic.elapsed if traffic.elapsed else 0.0
            written = crm.interaction_count() - before
        finally:
            if rights is not None:
                rights.stop()
            done.set()
            sinks.join(30)
            rights_runtime.engine.dispose()
            publisher.close()
            traffic_publisher.close()
            runtime.engine.dispose()
            delete_prefixed_topics(settings)

    load = os.getloadavg()
    layout = "combined (rights agent inside the sink worker)" if COMBINED else "separate rights worker"
    print(f"layout: {layout}")
    print(f"database: {settings.resolved_database_url.split('://')[0]}, HubSpot: fake over HTTP, 190 req/10 s budget")
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) at the end")
    print(
        f"background traffic offered: {offered:,.0f} events/s; written to the CRM while erasing: {carried:,.0f}/s "
        f"({written} events in all)"
    )
    print(
        f"idle    erasures n={len(idle):>3}: p50 {statistics.median(idle):.3f} s  p99 {pct(idle, 0.99):.3f} s  "
        f"max {max(idle):.3f} s"
    )
    print(
        f"loaded  erasures n={len(loaded):>3}: p50 {statistics.median(loaded):.3f} s  p99 {pct(loaded, 0.99):.3f} s  "
        f"max {max(loaded):.3f} s"
    )
    print(
        f"ratio loaded/idle: p50 {statistics.median(loaded) / statistics.median(idle):.2f}  "
        f"p99 {pct(loaded, 0.99) / pct(idle, 0.99):.2f}"
    )
    print(f"target p99 < 5 s under load: {'met' if pct(loaded, 0.99) < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
