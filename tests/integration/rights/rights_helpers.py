"""Helpers for the rights integration tests: every topic of a test read back, consumer progress, the CLI in-process.

Contact events and their tags come from ``fakes.contacts``; topics are read with ``pipeline.kafka.consumer``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.kafka.consumer import Record, read_to_end
from pipeline.kafka.topics import make_admin


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
