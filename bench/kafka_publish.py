"""What the confirming, idempotent publisher costs over a raw confluent-kafka producer, measured in the same run.

Both send the same N sealed ContactRecords (~0.7 KB of JSON) to a one-partition topic and wait for every delivery.
The baseline produces pre-encoded bytes with default producer settings; the measured path builds the records'
JSON from the pydantic models, uses acks=all + idempotence + zstd, and checks every delivery report.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/kafka_publish.py     # BENCH_N=20000
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from datetime import UTC, datetime

from confluent_kafka import Producer

from pipeline.config import explicit_settings
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing, encode
from pipeline.kafka.topics import apply_topics, delete_prefixed_topics
from pipeline.models.common import Channel
from pipeline.models.records import ContactRecord, Sealed

N = int(os.environ.get("BENCH_N", "20000"))


def record(i: int) -> ContactRecord:
    now = datetime.now(UTC)
    return ContactRecord(
        event_id=uuid.uuid4(),
        channel=Channel.WEB_FORM,
        occurred_at=now,
        received_at=now,
        subject_key=f"{i:064x}",
        sealed=Sealed(
            key_id=f"subject:{i:064x}",
            nonce=base64.urlsafe_b64encode(os.urandom(12)).decode(),
            ciphertext=base64.urlsafe_b64encode(os.urandom(240)).decode(),
        ),
    )


def produce_raw(servers: str, topic: str, payloads: list[tuple[bytes, str]]) -> float:
    raw = Producer({"bootstrap.servers": servers, "linger.ms": 5})
    start = time.perf_counter()
    for value, key in payloads:
        while True:
            try:
                raw.produce(topic, value, key)
                break
            except BufferError:
                raw.poll(0.05)
        raw.poll(0)
    assert raw.flush(60) == 0
    return len(payloads) / (time.perf_counter() - start)


def main() -> None:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS (make bench starts a broker and sets it)")
    settings = explicit_settings(
        kafka_bootstrap_servers=servers, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", topic_partitions=1
    )
    apply_topics(settings)
    records = [record(i) for i in range(N)]
    payloads = [(encode(r), r.subject_key) for r in records]
    try:
        baseline = produce_raw(servers, settings.topic("contacts.normalized"), payloads)
        publisher = ConfirmingPublisher(settings)
        start = time.perf_counter()
        publisher.publish(Outgoing("contacts.normalized", r.subject_key, r) for r in records)
        measured = N / (time.perf_counter() - start)
    finally:
        delete_prefixed_topics(settings)
    print(f"records: {N}, ~{len(payloads[0][0])} bytes each")
    print(f"baseline raw confluent-kafka produce+flush: {baseline:,.0f} records/s")
    print(f"ConfirmingPublisher (model->JSON, acks=all, idempotent, zstd, confirmed): {measured:,.0f} records/s")
    print(f"ratio publisher/baseline: {measured / baseline:.2f}")


if __name__ == "__main__":
    main()
