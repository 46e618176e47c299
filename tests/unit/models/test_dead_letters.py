"""``DeadLetter.build``: the one constructor every stage uses, with one id scheme and one cut of the explanation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from pipeline.models.common import Channel
from pipeline.models.records import (
    DEAD_LETTER_NAMESPACE,
    ERROR_MAX_CHARS,
    DeadLetter,
    Sealed,
    dead_letter_id,
    dead_letter_origin,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EVENT = uuid.UUID("3f2b8c1e-6a57-4d0b-9a6c-1d2e3f4a5b6c")
SEALED = Sealed(key_id="record:x#1", nonce="bm9uY2U", ciphertext="Y2lwaGVy")


def build(**overrides: object) -> DeadLetter:
    values: dict[str, object] = {
        "stage": "process:open",
        "reason": "open_failed",
        "error": "cannot open",
        "failed_at": NOW,
        "seal": lambda _id: None,
        "source_topic": "contacts.normalized",
        "source_partition": 2,
        "source_offset": 41,
    }
    values.update(overrides)
    return DeadLetter.build(**values)  # type: ignore[arg-type]


def test_the_origin_is_the_event_then_the_position_then_the_submission() -> None:
    assert dead_letter_origin(event_id=EVENT, topic="t", partition=1, offset=2) == f"event:{EVENT}"
    assert dead_letter_origin(topic="contacts.dlq", partition=1, offset=2) == "contacts.dlq:1:2"
    assert dead_letter_origin(submission="wp-contact:ab12") == "submission:wp-contact:ab12"
    with pytest.raises(ValueError, match="event id, a source position or a submission"):
        dead_letter_origin()


def test_the_id_is_uuid5_of_stage_and_origin() -> None:
    expected = uuid.uuid5(DEAD_LETTER_NAMESPACE, "process:open\ncontacts.normalized:2:41")
    assert dead_letter_id("process:open", "contacts.normalized:2:41") == expected
    assert build().dead_letter_id == expected


def test_failing_again_on_the_same_input_gives_the_same_id() -> None:
    """A batch redone after a crash, a redelivery at another offset: the same event, the same dead letter."""
    first = build(event_id=EVENT, failed_at=NOW, error="first try")
    again = build(event_id=EVENT, source_offset=99, failed_at=datetime(2025, 3, 2, tzinfo=UTC), error="second")
    assert first.dead_letter_id == again.dead_letter_id


def test_two_stages_failing_on_one_input_leave_two_dead_letters() -> None:
    crm = build(stage="sink:crm", event_id=EVENT)
    hubspot = build(stage="sink:hubspot", event_id=EVENT)
    assert crm.dead_letter_id != hubspot.dead_letter_id


def test_an_unread_record_is_named_by_its_position() -> None:
    assert build(source_offset=41).dead_letter_id != build(source_offset=42).dead_letter_id


def test_the_explanation_is_cut_to_the_one_limit() -> None:
    letter = build(error="x" * (ERROR_MAX_CHARS + 500))
    assert len(letter.error) == ERROR_MAX_CHARS
    assert DeadLetter.model_fields["error"].metadata[0].max_length == ERROR_MAX_CHARS


def test_the_payload_is_sealed_under_the_dead_letters_own_id() -> None:
    seen: list[uuid.UUID] = []

    def seal(letter_id: uuid.UUID) -> Sealed:
        seen.append(letter_id)
        return SEALED

    letter = build(seal=seal, channel=Channel.WEB_FORM, subject_key="sk_1", event_id=EVENT)
    assert seen == [letter.dead_letter_id]
    assert letter.payload == SEALED
    assert (letter.channel, letter.subject_key, letter.event_id) == (Channel.WEB_FORM, "sk_1", EVENT)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("contacts.normalized", 2, 41)


def test_an_ingest_letter_has_no_source_topic() -> None:
    letter = build(stage="ingest", source_topic=None, source_partition=None, source_offset=None, submission="s:d")
    assert letter.source_topic is None
    assert letter.dead_letter_id == dead_letter_id("ingest", "submission:s:d")
