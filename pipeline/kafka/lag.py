"""Consumer lag: for each consumer group, how far its committed offsets are behind each partition's end.

What an operator and an autoscaler look at (``leadpipe lag``, the worker's ``leadpipe_consumer_lag`` gauge, KEDA's
Kafka scaler in the chart): records written and not yet consumed, per group, topic and partition. The end is the
last stable offset (``read_committed``), what an exactly-once consumer can reach; a partition the group has never
committed on counts from its earliest offset (the workers start at ``earliest``). A partition of a topic written
in transactions can show a lag of 1 while idle: the commit marker after the last record is an offset no consumer
ever commits past.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # public names, re-exported without __all__
    AdminClient,
    OffsetSpec,
)

from pipeline.config import Settings
from pipeline.kafka.topics import make_admin

_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class PartitionLag:
    """One partition of one group: ``committed`` is None when the group never committed there."""

    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


def product_groups(settings: Settings) -> list[str]:
    """The consumer groups of leadpipe's workers: the app id and the rights worker's (``<app id>-rights``)."""
    group = settings.topic(settings.app_id)
    return [group, f"{group}-rights"]


def _existing_groups(admin: AdminClient) -> set[str]:
    listing = admin.list_consumer_groups(request_timeout=_TIMEOUT_S).result(timeout=_TIMEOUT_S)
    return {group.group_id for group in listing.valid}


def _group_partitions(admin: AdminClient, group: str) -> dict[tuple[str, int], int | None]:
    """(topic, partition) -> committed offset (None: none yet), over what it committed and what it is assigned."""
    request = [ConsumerGroupTopicPartitions(group)]
    committed = admin.list_consumer_group_offsets(request, request_timeout=_TIMEOUT_S)[group].result(timeout=_TIMEOUT_S)
    out: dict[tuple[str, int], int | None] = {
        (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in committed.topic_partitions or []
    }
    description = admin.describe_consumer_groups([group], request_timeout=_TIMEOUT_S)[group].result(timeout=_TIMEOUT_S)
    for member in description.members or []:
        for tp in member.assignment.topic_partitions if member.assignment else []:
            out.setdefault((tp.topic, tp.partition), None)
    return out


def _offsets(admin: AdminClient, partitions: Iterable[tuple[str, int]], spec: OffsetSpec) -> dict[tuple[str, int], int]:
    request = {TopicPartition(topic, partition): spec for topic, partition in partitions}
    if not request:
        return {}
    futures = admin.list_offsets(request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=_TIMEOUT_S)
    return {(tp.topic, tp.partition): future.result(timeout=_TIMEOUT_S).offset for tp, future in futures.items()}


def consumer_lag(
    settings: Settings, groups: Sequence[str] | None = None, admin: AdminClient | None = None
) -> list[PartitionLag]:
    """Lag of every partition of ``groups`` (default: ``product_groups`` that exist), sorted by group, topic,
    partition. A group named explicitly is taken as named, else under the topic prefix (``leadpipe`` is
    ``<prefix>leadpipe``); one that does not exist either way raises ``LookupError`` naming the groups that do."""
    admin = admin or make_admin(settings)
    try:
        existing = _existing_groups(admin)
        if groups is None:
            wanted = [g for g in product_groups(settings) if g in existing]
        else:  # a group as the workers name it ("leadpipe") is found under the topic prefix too
            wanted = [g if g in existing or settings.topic(g) not in existing else settings.topic(g) for g in groups]
            unknown = sorted(set(wanted) - existing)
            if unknown:
                known = ", ".join(sorted(g for g in product_groups(settings) if g in existing)) or "none yet"
                raise LookupError(f"no such consumer group: {', '.join(unknown)} (the workers' groups: {known})")
        per_group = {group: _group_partitions(admin, group) for group in wanted}
        partitions = {tp for committed in per_group.values() for tp in committed}
        ends = _offsets(admin, partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        starts = _offsets(admin, partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
    except KafkaException as exc:
        raise ConnectionError(f"cannot read consumer offsets: {exc}") from exc
    out: list[PartitionLag] = []
    for group, committed in per_group.items():
        for (topic, partition), offset in committed.items():
            end = ends[(topic, partition)]
            position = offset if offset is not None else starts[(topic, partition)]
            out.append(PartitionLag(group, topic, partition, offset, end, max(0, end - position)))
    return sorted(out, key=lambda lag: (lag.group, lag.topic, lag.partition))
