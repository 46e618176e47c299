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

import pytest
from identity_helpers import person as principal_named
from rights_helpers import form_payload, read_everything, runtime_on, sealed_holding, sealed_values, spread_people
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.crypto.keystore import SubjectKey
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.ingest.service import IngestService
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.common import Channel
from pipeline.models.identity import Role
from pipeline.models.records import ContactBody
from pipeline.models.rights import RightKind, SinkStatus
from pipeline.rights.commands import RightsDesk, build_command
from pipeline.rights.service import build_executor
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime

pytestmark = pytest.mark.integration

ERASED = {"email": "zoe.quartz@example.com", "first_name": "Zoefina", "last_name": "Quartzberg"}
KEPT = {"email": "kai.ember@example.org", "first_name": "Kaiwen", "last_name": "Emberly"}

DPO = principal_named("dana", "Dana Privacy", Role.DPO)


@pytest.fixture
def world(kafka_settings: Settings, db_url: str, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    with runtime_on(kafka_settings, make_settings, db_url) as runtime:
        yield runtime


def test_erasure_leaves_nothing_recoverable_on_any_topic(world: Runtime) -> None:
    runtime, settings = world, world.settings
    publisher = ConfirmingPublisher(settings)
    ingest = IngestService(runtime, publisher)
    accepted = spread_people(runtime, publisher, [ERASED, KEPT])
    erased_key = accepted[ERASED["email"]][0].event.subject_key
    kept_key = accepted[KEPT["email"]][0].event.subject_key

    # before the erasure: which sealed values on any topic hold the erased person's data, and which do not
    clear = [v.encode() for v in ERASED.values()]
    holds_erased, holds_only_others = sealed_holding(runtime, list(ERASED.values()))
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
            for sealed in sealed_values(json.loads(message.value or b"null")):
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
        again = ingest.submit("site-form", Channel.WEB_FORM, form_payload(ERASED, "Back again"), "application/json")
        record = runtime.codec.seal_contact(again.events[0])
        assert record.sealed.key_id == f"subject:{erased_key}#2"
        assert reader.codec.sealer.open_model(record.sealed, ContactBody).person.email == ERASED["email"]
    finally:
        reader.engine.dispose()
        publisher.close()
