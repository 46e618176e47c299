"""apply_topics / diff_topics against a real broker: idempotent, fixes config drift, grows but never shrinks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from pipeline.config import Settings
from pipeline.kafka.topics import apply_topics, diff_topics, load_topics, make_admin

pytestmark = pytest.mark.integration


def alter(settings: Settings, topic: str, key: str, value: str) -> None:
    resource = ConfigResource(
        ResourceType.TOPIC,
        settings.topic(topic),
        incremental_configs=[ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)],
    )
    admin = make_admin(settings)  # keep a reference: a collected client cancels its pending futures
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    # The controller committed it; wait until the broker that answers describe shows it too.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, settings.topic(topic))])
        entries = next(iter(described.values())).result(timeout=30)
        if entries[key].value == value:
            return
        time.sleep(0.05)
    raise AssertionError(f"{topic}.{key} never showed {value!r}")


def partitions_of(settings: Settings, topic: str) -> int:
    metadata = make_admin(settings).list_topics(topic=settings.topic(topic), timeout=30)
    return len(metadata.topics[settings.topic(topic)].partitions)


def test_apply_twice_then_repair_config_drift(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> None:
    settings = make_settings(kafka_bootstrap_servers=kafka_bootstrap)
    expected = {settings.topic(name) for name in load_topics().names()}

    first = apply_topics(settings)
    assert set(first.created) == expected
    assert first.changed

    second = apply_topics(settings)
    assert not second.changed
    assert second.created == second.altered == second.partitions_increased == second.not_applied == []
    assert str(second) == "no changes: the cluster matches the topics file"
    assert diff_topics(settings) == []

    alter(settings, "contacts.dlq", "retention.ms", "1234")
    alter(settings, "audit", "retention.bytes", "1048576")  # set in the cluster, absent from the file
    drifts = {(d.topic, d.kind, d.key): d for d in diff_topics(settings)}
    assert set(drifts) == {
        (settings.topic("contacts.dlq"), "config", "retention.ms"),
        (settings.topic("audit"), "unmanaged_config", "retention.bytes"),
    }
    changed = drifts[(settings.topic("contacts.dlq"), "config", "retention.ms")]
    assert (changed.actual, changed.expected) == ("1234", "2592000000")

    repair = apply_topics(settings)
    assert {(d.topic, d.key) for d in repair.altered} == {
        (settings.topic("contacts.dlq"), "retention.ms"),
        (settings.topic("audit"), "retention.bytes"),
    }
    assert repair.created == []
    assert diff_topics(settings) == []
    assert not apply_topics(settings).changed


def test_partitions_grow_but_never_shrink(
    tmp_path: Path, make_settings: Callable[..., Settings], kafka_bootstrap: str
) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump({"topics": [{"name": "grow", "purpose": "test", "partitions": 1}]}))
    small = make_settings(kafka_bootstrap_servers=kafka_bootstrap, topics_file=path, topic_partitions=None)
    assert apply_topics(small).created == [small.topic("grow")]

    bigger = make_settings(kafka_bootstrap_servers=kafka_bootstrap, topics_file=path, topic_partitions=3)
    assert [(d.kind, d.expected, d.actual) for d in diff_topics(bigger)] == [("partitions", "3", "1")]
    report = apply_topics(bigger)
    assert [d.topic for d in report.partitions_increased] == [bigger.topic("grow")]
    assert partitions_of(bigger, "grow") == 3

    report = apply_topics(small)
    assert not report.changed
    assert [(d.kind, d.fixable) for d in report.not_applied] == [("partitions_decrease", False)]
    assert "NOT APPLIED" in str(report)
    assert partitions_of(small, "grow") == 3


def test_cli_apply_diff_exit_codes(
    make_settings: Callable[..., Settings], kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`leadpipe topics diff` exits 1 on drift and 0 when in sync; `apply` says when it changed nothing."""
    from typer.testing import CliRunner

    from pipeline.config import get_settings
    from pipeline.kafka.cli import topics_app

    settings = make_settings(kafka_bootstrap_servers=kafka_bootstrap)
    env = {
        "LEADPIPE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LEADPIPE_TOPIC_PREFIX": settings.topic_prefix,
        "LEADPIPE_TOPIC_PARTITIONS": "1",
        "LEADPIPE_HOME": str(settings.home),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        missing = runner.invoke(topics_app, ["diff"])
        assert missing.exit_code == 1, missing.output
        assert f"{settings.topic('audit')}: missing" in missing.output

        assert runner.invoke(topics_app, ["apply"]).exit_code == 0
        again = runner.invoke(topics_app, ["apply"])
        assert again.exit_code == 0 and "no changes" in again.output
        in_sync = runner.invoke(topics_app, ["diff"])
        assert in_sync.exit_code == 0 and "no drift" in in_sync.output

        alter(settings, "suppression", "delete.retention.ms", "1000")
        drift = runner.invoke(topics_app, ["diff"])
        assert drift.exit_code == 1
        assert f"{settings.topic('suppression')}: delete.retention.ms is '1000', file says '86400000'" in drift.output
    finally:
        get_settings.cache_clear()
