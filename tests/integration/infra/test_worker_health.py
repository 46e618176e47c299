"""The worker's readiness (``/readyz``) and liveness (``/livez``), served by ``leadpipe worker`` as a subprocess on
the real broker and PostgreSQL (issue 21 item 5): a healthy run stays ready and logs no stall warning; each reason
it is not ready shows on its own (a sink paused with records held uncommitted, the database unavailable, a fenced
producer) while it stays live, and it is ready again once the cause clears, without a restart.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Producer
from fakes.contacts import many_tagged
from fakes.hubspot import FakeHubSpot, Fault
from prometheus_client.parser import text_string_to_metric_families

from pipeline.agents import launch
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.launcher import free_port
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.kafka.topics import apply_topics
from pipeline.models.common import Channel, InteractionKind
from pipeline.models.contact import ContactEvent, Interaction, Person, Provenance
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

#: faust's stall warnings (off: ``BatchingConsumerThread.verify_event_path``).
STALL_WARNINGS = ("Has not committed", "has not started processing", "Stream has not started processing")
PROCESSING = "pipeline.agents.processing:register"
SINKS = "pipeline.agents.sinks:register"


class Worker(launch.WorkerProcess):
    """``leadpipe worker`` with its web server on a free port, probed over HTTP."""

    def __init__(self, settings: Settings, log_path: Path, registrars: list[str], **env: str) -> None:
        self.port = free_port()
        extra = {"LEADPIPE_WORKER_WEB_ENABLED": "true", "LEADPIPE_WORKER_WEB_PORT": str(self.port), **env}
        super().__init__(settings, log_path, registrars, env=launch.worker_env(settings, **extra))

    def probe(self, path: str) -> tuple[int, dict[str, Any]] | None:
        """(status, body) of ``path``; None while the web server does not answer yet."""
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)
        except httpx.TransportError:
            return None
        return answer.status_code, answer.json()

    def wait_probe(
        self, path: str, until: Callable[[int, dict[str, Any]], bool], timeout_s: float = 90, every_s: float = 0.25
    ) -> tuple[int, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        seen: tuple[int, dict[str, Any]] | None = None
        while time.monotonic() < deadline:
            assert self.alive(), self.log_tail()
            seen = self.probe(path)
            if seen is not None and until(*seen):
                return seen
            time.sleep(every_s)
        raise AssertionError(f"{path} never matched; last answer {seen}\n{self.log_tail()}")

    def gauges(self, name: str) -> dict[str, float]:
        """reason -> value of gauge ``name`` on ``/metrics``."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        return {
            sample.labels["reason"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }


def ready(status: int, _body: dict[str, Any]) -> bool:
    return status == 200


def not_ready_for(*reasons: str) -> Callable[[int, dict[str, Any]], bool]:
    return lambda status, body: status == 503 and set(reasons) <= set(body["reasons"])


@pytest.fixture
def settings_for(make_settings: Callable[..., Settings], kafka_bootstrap: str, pg_url: str) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": kafka_bootstrap,
            "database_url": pg_url,
            "batch_timeout_s": 0.1,
            "worker_commit_interval_s": 0.2,
            **overrides,
        }
        settings = make_settings(**values)
        apply_topics(settings)
        ensure_schema(Runtime(settings).engine)
        return settings

    return build


def contacts(runtime: Runtime, count: int) -> list[Outgoing]:
    now = runtime_now()
    events = [
        ContactEvent(
            event_id=uuid.uuid4(),
            channel=Channel.WEB_FORM,
            occurred_at=now,
            received_at=now,
            subject_key=f"sk_health_{uuid.uuid4().hex[:20]}",
            person=Person(first_name="Ann", last_name=f"Tester{i}", email=f"ann.{i}@example.com", company="ACME"),
            interaction=Interaction(kind=InteractionKind.CONTACT_US, message="We would like to talk."),
            provenance=Provenance(source_id="it", ip="198.51.100.7"),
        )
        for i in range(count)
    ]
    return [Outgoing("contacts.normalized", e.subject_key, runtime.codec.seal_contact(e)) for e in events]


