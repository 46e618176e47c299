"""Who can still read what after an erasure, and what sealing costs the key store.

A payload that names several people (an Eventbrite order with attendees, a CSV) is sealed ONCE under a payload key
linked to every one of them, so erasing any of them makes the raw copy unreadable in every event that carries it,
while each person's normalised record stays under their own key. A dead letter is sealed for every identity found
in it. And a batch of new people costs one key-store commit, not one per person.
"""

from __future__ import annotations

import json

import pytest
from fakes.contacts import tags_for
from ingest_helpers import RecordingPublisher
from source_payloads import payload
from sqlalchemy import event

from pipeline import normalize
from pipeline.crypto import KeyDestroyedError, Sealer, SqlKeyStore, subject_scope
from pipeline.crypto.codec import RecordCodec
from pipeline.ingest.service import MAX_IDENTITY_HINTS, IngestService, Submission, identity_hints
from pipeline.models.common import Channel
from pipeline.models.records import ContactRecord, DeadLetter, RawRecord
from pipeline.models.tagged import TaggedEvent
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter


def fresh_codec(runtime: Runtime) -> RecordCodec:
    """A codec of another process: nothing cached, only what the key store's database still holds."""
    return RecordCodec(Sealer(SqlKeyStore(runtime.engine, runtime.settings.kek_bytes())))


def published(publisher: RecordingPublisher) -> tuple[list[RawRecord], dict[str, ContactRecord], list[DeadLetter]]:
    raw = [r.value for r in publisher.records if isinstance(r.value, RawRecord)]
    normalized = {r.value.subject_key: r.value for r in publisher.records if isinstance(r.value, ContactRecord)}
    dead = [r.value for r in publisher.records if isinstance(r.value, DeadLetter)]
    return raw, normalized, dead


@pytest.mark.parametrize("erased_index", [0, 1])
def test_two_person_payload_is_sealed_once_and_dies_with_either_person(
    runtime: Runtime, publisher: RecordingPublisher, erased_index: int
) -> None:
    body, content_type = payload("event", "eventbrite_order.json")
    result = IngestService(runtime, publisher).submit("cards", Channel.EVENT, body, content_type)  # type: ignore[arg-type]
    assert result.accepted and len(set(result.subject_keys)) == 2
    raw, normalized, _ = published(publisher)
    assert [r.subject_key for r in raw] == list(result.subject_keys)
    assert raw[0].sealed == raw[1].sealed  # one ciphertext shared by both events, not one copy per person
    assert raw[0].sealed.key_id.startswith("record:")
    assert all(fresh_codec(runtime).sealer.open(r.sealed) == body for r in raw)

    erased = result.subject_keys[erased_index]
    kept = result.subject_keys[1 - erased_index]
    assert runtime.keystore.destroy(subject_scope(erased), "test") >= 2  # the subject's key and the payload key

    for codec in (runtime.codec, fresh_codec(runtime)):
        for record in raw:
            with pytest.raises(KeyDestroyedError):
                codec.sealer.open(record.sealed)
        with pytest.raises(KeyDestroyedError):
            codec.open_contact(normalized[erased])
        still = codec.open_contact(normalized[kept])
        assert still.subject_key == kept and still.person.email


def test_a_retry_after_an_erasure_gets_a_new_payload_key_still_linked_to_both(
    runtime: Runtime, publisher: RecordingPublisher
) -> None:
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    body, content_type = payload("event", "eventbrite_order.json")
    first = service.submit("cards", Channel.EVENT, body, content_type)
    runtime.keystore.destroy(subject_scope(first.subject_keys[0]), "erasure")
    publisher.records.clear()
    again = service.submit("cards", Channel.EVENT, body, content_type)
    assert again.event_ids == first.event_ids  # the same webhook, the same ids
    raw, _normalized, _ = published(publisher)
    assert raw[0].sealed.key_id.endswith("#2") and fresh_codec(runtime).sealer.open(raw[0].sealed) == body
    runtime.keystore.destroy(subject_scope(first.subject_keys[1]), "erasure")
    with pytest.raises(KeyDestroyedError):
        fresh_codec(runtime).sealer.open(raw[0].sealed)


def test_single_person_payload_stays_under_the_subject_key(runtime: Runtime, publisher: RecordingPublisher) -> None:
    body, content_type = payload("web_form", "cf7_contact_us.txt")
    result = IngestService(runtime, publisher).submit("wp-contact", Channel.WEB_FORM, body, content_type)  # type: ignore[arg-type]
    [raw], normalized, _ = published(publisher)
    [subject] = result.subject_keys
    assert raw.sealed.key_id.startswith(f"subject:{subject}#")
    assert normalized[subject].sealed.key_id == raw.sealed.key_id


TWO_PEOPLE_WITHOUT_EVENT_DATE = (
    b"Name,Email,Phone,Event,Event Date\nAna,ana@example.com,,Expo,\nBo,bo@example.org,,Expo,\n"
)


