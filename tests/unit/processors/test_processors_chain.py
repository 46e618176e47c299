"""The chain as a whole: routing of outcomes, exceptions become data with their stage, no personal data leaks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from processor_events import NOW, build_event

from pipeline.models.common import Channel
from pipeline.policy.model import default_policy_path, load_policy
from pipeline.processors import ChainContext, Failed, Passed, Quarantined, compile_policy, run_chain
from pipeline.processors import chain as chain_module


def test_an_ordinary_event_is_accepted_with_all_tags(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event()
    result = run_chain(event, make_ctx())
    assert isinstance(result.outcome, Passed)
    tagged = result.outcome.tagged
    assert tagged.event == event
    assert tagged.tags.policy_version == load_policy().version
    assert tagged.tags.spam.threshold == load_policy().spam.threshold
    assert set(result.rate_updates) == {k for k in result.rate_updates if k.startswith(("ip:", "subject:"))}
    assert len(result.rate_updates) == 2


def test_spam_is_quarantined_and_moves_no_anchor(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(Channel.CUSTOMER, interaction={"honeypot": "bot", "last_service_delivery_at": NOW})
    result = run_chain(event, make_ctx())
    assert isinstance(result.outcome, Quarantined)
    assert result.anchor_update is None
    assert result.rate_updates  # a quarantined submission still counts towards the rate limits


def test_an_exception_becomes_failed_with_its_stage_and_no_personal_data(
    monkeypatch: pytest.MonkeyPatch, make_ctx: Callable[..., ChainContext]
) -> None:
    def explode(*_: object) -> None:
        raise ValueError("cannot handle ann@example.com from 203.0.113.7")

    monkeypatch.setattr(chain_module, "child_evidence", explode)
    outcome = run_chain(build_event(), make_ctx()).outcome
    assert isinstance(outcome, Failed)
    assert outcome.stage == "children"
    assert outcome.reason == "rule_error:children"
    assert "ValueError" in outcome.error
    assert "ann@example.com" not in outcome.error and "203.0.113.7" not in outcome.error


def test_a_policy_gap_fails_in_the_retention_stage(tmp_path: Path) -> None:
    data = yaml.safe_load(default_policy_path().read_text())
    del data["channels"]["event"]["anchor_fallback"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    ctx = ChainContext(policy=compile_policy(load_policy(path)), now=NOW, pepper=b"p")
    outcome = run_chain(build_event(Channel.EVENT), ctx).outcome
    assert isinstance(outcome, Failed)
    assert outcome.stage == "retention"
    assert "interaction.event_date" in outcome.error


def test_processors_import_no_edge_libraries() -> None:
    """The house rule, checked: nothing under pipeline/processors imports faust, SQL or HTTP clients."""
    root = Path(chain_module.__file__).parent
    forbidden = ("faust", "sqlalchemy", "aiokafka", "confluent_kafka", "httpx", "requests", "hubspot", "fastapi")
    for source in root.glob("*.py"):
        text = source.read_text()
        for name in forbidden:
            assert f"import {name}" not in text and f"from {name}" not in text, (source.name, name)
