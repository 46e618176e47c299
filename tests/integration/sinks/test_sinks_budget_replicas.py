"""One HubSpot token's budget held across replicas: two sink worker processes, each with the share the Helm chart
gives a pod, against a fake HubSpot that enforces the whole budget.

Each worker process limits itself (``pipeline/sinks/hubspot/ratelimit.py``: a per-process sliding window); HubSpot
counts every request made with the token. The chart divides the budget by the pods that call HubSpot (workers,
KEDA's maximum when it scales them, plus the rights workers); here two sink workers saturate their shares and the
fake must never see more than the whole budget in any window, nor answer a single 429.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from fakes.contacts import many_tagged
from fakes.hubspot import FakeHubSpot
from helm_helpers import by_kind, needs_helm, render

from pipeline.agents.launch import WorkerProcess, worker_env
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.kafka.consumer import ReadError, read_until
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.kafka.topics import make_admin
from pipeline.models.rights import SinkResult, SinkStatus
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow, needs_helm, pytest.mark.timeout(300)]

BUDGET, WINDOW_S = 24, 2.0  # the token's budget as the fake enforces it: 24 requests per rolling 2 s
EVENTS = 240
HUBSPOT_BATCH = 4  # inputs per upsert: 60 upserts, several windows' worth of requests for two saturated workers


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot(rate_limit=(BUDGET, WINDOW_S)) as running:
        yield running


def chart_share(replicas: int) -> dict[str, str]:
    """The HubSpot env a worker pod gets from the chart with ``replicas`` workers (and its one rights worker)."""
    docs = render(
        "--set-string",
        f"config.LEADPIPE_HUBSPOT_RATE_LIMIT_REQUESTS={BUDGET}",
        "--set-string",
        f"config.LEADPIPE_HUBSPOT_RATE_LIMIT_WINDOW_S={WINDOW_S}",
        "--set",
        f"worker.replicaCount={replicas}",
    )
    worker = by_kind(docs, "Deployment")["rel-leadpipe-worker"]
    env = {e["name"]: e.get("value") for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    return {k: v for k, v in env.items() if k.startswith("LEADPIPE_HUBSPOT_") and v is not None}


def _members_with_partitions(admin: AdminClient, group: str) -> int:
    try:
        description = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
    except Exception:  # not formed yet, or the coordinator is moving: ask again
        return 0
    return sum(1 for m in description.members if m.assignment and m.assignment.topic_partitions)


def test_two_sink_workers_stay_within_one_tokens_budget(
    make_settings: Callable[..., Settings], kafka_bootstrap: str, fake: FakeHubSpot, tmp_path: Path
) -> None:
    from pipeline.kafka.topics import apply_topics

    share = chart_share(replicas=2)
    per_pod = int(share["LEADPIPE_HUBSPOT_RATE_LIMIT_REQUESTS"])
    assert per_pod * 3 <= BUDGET  # two workers and the rights worker
    settings = make_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_partitions=2,
        app_id=f"lp-budget-{uuid.uuid4().hex[:8]}",
        database_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}",
        batch_size=40,
    )
    apply_topics(settings)
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    records = [runtime.codec.seal_accepted(t) for t in many_tagged(EVENTS)]
    publisher = ConfirmingPublisher(settings)
    publisher.publish(Outgoing("contacts.accepted", r.subject_key, r) for r in records)
    publisher.close()

    extra = {
        **share,
        "LEADPIPE_HUBSPOT_ACCESS_TOKEN": fake.token,
        "LEADPIPE_HUBSPOT_BASE_URL": fake.url,
        "LEADPIPE_HUBSPOT_BATCH_SIZE": str(HUBSPOT_BATCH),
        "LEADPIPE_HUBSPOT_BACKOFF_BASE_S": "0.05",
        "LEADPIPE_SINK_AGENTS": json.dumps(["hubspot"]),
    }
    workers = [
        WorkerProcess(
            settings,
            tmp_path / f"worker-{n}.log",
            registrars=["pipeline.agents.sinks:register"],
            env=worker_env(settings, **extra, LEADPIPE_WORKER_INSTANCE_ID=f"w{n}"),
        )
        for n in range(2)
    ]
    group, admin = settings.topic(settings.app_id), make_admin(settings)
    try:
        for worker in workers:
            worker.start()
        deadline, both = time.monotonic() + 90, False
        while not both and time.monotonic() < deadline:  # both replicas took a partition: both call HubSpot
            both = _members_with_partitions(admin, group) == 2
            time.sleep(0.5)
        assert both, "the two workers never shared the partitions:\n" + workers[1].log_tail()

        def all_written(found: list[object]) -> bool:
            return len(found) >= EVENTS

        try:
            results = read_until(settings, ["sinks.results"], all_written, timeout_s=180)
        except ReadError as exc:  # say what each worker and HubSpot did: a timing flake and a hang read differently
            upserts_seen = sum(1 for r in fake.requests if r.path.endswith("/batch/upsert"))
            tails = "\n".join(f"--- worker {n}:\n{w.log_tail()}" for n, w in enumerate(workers))
            raise AssertionError(
                f"{exc}; HubSpot saw {len(fake.requests)} requests ({upserts_seen} upserts, "
                f"{fake.rate_limited} answered 429)\n{tails}"
            ) from exc
    finally:
        for worker in workers:
            worker.stop()
        runtime.engine.dispose()
    statuses = {SinkResult.model_validate_json(r.value or b"").status for r in results}
    assert statuses == {SinkStatus.DONE}
    upserts = [r for r in fake.requests if r.path.endswith("/batch/upsert")]
    assert len(upserts) >= EVENTS // HUBSPOT_BATCH
    assert fake.rate_limited == 0, f"HubSpot answered 429 {fake.rate_limited} times: the budget was exceeded"
    assert fake.max_in_window(WINDOW_S) <= BUDGET