def runtime_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def publish(settings: Settings, items: list[Outgoing]) -> None:
    publisher = ConfirmingPublisher(settings)
    publisher.publish(items)
    publisher.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def test_a_healthy_run_stays_ready_and_live_and_logs_no_stall_warning(
    settings_for: Callable[..., Settings], tmp_path: Path, workers: list[Worker]
) -> None:
    settings = settings_for(sink_agents=("crm",))
    runtime = Runtime(settings)
    worker = Worker(
        settings,
        tmp_path / "worker.log",
        [PROCESSING, SINKS],
        # bounds far below the defaults (a cold start on a busy 2-core machine takes a few seconds), and faust's
        # own stall checks after 3 s instead of 5 min: a false alarm would show
        LEADPIPE_SINK_AGENTS=json.dumps(["crm"]),
        LEADPIPE_WORKER_READY_UNCOMMITTED_MAX_S="10",
        LEADPIPE_WORKER_READY_SINK_PAUSE_MAX_S="10",
        STREAM_PROCESSING_TIMEOUT="3",
        BROKER_COMMIT_LIVELOCK_SOFT_TIMEOUT="3",
    )
    workers.append(worker.start())
    worker.wait_probe("/readyz", ready)
    answers: list[tuple[str, int, dict[str, Any]]] = []

    def probe_both() -> None:
        for path in ("/readyz", "/livez"):
            seen = worker.probe(path)
            assert seen is not None, worker.log_tail()
            answers.append((path, *seen))
        time.sleep(0.5)

    total = 0
    for _ in range(6):  # 300 events over about 12 s, probed throughout
        publish(settings, contacts(runtime, 50))
        total += 50
        for _ in range(4):
            probe_both()
    deadline = time.monotonic() + 90
    while len([r for r in read_to_end(settings, ["sinks.results"])]) < total:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    for _ in range(24):  # idle past every bound: still ready
        probe_both()
    failed = [a for a in answers if a[1] != 200]
    assert not failed, failed[:3]
    assert set(worker.gauges("leadpipe_worker_not_ready").values()) == {0.0}
    assert set(worker.gauges("leadpipe_worker_not_live").values()) == {0.0}
    log = worker.log_path.read_text(errors="replace")
    stalls = [line for line in log.splitlines() if any(w in line for w in STALL_WARNINGS)]
    assert not stalls, f"{len(stalls)} stall warnings in a healthy run, first: {stalls[0]}"


def test_a_sink_paused_past_its_bound_holding_records_uncommitted_is_not_ready_but_live(
    settings_for: Callable[..., Settings], tmp_path: Path, workers: list[Worker]
) -> None:
    with FakeHubSpot() as hub:
        settings = settings_for(
            sink_agents=("hubspot",),
            hubspot_access_token=hub.token,
            hubspot_base_url=hub.url,
        )
        worker = Worker(
            settings,
            tmp_path / "worker.log",
            [SINKS],
            LEADPIPE_SINK_AGENTS=json.dumps(["hubspot"]),
            LEADPIPE_HUBSPOT_ACCESS_TOKEN=hub.token,
            LEADPIPE_HUBSPOT_BASE_URL=hub.url,
            LEADPIPE_HUBSPOT_MAX_RETRIES="1",
            LEADPIPE_HUBSPOT_BACKOFF_BASE_S="0.05",
            LEADPIPE_HUBSPOT_BACKOFF_MAX_S="0.1",
            LEADPIPE_SINK_RETRY_MAX_S="0.5",
            LEADPIPE_WORKER_READY_UNCOMMITTED_MAX_S="3",
            LEADPIPE_WORKER_READY_SINK_PAUSE_MAX_S="3",
        )
        workers.append(worker.start())
        worker.wait_probe("/readyz", ready)
        runtime = Runtime(settings)
        hub.inject(Fault.server_error(times=1_000_000, status=503))  # HubSpot down
        records = [runtime.codec.seal_accepted(t) for t in many_tagged(20)]
        publish(settings, [Outgoing("contacts.accepted", r.subject_key, r) for r in records])
        _, body = worker.wait_probe("/readyz", not_ready_for("sink_paused", "uncommitted"))
        assert "sink:hubspot" in body["reasons"]["sink_paused"]
        assert "contacts.accepted" in body["reasons"]["uncommitted"]
        assert "@" not in json.dumps(body)  # names and numbers only
        assert worker.probe("/livez") == (200, {"status": "live", "reasons": {}})  # a restart would not fix HubSpot
        gauges = worker.gauges("leadpipe_worker_not_ready")
        assert gauges["sink_paused"] == 1.0
        assert gauges["uncommitted"] == 1.0
        assert gauges["database"] == 0.0
        hub.faults.clear()  # HubSpot is back: the batch goes through and the worker is ready by itself
        worker.wait_probe("/readyz", ready)
        assert len(hub.contacts) == 20


