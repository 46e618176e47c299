"""Erasure inside Kafka: after an erasure, nothing of the subject can be recovered from ANY topic, from offset 0.

Two people submit through the real ingest path (sealed raw + normalized records, a dead letter for a payload that
could not be parsed), the chain's outputs are sealed the way the chain seals them (accepted, quarantine), the CRM
holds them, and the erasure runs through the rights machinery. Then every topic of the test's prefix is read from
the beginning with a fresh key store (no cache): the erased person's sealed data raises KeyDestroyedError, their
e-mail and name appear nowhere in clear, and the other person still decrypts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes.contacts import tags_for
from identity_helpers import person as principal_named
from rights_helpers import read_everything
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.crypto.keystore import SubjectKey
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.db import ensure_schema
from pipeline.ingest.service import IngestService
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Channel
from pipeline.models.identity import Role
from pipeline.models.records import ContactBody, Sealed
from pipeline.models.rights import RightKind, SinkStatus
from pipeline.models.tagged import TaggedEvent
from pipeline.rights.commands import RightsDesk, build_command
from pipeline.rights.service import build_executor
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter

pytestmark = pytest.mark.integration

ERASED = {"email": "zoe.quartz@example.com", "first_name": "Zoefina", "last_name": "Quartzberg"}
KEPT = {"email": "kai.ember@example.org", "first_name": "Kaiwen", "last_name": "Emberly"}

DPO = principal_named("dana", "Dana Privacy", Role.DPO)


def _form(person: dict[str, str], message: str) -> bytes:
    return json.dumps({**person, "company": "Quartzworks", "message": message, "form_id": "contact"}).encode()


def _sealed_values(doc: Any) -> Iterator[Sealed]:
    if isinstance(doc, dict):
        if {"key_id", "nonce", "ciphertext"} <= doc.keys():
            yield Sealed.model_validate(doc)
        for value in doc.values():
            yield from _sealed_values(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _sealed_values(value)


@pytest.fixture
def world(kafka_settings: Settings, db_url: str, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    settings = make_settings(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix,
        database_url=db_url,
        rights_max_attempts=1,
    )
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    yield runtime
    runtime.engine.dispose()


def test_erasure_leaves_nothing_recoverable_on_any_topic(world: Runtime) -> None:
    runtime, settings = world, world.settings
    publisher = ConfirmingPublisher(settings)
    ingest = IngestService(runtime, publisher)
    crm = CrmWriter(runtime.engine)

    accepted: dict[str, list[TaggedEvent]] = {}
    for person in (ERASED, KEPT):
        results = [
            ingest.submit(
                "site-form",
                Channel.WEB_FORM,
                _form(person, f"Quote please, {person['first_name']}"),
                "application/json",
            ),
            ingest.submit("site-form", Channel.WEB_FORM, _form(person, "A second question"), "application/json"),
        ]
        assert all(r.accepted for r in results)
        # a payload that cannot be parsed but names the person: dead-lettered under their key
        rejected = ingest.submit("site-form", Channel.WEB_FORM, json.dumps([person]).encode(), "application/json")
        assert not rejected.accepted and rejected.dead_letter_id is not None
        events = [e for r in results for e in r.events]
        tagged = [TaggedEvent(event=e, tags=tags_for(e)) for e in events]
        accepted[person["email"]] = tagged
        now = datetime.now(UTC)
        publisher.publish(
            [Outgoing("contacts.accepted", t.event.subject_key, runtime.codec.seal_accepted(t)) for t in tagged]
            + [
                Outgoing(
                    "contacts.quarantine", tagged[0].event.subject_key, runtime.codec.seal_quarantine(tagged[0], now)
                )
            ]
        )
        crm.write_events(tagged)

    # one customer import names both people: its raw payload is sealed once, under a key linked to each of them
    csv = "email,first_name,last_name,company,last_service_delivery\n" + "".join(
        f"{p['email']},{p['first_name']},{p['last_name']},Quartzworks,2025-01-15\n" for p in (ERASED, KEPT)
    )
    imported = ingest.submit("crm-import", Channel.CUSTOMER, csv.encode(), "text/csv")
    assert imported.accepted and len(imported.events) == 2, imported

    erased_key = accepted[ERASED["email"]][0].event.subject_key
    kept_key = accepted[KEPT["email"]][0].event.subject_key

    # before the erasure: which sealed values on any topic hold the erased person's data, and which do not
    clear = [v.encode() for v in ERASED.values()]
    holds_erased: list[Sealed] = []
    holds_only_others: list[Sealed] = []
    for message in read_everything(settings):
        for sealed in _sealed_values(json.loads(message.value or b"null")):
            plain = runtime.codec.sealer.open(sealed).lower()
            (holds_erased if any(v.lower() in plain for v in clear) else holds_only_others).append(sealed)
    assert any(s.key_id.startswith("record:") for s in holds_erased), "the shared import payload was not seen"

    desk = RightsDesk(RequestTracker(runtime.engine), publisher)
    (command,) = desk.submit([build_command(RightKind.ERASURE, erased_key, issued_by=DPO)])
    statuses = {s.sink: s for s in build_executor(runtime, publisher).execute(command)}
    assert statuses["kafka"].status is SinkStatus.DONE and statuses["kafka"].evidence["keys_destroyed"] >= 1
    assert statuses["suppression"].status is SinkStatus.DONE
    assert statuses["crm"].status is SinkStatus.DONE

    # a fresh process: nothing cached, only what the database still holds
    reader = Runtime(settings)
    try:
        messages = read_everything(settings)
        topics = {m.topic for m in messages}
        assert {
            "contacts.raw.web_form",
            "contacts.normalized",
            "contacts.dlq.ingest",
            "contacts.accepted",
            "contacts.quarantine",
            "rights.commands",
            "rights.status",
            "suppression",
            "audit",
        } <= topics

        for message in messages:
            blob = (message.key or b"") + (message.value or b"")
            for value in clear:
                assert value.lower() not in blob.lower(), f"{message.topic} carries erased data in clear"

        erased_sealed = kept_sealed = 0
        for message in messages:
            for sealed in _sealed_values(json.loads(message.value or b"null")):
                if sealed.key_id.startswith(f"subject:{erased_key}#"):
                    erased_sealed += 1
                    with pytest.raises(KeyDestroyedError):
                        reader.codec.sealer.open(sealed)
                elif sealed.key_id.startswith(f"subject:{kept_key}#"):
                    kept_sealed += 1
                    plain = reader.codec.sealer.open(sealed)
                    assert KEPT["email"].encode() in plain or KEPT["first_name"].encode() in plain
        # raw x2, normalized x3, dead letter, accepted x2, quarantine: every one of them is unreadable now
        assert erased_sealed >= 8, erased_sealed
        assert kept_sealed >= 8, kept_sealed
        # and, whatever key it was under (the shared import key too), nothing that held the erased person opens
        for sealed in holds_erased:
            with pytest.raises(KeyDestroyedError):
                reader.codec.sealer.open(sealed)
        for sealed in holds_only_others:
            if sealed.key_id.startswith(f"subject:{erased_key}#"):
                continue  # their own key (e.g. a sealed rights-command detail): destroyed with them
            assert reader.codec.sealer.open(sealed)

        with Session(reader.engine) as session:
            rows = session.scalars(select(SubjectKey).where(SubjectKey.scope == f"subject:{erased_key}")).all()
        assert rows and all(r.wrapped_key is None and r.destroyed_at is not None for r in rows)

        # the person comes back: a new, lawful collection under a new key generation that opens fine
        again = ingest.submit("site-form", Channel.WEB_FORM, _form(ERASED, "Back again"), "application/json")
        record = runtime.codec.seal_contact(again.events[0])
        assert record.sealed.key_id == f"subject:{erased_key}#2"
        assert reader.codec.sealer.open_model(record.sealed, ContactBody).person.email == ERASED["email"]
    finally:
        reader.engine.dispose()
        publisher.close()
