"""What a HubSpot contact receives from accepted events (pure mapping)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fakes.contacts import BASE_TIME, make_tagged

from pipeline.models import Channel
from pipeline.models.rights import erased_event_tag
from pipeline.sinks.hubspot.gateway import retry_after_seconds
from pipeline.sinks.hubspot.guard import SubjectRights
from pipeline.sinks.hubspot.properties import (
    CUSTOM_PROPERTIES,
    chunks,
    contact_email,
    event_properties,
    hubspot_datetime,
    merge_by_email,
)


def test_event_properties_carry_purpose_basis_retention_and_source() -> None:
    tagged = make_tagged("Jane.Doe@Example.com", consent=True, position="CTO", skype_id="live:jane")
    props = event_properties(tagged)
    assert props["email"] == "jane.doe@example.com"
    assert props["firstname"] == "Jane"
    assert props["jobtitle"] == "CTO"
    assert props["leadpipe_skype_id"] == "live:jane"
    assert props["leadpipe_channel"] == "web_form"
    assert props["leadpipe_lead_source"] == "web_form/demo_request/web_form-source"
    assert props["leadpipe_source_event_id"] == str(tagged.event.event_id)
    assert props["leadpipe_legal_basis"] == (
        "contract_request=contract;information_of_interest=legitimate_interest;further_contact=consent"
    )
    assert props["leadpipe_retention_expires_at"] == hubspot_datetime(tagged.tags.retention_expires_at)
    assert props["leadpipe_marketing_allowed"] == "true"
    assert props["leadpipe_subject_key"] == tagged.event.subject_key
    custom = {p.name for p in CUSTOM_PROPERTIES}
    assert {k for k in props if k.startswith("leadpipe_")} <= custom


def test_absent_fields_are_not_sent() -> None:
    props = event_properties(make_tagged(first_name=None, company=None, message=None))
    assert "firstname" not in props
    assert "company" not in props
    assert "message" not in props


def test_same_email_in_one_batch_becomes_one_input_newest_wins() -> None:
    old = make_tagged("a@example.com", occurred_at=BASE_TIME, company="Old Co", channel=Channel.EVENT)
    new = make_tagged("A@example.com", occurred_at=BASE_TIME + timedelta(days=1), company="New Co", first_name=None)
    other = make_tagged("b@example.com")
    merged = merge_by_email([new, other, old])
    assert [m.email for m in merged] == ["a@example.com", "b@example.com"] or [m.email for m in merged] == [
        "b@example.com",
        "a@example.com",
    ]
    a = next(m for m in merged if m.email == "a@example.com")
    assert a.properties["company"] == "New Co"
    assert a.properties["firstname"] == "Jane"  # only the older event had a first name: kept
    assert a.event_ids == [old.event.event_id, new.event.event_id]
    # the event channel keeps its contact 6 years, the web form 8: the contact stays until the later expiry
    assert a.properties["leadpipe_retention_expires_at"] == hubspot_datetime(new.tags.retention_expires_at)
    assert a.properties["leadpipe_retention_expires_at"] > hubspot_datetime(old.tags.retention_expires_at)


def test_events_without_email_have_no_contact() -> None:
    phone_only = make_tagged(None, phone="+4930123456")
    assert contact_email(phone_only) is None
    with pytest.raises(ValueError):
        merge_by_email([phone_only])


def test_chunks_of_at_most_100() -> None:
    merged = merge_by_email(make_tagged(f"p{i}@example.com") for i in range(250))
    assert [len(c) for c in chunks(merged, 100)] == [100, 100, 50]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({}, None),
        (None, None),
        ({"Retry-After": "soon"}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str] | None, expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


def test_retry_after_http_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "Wed, 01 Jan 2025 12:00:07 GMT"}, now=now) == 7.0


def test_events_older_than_a_rectification_leave_the_person_properties_out() -> None:
    old = make_tagged("jane@example.com", first_name="Jnae", position="CTO")
    newer = make_tagged("jane@example.com", first_name=None, occurred_at=BASE_TIME + timedelta(hours=1))
    [upsert] = merge_by_email([old, newer], without_profile={old.event.event_id})
    assert "firstname" not in upsert.properties and "jobtitle" not in upsert.properties
    assert upsert.properties["leadpipe_source_event_id"] == str(newer.event.event_id)
    assert upsert.subject_keys == {old.event.subject_key}
    assert upsert.received_at == newer.event.received_at
    [whole] = merge_by_email([old, newer])
    assert whole.properties["firstname"] == "Jnae"


def test_subject_rights_compare_receipt_with_erasure_and_rectification() -> None:
    at = BASE_TIME + timedelta(days=1)
    rights = SubjectRights(erased_at=at, rectified_at=at)
    assert rights.erased_since(at) and rights.erased_since(at - timedelta(seconds=1))
    assert not rights.erased_since(at + timedelta(microseconds=1))  # received after: a new collection
    assert rights.rectified_since(at) and not rights.rectified_since(at + timedelta(seconds=1))
    assert not SubjectRights().erased_since(at) and not SubjectRights().rectified_since(at)


def test_an_erased_event_is_superseded_whenever_it_was_received_again() -> None:
    erased_at = BASE_TIME + timedelta(days=1)
    replayed, fresh = uuid.uuid4(), uuid.uuid4()
    rights = SubjectRights(erased_at=erased_at, erased_events=frozenset({erased_event_tag(replayed)}))
    later = erased_at + timedelta(hours=1)
    assert rights.superseded(replayed, later)  # its tombstone wins over the new receipt time
    assert not rights.superseded(fresh, later)  # a new collection
    assert rights.superseded(fresh, erased_at)
