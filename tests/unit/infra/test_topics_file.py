"""topics.yaml validation and resolution: bad entries are named precisely, production values are capped locally."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import Settings
from pipeline.kafka.topics import TopicsFileError, default_topics_path, load_topics

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def good_topic(name: str = "a.topic", **extra: Any) -> dict[str, Any]:
    return {"name": name, "purpose": "why it exists", **extra}


def error_of(tmp_path: Path, data: Any) -> str:
    with pytest.raises(TopicsFileError) as info:
        load_topics(write(tmp_path, data))
    return str(info.value)


def test_the_repository_file_is_valid_and_is_the_packaged_one() -> None:
    spec = load_topics()
    assert default_topics_path().resolve() == (REPO / "topics.yaml").resolve()
    assert "contacts.normalized" in spec.names()
    assert all(topic.purpose for topic in spec.topics)


def test_unknown_config_names_the_topic_index_and_key(tmp_path: Path) -> None:
    data = {"topics": [good_topic("first"), good_topic("second", config={"retention.msec": "1"})]}
    message = error_of(tmp_path, data)
    assert "topics[1] (second).config" in message
    assert "'retention.msec' is not a Kafka topic config" in message


def test_non_integer_duration_is_rejected(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"topics": [good_topic("x", config={"retention.ms": "7 days"})]})
    assert "topics[0] (x).config" in message and "'retention.ms' must be an integer" in message


def test_bad_cleanup_policy_and_compression(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"topics": [good_topic("x", config={"cleanup.policy": "compacted"})]})
    assert "cleanup.policy" in message and "compacted" in message
    message = error_of(tmp_path, {"defaults": {"config": {"compression.type": "brotli"}}, "topics": [good_topic()]})
    assert "defaults.config" in message and "brotli" in message


def test_typo_in_a_field_name_is_not_ignored(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"topics": [good_topic("x", partitons=3)]})
    assert "topics[0] (x).partitons" in message


def test_missing_purpose_and_bad_partitions(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"topics": [{"name": "x", "partitions": 0}]})
    assert "topics[0] (x).purpose" in message
    assert "topics[0] (x).partitions" in message
    assert "2 problem(s)" in message


def test_illegal_topic_name(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"topics": [good_topic("has space")]})
    assert "topics[0] (has space).name" in message


def test_duplicate_names(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"topics": [good_topic("a"), good_topic("b"), good_topic("a")]})
    assert "topics[2] (a): name already used by topics[0]" in message


def test_empty_file_and_bad_yaml(tmp_path: Path) -> None:
    assert "expected a mapping" in error_of(tmp_path, "")
    assert "not valid YAML" in error_of(tmp_path, "topics: [\n")
    with pytest.raises(TopicsFileError, match="topics file not found"):
        load_topics(tmp_path / "nope.yaml")


def test_defaults_merge_and_caps(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    data = {
        "defaults": {
            "partitions": 6,
            "replication_factor": 3,
            "config": {"min.insync.replicas": 2, "compression.type": "zstd"},
        },
        "topics": [
            good_topic("plain"),
            good_topic("own", partitions=2, replication_factor=2, config={"compression.type": "lz4"}),
        ],
    }
    spec = load_topics(write(tmp_path, data))

    production = {t.logical_name: t for t in spec.resolve(make_settings(topic_partitions=None), broker_count=5)}
    assert production["plain"].partitions == 6
    assert production["plain"].replication_factor == 3
    assert production["plain"].config == {"min.insync.replicas": "2", "compression.type": "zstd"}
    assert production["own"].partitions == 2
    assert production["own"].replication_factor == 2
    assert production["own"].config["compression.type"] == "lz4"

    local = {t.logical_name: t for t in spec.resolve(make_settings(topic_partitions=None), broker_count=1)}
    assert local["plain"].replication_factor == 1
    assert local["plain"].config["min.insync.replicas"] == "1"

    settings = make_settings(topic_partitions=1, topic_replication_factor=2)
    overridden = {t.logical_name: t for t in spec.resolve(settings, broker_count=3)}
    assert overridden["own"].partitions == 1
    assert overridden["plain"].replication_factor == 2
    assert overridden["plain"].name == settings.topic("plain") != "plain"


def test_settings_topics_file_is_used(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    path = write(tmp_path, {"topics": [good_topic("only")]})
    settings = make_settings(topics_file=path)
    assert default_topics_path(settings) == path
    assert load_topics(default_topics_path(settings)).names() == ["only"]