@pytest.mark.parametrize("erased_index", [0, 1])
def test_dead_letter_naming_two_addresses_dies_with_either(
    runtime: Runtime, publisher: RecordingPublisher, erased_index: int
) -> None:
    result = IngestService(runtime, publisher).submit("cards", Channel.EVENT, TWO_PEOPLE_WITHOUT_EVENT_DATE, "text/csv")  # type: ignore[arg-type]
    assert not result.accepted and result.reason == "missing_event_date"
    _, _, [letter] = published(publisher)
    pepper = runtime.pepper
    people = (
        normalize.subject_key(pepper, email="ana@example.com"),
        normalize.subject_key(pepper, email="bo@example.org"),
    )
    assert letter.subject_key == people[0]
    assert letter.payload is not None and letter.payload.key_id.startswith("record:")
    assert fresh_codec(runtime).sealer.open(letter.payload) == TWO_PEOPLE_WITHOUT_EVENT_DATE

    runtime.keystore.destroy(subject_scope(people[erased_index]), "test")
    for codec in (runtime.codec, fresh_codec(runtime)):
        with pytest.raises(KeyDestroyedError):
            codec.sealer.open(letter.payload)


def test_identity_hints_finds_every_address_and_phone_up_to_the_cap() -> None:
    pepper = b"pepper"
    text = b"a@example.com, A@EXAMPLE.COM, not@@valid, +4915112345678 and b@example.org"
    assert identity_hints(text, pepper) == (
        normalize.subject_key(pepper, email="a@example.com"),  # case-insensitive: the same person once
        normalize.subject_key(pepper, email="b@example.org"),
        normalize.subject_key(pepper, phone="+4915112345678"),
    )
    many = ",".join(f"p{i}@example.com" for i in range(3 * MAX_IDENTITY_HINTS)).encode()
    assert len(identity_hints(many, pepper)) == MAX_IDENTITY_HINTS
    assert identity_hints(b"no identity here", pepper) == ()


def test_a_batch_of_new_people_costs_one_key_store_commit(runtime: Runtime, publisher: RecordingPublisher) -> None:
    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    commits: list[object] = []
    event.listen(runtime.engine, "commit", commits.append)

    def forms(visit: int) -> list[Submission]:
        return [
            Submission(
                "form",
                Channel.WEB_FORM,
                json.dumps({"email": f"person{i}@example.com", "message": f"visit {visit}"}).encode(),
                "application/json",
            )
            for i in range(60)
        ]

    results = service.submit_many(forms(1))
    assert all(r.accepted for r in results) and len({k for r in results for k in r.subject_keys}) == 60
    assert len(commits) == 1  # 60 new data keys, one commit
    assert all(r.accepted for r in service.submit_many(forms(2)))
    assert len(commits) == 1  # repeat visitors: their keys are already there
    raw, normalized, _ = published(publisher)
    assert len(raw) == 120 and len(normalized) == 60 and len(publisher.records) == 240


def test_a_payload_that_does_not_decode_is_still_dead_lettered(runtime: Runtime, publisher: RecordingPublisher) -> None:
    body = b"\xff\xfe\x00\xd8 ana@example.com"  # a UTF-16 byte-order mark, then bytes that are not UTF-16
    result = IngestService(runtime, publisher).submit("cards", Channel.EVENT, body, "text/csv")  # type: ignore[arg-type]
    assert not result.accepted and result.reason == "bad_encoding"
    _, _, [letter] = published(publisher)
    assert letter.subject_key == normalize.subject_key(runtime.pepper, email="ana@example.com")
    assert letter.payload is not None and fresh_codec(runtime).sealer.open(letter.payload) == body


def test_an_address_kept_as_an_alias_is_taken_in_as_the_person_under_their_corrected_address(
    runtime: Runtime, publisher: RecordingPublisher
) -> None:
    """Policy 9.2 with ``--old-address=alias``: a later contact from the corrected address joins the person (their
    key, their current address), and every copy of it is sealed under the person's key, so it dies with them."""
    import uuid

    from pipeline.rights.effects.crm import CrmRights

    service = IngestService(runtime, publisher)  # type: ignore[arg-type]
    form = {"email": "ana@exmaple.com", "first_name": "Ana", "message": "first"}
    first = service.submit("site", Channel.WEB_FORM, json.dumps(form).encode(), "application/json")
    CrmWriter(runtime.engine).write_events([TaggedEvent(event=first.events[0], tags=tags_for(first.events[0]))])
    old_key = first.subject_keys[0]
    new_key = normalize.subject_key(runtime.pepper, email="ana@example.com")
    CrmRights(runtime.engine).move_subject(old_key, new_key, uuid.uuid4(), {"email": "ana@example.com"}, alias=True)
    publisher.records.clear()
    later = IngestService(runtime, publisher).submit(  # type: ignore[arg-type]
        "site", Channel.WEB_FORM, json.dumps({**form, "message": "again"}).encode(), "application/json"
    )
    assert later.subject_keys == (new_key,) and later.events[0].person.email == "ana@example.com"
    [raw], normalized, _ = published(publisher)
    assert raw.subject_key == new_key and raw.sealed.key_id.startswith(f"subject:{new_key}#")
    assert set(normalized) == {new_key}
