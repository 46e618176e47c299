"""Topics as code: load and validate ``topics.yaml``, show drift against a cluster, and apply it idempotently.

The file names logical topics; the real name is ``settings.topic(name)`` (per-test / per-tenant prefix). The file's
replication factor is the production value: it is capped at the cluster's broker count (one locally), and
``min.insync.replicas`` is capped at the effective replication factor, so one file serves a laptop and production.

Where the file comes from: ``settings.topics_file`` if set, else ``pipeline/kafka/topics.yaml`` inside the package,
which is a symbolic link to the repository's ``topics.yaml``: one source of truth that an editable install reads in
place and a built wheel carries as a regular file.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # public names, re-exported without __all__
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config import Settings
from pipeline.kafka.clients import client_config
from pipeline.logging import get_logger
from pipeline.yamlfile import load_mapping

log = get_logger(__name__)

#: Topic-level configs a Kafka 4.x broker accepts: a typo in topics.yaml fails at load time, not at apply time.
KNOWN_TOPIC_CONFIGS = frozenset(
    {
        "cleanup.policy",
        "compression.type",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.zstd.level",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "follower.replication.throttled.replicas",
        "index.interval.bytes",
        "leader.replication.throttled.replicas",
        "local.retention.bytes",
        "local.retention.ms",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "preallocate",
        "remote.log.copy.disable",
        "remote.log.delete.on.disable",
        "remote.storage.enable",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    }
)
_INTEGER_CONFIG = re.compile(r"(\.ms|\.bytes|\.messages|\.replicas|\.level)$")
_CLEANUP_POLICIES = frozenset({"delete", "compact", "compact,delete", "delete,compact"})
_COMPRESSION = frozenset({"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"})
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")  # Kafka allows 249; leave room for the prefix
_TIMEOUT_S = 30.0


class TopicsFileError(ValueError):
    """topics.yaml is malformed; the message names the file, the entry and the field."""


def _config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(f"must be a string or a number, got {type(value).__name__}")


def _validate_config(config: Any) -> dict[str, str]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"must be a mapping of config name to value, got {type(config).__name__}")
    out: dict[str, str] = {}
    for key, raw in config.items():
        if key not in KNOWN_TOPIC_CONFIGS:
            raise ValueError(f"{key!r} is not a Kafka topic config")
        value = _config_value(raw)
        if _INTEGER_CONFIG.search(key) and not re.fullmatch(r"-?\d+", value):
            raise ValueError(f"{key!r} must be an integer, got {value!r}")
        if key == "cleanup.policy" and value.replace(" ", "") not in _CLEANUP_POLICIES:
            raise ValueError(f"'cleanup.policy' must be one of {sorted(_CLEANUP_POLICIES)}, got {value!r}")
        if key == "compression.type" and value not in _COMPRESSION:
            raise ValueError(f"'compression.type' must be one of {sorted(_COMPRESSION)}, got {value!r}")
        if key == "min.insync.replicas" and int(value) < 1:
            raise ValueError("'min.insync.replicas' must be at least 1")
        if key == "min.cleanable.dirty.ratio" and not 0.0 <= float(value) <= 1.0:
            raise ValueError("'min.cleanable.dirty.ratio' must be between 0 and 1")
        out[key] = value.replace(" ", "") if key == "cleanup.policy" else value
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicDefaults(_Strict):
    """Values every topic gets unless it says otherwise; configs merge key by key."""

    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=3, ge=1)
    config: dict[str, str] = Field(default_factory=dict)

    @field_validator("config", mode="before")
    @classmethod
    def _check_config(cls, value: Any) -> dict[str, str]:
        return _validate_config(value)


PersonalData = Literal["sealed", "pseudonymous", "none"]


class Application(_Strict):
    """A reader or writer of topics (an agent, a command, the API): who publishes and who subscribes, in the one
    place that names the topics; ``docs/asyncapi.yaml`` is generated from it (``pipeline/asyncapi.py``)."""

    title: str = Field(min_length=1)
    runs: str = Field(min_length=1, description="The command or agent, for an operator.")
    modules: list[str] = Field(default_factory=list, description="Modules whose sends are this application's.")
    group: str | None = Field(default=None, description="Consumer group (the faust app id, before the prefix).")


class TopicEntry(_Strict):
    """One logical topic as written in the file, with its wire contract (key, value schema, personal data, who
    publishes and who subscribes)."""

    name: str
    purpose: str = Field(min_length=1, description="Why the topic exists; required so nobody adds a mystery topic.")
    partitions: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    config: dict[str, str] = Field(default_factory=dict)
    key: str | None = Field(default=None, description="What the record key is.")
    value: str | None = Field(default=None, description="The value's schema: a name in schemas/ (or a raw form).")
    personal_data: PersonalData | None = Field(
        default=None, description="sealed: personal data under the subject's key; pseudonymous: subject keys only."
    )
    producers: list[str] = Field(default_factory=list)
    consumers: list[str] = Field(default_factory=list)

    @field_validator("config", mode="before")
    @classmethod
    def _check_config(cls, value: Any) -> dict[str, str]:
        return _validate_config(value)

    @field_validator("name")
    @classmethod
    def _legal_name(cls, value: str) -> str:
        if not _TOPIC_NAME.fullmatch(value) or value in (".", ".."):
            raise ValueError("a topic name is 1-200 characters of letters, digits, '.', '_' and '-'")
        return value


@dataclass(frozen=True)
class TopicSpec:
    """A topic as it must exist in one cluster: real name, effective partitions, replication factor and config."""

    logical_name: str
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]
    purpose: str


class TopicsSpec(_Strict):
    """The whole file: defaults and topics."""

    defaults: TopicDefaults = Field(default_factory=TopicDefaults)
    applications: dict[str, Application] = Field(default_factory=dict)
    topics: list[TopicEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> TopicsSpec:
        seen: dict[str, int] = {}
        for index, topic in enumerate(self.topics):
            if topic.name in seen:
                raise ValueError(f"topics[{index}] ({topic.name}): name already used by topics[{seen[topic.name]}]")
            seen[topic.name] = index
            unknown = sorted(set(topic.producers + topic.consumers) - set(self.applications))
            if unknown:
                raise ValueError(f"topics[{index}] ({topic.name}): no such application: {', '.join(unknown)}")
        return self

    def names(self) -> list[str]:
        return [t.name for t in self.topics]

    def resolve(self, settings: Settings, broker_count: int | None = None) -> list[TopicSpec]:
        """Effective specs for a cluster of ``broker_count`` brokers (None: no cap, e.g. for listing the file)."""
        out: list[TopicSpec] = []
        for topic in self.topics:
            partitions = settings.topic_partitions or topic.partitions or self.defaults.partitions
            replication = (
                settings.topic_replication_factor or topic.replication_factor or self.defaults.replication_factor
            )
            if broker_count is not None:
                replication = max(1, min(replication, broker_count))
            config = {**self.defaults.config, **topic.config}
            if "min.insync.replicas" in config:
                config["min.insync.replicas"] = str(min(int(config["min.insync.replicas"]), replication))
            out.append(
                TopicSpec(
                    logical_name=topic.name,
                    name=settings.topic(topic.name),
                    partitions=partitions,
                    replication_factor=replication,
                    config=config,
                    purpose=topic.purpose,
                )
            )
        return out


def default_topics_path(settings: Settings | None = None) -> Path:
    if settings is not None and settings.topics_file is not None:
        return settings.topics_file
    return Path(str(resources.files("pipeline.kafka").joinpath("topics.yaml")))


def _format_error(path: Path, data: Any, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s)"]
    for item in error.errors():
        loc = list(item["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "topics" and isinstance(loc[1], int):
            index = loc[1]
            name = "?"
            with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
                name = str(data["topics"][index].get("name", "?"))
            where = f"topics[{index}] ({name})"
            loc = loc[2:]
        elif loc:
            where = str(loc[0])
            loc = loc[1:]
        field_path = ".".join(str(p) for p in loc)
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {where}{'.' + field_path if field_path else ''}: {message}")
    return "\n".join(lines)


#: What a topic without ``max.message.bytes`` takes: the broker's ``message.max.bytes`` (Kafka's default).
BROKER_MAX_MESSAGE_BYTES = 1_048_588


def message_limits(settings: Settings) -> dict[str, int]:
    """Logical topic name -> the largest record batch the topic accepts (``max.message.bytes`` in topics.yaml)."""
    return dict(_message_limits(default_topics_path(settings)))


@functools.lru_cache(maxsize=8)
def _message_limits(path: Path) -> tuple[tuple[str, int], ...]:
    spec = load_topics(path)
    return tuple(
        (t.name, int({**spec.defaults.config, **t.config}.get("max.message.bytes", BROKER_MAX_MESSAGE_BYTES)))
        for t in spec.topics
    )


def load_topics(path: Path | None = None) -> TopicsSpec:
    """Read and validate a topics file (default: the packaged one)."""
    path = path or default_topics_path()
    data = load_mapping(path, TopicsFileError, "topics file")
    try:
        return TopicsSpec.model_validate(data)
    except ValidationError as exc:
        raise TopicsFileError(_format_error(path, data, exc)) from None


# ---- cluster side -----------------------------------------------------------------------------------------------

DriftKind = Literal["missing", "config", "unmanaged_config", "partitions", "partitions_decrease", "replication_factor"]
#: Drift that apply can fix; the rest needs a person (Kafka cannot drop partitions; RF needs a reassignment).
FIXABLE: frozenset[str] = frozenset({"missing", "config", "unmanaged_config", "partitions"})


@dataclass(frozen=True)
class Drift:
    """One difference between topics.yaml and the cluster."""

    topic: str
    kind: DriftKind
    key: str | None = None
    expected: str | None = None
    actual: str | None = None

    @property
    def fixable(self) -> bool:
        return self.kind in FIXABLE

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"{self.topic}: missing"
        what = self.key or self.kind
        note = "" if self.fixable else " (not changed by apply: needs a person)"
        return f"{self.topic}: {what} is {self.actual!r}, file says {self.expected!r}{note}"


@dataclass
class ApplyReport:
    """What ``apply_topics`` changed; empty on a cluster that already matches the file."""

    created: list[str] = field(default_factory=list)
    altered: list[Drift] = field(default_factory=list)
    partitions_increased: list[Drift] = field(default_factory=list)
    not_applied: list[Drift] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.altered or self.partitions_increased)

    def lines(self) -> list[str]:
        out = [f"created {name}" for name in self.created]
        out += [f"altered {d}" for d in self.altered]
        out += [f"partitions {d}" for d in self.partitions_increased]
        out += [f"NOT APPLIED {d}" for d in self.not_applied]
        return out or ["no changes: the cluster matches the topics file"]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def make_admin(settings: Settings) -> AdminClient:
    return AdminClient(
        {
            **client_config(settings),
            "client.id": f"{settings.app_id}-topics",
            "socket.timeout.ms": 10_000,
        }
    )


@dataclass(frozen=True)
class _Observed:
    partitions: int
    replication_factor: int


def _observe(admin: AdminClient) -> tuple[int, dict[str, _Observed]]:
    try:
        metadata = admin.list_topics(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        raise ConnectionError(f"cannot read cluster metadata: {exc}") from exc
    topics: dict[str, _Observed] = {}
    for name, topic in metadata.topics.items():
        if topic.error is not None:
            continue
        replicas = max((len(p.replicas) for p in topic.partitions.values()), default=0)
        topics[name] = _Observed(len(topic.partitions), replicas)
    return len(metadata.brokers), topics


def _describe_configs(admin: AdminClient, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    resources_ = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    if not resources_:
        return {}
    futures = admin.describe_configs(resources_, request_timeout=_TIMEOUT_S)
    return {resource.name: future.result(timeout=_TIMEOUT_S) for resource, future in futures.items()}


def _diff(specs: list[TopicSpec], observed: dict[str, _Observed], configs: dict[str, dict[str, Any]]) -> list[Drift]:
    drifts: list[Drift] = []
    for spec in specs:
        seen = observed.get(spec.name)
        if seen is None:
            drifts.append(Drift(spec.name, "missing"))
            continue
        if spec.partitions > seen.partitions:
            drifts.append(Drift(spec.name, "partitions", "partitions", str(spec.partitions), str(seen.partitions)))
        elif spec.partitions < seen.partitions:
            drifts.append(
                Drift(spec.name, "partitions_decrease", "partitions", str(spec.partitions), str(seen.partitions))
            )
        if spec.replication_factor != seen.replication_factor:
            drifts.append(
                Drift(
                    spec.name,
                    "replication_factor",
                    "replication_factor",
                    str(spec.replication_factor),
                    str(seen.replication_factor),
                )
            )
        entries = configs.get(spec.name, {})
        for key, expected in sorted(spec.config.items()):
            entry = entries.get(key)
            actual = None if entry is None else entry.value
            if actual != expected:
                drifts.append(Drift(spec.name, "config", key, expected, actual))
        for key, entry in sorted(entries.items()):
            if key not in spec.config and entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value:
                drifts.append(Drift(spec.name, "unmanaged_config", key, None, entry.value))
    return drifts


def _plan(settings: Settings, admin: AdminClient, spec: TopicsSpec | None) -> tuple[list[TopicSpec], list[Drift]]:
    spec = spec or load_topics(default_topics_path(settings))
    brokers, observed = _observe(admin)
    specs = spec.resolve(settings, broker_count=max(brokers, 1))
    existing = [s.name for s in specs if s.name in observed]
    return specs, _diff(specs, observed, _describe_configs(admin, existing))


def diff_topics(settings: Settings, spec: TopicsSpec | None = None) -> list[Drift]:
    """Every difference between the topics file and the cluster (empty when they match)."""
    _specs, drifts = _plan(settings, make_admin(settings), spec)
    return drifts


def _wait_for_leaders(admin: AdminClient, names: set[str], timeout_s: float = _TIMEOUT_S) -> None:
    """Block until new topics have a leader for every partition, so producers right after apply do not race."""
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending and time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=_TIMEOUT_S)
        for name in list(pending):
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                continue
            if all(p.leader >= 0 for p in topic.partitions.values()):
                pending.discard(name)
        if pending:
            time.sleep(0.05)
    if pending:
        raise TimeoutError(f"topics created but without a leader after {timeout_s}s: {sorted(pending)}")


def _wait_until_visible(admin: AdminClient, specs: list[TopicSpec], timeout_s: float = 15.0) -> None:
    """Block until describe/metadata show the altered configs and partitions.

    The controller has committed them when the futures resolve, but the broker that answers the next describe may
    lag a moment behind; without this, an immediate second apply or diff could see the old values.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        _brokers, observed = _observe(admin)
        left = [d for d in _diff(specs, observed, _describe_configs(admin, [s.name for s in specs])) if d.fixable]
        if not left:
            return
        if time.monotonic() > deadline:
            shown = "; ".join(str(d) for d in left[:5])
            raise TimeoutError(f"applied, but the cluster still shows a difference after {timeout_s}s: {shown}")
        time.sleep(0.1)


