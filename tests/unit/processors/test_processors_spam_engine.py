"""The engine's and the classifier's verdicts as inputs of the chain's spam rule, weighted by the policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from processor_events import NOW, PEPPER, build_event

from pipeline.models.common import Channel
from pipeline.models.spam import ClassifierVerdict, EngineSymbol, EngineUnavailable, EngineVerdict
from pipeline.policy.model import PolicyError, default_policy_path, load_policy
from pipeline.processors import ChainContext, CompiledPolicy, compile_policy, run_chain
from pipeline.processors.chain import Passed, Quarantined
from pipeline.processors.spam import engine_gate


def _verdict(event: Any, ctx: ChainContext) -> Any:
    outcome = run_chain(event, ctx).outcome
    assert isinstance(outcome, Passed | Quarantined)
    return outcome, outcome.tagged.tags.spam


def _policy(tmp_path: Any, **spam_changes: Any) -> CompiledPolicy:
    data = yaml.safe_load(default_policy_path().read_text())
    data["spam"].update(spam_changes)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return compile_policy(load_policy(path))


ENGINE = EngineVerdict(
    score=7.5,
    action="add header",
    symbols=(EngineSymbol(name="DRUGS_ERECTILE", weight=2.0), EngineSymbol(name="MIME_GOOD", weight=-0.1)),
)


def test_without_engine_input_the_verdict_is_the_policys_alone(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(interaction={"message": "Cheap viagra here"})
    _, verdict = _verdict(event, make_ctx())
    assert verdict.engine is None and verdict.classifier is None
    assert [r.code for r in verdict.reasons] == ["spam_word"] and verdict.score == 1.5


def test_engine_verdict_adds_one_weighted_reason_and_keeps_its_symbols(
    make_ctx: Callable[..., ChainContext], compiled: CompiledPolicy
) -> None:
    event = build_event(interaction={"message": "Cheap viagra here"})
    outcome, verdict = _verdict(event, make_ctx(engine={event.event_id: ENGINE}))
    engine_policy = compiled.policy.spam.engine
    codes = [r.code for r in verdict.reasons]
    assert codes == ["spam_word", "spam_engine"]
    expected = min(engine_policy.weight_for(event.channel) * 7.5, engine_policy.max_contribution)
    assert verdict.reasons[1].weight == pytest.approx(expected)
    assert verdict.score == pytest.approx(1.5 + expected)
    assert verdict.engine == ENGINE  # every symbol with the engine's weight travels with the verdict
    assert isinstance(outcome, Quarantined) == (verdict.score >= verdict.threshold)


def test_an_engine_verdict_for_another_event_is_not_used(make_ctx: Callable[..., ChainContext]) -> None:
    event, other = build_event(), build_event()
    _, verdict = _verdict(event, make_ctx(engine={other.event_id: ENGINE}))
    assert verdict.engine is None and verdict.score == 0


def test_ham_evidence_from_the_engine_is_capped(tmp_path: Any) -> None:
    compiled = _policy(tmp_path, engine={"weight": 1.0, "min_contribution": -2.0, "max_contribution": 10.0})
    event = build_event(interaction={"honeypot": "bot"})
    ham = EngineVerdict(score=-30.0, action="no action")
    ctx = ChainContext(policy=compiled, now=NOW, pepper=PEPPER, engine={event.event_id: ham})
    outcome, verdict = _verdict(event, ctx)
    assert [(r.code, r.weight) for r in verdict.reasons] == [("honeypot", 10.0), ("spam_engine", -2.0)]
    assert isinstance(outcome, Quarantined)  # a filled honeypot still goes to a person


def test_engine_unavailable_sends_the_event_to_review(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event()
    down = EngineUnavailable(reason="timeout", detail="no answer within 2 s")
    outcome, verdict = _verdict(event, make_ctx(engine={event.event_id: down}))
    assert isinstance(outcome, Quarantined)
    assert verdict.reasons[-1].code == "spam_engine_unavailable"
    assert "timeout" in verdict.reasons[-1].detail and verdict.score >= verdict.threshold


def test_engine_unavailable_outweighs_a_negative_classifier(tmp_path: Any) -> None:
    compiled = _policy(tmp_path, classifier={"min_learns": 1, "cap": 8.0, "scale": 1.0, "weight": 1.0})
    event = build_event()
    hammy = ClassifierVerdict(probability=0.0001, log_odds=-40.0, spam_learns=5, ham_learns=5)
    ctx = ChainContext(
        policy=compiled,
        now=NOW,
        pepper=PEPPER,
        engine={event.event_id: EngineUnavailable(reason="unreachable", detail="ConnectError")},
        classifier={event.event_id: hammy},
    )
    outcome, verdict = _verdict(event, ctx)
    assert [r.code for r in verdict.reasons] == ["classifier", "spam_engine_unavailable"]
    assert verdict.reasons[0].weight == -8.0 and isinstance(outcome, Quarantined)


def test_wait_policy_makes_the_agent_wait_only_when_the_engine_is_unavailable(tmp_path: Any) -> None:
    waiting = _policy(tmp_path, engine={"on_unavailable": "wait"}).policy.spam
    down = EngineUnavailable(reason="timeout")
    assert engine_gate(waiting, down) == "wait"
    assert engine_gate(waiting, ENGINE) == "score"
    assert engine_gate(waiting, None) == "score"
    assert engine_gate(load_policy().spam, down) == "score"  # the packaged policy: review


def test_classifier_counts_only_after_enough_learns(tmp_path: Any) -> None:
    compiled = _policy(tmp_path, classifier={"min_learns": 50, "scale": 4.0, "weight": 1.0, "cap": 8.0})
    event = build_event()
    young = ClassifierVerdict(probability=0.99, log_odds=12.0, spam_learns=49, ham_learns=400)
    ctx = ChainContext(policy=compiled, now=NOW, pepper=PEPPER, classifier={event.event_id: young})
    _, verdict = _verdict(event, ctx)
    assert verdict.reasons == () and verdict.classifier == young  # shown, not counted
    grown = young.model_copy(update={"spam_learns": 50})
    ctx = ChainContext(policy=compiled, now=NOW, pepper=PEPPER, classifier={event.event_id: grown})
    _, verdict = _verdict(event, ctx)
    assert [(r.code, r.weight) for r in verdict.reasons] == [("classifier", 3.0)]
    assert "learned 50 spam / 400 ham" in verdict.reasons[0].detail


def test_per_channel_thresholds(tmp_path: Any) -> None:
    compiled = _policy(tmp_path, thresholds={"email": 8.0})
    ctx = ChainContext(policy=compiled, now=NOW, pepper=PEPPER)
    text = {"message": "Guaranteed returns, risk-free investment"}  # two misleading phrases: 6 points
    email = build_event(Channel.EMAIL, interaction=text)
    form = build_event(Channel.WEB_FORM, interaction=text)
    email_outcome, email_verdict = _verdict(email, ctx)
    form_outcome, form_verdict = _verdict(form, ctx)
    assert email_verdict.threshold == 8.0 and isinstance(email_outcome, Passed)
    assert form_verdict.threshold == compiled.policy.spam.threshold and isinstance(form_outcome, Quarantined)
    clean = build_event(Channel.EMAIL)
    _, clean_verdict = _verdict(clean, ctx)
    assert clean_verdict is compiled.clean_verdicts[Channel.EMAIL] and clean_verdict.threshold == 8.0


def test_the_engines_weight_is_per_channel(tmp_path: Any) -> None:
    compiled = _policy(tmp_path, engine={"weight": 0.5, "weights": {"web_form": 1.0}})
    points = {}
    for channel in (Channel.EMAIL, Channel.WEB_FORM, Channel.CHATBOT):
        event = build_event(channel)
        ctx = ChainContext(policy=compiled, now=NOW, pepper=PEPPER, engine={event.event_id: ENGINE})
        _, verdict = _verdict(event, ctx)
        (reason,) = [r for r in verdict.reasons if r.code == "spam_engine"]
        points[channel] = reason.weight
        assert f"{compiled.policy.spam.engine.weight_for(channel):g} point(s) per point" in reason.detail
    # a listed channel uses its own weight, the others the default
    assert points == {Channel.EMAIL: 3.75, Channel.WEB_FORM: 7.5, Channel.CHATBOT: 3.75}


def test_the_packaged_policy_weighs_the_engine_more_for_rendered_text_than_for_email(compiled: CompiledPolicy) -> None:
    engine = compiled.policy.spam.engine
    for channel in (Channel.WEB_FORM, Channel.CHATBOT, Channel.MESSENGER):
        assert engine.weight_for(channel) > engine.weight_for(Channel.EMAIL)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"engine": {"weights": {"web_form": -1}}}, "engine weights must be 0 or more"),
        ({"engine": {"weights": {"fax": 1}}}, "fax"),
        ({"thresholds": {"email": 0}}, "thresholds must be greater than 0"),
        ({"thresholds": {"fax": 3}}, "fax"),
        ({"engine": {"on_unavailable": "ignore"}}, "on_unavailable"),
        ({"engine": {"min_contribution": 1}}, "min_contribution"),
        ({"classifier": {"scale": 0}}, "classifier.scale"),
    ],
)
def test_policy_loader_refuses_bad_spam_settings(tmp_path: Any, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        _policy(tmp_path, **changes)


def test_tags_of_a_verdict_with_engine_or_classifier_serialise_like_pydantic(
    make_ctx: Callable[..., ChainContext],
) -> None:
    from pipeline.models.tagged import tags_json

    event = build_event()
    young = ClassifierVerdict(probability=0.9, log_odds=2.0, spam_learns=1, ham_learns=1)  # shown, not counted
    for ctx in (make_ctx(engine={event.event_id: ENGINE}), make_ctx(classifier={event.event_id: young})):
        outcome, _ = _verdict(event, ctx)
        tags = outcome.tagged.tags
        assert tags_json(tags) == tags.__pydantic_serializer__.to_json(tags)
        assert tags_json(tags) == tags.__pydantic_serializer__.to_json(tags)  # and again, from any cache


def _engine_points(compiled: CompiledPolicy, channel: Channel, classifier: ClassifierVerdict | None) -> float:
    event = build_event(channel)
    classifiers = {event.event_id: classifier} if classifier is not None else {}
    ctx = ChainContext(policy=compiled, now=NOW, pepper=PEPPER, engine={event.event_id: ENGINE}, classifier=classifiers)
    _, verdict = _verdict(event, ctx)
    (reason,) = [r for r in verdict.reasons if r.code == "spam_engine"]
    return float(reason.weight)


def _learned(spam: int, ham: int, *, prior: bool = True) -> ClassifierVerdict:
    return ClassifierVerdict(probability=0.5, log_odds=-20.0, spam_learns=spam, ham_learns=ham, prior=prior)


def test_the_engines_weight_moves_to_its_learned_weight_as_the_classifier_learns(tmp_path: Any) -> None:
    engine = {"weight": 0.5, "learned": {"decisions": 500, "weights": {"email": 0.0}}}
    compiled = _policy(tmp_path, engine=engine)
    email, form = Channel.EMAIL, Channel.WEB_FORM
    assert _engine_points(compiled, email, None) == 3.75  # no classifier verdict: the cold weight
    assert _engine_points(compiled, email, _learned(0, 0)) == 3.75
    assert _engine_points(compiled, email, _learned(250, 900)) == pytest.approx(1.875)  # halfway, the rarer kind
    assert _engine_points(compiled, email, _learned(500, 500)) == 0.0
    assert _engine_points(compiled, email, _learned(5000, 5000)) == 0.0
    assert _engine_points(compiled, form, _learned(500, 500, prior=False)) == 3.75  # a channel not listed keeps its own


def test_a_classifier_that_does_not_count_leaves_the_engine_its_cold_weight(tmp_path: Any) -> None:
    engine = {"weight": 0.5, "learned": {"decisions": 500, "weights": {"email": 0.0}}}
    off = _policy(tmp_path, engine=engine, classifier={"enabled": False})
    assert _engine_points(off, Channel.EMAIL, _learned(500, 500)) == 3.75
    young = _policy(tmp_path, engine=engine, classifier={"min_learns": 600})
    assert _engine_points(young, Channel.EMAIL, _learned(500, 500, prior=False)) == 3.75
