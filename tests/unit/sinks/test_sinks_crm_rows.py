"""The rows the CRM's write path builds for a batch (pure): profile merge, identities, the audit trail per event."""

from __future__ import annotations

from datetime import timedelta

from fakes.contacts import BASE_TIME, make_tagged

from pipeline.crm.schema import PURPOSE_KEYS, interactions, subjects
from pipeline.sinks.crm.rows import (
    identity_rows,
    interaction_row,
    recorded_audit_rows,
    subject_batches,
    subject_row,
)

NOW = BASE_TIME + timedelta(days=10)


def test_a_subject_profile_takes_the_newest_value_and_fills_gaps_from_older_events() -> None:
    old = make_tagged(occurred_at=BASE_TIME, company="Old GmbH", phone="+4930123456", marketing_allowed=True)
    new = make_tagged(occurred_at=BASE_TIME + timedelta(days=2), company="New GmbH", first_name=None)
    middle = make_tagged(occurred_at=BASE_TIME + timedelta(days=1), company="Middle AG", marketing_allowed=False)
    [batch] = subject_batches([new, old, middle]).values()  # arrival order does not matter
    assert batch.profile["company"] == "New GmbH"
    assert batch.profile["first_name"] == "Jane"  # the newest event has none: an older one fills the gap
    assert batch.profile["phone"] == "+4930123456"
    assert (batch.first_seen, batch.last_seen) == (old.event.occurred_at, new.event.occurred_at)
    assert batch.marketing_allowed is True  # from the newest event, not the middle one
    row = subject_row(batch, NOW)
    assert set(row) <= set(subjects.c.keys())
    assert (row["company"], row["profile_at"], row["restricted"]) == ("New GmbH", new.event.occurred_at, False)


def test_identities_are_stored_in_their_search_form() -> None:
    tagged = make_tagged("Jane.Doe@Example.com", skype_id="live:jane", messenger_handles={"Telegram": "@jd"})
    rows = identity_rows(tagged, NOW)
    assert [(r["kind"], r["value"]) for r in rows] == [
        ("email", "jane.doe@example.com"),
        ("skype", "live:jane"),
        ("messenger:telegram", "@jd"),
    ]  # no phone, no LinkedIn: no rows for them
    assert {r["first_event_id"] for r in rows} == {tagged.event.event_id}


def test_an_interaction_row_fills_every_column_and_every_purpose_key() -> None:
    row = interaction_row(make_tagged(consent=True), NOW)
    assert set(row) == set(interactions.c.keys())
    assert all(tuple(entry) == PURPOSE_KEYS for entry in row["purposes"])
    assert {(p["purpose"], p["legal_basis"]) for p in row["purposes"]} >= {("further_contact", "consent")}


def test_the_audit_trail_names_fields_and_causes_never_values() -> None:
    back_first = make_tagged("back@example.com", occurred_at=BASE_TIME, phone="+4930123456")
    back_later = make_tagged("back@example.com", occurred_at=BASE_TIME + timedelta(hours=1))
    new = make_tagged("new@example.com", occurred_at=BASE_TIME + timedelta(minutes=30), consent=True)
    erased_at = BASE_TIME - timedelta(days=3)
    rows = list(
        recorded_audit_rows(
            [back_later, new, back_first],
            now=NOW,
            actor="sink:crm",
            created={new.event.subject_key},
            recollected={back_first.event.subject_key: erased_at},
            identities_added={back_first.event.event_id: ["phone", "email"]},
        )
    )
    assert [(r["action"], r["event_id"]) for r in rows] == [
        ("subject_recollected", back_first.event.event_id),  # once, before the subject's first event
        ("interaction_recorded", back_first.event.event_id),
        ("interaction_recorded", new.event.event_id),
        ("interaction_recorded", back_later.event.event_id),
    ]
    assert rows[0]["detail"] == {"previously_erased_at": erased_at.isoformat()}
    recorded = {r["event_id"]: r["detail"] for r in rows[1:]}
    assert recorded[back_first.event.event_id]["identities_added"] == ["email", "phone"]
    assert recorded[back_first.event.event_id]["subject_created"] is False  # recollected, not created
    assert recorded[new.event.event_id]["subject_created"] is True
    assert recorded[new.event.event_id]["consents"] == {"further_contact": True}
    assert recorded[new.event.event_id]["profile_fields"] == ["first_name", "last_name", "email", "company"]
    assert {r["actor"] for r in rows} == {"sink:crm"} and {r["request_id"] for r in rows} == {None}
    assert "jane" not in str(rows).lower() and "example gmbh" not in str(rows).lower()
