"""Helpers for the rights integration tests: contact events, tags, reading every topic of a test back."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.config import Settings
from pipeline.kafka.consumer import watermarks
from pipeline.models.common import Channel, InteractionKind, LegalBasis, Purpose
from pipeline.models.contact import Consent, ContactEvent, Interaction, Person, Provenance
from pipeline.models.tagged import PurposeTag, SpamVerdict, TaggedEvent, Tags
from pipeline.normalize import subject_key
from pipeline.runtime import Runtime


def contact_event(
    pepper: bytes,
    email: str,
    first: str,
    last: str,
    *,
    received_at: datetime | None = None,
    message: str = "We need a quote for a data platform",
    consent: bool = True,
    event_id: UUID | None = None,
) -> ContactEvent:
    at = received_at or datetime.now(UTC)
    return ContactEvent(
        event_id=event_id or uuid4(),
        channel=Channel.WEB_FORM,
        occurred_at=at,
        received_at=at,
        subject_key=subject_key(pepper, email=email),
        person=Person(first_name=first, last_name=last, email=email, company="Quartzworks", position="CTO"),
        interaction=Interaction(kind=InteractionKind.CONTACT_US, subject="Quote", message=message),
        consents=(
            (Consent(purpose=Purpose.FURTHER_CONTACT, granted=True, given_at=at, method="checkbox"),) if consent else ()
        ),
        provenance=Provenance(source_id="site-form", form_id="contact", ip="203.0.113.7"),
    )


def tags_for(event: ContactEvent, *, expires_in: timedelta = timedelta(days=8 * 365)) -> Tags:
    purposes = [
        PurposeTag(
            purpose=Purpose.CONTRACT_REQUEST,
            legal_basis=LegalBasis.CONTRACT,
            policy_section="3.3(1)",
            direct_marketing=False,
        ),
        PurposeTag(
            purpose=Purpose.INFORMATION_OF_INTEREST,
            legal_basis=LegalBasis.LEGITIMATE_INTEREST,
            policy_section="3.3(2)",
            direct_marketing=True,
        ),
    ]
    if event.consents:
        purposes.append(
            PurposeTag(
                purpose=Purpose.FURTHER_CONTACT,
                legal_basis=LegalBasis.CONSENT,
                policy_section="3.2",
                direct_marketing=True,
            )
        )
    return Tags(
        policy_version="test",
        purposes=tuple(purposes),
        retention_clock="interaction",
        retention_anchor_at=event.occurred_at,
        retention_expires_at=event.occurred_at + expires_in,
        marketing_allowed=True,
        spam=SpamVerdict(score=0.0, threshold=0.8),
    )


def tagged(event: ContactEvent, **kw: timedelta) -> TaggedEvent:
    return TaggedEvent(event=event, tags=tags_for(event, **kw))


def prefixed_topics(settings: Settings) -> list[str]:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    names = admin.list_topics(timeout=10).topics
    return sorted(n for n in names if n.startswith(settings.topic_prefix))


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes
    partition: int = 0
    offset: int = 0


def read_all(settings: Settings, topics: list[str] | None = None) -> list[Message]:
    """Every record on the given topics (default: every topic of this test's prefix), from offset 0."""
    names = topics if topics is not None else prefixed_topics(settings)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"reader-{uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",  # even aborted transactional writes are read: they are on disk
        }
    )
    out: list[Message] = []
    try:
        metadata = consumer.list_topics(timeout=10)
        wanted: list[TopicPartition] = []
        ends: dict[tuple[str, int], int] = {}
        for name in names:
            for partition in metadata.topics[name].partitions:
                low, high = watermarks(consumer, TopicPartition(name, partition), time.monotonic() + 30)
                if high > low:
                    wanted.append(TopicPartition(name, partition, low))
                    ends[(name, partition)] = high
        if not wanted:
            return out
        consumer.assign(wanted)
        remaining = dict(ends)
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while remaining and datetime.now(UTC) < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append(Message(msg.topic(), msg.key(), msg.value() or b"", msg.partition(), msg.offset()))
            where = (msg.topic(), msg.partition())
            if where in remaining and msg.offset() + 1 >= remaining[where]:
                del remaining[where]
        assert not remaining, f"could not read to the end of {sorted(remaining)}"
    finally:
        consumer.close()
    return out


def chain_present() -> bool:
    """Whether the processing chain's agents exist (else the tests play its part and publish accepted records)."""
    import importlib.util

    return importlib.util.find_spec("pipeline.agents.processing") is not None


def worker_app(runtime: Runtime, registrars: list[str]) -> Any:
    """The product's faust app (``create_app``) with the given registrars; a minimal app before it existed."""
    import importlib

    import faust

    try:
        from pipeline.agents.app import create_app  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        settings = runtime.settings
        app = faust.App(
            settings.topic(settings.app_id),
            broker=f"kafka://{settings.kafka_bootstrap_servers}",
            store="memory://",
            topic_partitions=settings.topic_partitions or 1,
            topic_replication_factor=1,
            processing_guarantee="at_least_once",
            web_enabled=False,
            broker_session_timeout=6,
            broker_heartbeat_interval=0.5,
            broker_rebalance_timeout=10,
            broker_request_timeout=20,
            broker_commit_interval=0.5,
            stream_wait_empty=False,
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
        )
        for ref in registrars:
            module, _, func = ref.partition(":")
            getattr(importlib.import_module(module), func)(app, runtime)
        return app
    return create_app(runtime, registrars)


def caught_up(settings: Settings, group: str, topics: list[str]) -> bool:
    """Whether ``group`` has committed past the last record of every partition of ``topics``.

    Compared with the last record, not the high watermark: a transactional producer's commit marker sits after
    the last record, and a consumer never commits past it.
    """
    last: dict[tuple[str, int], int] = {}
    for message in read_all(settings, topics):
        last[(message.topic, message.partition)] = max(last.get((message.topic, message.partition), -1), message.offset)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group})
    try:
        wanted = [TopicPartition(t, p) for (t, p) in last]
        return all(c.offset > last[(c.topic, c.partition)] for c in consumer.committed(wanted, timeout=10))
    finally:
        consumer.close()


def wait_until(predicate: Any, timeout_s: float = 30.0, every_s: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


def invoke_cli(settings: Settings, monkeypatch: Any, *args: str, stdin: str | None = None) -> Any:
    """Run ``leadpipe ...`` in-process with LEADPIPE_* variables for these settings (the CLI reads the environment)."""
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.config import get_settings

    env = {
        "LEADPIPE_ENVIRONMENT": "test",
        "LEADPIPE_HOME": str(settings.home),
        "LEADPIPE_DATABASE_URL": settings.resolved_database_url,
        "LEADPIPE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "LEADPIPE_TOPIC_PREFIX": settings.topic_prefix,
        "LEADPIPE_SUBJECT_KEY_PEPPER": settings.subject_key_pepper.get_secret_value(),  # type: ignore[union-attr]
        "LEADPIPE_KEY_ENCRYPTION_KEY": settings.key_encryption_key.get_secret_value(),  # type: ignore[union-attr]
        "LEADPIPE_LOG_FORMAT": "console",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), input=stdin)
    finally:
        get_settings.cache_clear()
