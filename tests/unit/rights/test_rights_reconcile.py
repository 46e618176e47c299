"""``reconcile``: the suppression topic and the tracker made to agree after a restore, whichever knows more (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pipeline.models.rights import SuppressionRecord
from pipeline.rights.restore import RestoreReport, reconcile

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def state(subject_key: str, minutes: int, **flags: object) -> SuppressionRecord:
    at = T0 + timedelta(minutes=minutes)
    if flags.get("erased"):
        flags.setdefault("erased_at", at)
    return SuppressionRecord.model_validate(
        {"subject_key": subject_key, "updated_at": at, "request_id": uuid.uuid4(), **flags}
    )


def test_the_newer_state_wins_and_goes_to_the_side_that_lacks_it() -> None:
    erased_later = state("sk_a", 10, erased=True)  # erased after the backup: only the topic knows
    objected_before = state("sk_a", 5, marketing_objected=True)  # the restored tracker's older state
    only_on_topic = state("sk_b", 3, restricted=True)  # the restored tracker never saw this subject
    same = state("sk_c", 1, marketing_objected=True)
    only_in_tracker = state("sk_d", 7, erased=True)  # the topic was lost and created again empty
    newer_in_tracker = state("sk_e", 9, erased=True)
    older_on_topic = state("sk_e", 2)

    reconciled = reconcile(
        {"sk_a": erased_later, "sk_b": only_on_topic, "sk_c": same, "sk_e": older_on_topic},
        {"sk_a": objected_before, "sk_c": same, "sk_d": only_in_tracker, "sk_e": newer_in_tracker},
    )

    assert reconciled.newest == {
        "sk_a": erased_later,
        "sk_b": only_on_topic,
        "sk_c": same,
        "sk_d": only_in_tracker,
        "sk_e": newer_in_tracker,
    }
    assert reconciled.tracker_behind == [erased_later, only_on_topic]
    assert reconciled.topic_behind == [only_in_tracker, newer_in_tracker]
    assert set(reconciled.erasures()) == {"sk_a", "sk_d", "sk_e"}


def test_agreeing_sides_have_nothing_behind() -> None:
    states = {"sk_a": state("sk_a", 1, erased=True), "sk_b": state("sk_b", 2, restricted=True)}
    reconciled = reconcile(states, dict(states))
    assert reconciled.tracker_behind == [] and reconciled.topic_behind == []
    assert reconcile({}, {}).newest == {}


def test_a_tie_goes_to_the_topic() -> None:
    """Two different states with one timestamp: the topic's is what the chain already acts on."""
    on_topic, in_tracker = state("sk_a", 4, erased=True), state("sk_a", 4)
    reconciled = reconcile({"sk_a": on_topic}, {"sk_a": in_tracker})
    assert reconciled.newest["sk_a"] == on_topic and reconciled.tracker_behind == [on_topic]


def test_the_report_is_clean_only_without_findings_and_its_summary_names_no_subject() -> None:
    assert RestoreReport(subjects=3, erased=1, in_flight=["sk_busy"]).clean  # the rights worker is on it
    for finding in ("keys", "crm", "handovers", "tracker_behind", "topic_behind"):
        value = {"sk_secretive": ["subject:sk_secretive#1"]} if finding == "keys" else ["sk_secretive"]
        report = RestoreReport(subjects=3, erased=1, **{finding: value})  # type: ignore[arg-type]
        assert not report.clean, finding
        assert "sk_secretive" not in report.summary() and "--apply" in report.summary()
        assert report.as_dict()[finding] == value
    lost = RestoreReport(subjects=1, erased=1, lost_handovers=["r1"])
    assert lost.clean and "by hand" in lost.summary()  # nothing to re-apply, but a person has work to do


def test_after_apply_the_summary_says_what_was_re_applied() -> None:
    """``leadpipe restore verify --apply`` printed "nothing to re-apply" right after re-applying erasures: the
    operator read that nothing had been done."""
    applied = RestoreReport(subjects=5, erased=2, reapplied=1)
    assert applied.summary().splitlines()[1:] == [
        "re-applied to 1 subject(s), each audited (rights.restore_reapplied); now:",
        "nothing to re-apply",
    ]
    assert applied.as_dict()["reapplied"] == 1
    assert "re-applied" not in RestoreReport(subjects=5, erased=2).summary()