def apply_topics(settings: Settings, spec: TopicsSpec | None = None) -> ApplyReport:
    """Make the cluster match the file: create missing topics, fix configs, add partitions. Idempotent.

    Never decreases partitions or changes replication factors; those appear in ``not_applied``.
    """
    admin = make_admin(settings)
    specs, drifts = _plan(settings, admin, spec)
    report = ApplyReport(not_applied=[d for d in drifts if not d.fixable])
    by_name = {s.name: s for s in specs}

    missing = [by_name[d.topic] for d in drifts if d.kind == "missing"]
    if missing:
        new = [NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config)) for s in missing]
        for name, future in admin.create_topics(new, request_timeout=_TIMEOUT_S).items():
            try:
                future.result(timeout=_TIMEOUT_S)
                report.created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another process was faster: fine
                    raise RuntimeError(f"creating topic {name} failed: {exc}") from exc
        _wait_for_leaders(admin, set(report.created))

    config_drifts = [d for d in drifts if d.kind in ("config", "unmanaged_config")]
    if config_drifts:
        per_topic: dict[str, list[Drift]] = {}
        for drift in config_drifts:
            per_topic.setdefault(drift.topic, []).append(drift)
        resources_ = [
            ConfigResource(
                ResourceType.TOPIC,
                topic,
                incremental_configs=[
                    ConfigEntry(
                        d.key or "",
                        d.expected,
                        incremental_operation=AlterConfigOpType.SET if d.kind == "config" else AlterConfigOpType.DELETE,
                    )
                    for d in items
                ],
            )
            for topic, items in per_topic.items()
        ]
        for resource, future in admin.incremental_alter_configs(resources_, request_timeout=_TIMEOUT_S).items():
            try:
                future.result(timeout=_TIMEOUT_S)
            except KafkaException as exc:
                raise RuntimeError(f"altering configs of topic {resource.name} failed: {exc}") from exc
            report.altered.extend(per_topic[resource.name])

    grow = [d for d in drifts if d.kind == "partitions"]
    if grow:
        futures = admin.create_partitions(
            [NewPartitions(d.topic, int(d.expected or 0)) for d in grow], request_timeout=_TIMEOUT_S
        )
        for name, future in futures.items():
            try:
                future.result(timeout=_TIMEOUT_S)
            except KafkaException as exc:
                raise RuntimeError(f"adding partitions to topic {name} failed: {exc}") from exc
        report.partitions_increased.extend(grow)

    touched = {d.topic for d in (*report.altered, *report.partitions_increased)}
    if touched:
        _wait_until_visible(admin, [by_name[name] for name in sorted(touched)])

    log.info(
        "topics applied",
        created=len(report.created),
        altered=len(report.altered),
        partitions_increased=len(report.partitions_increased),
        not_applied=len(report.not_applied),
    )
    return report


def delete_prefixed_topics(settings: Settings, timeout_s: float = _TIMEOUT_S) -> list[str]:
    """Delete every topic whose name starts with ``settings.topic_prefix`` (tests clean up after themselves).

    Refuses an empty prefix: that would be every topic in the cluster.
    """
    prefix = settings.topic_prefix
    if not prefix:
        raise ValueError("refusing to delete topics without a topic prefix")
    admin = make_admin(settings)
    _brokers, observed = _observe(admin)
    names = sorted(n for n in observed if n.startswith(prefix))
    if names:
        for name, future in admin.delete_topics(names, request_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise RuntimeError(f"deleting topic {name} failed: {exc}") from exc
    return names


__all__ = [
    "Application",
    "ApplyReport",
    "Drift",
    "PersonalData",
    "TopicEntry",
    "TopicSpec",
    "TopicsFileError",
    "TopicsSpec",
    "apply_topics",
    "default_topics_path",
    "delete_prefixed_topics",
    "diff_topics",
    "load_topics",
]
