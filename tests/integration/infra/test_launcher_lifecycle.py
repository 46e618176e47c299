"""The real launcher: a Kafka 4.x JVM from Maven jars starts, is adopted by a second launcher, stops, restarts
with its data intact. Uses its own directory and free ports, never the session broker or a developer's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.kafka.launcher import LocalKafka, free_port, kafka_answers
from pipeline.kafka.topics import apply_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_up_adopt_down_restart(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(home=tmp_path / "home", kafka_port=free_port(), kafka_controller_port=free_port())
    first = LocalKafka.from_settings(settings)
    try:
        status = first.up()
        assert first.started_here
        assert status.running and status.managed and status.pid
        assert status.log_file.is_relative_to(tmp_path) and "Kafka Server started" in status.log_file.read_text()
        assert kafka_answers(first.bootstrap_servers)

        on_broker = make_settings(kafka_bootstrap_servers=first.bootstrap_servers)
        assert apply_topics(on_broker).created

        second = LocalKafka.from_settings(settings)
        assert second.up().pid == status.pid
        assert not second.started_here

        assert second.down()
        assert not first.status().running
        assert not kafka_answers(first.bootstrap_servers, timeout_s=1.0)

        restarted = first.up()
        assert first.started_here and restarted.pid != status.pid
        assert not apply_topics(on_broker).changed  # the topics survived the restart: same data directory
    finally:
        first.down()
    assert not first.status().running
