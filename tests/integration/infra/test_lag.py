"""``leadpipe lag`` and ``consumer_lag`` against the real broker, with a real consumer group that commits."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from typer.testing import CliRunner

from pipeline.config import Settings
from pipeline.kafka.lag import PartitionLag, consumer_lag, product_groups
from pipeline.kafka.topics import make_admin

pytestmark = pytest.mark.integration


@pytest.fixture
def lag_settings(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> Settings:
    """Settings on the broker with one three-partition topic holding 10, 20 and 30 records."""
    settings = make_settings(kafka_bootstrap_servers=kafka_bootstrap)
    topic = settings.topic("lag.input")
    admin = make_admin(settings)
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for partition, count in enumerate((10, 20, 30)):
        for i in range(count):
            producer.produce(topic, f"v{i}".encode(), partition=partition)
    assert producer.flush(30) == 0
    return settings


def _consume_and_commit(settings: Settings, group: str, positions: dict[int, int]) -> Consumer:
    """A real member of ``group`` that read and committed up to ``positions`` (partition -> next offset)."""
    topic = settings.topic("lag.input")
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])  # a member of the group, with the three partitions assigned to it
    read = 0
    while read < 60:  # read everything; commit only what the test says was handled
        message = consumer.poll(15)
        assert message is not None, "records did not arrive"
        assert message.error() is None
        read += 1
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)
    return consumer


def test_lag_per_partition_of_a_committing_group(lag_settings: Settings) -> None:
    group = product_groups(lag_settings)[0]  # the worker's group name: the default selection finds it
    consumer = _consume_and_commit(lag_settings, group, {0: 10, 1: 5})  # partition 2: nothing committed
    try:
        topic = lag_settings.topic("lag.input")
        rows = consumer_lag(lag_settings)
        assert rows == [
            PartitionLag(group, topic, 0, 10, 10, 0),
            PartitionLag(group, topic, 1, 5, 20, 15),
            PartitionLag(group, topic, 2, None, 30, 30),  # assigned, never committed: counts from the start
        ]
        with pytest.raises(LookupError, match="no such consumer group"):
            consumer_lag(lag_settings, [f"{group}-nobody"])
    finally:
        consumer.close()


def test_lag_command_prints_every_partition(lag_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.cli import app
    from pipeline.config import get_settings

    group = f"{lag_settings.topic_prefix}other-group"
    consumer = _consume_and_commit(lag_settings, group, {0: 4, 1: 20, 2: 30})
    consumer.close()  # committed offsets outlive the member: the group is empty, its lag still readable
    monkeypatch.setenv("LEADPIPE_KAFKA_BOOTSTRAP_SERVERS", lag_settings.kafka_bootstrap_servers)
    monkeypatch.setenv("LEADPIPE_TOPIC_PREFIX", lag_settings.topic_prefix)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["lag", "--group", group, "--json"])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [(r["partition"], r["committed"], r["end"], r["lag"]) for r in rows] == [
            (0, 4, 10, 6),
            (1, 20, 20, 0),
            (2, 30, 30, 0),
        ]
        table = runner.invoke(app, ["lag", "--group", group])
        assert table.exit_code == 0, table.output
        assert f"{group} {lag_settings.topic('lag.input')}: 6 behind" in table.output
        unprefixed = runner.invoke(app, ["lag", "--group", "other-group", "--json"])  # as the docs name groups
        assert unprefixed.exit_code == 0 and json.loads(unprefixed.stdout.splitlines()[0])["group"] == group
        missing = runner.invoke(app, ["lag", "--group", "no-such-group-here"])
        assert missing.exit_code == 1 and "no such consumer group: no-such-group-here" in missing.output
    finally:
        get_settings.cache_clear()
