"""Reading topics back: exactly to the end, committed records only unless asked otherwise."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from pipeline.config import Settings
from pipeline.kafka.consumer import ReadError, read_to_end, read_until
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.rights import AuditRecord

pytestmark = pytest.mark.integration


def _audit(i: int) -> AuditRecord:
    return AuditRecord.model_validate(
        {"audit_id": f"00000000-0000-0000-0000-{i:012d}", "at": "2026-01-01T00:00:00Z", "actor": "t", "action": "a"}
    )


def test_read_to_end_sees_exactly_what_was_confirmed_and_skips_aborted(kafka_settings: Settings) -> None:
    publisher = ConfirmingPublisher(kafka_settings)
    publisher.publish([Outgoing("audit", f"k{i}", _audit(i)) for i in range(25)])
    publisher.close()
    aborted = Producer(
        {
            "bootstrap.servers": kafka_settings.kafka_bootstrap_servers,
            "transactional.id": f"{kafka_settings.topic_prefix}tx",
        }
    )
    aborted.init_transactions()
    aborted.begin_transaction()
    aborted.produce(kafka_settings.topic("audit"), b"never-committed")
    aborted.flush()  # on the broker, then aborted: read_uncommitted readers see it, committed ones do not
    aborted.abort_transaction()

    committed = read_to_end(kafka_settings, ["audit"])
    assert len(committed) == 25 and all(r.topic == "audit" for r in committed)
    assert b"never-committed" not in {r.value for r in committed}
    everything = read_to_end(kafka_settings, ["audit"], isolation="read_uncommitted")
    assert b"never-committed" in {r.value for r in everything}

    seen = read_until(kafka_settings, ["audit"], lambda records: len(records) >= 25, timeout_s=30)
    assert {r.key for r in seen} == {f"k{i}".encode() for i in range(25)}
    with pytest.raises(ReadError):
        read_until(kafka_settings, ["audit"], lambda records: len(records) > 25, timeout_s=3)
    with pytest.raises(ReadError, match="does not exist"):
        read_to_end(kafka_settings, ["no.such.topic"])
