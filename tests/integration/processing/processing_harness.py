"""Helpers of the processing integration tests: the worker as a real subprocess, events in, records out.

Imported by name (the test directories are not packages).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.agents import launch
from pipeline.config import Settings
from pipeline.kafka.consumer import Record, read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Channel, InteractionKind
from pipeline.models.contact import ContactEvent, Interaction, Person, Provenance
from pipeline.runtime import Runtime

OUTPUT_TOPICS = ("contacts.accepted", "contacts.quarantine", "contacts.drops", "contacts.dlq")
PROCESSING_ONLY = ("pipeline.agents.processing:register", "pipeline.agents.review:register")


class WorkerProcess(launch.WorkerProcess):
    """The processing registrars only (the sinks and rights agents have tests of their own)."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        registrars: Sequence[str] = PROCESSING_ONLY,
        web_port: int | None = None,
    ) -> None:
        level = os.environ.get("LP_WORKER_LOG_LEVEL", "INFO")  # DEBUG shows every batch and every Kafka request
        web = {"LEADPIPE_WORKER_WEB_ENABLED": "true", "LEADPIPE_WORKER_WEB_PORT": str(web_port)} if web_port else {}
        env = launch.worker_env(settings, LEADPIPE_LOG_LEVEL=level, **web)
        super().__init__(settings, log_path, registrars, env=env)
        self.web_port = web_port


def contact(
    i: int,
    *,
    channel: Channel = Channel.WEB_FORM,
    kind: InteractionKind = InteractionKind.CONTACT_US,
    subject_key: str | None = None,
    received_at: datetime | None = None,
    message: str = "We would like to talk about a data platform.",
    **interaction: Any,
) -> ContactEvent:
    now = datetime.now(UTC)
    return ContactEvent(
        event_id=uuid.uuid4(),
        channel=channel,
        occurred_at=now,
        received_at=received_at or now,
        subject_key=subject_key or f"sk_it_{uuid.uuid4().hex[:24]}",
        person=Person(first_name="Ann", last_name=f"Tester{i}", email=f"ann.{i}@example.com", company="ACME"),
        interaction=Interaction(kind=kind, message=message, **interaction),
        provenance=Provenance(source_id="it", ip=f"198.51.100.{i % 250}"),
    )


def publish(runtime: Runtime, topic: str, items: Iterable[tuple[str | None, Any]]) -> None:
    publisher = ConfirmingPublisher(runtime.settings)
    publisher.publish(Outgoing(topic, key, value) for key, value in items)
    publisher.close()


def publish_events(runtime: Runtime, events: Iterable[ContactEvent]) -> None:
    publish(runtime, "contacts.normalized", ((e.subject_key, runtime.codec.seal_contact(e)) for e in events))


def publish_raw(runtime: Runtime, values: Iterable[bytes]) -> None:
    """Bytes that are not ContactRecords, straight onto the input topic."""
    publisher = ConfirmingPublisher(runtime.settings)
    producer = publisher.producer
    for value in values:
        producer.produce(runtime.settings.topic("contacts.normalized"), value, b"garbage")
    producer.flush(30)


def read_outputs(settings: Settings, until: int, timeout_s: float = 90.0) -> list[Record]:
    """Read the four output topics to the end (read_committed) until at least ``until`` records are there."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = read_to_end(settings, OUTPUT_TOPICS)
        if len(records) >= until or time.monotonic() > deadline:
            return records
        time.sleep(0.5)
