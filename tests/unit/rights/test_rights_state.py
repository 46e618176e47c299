from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from pipeline.models.common import Purpose
from pipeline.models.rights import RightKind, RightsCommand, SuppressionRecord, erased_event_tag
from pipeline.rights.state import next_state

T0 = datetime(2025, 5, 1, tzinfo=UTC)
SK = "sk_" + "a" * 40


def command(kind: RightKind, **kw: object) -> RightsCommand:
    return RightsCommand(
        request_id=uuid4(),
        kind=kind,
        subject_key=SK,
        issued_at=T0,
        issued_by="dpo",
        due_at=T0 + timedelta(days=30),
        **kw,  # type: ignore[arg-type]
    )


def test_access_and_rectification_do_not_change_state() -> None:
    for kind in (RightKind.ACCESS, RightKind.PORTABILITY, RightKind.RECTIFICATION):
        assert next_state(None, command(kind), T0) is None


def test_state_accumulates_and_keeps_earlier_flags() -> None:
    s1 = next_state(None, command(RightKind.OBJECTION), T0)
    assert s1 is not None and s1.marketing_objected and not s1.restricted and not s1.erased
    s2 = next_state(s1, command(RightKind.RESTRICTION), T0 + timedelta(hours=1))
    assert s2 is not None and s2.marketing_objected and s2.restricted
    s3 = next_state(s2, command(RightKind.UNRESTRICTION), T0 + timedelta(hours=2))
    assert s3 is not None and s3.marketing_objected and not s3.restricted
    s4 = next_state(s3, command(RightKind.CONSENT_WITHDRAWAL, purposes=(Purpose.FURTHER_CONTACT,)), T0)
    assert s4 is not None and s4.consent_withdrawn == (Purpose.FURTHER_CONTACT,) and s4.marketing_objected


def test_erasure_sets_erased_at_and_later_requests_do_not_move_it() -> None:
    erased = next_state(None, command(RightKind.ERASURE), T0)
    assert erased is not None and erased.erased and erased.erased_at == T0
    later = next_state(erased, command(RightKind.OBJECTION), T0 + timedelta(days=3))
    assert later is not None
    assert later.erased and later.erased_at == T0 and later.updated_at == T0 + timedelta(days=3)
    again = next_state(later, command(RightKind.ERASURE), T0 + timedelta(days=9))
    assert again is not None and again.erased_at == T0 + timedelta(days=9) and again.marketing_objected


def test_redelivered_command_gives_the_identical_record() -> None:
    cmd = command(RightKind.OBJECTION)
    first = next_state(None, cmd, T0)
    assert first is not None
    assert next_state(first, cmd, T0 + timedelta(minutes=5)) == first


def test_consent_withdrawal_without_purposes_uses_the_policy_consent_purposes() -> None:
    cmd = command(RightKind.CONSENT_WITHDRAWAL)
    state = next_state(None, cmd, T0, consent_purposes=[Purpose.FURTHER_CONTACT])
    assert state is not None and state.consent_withdrawn == (Purpose.FURTHER_CONTACT,)
    with pytest.raises(ValueError, match="must name purposes"):
        next_state(None, command(RightKind.CONSENT_WITHDRAWAL), T0)


def test_retention_expiry_erases_only_when_told_nothing_is_left() -> None:
    cmd = command(RightKind.RETENTION_EXPIRY, event_ids=(uuid4(),))
    assert next_state(None, cmd, T0, erase=False) is None
    full = next_state(None, cmd, T0, erase=True)
    assert full is not None and full.erased and full.erased_at == T0


def test_previous_state_of_another_subject_is_refused() -> None:
    other = SuppressionRecord(subject_key="sk_other0000", updated_at=T0, request_id=uuid4())
    with pytest.raises(ValueError, match="another subject"):
        next_state(other, command(RightKind.OBJECTION), T0)


def test_an_erasure_adds_its_tombstones_and_later_states_keep_them() -> None:
    first, second = uuid4(), uuid4()
    s1 = next_state(None, command(RightKind.ERASURE), T0, erased_events=[erased_event_tag(first)])
    assert s1 is not None and s1.event_erased(first) and not s1.event_erased(second)
    s2 = next_state(s1, command(RightKind.OBJECTION), T0 + timedelta(hours=1))
    assert s2 is not None and s2.event_erased(first)
    s3 = next_state(s2, command(RightKind.ERASURE), T0 + timedelta(hours=2), erased_events=[erased_event_tag(second)])
    assert s3 is not None and s3.event_erased(first) and s3.event_erased(second)
    assert str(first) not in s3.model_dump_json() and first.hex not in s3.model_dump_json()  # hashes, not the ids


def test_a_corrected_address_keeps_the_old_keys_tombstones() -> None:
    from pipeline.rights.state import moved_states

    erased = uuid4()
    old = next_state(None, command(RightKind.ERASURE), T0, erased_events=[erased_event_tag(erased)])
    assert old is not None
    move = RightsCommand(
        request_id=uuid4(),
        kind=RightKind.RECTIFICATION,
        subject_key=SK,
        issued_at=T0,
        issued_by="dpo",
        due_at=T0,
        new_subject_key="sk_new",
    )
    _, emptied = moved_states(old, None, move, T0 + timedelta(days=1))
    assert emptied.subject_key == SK and emptied.event_erased(erased)


