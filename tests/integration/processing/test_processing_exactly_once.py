"""Exactly-once under SIGKILL: the worker is killed at random points while events flow, restarted, killed again;
at the end every event id is on exactly one output topic exactly once (read_committed), and every unreadable
record has exactly one dead letter.

Three input partitions (three transactional producers), static group membership (a restarted worker takes its
place without waiting for the session timeout), events published throughout the kills.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processing_harness import OUTPUT_TOPICS, WorkerProcess, contact, publish_raw

from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.kafka.consumer import Record, read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.contact import ContactEvent
from pipeline.models.processing import DropRecord
from pipeline.models.records import AcceptedRecord, ContactRecord, DeadLetter, QuarantineRecord
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

EVENTS = 2000
GARBAGE = 10
KILLS = 5


@pytest.fixture
def runtime(make_settings: Any, kafka_bootstrap: str) -> Iterator[Runtime]:
    from pipeline.kafka.topics import apply_topics

    settings: Settings = make_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_partitions=3,
        worker_instance_id=f"eos-{uuid.uuid4().hex[:8]}",
        worker_commit_interval_s=0.3,
        batch_timeout_s=0.1,
    )
    apply_topics(settings)
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    yield runtime
    runtime.engine.dispose()


def _events() -> list[ContactEvent]:
    rng = random.Random(7)
    out = []
    for i in range(EVENTS):
        roll = rng.random()
        if roll < 0.1:
            out.append(contact(i, honeypot="bot"))  # quarantined
        elif roll < 0.15:
            out.append(contact(i, message="I am 13 years old"))  # dropped
        else:
            out.append(contact(i))
    return out


def _worker(runtime: Runtime, tmp_path: Path, n: int) -> WorkerProcess:
    """A worker with its own static membership id (the id is what lets a restart skip the session timeout)."""
    worker = WorkerProcess(runtime.settings, tmp_path / f"worker-{n}.log")
    worker.env["LEADPIPE_WORKER_INSTANCE_ID"] = f"{runtime.settings.worker_instance_id}-{n}"
    return worker


def _publish_slowly(runtime: Runtime, records: list[tuple[str, ContactRecord]], seconds: float) -> None:
    publisher = ConfirmingPublisher(runtime.settings)
    chunk = 50
    pause = seconds / (len(records) / chunk)
    for start in range(0, len(records), chunk):
        publisher.publish(Outgoing("contacts.normalized", key, value) for key, value in records[start : start + chunk])
        time.sleep(pause)
    publisher.close()


def _event_id(record: Record) -> str:
    value = record.value or b""
    model = {
        "contacts.accepted": AcceptedRecord,
        "contacts.quarantine": QuarantineRecord,
        "contacts.drops": DropRecord,
        "contacts.dlq": DeadLetter,
    }[record.topic]
    parsed: Any = model.model_validate_json(value)
    if isinstance(parsed, DeadLetter) and parsed.event_id is None:
        return f"dlq:{parsed.source_partition}:{parsed.source_offset}"
    return str(parsed.event_id)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_event_exactly_once_across_sigkill_restarts(runtime: Runtime, tmp_path: Path, workers: int) -> None:
    """One worker killed and restarted; or two sharing the partitions, one of them killed at random each time
    (the survivor takes over its partitions in a rebalance, then gives some back when it returns)."""
    events = _events()
    sealed = [(e.subject_key, runtime.codec.seal_contact(e)) for e in events]
    publish_raw(runtime, [f"garbage {i}".encode() for i in range(GARBAGE)])
    feeder = threading.Thread(target=_publish_slowly, args=(runtime, sealed, 20.0), daemon=True)

    pool = [_worker(runtime, tmp_path, n) for n in range(workers)]
    for each in pool:
        each.start()
    worker = pool[0]
    seed = int(os.environ.get("LEADPIPE_TEST_SEED") or random.randrange(2**32))
    print(f"kill timing seed: {seed} (LEADPIPE_TEST_SEED={seed} repeats it)")  # shown when the test fails
    rng = random.Random(seed)
    kills = 0
    try:
        feeder.start()
        time.sleep(4.0)  # let it start and commit something first
        while kills < KILLS:
            time.sleep(rng.uniform(3.0, 5.0))  # a restarted worker needs ~2-3 s to import, join and recover
            worker = rng.choice(pool)
            worker.kill()
            kills += 1
            worker.start()
        feeder.join(60)
        expected = EVENTS + GARBAGE
        deadline = time.monotonic() + 180  # a loaded machine: the last restart may still be recovering
        records: list[Record] = []
        while time.monotonic() < deadline:
            records = read_to_end(runtime.settings, OUTPUT_TOPICS)
            if len(records) >= expected:
                time.sleep(3)  # anything beyond is a duplicate: give it the chance to show up
                records = read_to_end(runtime.settings, OUTPUT_TOPICS)
                break
            time.sleep(1)
    finally:
        for each in pool:
            each.stop()

    seen = Counter(_event_id(r) for r in records)
    ids = {str(e.event_id) for e in events}
    missing = ids - set(seen)
    duplicated = {k: n for k, n in seen.items() if n > 1}
    assert not missing, f"{len(missing)} events lost\n{worker.log_tail()}"
    if duplicated:
        where = [(r.topic, r.partition, r.offset) for r in records if _event_id(r) in duplicated]
        inputs = [
            (r.partition, r.offset)
            for r in read_to_end(runtime.settings, ["contacts.normalized"])
            if r.key != b"garbage" and str(ContactRecord.model_validate_json(r.value or b"").event_id) in duplicated
        ]
        logs = "\n".join(f"--- {w.log_path}" for w in pool)
        pytest.fail(
            f"{len(duplicated)} events duplicated; copies at {where[:40]}\n"
            f"inputs at {inputs[:40]}\nworker logs (LP_WORKER_LOG_LEVEL=DEBUG shows every batch):\n{logs}"
        )
    garbage = [k for k in seen if k.startswith("dlq:")]
    assert len(garbage) == GARBAGE
    assert len(records) == EVENTS + GARBAGE
    assert sum(each.starts for each in pool) == KILLS + workers
    topics = Counter(r.topic for r in records)
    assert topics["contacts.quarantine"] > 0 and topics["contacts.drops"] > 0 and topics["contacts.accepted"] > 0
    # The kills did land mid-transaction: records of aborted transactions are on the log, invisible when committed.
    everything = read_to_end(runtime.settings, OUTPUT_TOPICS, isolation="read_uncommitted")
    aborted = len(everything) - len(records)
    print(f"read_committed {len(records)} records, read_uncommitted {len(everything)} (aborted: {aborted})")
