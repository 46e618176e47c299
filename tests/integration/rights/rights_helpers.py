"""Helpers for the rights integration tests: every topic of a test read back, consumer progress, the CLI in-process,
and people's data spread over every topic and the CRM the way the pipeline spreads it.

Contact events and their tags come from ``fakes.contacts``; topics are read with ``pipeline.kafka.consumer``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from fakes.contacts import tags_for

from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.ingest.service import IngestService
from pipeline.kafka.consumer import Record, read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.kafka.topics import make_admin
from pipeline.models.common import Channel
from pipeline.models.records import Sealed
from pipeline.models.tagged import TaggedEvent
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter


def read_everything(settings: Settings) -> list[Record]:
    """Every record on every topic of this test's prefix, from offset 0, aborted transactional writes included
    (they are on disk too, so they must not carry personal data in clear either)."""
    names = make_admin(settings).list_topics(timeout=10).topics
    logical = sorted(n.removeprefix(settings.topic_prefix) for n in names if n.startswith(settings.topic_prefix))
    return read_to_end(settings, logical, isolation="read_uncommitted")


SEALED_FIELD = re.compile(rb'"(?:ciphertext|nonce)":\s*"[^"]*"')


def assert_no_clear_text(blobs: Iterable[tuple[str, bytes]], values: Iterable[str]) -> None:
    """The clear-text scan after an erasure, for topic records and files alike: none of ``values`` (case-insensitive)
    in any ``(where, bytes)`` outside the seals (lower-cased base64 ciphertext may spell a short name by chance)."""
    wanted = [v.lower().encode() for v in values]
    for where, blob in blobs:
        plain = SEALED_FIELD.sub(b"", blob).lower()
        for value in wanted:
            assert value not in plain, f"{where} carries personal data in clear"


def caught_up(settings: Settings, group: str, topics: list[str]) -> bool:
    """Whether ``group`` (its real name) has committed past the last record of every partition of the logical
    ``topics``.

    Compared with the last record, not the high watermark: a transactional producer's commit marker sits after
    the last record, and a consumer never commits past it.
    """
    last: dict[tuple[str, int], int] = {}
    for record in read_to_end(settings, topics, isolation="read_uncommitted"):
        where = (settings.topic(record.topic), record.partition)
        last[where] = max(last.get(where, -1), record.offset)
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


def invoke_cli(
    settings: Settings, monkeypatch: Any, *args: str, stdin: str | None = None, key: str | None = None
) -> Any:
    """Run ``leadpipe ...`` in-process with LEADPIPE_* variables for these settings (the CLI reads the environment),
    as the operator whose API key is ``key``."""
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
    if key is not None:
        env["LEADPIPE_API_KEY"] = key
    else:
        monkeypatch.delenv("LEADPIPE_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), input=stdin)
    finally:
        get_settings.cache_clear()


@contextmanager
def runtime_on(
    kafka_settings: Settings, make_settings: Callable[..., Settings], database_url: str, **overrides: Any
) -> Iterator[Runtime]:
    """A runtime on this test's topics (``kafka_settings``) and the database at ``database_url`` (migrated), trying
    each rights effect once."""
    settings = make_settings(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix,
        database_url=database_url,
        rights_max_attempts=1,
        **overrides,
    )
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    try:
        yield runtime
    finally:
        runtime.engine.dispose()


def form_payload(person: Mapping[str, str], message: str) -> bytes:
    """A web form naming ``person``, as a source sends it."""
    return json.dumps({**person, "company": "Quartzworks", "message": message, "form_id": "contact"}).encode()


def spread_people(
    runtime: Runtime, publisher: ConfirmingPublisher, people: Sequence[Mapping[str, str]]
) -> dict[str, list[TaggedEvent]]:
    """Each person (``email``, ``first_name``, ``last_name``) everywhere the pipeline puts them, by e-mail.

    Two web-form submissions through the real ingest path (sealed raw and normalised records), a payload that names
    them but cannot be parsed (a dead letter under their key), the chain's outputs sealed as the chain seals them
    (accepted, quarantine), the CRM rows, and one customer import naming everyone (its raw payload sealed once,
    under a key linked to each of them).
    """
    ingest = IngestService(runtime, publisher)
    crm = CrmWriter(runtime.engine)
    accepted: dict[str, list[TaggedEvent]] = {}
    for person in people:
        results = [
            ingest.submit(
                "site-form",
                Channel.WEB_FORM,
                form_payload(person, f"Quote please, {person['first_name']}"),
                "application/json",
            ),
            ingest.submit("site-form", Channel.WEB_FORM, form_payload(person, "A second question"), "application/json"),
        ]
        assert all(r.accepted for r in results)
        rejected = ingest.submit("site-form", Channel.WEB_FORM, json.dumps([person]).encode(), "application/json")
        assert not rejected.accepted and rejected.dead_letter_id is not None
        tagged = [TaggedEvent(event=e, tags=tags_for(e)) for r in results for e in r.events]
        accepted[person["email"]] = tagged
        now = datetime.now(UTC)
        publisher.publish(
            [Outgoing("contacts.accepted", t.event.subject_key, runtime.codec.seal_accepted(t)) for t in tagged]
            + [
                Outgoing(
                    "contacts.quarantine", tagged[0].event.subject_key, runtime.codec.seal_quarantine(tagged[0], now)
                )
            ]
        )
        crm.write_events(tagged)
    csv = "email,first_name,last_name,company,last_service_delivery\n" + "".join(
        f"{p['email']},{p['first_name']},{p['last_name']},Quartzworks,2025-01-15\n" for p in people
    )
    imported = ingest.submit("crm-import", Channel.CUSTOMER, csv.encode(), "text/csv")
    assert imported.accepted and len(imported.events) == len(people), imported
    return accepted


def sealed_values(doc: Any) -> Iterator[Sealed]:
    """Every sealed part of a decoded JSON record, however deep."""
    if isinstance(doc, dict):
        if {"key_id", "nonce", "ciphertext"} <= doc.keys():
            yield Sealed.model_validate(doc)
        for value in doc.values():
            yield from sealed_values(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from sealed_values(value)


def sealed_holding(runtime: Runtime, clear: Sequence[str]) -> tuple[list[Sealed], list[Sealed]]:
    """Every sealed value on every topic of the test, opened now: those holding any of ``clear`` (case-insensitive),
    and the others."""
    wanted = [value.lower().encode() for value in clear]
    holding: list[Sealed] = []
    others: list[Sealed] = []
    for message in read_everything(runtime.settings):
        for sealed in sealed_values(json.loads(message.value or b"null")):
            plain = runtime.codec.sealer.open(sealed).lower()
            (holding if any(v in plain for v in wanted) else others).append(sealed)
    return holding, others
