"""Every topic name the code uses, in one place, and checked against ``topics.yaml`` (tests/unit/infra).

Names are logical: ``settings.topic(name)`` prepends the per-test / per-tenant prefix. ``topics.yaml`` says how each
topic is created (partitions, retention, compaction); this module is how the code names them. A topic in one and
not the other fails ``tests/unit/infra/test_topics_module.py``; a topic name written anywhere else in ``pipeline/``
fails it too.
"""

from __future__ import annotations

from pipeline.models.common import Channel

# ---- ingest -------------------------------------------------------------------------------------------------------
#: Payloads exactly as each source sent them (sealed), one topic per channel: ``contacts.raw.<channel>``.
RAW_TOPIC_PREFIX = "contacts.raw."
#: Payloads that authenticated but could not be normalised (a dead letter has no topic to be replayed onto).
INGEST_DLQ_TOPIC = "contacts.dlq.ingest"

# ---- processing ---------------------------------------------------------------------------------------------------
NORMALIZED_TOPIC = "contacts.normalized"
ACCEPTED_TOPIC = "contacts.accepted"
QUARANTINE_TOPIC = "contacts.quarantine"
REVIEW_DECISIONS_TOPIC = "contacts.review.decisions"
#: Records the processing chain, the spam review or the rights agent could not handle.
PROCESSING_DLQ_TOPIC = "contacts.dlq"
DROPS_TOPIC = "contacts.drops"
#: Changelogs of the processing agent's tables (retention anchors, spam rate windows) and the reviewer blocklist.
RETENTION_CLOCK_TOPIC = "contacts.retention-clock"
RATE_WINDOWS_TOPIC = "contacts.rate-windows"
BLOCKLIST_TOPIC = "spam.blocklist"

# ---- sinks --------------------------------------------------------------------------------------------------------
SINK_RESULTS_TOPIC = "sinks.results"
SINKS_DLQ_TOPIC = "sinks.dlq"

# ---- data-subject rights and audit ----------------------------------------------------------------------------------
RIGHTS_COMMANDS_TOPIC = "rights.commands"
RIGHTS_STATUS_TOPIC = "rights.status"
SUPPRESSION_TOPIC = "suppression"
AUDIT_TOPIC = "audit"

#: Every dead-letter topic, in the order the stages run: ingest, processing (and rights), sinks.
DLQ_TOPICS = (INGEST_DLQ_TOPIC, PROCESSING_DLQ_TOPIC, SINKS_DLQ_TOPIC)

#: The faust app ids leadpipe runs: the worker (``Settings.app_id``'s default) and the dedicated rights worker
#: (``LEADPIPE_APP_ID=leadpipe-rights``, the Helm chart's default layout).
WORKER_APP_IDS = ("leadpipe", "leadpipe-rights")


def raw_topic(channel: Channel) -> str:
    """``contacts.raw.<channel>``: where a channel's payloads are kept as received."""
    return f"{RAW_TOPIC_PREFIX}{channel.value}"


def leader_topic(app_id: str) -> str:
    """faust's leader election topic of an app (timers that run on one worker only), which faust names itself."""
    return f"{app_id}-__assignor-__leader"


def all_topics() -> frozenset[str]:
    """Every logical topic leadpipe reads or writes: exactly the names in ``topics.yaml``."""
    return frozenset(
        {
            *(raw_topic(channel) for channel in Channel),
            INGEST_DLQ_TOPIC,
            NORMALIZED_TOPIC,
            ACCEPTED_TOPIC,
            QUARANTINE_TOPIC,
            REVIEW_DECISIONS_TOPIC,
            PROCESSING_DLQ_TOPIC,
            DROPS_TOPIC,
            RETENTION_CLOCK_TOPIC,
            RATE_WINDOWS_TOPIC,
            BLOCKLIST_TOPIC,
            SINK_RESULTS_TOPIC,
            SINKS_DLQ_TOPIC,
            RIGHTS_COMMANDS_TOPIC,
            RIGHTS_STATUS_TOPIC,
            SUPPRESSION_TOPIC,
            AUDIT_TOPIC,
            *(leader_topic(app_id) for app_id in WORKER_APP_IDS),
        }
    )
