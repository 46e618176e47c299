from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from pipeline.rights.retention import StoredInteraction, plan_expiry

NOW = datetime(2031, 1, 1, tzinfo=UTC)


def item(subject: str, delta_days: int) -> StoredInteraction:
    return StoredInteraction(
        subject_key=subject, event_id=uuid4(), retention_expires_at=NOW + timedelta(days=delta_days)
    )


def test_only_interactions_at_or_past_expiry_are_selected_per_subject() -> None:
    a_old, a_new = item("sk_a", -1), item("sk_a", 10)
    b_old1, b_old2 = item("sk_b", -400), item("sk_b", 0)
    c_new = item("sk_c", 1)
    plan = plan_expiry([a_old, a_new, b_old1, b_old2, c_new], NOW)
    by_subject = {s.subject_key: s for s in plan.subjects}
    assert set(by_subject) == {"sk_a", "sk_b"}
    assert by_subject["sk_a"].expired == (a_old.event_id,) and by_subject["sk_a"].remaining == 1
    assert not by_subject["sk_a"].erases_subject
    assert set(by_subject["sk_b"].expired) == {b_old1.event_id, b_old2.event_id}
    assert by_subject["sk_b"].erases_subject
    assert plan.interaction_count == 3


def test_moving_the_clock_changes_the_selection() -> None:
    items = [item("sk_a", 5)]
    assert plan_expiry(items, NOW).subjects == ()
    assert len(plan_expiry(items, NOW + timedelta(days=5)).subjects) == 1


def test_large_subjects_are_split_into_bounded_batches() -> None:
    items = [item("sk_a", -1) for _ in range(2500)]
    (subject,) = plan_expiry(items, NOW).subjects
    assert [len(b) for b in subject.batches()] == [1000, 1000, 500]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_expiry([], datetime(2031, 1, 1))


def test_totals_from_the_database_give_the_remaining_count() -> None:
    expired = [item("sk_a", -1), item("sk_a", -2), item("sk_b", -3)]
    plan = plan_expiry(expired, NOW, totals={"sk_a": 5, "sk_b": 1})
    by_subject = {s.subject_key: s for s in plan.subjects}
    assert by_subject["sk_a"].remaining == 3 and not by_subject["sk_a"].erases_subject
    assert by_subject["sk_b"].remaining == 0 and by_subject["sk_b"].erases_subject
