"""The processing agent's faust tables, declared on the app; ``ProcessingTables.state()`` is what one batch reads.

Tables, all in memory and rebuilt from their compacted topics on assignment (``store="memory://"``):

- ``suppression``: a global table over the ``suppression`` topic the rights agent writes (read-only here).
- ``blocklist``: a global table over ``spam.blocklist`` (reviewer-confirmed senders, hashed keys).
- ``retention-anchors``: per subject and clock, changelog ``contacts.retention-clock`` (topics.yaml).
- ``rate-windows``: sliding-window counts per hashed IP / subject, changelog ``contacts.rate-windows``.

The anchor and rate tables are written by the agent through ``TransactionalSender`` (the changelog record joins
the transaction of the event that caused it) and into the table's local data directly. Faust's own
``table[key] = value`` is not used: it routes the changelog write through a background buffer and by
``current_event()``, which under ``take`` batches is the last event of the batch, not the one being handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust

from pipeline.agents.faust_adapter import ExternalGlobalTable, table_dict
from pipeline.agents.views import ProcessingState
from pipeline.config import Settings
from pipeline.topics import BLOCKLIST_TOPIC, RATE_WINDOWS_TOPIC, RETENTION_CLOCK_TOPIC, SUPPRESSION_TOPIC


def _raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=partitions, internal=False)


def global_table(app: faust.App, name: str, topic: str, partitions: int) -> Any:
    """A global table of raw bytes over ``topic``, kept up to date while the worker runs (every partition)."""
    table = ExternalGlobalTable(
        app,
        name=name,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        changelog_topic=_raw_topic(app, topic, partitions),
        beacon=app.tables.beacon,
        recovery_buffer_size=1,  # apply each record at once: a suppression must not wait for 999 others
        standby_buffer_size=1,
        is_global=True,
        synchronize_all_active_partitions=True,
        help=f"materialised {topic}",
    )
    return app.tables.add(table)


def local_table(app: faust.App, name: str, topic: str, partitions: int) -> Any:
    """A partitioned table of raw bytes whose changelog is ``topic`` (co-partitioned with the input)."""
    return app.Table(
        name,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        changelog_topic=_raw_topic(app, topic, partitions),
        help=f"changelog {topic}",
    )


@dataclass
class ProcessingTables:
    """The four tables, declared on an app; ``state`` is what one batch reads."""

    suppression: Any
    blocklist: Any
    anchors: Any
    rate_windows: Any

    @classmethod
    def declare(cls, app: faust.App, settings: Settings, partitions: Mapping[str, int]) -> ProcessingTables:
        topic = settings.topic
        return cls(
            suppression=global_table(app, "suppression", topic(SUPPRESSION_TOPIC), partitions[SUPPRESSION_TOPIC]),
            blocklist=global_table(app, "blocklist", topic(BLOCKLIST_TOPIC), partitions[BLOCKLIST_TOPIC]),
            anchors=local_table(
                app, "retention-anchors", topic(RETENTION_CLOCK_TOPIC), partitions[RETENTION_CLOCK_TOPIC]
            ),
            rate_windows=local_table(app, "rate-windows", topic(RATE_WINDOWS_TOPIC), partitions[RATE_WINDOWS_TOPIC]),
        )

    def state(self) -> ProcessingState:
        return ProcessingState(
            suppression=table_dict(self.suppression),
            blocklist=table_dict(self.blocklist),
            anchors=table_dict(self.anchors),
            rates=table_dict(self.rate_windows),
        )