def test_the_database_unavailable_is_not_ready_but_live_until_it_answers_again(
    settings_for: Callable[..., Settings], tmp_path: Path, workers: list[Worker], pg_url: str, pg_admin_url: str
) -> None:
    settings = settings_for()
    runtime = Runtime(settings)
    worker = Worker(settings, tmp_path / "worker.log", [PROCESSING])
    workers.append(worker.start())
    worker.wait_probe("/readyz", ready)
    events = contacts(runtime, 5)  # sealed while the key store answers
    database = pg_url.rpartition("/")[2]
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:  # no new connections, every open one cut
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
    try:
        publish(settings, events)  # the key store cannot be read: the batch is retried (RetryBatch)
        worker.wait_probe("/readyz", not_ready_for("database"))
        worker.wait_probe("/readyz", lambda _s, b: "retrying" in b["reasons"].get("database", ""))
        assert worker.probe("/livez") == (200, {"status": "live", "reasons": {}})  # a restart would not fix it
        assert worker.gauges("leadpipe_worker_not_ready")["database"] == 1.0
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
    worker.wait_probe("/readyz", ready)  # the retried batch went through; nothing restarted
    deadline = time.monotonic() + 60
    while len(read_to_end(settings, ["contacts.accepted"])) < 5:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    assert worker.starts == 1 and worker.alive()


def test_a_fenced_producer_is_not_ready_until_the_worker_rejoined(
    settings_for: Callable[..., Settings], tmp_path: Path, workers: list[Worker]
) -> None:
    settings = settings_for()
    runtime = Runtime(settings)
    worker = Worker(settings, tmp_path / "worker.log", [PROCESSING])
    workers.append(worker.start())
    worker.wait_probe("/readyz", ready)
    publish(settings, contacts(runtime, 5))
    deadline = time.monotonic() + 60
    while len(read_to_end(settings, ["contacts.accepted"])) < 5:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    # Another producer takes the worker's transactional ids (faust's "{group}-{topic group}-{partition}"): the
    # worker's next transaction is fenced by the broker.
    group = settings.topic(settings.app_id)
    for topic_group in range(8):
        thief = Producer(
            {"bootstrap.servers": settings.kafka_bootstrap_servers, "transactional.id": f"{group}-{topic_group}-0"}
        )
        thief.init_transactions(10)
    publish(settings, contacts(runtime, 5))
    _, body = worker.wait_probe("/readyz", not_ready_for("fenced"), timeout_s=60, every_s=0.05)
    assert "fenced" in body["reasons"]["fenced"]
    worker.wait_probe("/readyz", ready)  # rejoined with new producers, by itself
    while len(read_to_end(settings, ["contacts.accepted"])) < 10:
        assert time.monotonic() < deadline + 60, worker.log_tail()
        time.sleep(0.5)
    assert worker.starts == 1 and worker.alive()
    log = worker.log_path.read_text(errors="replace")
    assert "producer_fenced_rejoining" in log
    # The dropped producer's pending futures are retrieved: no asyncio "never retrieved" error (a false alarm).
    assert "Future exception was never retrieved" not in log, worker.log_tail()
