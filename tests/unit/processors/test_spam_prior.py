"""The classifier's shipped prior: the packaged file, how its counts join the learned ones, and the policy's say."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from processor_events import build_event

from pipeline.models.common import Channel
from pipeline.models.spam import ClassifierVerdict
from pipeline.policy.model import (
    ClassifierLearnedPolicy,
    ClassifierPriorPolicy,
    SpamClassifierPolicy,
    load_policy,
)
from pipeline.processors import ChainContext, Passed, Quarantined, run_chain
from pipeline.processors.spam import classifier_points
from pipeline.spam import prior as prior_module
from pipeline.spam.classifier import NaiveBayes, PriorCounts, feature_key, features
from pipeline.spam.prior import PRIOR_PATH, Prior, keyed_prior, packaged_prior, read_prior, write_prior
from pipeline.spam.signals import SpamSignals

PEPPER = b"prior-test-pepper"


def test_the_packaged_prior_is_small_public_vocabulary() -> None:
    """What the package ships (scripts/train_spam_prior.py): a few MB at most, real counts of both classes, no token
    that is an address or a long number, every feature seen in at least 5 messages."""
    assert PRIOR_PATH.stat().st_size < 5_000_000
    shipped = packaged_prior()
    assert shipped.spam_docs > 1000 and shipped.ham_docs > 1000 and "trec07p" in shipped.source
    assert len(shipped.counts) > 10_000
    assert all(spam + ham >= 5 for spam, ham in shipped.counts.values())
    assert not [f for f in shipped.counts if "@" in f or len(re.findall(r"\d", f)) >= 5]
    assert {"hdr:x-mailer:none", "click", "unsubscribe"} <= set(shipped.counts)


def test_a_prior_file_round_trips_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prior.tsv.gz"
    write_prior(path, 7, 3, {"offer": (6, 1), "hdr:x-mailer:none": (2, 0)}, "a test corpus")
    assert read_prior(path) == Prior(7, 3, {"hdr:x-mailer:none": (2, 0), "offer": (6, 1)}, "a test corpus")
    elsewhere = tmp_path / "another-name.gz"
    write_prior(elsewhere, 7, 3, {"hdr:x-mailer:none": (2, 0), "offer": (6, 1)}, "a test corpus")
    assert elsewhere.read_bytes() == path.read_bytes()  # the same counts, the same bytes (no time or name in gzip's)
    (tmp_path / "other.gz").write_bytes(__import__("gzip").compress(b"hello\n"))
    with pytest.raises(ValueError, match="not a leadpipe spam prior"):
        read_prior(tmp_path / "other.gz")


def _keys(text: str) -> list[str]:
    return [feature_key(PEPPER, f) for f in features(text)]


def _prior(weight: float) -> PriorCounts:
    counts = {feature_key(PEPPER, "winner"): (90, 1), feature_key(PEPPER, "agenda"): (1, 90)}
    return PriorCounts(100, 100, counts, weight)


def test_prior_counts_judge_cold_and_learned_decisions_weigh_more() -> None:
    model = NaiveBayes(prior=_prior(0.1))
    cold = model.verdict(_keys("winner"))
    assert cold.log_odds > 0 and cold.prior and cold.spam_learns == 0
    assert model.verdict(_keys("agenda")).log_odds < 0
    assert model.verdict(_keys("winner"), with_prior=False).log_odds == 0  # another channel: no prior
    for _ in range(20):  # this deployment's reviewers call "winner" mail ham (a prize-draw newsletter they want)
        model.add(_keys("winner"), "ham")
        model.add(_keys("other"), "spam")
    assert model.verdict(_keys("winner")).log_odds < 0  # 20 decisions outweigh 90 prior messages at weight 0.1
    heavy = NaiveBayes(spam_docs=20, ham_docs=20, counts=model.counts, prior=_prior(1.0))
    assert heavy.verdict(_keys("winner")).log_odds > 0  # at weight 1 the prior would still win


def test_the_prior_is_loaded_on_first_verdict_once_and_follows_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = prior_module.read_prior

    def counted(path: Path) -> Prior:
        reads.append(1)
        return real(path)

    monkeypatch.setattr(prior_module, "read_prior", counted)
    packaged_prior.cache_clear()
    keyed_prior.cache_clear()
    try:
        signals = SpamSignals(client=None, store=None, pepper=PEPPER, prior=ClassifierPriorPolicy())
        assert reads == [] and signals.model.prior is None  # constructing costs nothing
        mail = build_event(Channel.EMAIL, interaction={"message": "click here to unsubscribe from this offer"})
        form = build_event(Channel.WEB_FORM, interaction={"message": "click here to unsubscribe from this offer"})
        _, verdicts = signals.for_batch([(mail, None), (form, None)])
        assert verdicts[mail.event_id].prior and verdicts[mail.event_id].log_odds != 0
        assert not verdicts[form.event_id].prior and verdicts[form.event_id].log_odds == 0  # e-mail only
        signals.reload()
        again = SpamSignals(client=None, store=None, pepper=PEPPER, prior=ClassifierPriorPolicy())
        again.for_batch([(mail, None)])
        assert reads == [1]  # once per process
        off = SpamSignals(client=None, store=None, pepper=PEPPER, prior=ClassifierPriorPolicy(enabled=False))
        _, verdicts = off.for_batch([(mail, None)])
        assert not verdicts[mail.event_id].prior and verdicts[mail.event_id].log_odds == 0
    finally:
        packaged_prior.cache_clear()
        keyed_prior.cache_clear()


def _classifier_weight(verdict: ClassifierVerdict, make_ctx: Callable[..., ChainContext]) -> Any:
    event = build_event(Channel.EMAIL, interaction={"message": "hello"})
    outcome = run_chain(event, make_ctx(classifier={event.event_id: verdict})).outcome
    assert isinstance(outcome, Passed | Quarantined)
    return {r.code: r.weight for r in outcome.tagged.tags.spam.reasons}.get("classifier")


def test_a_verdict_with_the_prior_counts_before_min_learns_from_its_offset(
    make_ctx: Callable[..., ChainContext],
) -> None:
    policy = load_policy().spam.classifier
    offset, scale = policy.prior.offset, policy.scale
    learned_nothing = {"probability": 0.5, "spam_learns": 0, "ham_learns": 0}
    assert _classifier_weight(ClassifierVerdict(log_odds=3.0, **learned_nothing), make_ctx) is None  # silent
    weight = _classifier_weight(ClassifierVerdict(log_odds=offset + 4.0, prior=True, **learned_nothing), make_ctx)
    assert weight == pytest.approx(4.0 / scale)


def _verdict(log_odds: float, spam_learns: int, ham_learns: int, *, prior: bool = True) -> ClassifierVerdict:
    return ClassifierVerdict(
        probability=0.5, log_odds=log_odds, spam_learns=spam_learns, ham_learns=ham_learns, prior=prior
    )


CALIBRATED = SpamClassifierPolicy(
    scale=2.0,
    cap=10.0,
    prior=ClassifierPriorPolicy(offset=-10.0, learned=ClassifierLearnedPolicy(decisions=500, offset=-14.0, scale=0.5)),
)


def test_a_prior_verdict_moves_from_the_cold_to_the_learned_calibration_with_the_rarer_kinds_decisions() -> None:
    assert classifier_points(CALIBRATED, _verdict(-6.0, 0, 0)) == pytest.approx((-6.0 + 10.0) / 2.0)  # cold
    assert classifier_points(CALIBRATED, _verdict(-12.0, 500, 800)) == pytest.approx((-12.0 + 14.0) / 0.5)
    assert classifier_points(CALIBRATED, _verdict(-12.0, 5000, 900)) == pytest.approx(4.0)  # no further past 500
    # halfway: zero at -12, points per unit of evidence halfway between 1/2 and 1/0.5
    assert classifier_points(CALIBRATED, _verdict(-11.0, 250, 900)) == pytest.approx((-11.0 + 12.0) * 1.25)
    # the rarer kind counts: 500 spam but no ham learned here is still the cold calibration
    assert classifier_points(CALIBRATED, _verdict(-6.0, 500, 0)) == pytest.approx(2.0)
    assert classifier_points(CALIBRATED, _verdict(30.0, 500, 500)) == 10.0  # within the cap
    assert classifier_points(CALIBRATED, _verdict(-60.0, 500, 500)) == -10.0


def test_the_learned_calibration_leaves_verdicts_without_the_prior_and_can_be_turned_off() -> None:
    assert classifier_points(CALIBRATED, _verdict(3.0, 500, 500, prior=False)) == pytest.approx(1.5)  # log odds / 2
    cold_only = CALIBRATED.model_copy(update={"prior": ClassifierPriorPolicy(offset=-10.0)})
    assert classifier_points(cold_only, _verdict(-12.0, 500, 500)) == pytest.approx(-1.0)


def test_the_packaged_policy_weighs_learned_evidence_more_and_a_learned_calibration_is_validated(
    make_ctx: Callable[..., ChainContext],
) -> None:
    policy = load_policy().spam.classifier
    learned = policy.prior.learned
    assert learned is not None
    # evidence between the two zeros: ham-leaning cold, spam-leaning once the deployment has learned its decisions
    between = (policy.prior.offset + learned.offset) / 2
    cold = _classifier_weight(_verdict(between, 0, 0), make_ctx)
    warm = _classifier_weight(_verdict(between, learned.decisions, learned.decisions), make_ctx)
    assert cold < 0 < warm
    with pytest.raises(ValueError, match="scale"):
        ClassifierLearnedPolicy(decisions=500, offset=-14.0, scale=0.0)
    with pytest.raises(ValueError, match="decisions"):
        ClassifierLearnedPolicy(decisions=0, offset=-14.0, scale=1.0)


def test_the_policys_smoothing_is_the_models() -> None:
    """A word seen in 3 of 3 spam and no ham: the less smoothing, the more it says (the policy chooses)."""
    event = build_event(Channel.WEB_FORM, interaction={"message": "winner"})
    model = NaiveBayes()
    for _ in range(3):
        model.add(_keys("winner"), "spam")
        model.add(_keys("agenda"), "ham")
    odds = {}
    for smoothing in (1.0, 0.1):
        signals = SpamSignals(client=None, store=None, pepper=PEPPER, model=model, smoothing=smoothing)
        odds[smoothing] = signals.verdict(event, None).log_odds
    # 20 x (log((3 + a) / (3 + 2a)) - log(a / (3 + 2a)))
    assert odds[1.0] == pytest.approx(20 * math.log(4 / 1), abs=1e-3)
    assert odds[0.1] == pytest.approx(20 * math.log(3.1 / 0.1), abs=1e-3)
    assert load_policy().spam.classifier.smoothing == 0.1
    with pytest.raises(ValueError, match="smoothing"):
        SpamClassifierPolicy(smoothing=0)
