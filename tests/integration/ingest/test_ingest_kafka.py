"""Against the real broker: what the API, the import command and the SDK accepted is exactly what a consumer reads
back (decrypted and compared), and the dead-letter topic holds exactly what they rejected; and a payload naming two
people is unreadable on the topic once either of them is erased."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from source_payloads import PAYLOADS, RECEIVED_AT, content_type_of

from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.crypto import KeyDestroyedError, subject_scope
from pipeline.db import ensure_schema
from pipeline.ingest.api import sign
from pipeline.kafka.consumer import Record, read_to_end
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.common import Channel
from pipeline.models.records import ContactRecord, DeadLetter, RawRecord
from pipeline.normalize import is_visitor_key
from pipeline.runtime import Runtime
from pipeline.sdk import LeadpipeProducer, PayloadRejected
from pipeline.sources import ADAPTERS, SourceContext

pytestmark = pytest.mark.integration

SECRET = "integration-secret"
RAW_TOPICS = [f"contacts.raw.{c.value}" for c in Channel]
TOPICS = [*RAW_TOPICS, "contacts.normalized", "contacts.dlq.ingest"]


def _with_sources(settings: Settings) -> Settings:
    sources = {c.value: {"channel": c.value, "hmac_secret": SECRET} for c in Channel}
    return settings.model_copy(update={"sources": Settings.model_validate({"sources": sources}).sources})


def _expected_person(channel: Channel, raw: bytes, content_type: str, source_id: str) -> list[Any]:
    ctx = SourceContext.for_payload(
        raw, source_id=source_id, channel=channel, content_type=content_type, received_at=RECEIVED_AT, pepper=b""
    )
    return [(e.event_id, e.person.email, e.person.phone) for e in ADAPTERS[channel](raw, ctx)]


def _values(records: list[Record], topic: str) -> list[bytes]:
    """The values on one logical topic, in partition order (a tombstone would be a bug here: none are written)."""
    values = [r.value for r in records if r.topic == topic]
    assert all(v is not None for v in values), f"a tombstone on {topic}"
    return [v for v in values if v is not None]


def _open(runtime: Runtime, got: list[Record]) -> tuple[dict[Any, Any], dict[Any, bytes], list[DeadLetter]]:
    normalized = {}
    for value in _values(got, "contacts.normalized"):
        event = runtime.codec.open_contact(ContactRecord.model_validate_json(value))
        normalized[event.event_id] = event
    raw = {}
    for topic in RAW_TOPICS:
        for value in _values(got, topic):
            record = RawRecord.model_validate_json(value)
            assert topic == f"contacts.raw.{record.channel.value}"
            raw[record.event_id] = runtime.codec.sealer.open(record.sealed)
    dead = [DeadLetter.model_validate_json(v) for v in _values(got, "contacts.dlq.ingest")]
    return normalized, raw, dead


def test_api_publishes_exactly_what_it_accepted(kafka_settings: Settings) -> None:
    settings = _with_sources(kafka_settings)
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    publisher = ConfirmingPublisher(settings)
    client = TestClient(create_api(runtime, publisher))
    accepted: dict[Any, bytes] = {}
    rejected: dict[str, bytes] = {}
    for path in sorted(PAYLOADS.rglob("*.*")):
        body = path.read_bytes()
        headers = {"content-type": content_type_of(path), **sign(SECRET, body)}
        response = client.post(f"/v1/sources/{path.parent.name}", content=body, headers=headers)
        assert response.status_code in (202, 400, 422), (path.name, response.text)
        if response.status_code == 202:
            for event_id in response.json()["event_ids"]:
                accepted[event_id] = body
        else:
            rejected[response.json()["dead_letter_id"]] = body
    publisher.close()
    assert len(accepted) >= 20 and len(rejected) >= 8

    normalized, raw, dead = _open(runtime, read_to_end(settings, TOPICS))
    assert {str(i) for i in normalized} == set(accepted)  # exactly what was accepted: no loss, no extra
    assert {str(i) for i in raw} == set(accepted)
    for event_id, event in normalized.items():
        assert raw[event_id] == accepted[str(event_id)]
        if is_visitor_key(event.subject_key):  # an anonymous website visitor's page view, keyed by its cookie id
            assert event.provenance.visitor_key == event.subject_key and event.person.email is None
        else:
            assert (event.person.email or event.person.phone) is not None
    assert {str(d.dead_letter_id) for d in dead} == set(rejected)
    for letter in dead:
        assert letter.payload is not None
        assert runtime.codec.sealer.open(letter.payload) == rejected[str(letter.dead_letter_id)]
        assert letter.stage == "ingest" and letter.error


def test_import_command_publishes_rows_and_dead_letters_the_rest(kafka_settings: Settings, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEADPIPE_")},
        "LEADPIPE_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "LEADPIPE_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "LEADPIPE_HOME": str(kafka_settings.home),
        "LEADPIPE_ENVIRONMENT": "test",
        "LEADPIPE_SUBJECT_KEY_PEPPER": "test-pepper",
        "LEADPIPE_KEY_ENCRYPTION_KEY": kafka_settings.key_encryption_key.get_secret_value(),  # type: ignore[union-attr]
        "LEADPIPE_LOG_LEVEL": "WARNING",
    }
    leadpipe = Path(sys.executable).with_name("leadpipe")
    cards = PAYLOADS / "event" / "business_cards.csv"
    ok = subprocess.run(
        [leadpipe, "import", "event", str(cards)], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"events published\s*│\s*3\s*│", ok.stdout), ok.stdout
    assert re.search(r"records rejected \(dead-lettered\)\s*│\s*0\s*│", ok.stdout), ok.stdout

    bad_file = tmp_path / "customers.jsonl"
    bad_file.write_bytes((PAYLOADS / "customer" / "customers.jsonl").read_bytes())
    bad = subprocess.run(
        [leadpipe, "import", "customer", str(bad_file), "--source-id", "crm-export"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1, bad.stderr
    assert "missing_last_service_delivery" in bad.stdout

    runtime = Runtime(kafka_settings)
    normalized, raw, dead = _open(runtime, read_to_end(kafka_settings, TOPICS))
    emails = sorted(e.person.email or "" for e in normalized.values())
    assert emails == sorted(
        [
            "ANNA.KOWALSKA@kowalski.example.pl",
            "peter@neilandsons.example.ie",
            "maria.silva@silva.example.pt",
            "nadia@haddad.example.ae",
            "olu@adeyemi.example.ng",
        ]
    )
    assert {e.provenance.source_id for e in normalized.values()} == {"import", "crm-export"}
    assert set(raw) == set(normalized)
    [letter] = dead
    assert letter.reason == "missing_last_service_delivery"
    assert b"liam@example.nz" in runtime.codec.sealer.open(letter.payload)  # type: ignore[arg-type]


def test_sdk_confirms_and_rejects_with_types(kafka_settings: Settings) -> None:
    with LeadpipeProducer(kafka_settings) as producer:
        result = producer.publish(
            "web_form", {"email": "sdk.user@example.com", "form_type": "demo request"}, source_id="marketing-sync"
        )
        assert result.accepted and len(result.event_ids) == 1
        with pytest.raises(PayloadRejected) as err:
            producer.publish("web_form", {"email": "nope@@example"}, source_id="marketing-sync")
        batch = producer.publish_batch(
            Channel.CUSTOMER,
            [{"email": "c1@example.com", "last_service_delivery": "2024-01-01"}, {"email": "c2@example.com"}],
            source_id="marketing-sync",
        )
    assert [r.status for r in batch] == ["accepted", "rejected"]
    runtime = Runtime(kafka_settings)
    normalized, _raw, dead = _open(runtime, read_to_end(kafka_settings, TOPICS))
    assert set(normalized) == {result.event_ids[0], batch[0].event_ids[0]}
    assert {d.dead_letter_id for d in dead} == {err.value.result.dead_letter_id, batch[1].dead_letter_id}


def test_erasing_one_attendee_makes_the_shared_raw_order_unreadable_from_offset_zero(kafka_settings: Settings) -> None:
    settings = _with_sources(kafka_settings)
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    publisher = ConfirmingPublisher(settings)
    body = (PAYLOADS / "event" / "eventbrite_order.json").read_bytes()
    response = TestClient(create_api(runtime, publisher)).post(
        "/v1/sources/event", content=body, headers={"content-type": "application/json", **sign(SECRET, body)}
    )
    publisher.close()
    assert response.status_code == 202 and len(response.json()["event_ids"]) == 2

    got = read_to_end(settings, TOPICS)
    raw = [RawRecord.model_validate_json(v) for v in _values(got, "contacts.raw.event")]
    normalized = {
        r.subject_key: r for r in (ContactRecord.model_validate_json(v) for v in _values(got, "contacts.normalized"))
    }
    assert len(raw) == 2 and len(normalized) == 2 and raw[0].sealed == raw[1].sealed
    erased, kept = sorted(normalized)
    runtime.keystore.destroy(subject_scope(erased), "test")

    reader = Runtime(settings)  # another process: no cache, only what the database holds
    try:
        for record in raw:
            with pytest.raises(KeyDestroyedError):
                reader.codec.sealer.open(record.sealed)
        with pytest.raises(KeyDestroyedError):
            reader.codec.open_contact(normalized[erased])
        assert reader.codec.open_contact(normalized[kept]).person.email
    finally:
        reader.engine.dispose()
        runtime.engine.dispose()