def test_only_an_erasure_adds_tombstones() -> None:
    state = next_state(None, command(RightKind.OBJECTION), T0, erased_events=[erased_event_tag(uuid4())])
    assert state is not None and state.erased_events == ()


def test_a_corrected_address_moves_every_flag_to_the_new_key_and_leaves_the_old_key_erased() -> None:
    from pipeline.rights.state import moved_states

    old_key, new_key = "sk_old", "sk_new"
    at = datetime(2025, 6, 1, tzinfo=UTC)
    previous = SuppressionRecord(
        subject_key=old_key, marketing_objected=True, updated_at=at, request_id=uuid4(), consent_withdrawn=()
    )
    target = SuppressionRecord(
        subject_key=new_key, erased=True, erased_at=at, restricted=True, updated_at=at, request_id=uuid4()
    )
    command = RightsCommand(
        request_id=uuid4(),
        kind=RightKind.RECTIFICATION,
        subject_key=old_key,
        issued_at=at,
        issued_by="dpo",
        due_at=at,
        new_subject_key=new_key,
    )
    later = datetime(2025, 6, 2, tzinfo=UTC)
    moved, emptied = moved_states(previous, target, command, later)
    assert (moved.subject_key, moved.marketing_objected, moved.restricted) == (new_key, True, True)
    assert moved.erased and moved.erased_at == at  # what the new address saw erased before stays dropped
    assert (emptied.subject_key, emptied.erased, emptied.erased_at, emptied.marketing_objected) == (
        old_key,
        True,
        later,
        False,
    )
    assert moved_states(emptied, moved, command, later) == (moved, emptied)  # redelivered: nothing changes
    fresh, _ = moved_states(None, None, command, later)
    assert fresh.subject_key == new_key and not fresh.marketing_objected and not fresh.erased


def test_an_objection_stands_until_it_is_lifted() -> None:
    objected = next_state(None, command(RightKind.OBJECTION), T0)
    assert objected is not None and objected.marketing_objected
    still = next_state(objected, command(RightKind.RESTRICTION), T0 + timedelta(days=1))
    assert still is not None and still.marketing_objected and still.restricted
    lifted = next_state(still, command(RightKind.OBJECTION_LIFTED), T0 + timedelta(days=2))
    assert lifted is not None and not lifted.marketing_objected and lifted.restricted


def test_a_withdrawal_records_when_each_purpose_was_withdrawn_and_a_new_one_moves_it() -> None:
    """The chain counts a consent the person gives again only after the latest withdrawal of its purpose (9.8), so
    the state says when that was; a later objection does not move it (updated_at moves, the withdrawal stays)."""
    fc = Purpose.FURTHER_CONTACT
    first = next_state(None, command(RightKind.CONSENT_WITHDRAWAL, purposes=(fc,)), T0)
    assert first is not None and first.consent_withdrawn_at == {fc: T0} and first.withdrawn_since(fc) == T0
    objected = next_state(first, command(RightKind.OBJECTION), T0 + timedelta(days=1))
    assert objected is not None and objected.withdrawn_since(fc) == T0
    again = next_state(objected, command(RightKind.CONSENT_WITHDRAWAL, purposes=(fc,)), T0 + timedelta(days=5))
    assert again is not None and again.withdrawn_since(fc) == T0 + timedelta(days=5)
    assert again.withdrawn_since(Purpose.ANALYTICS) is None  # not withdrawn
    # a state written before the times were kept: its updated_at stands for them, and the next withdrawal keeps it
    legacy = SuppressionRecord(subject_key=SK, consent_withdrawn=(fc,), updated_at=T0, request_id=uuid4())
    assert legacy.withdrawn_since(fc) == T0
    both = next_state(legacy, command(RightKind.CONSENT_WITHDRAWAL, purposes=(Purpose.ANALYTICS,)), T0 + timedelta(1))
    assert both is not None and both.consent_withdrawn_at == {fc: T0, Purpose.ANALYTICS: T0 + timedelta(1)}


def test_a_corrected_address_keeps_the_latest_withdrawal_of_either_key() -> None:
    from pipeline.rights.state import moved_states

    fc = Purpose.FURTHER_CONTACT
    old = SuppressionRecord(
        subject_key="sk_old", consent_withdrawn=(fc,), consent_withdrawn_at={fc: T0}, updated_at=T0, request_id=uuid4()
    )
    new = SuppressionRecord(
        subject_key="sk_new",
        consent_withdrawn=(fc,),
        consent_withdrawn_at={fc: T0 + timedelta(days=2)},
        updated_at=T0 + timedelta(days=2),
        request_id=uuid4(),
    )
    later = T0 + timedelta(days=3)
    command = RightsCommand(
        request_id=uuid4(),
        kind=RightKind.RECTIFICATION,
        subject_key="sk_old",
        issued_at=later,
        issued_by="dpo",
        due_at=later,
        new_subject_key="sk_new",
    )
    moved, _ = moved_states(old, new, command, later)
    assert moved.consent_withdrawn_at == {fc: T0 + timedelta(days=2)}
    moved_alone, _ = moved_states(old, None, command, later)
    assert moved_alone.consent_withdrawn_at == {fc: T0}  # the old key's withdrawal follows the person with its time
