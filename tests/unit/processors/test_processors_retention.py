"""Retention clock: each channel's period and clock, and the restarting clocks of customers and attendees."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from processor_events import NOW, build_event

from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, Passed, run_chain
from pipeline.processors.retention import MissingAnchorError, anchor_key, retention_clock

EXPECTED = {
    Channel.WEBSITE: (7, "interaction"),
    Channel.WEB_FORM: (8, "interaction"),
    Channel.CHATBOT: (8, "interaction"),
    Channel.EMAIL: (6, "interaction"),
    Channel.MESSENGER: (6, "interaction"),
    Channel.CUSTOMER: (6, "last_service_delivery"),
    Channel.EVENT: (6, "last_event_registration"),
}


def _years_after(start: datetime, years: int) -> datetime:
    """The same calendar day ``years`` later; 29 February into a common year is its 28 February."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)


@pytest.mark.parametrize("channel", list(Channel))
def test_each_channel_gets_its_period_and_clock(channel: Channel, make_ctx: Callable[..., ChainContext]) -> None:
    years, clock = EXPECTED[channel]
    result = run_chain(build_event(channel), make_ctx())
    assert isinstance(result.outcome, Passed), result.outcome
    tags = result.outcome.tagged.tags
    assert tags.retention_clock == clock
    assert tags.retention_anchor_at == NOW
    assert tags.retention_expires_at == _years_after(NOW, years)


def test_customer_clock_anchors_on_the_last_service_delivery(make_ctx: Callable[..., ChainContext]) -> None:
    delivered = datetime(2024, 6, 1, tzinfo=UTC)
    event = build_event(Channel.CUSTOMER, interaction={"last_service_delivery_at": delivered})
    result = run_chain(event, make_ctx())
    assert isinstance(result.outcome, Passed)
    assert result.outcome.tagged.tags.retention_expires_at == datetime(2030, 6, 1, tzinfo=UTC)
    assert result.anchor_update == (anchor_key("last_service_delivery", event.subject_key), delivered)


def test_a_later_delivery_moves_the_expiry_forward(make_ctx: Callable[..., ChainContext]) -> None:
    stored = datetime(2020, 1, 1, tzinfo=UTC)
    delivered = datetime(2024, 6, 1, tzinfo=UTC)
    event = build_event(Channel.CUSTOMER, interaction={"last_service_delivery_at": delivered})
    anchors = {anchor_key("last_service_delivery", event.subject_key): stored}
    result = run_chain(event, make_ctx(anchors=anchors))
    assert isinstance(result.outcome, Passed)
    assert result.outcome.tagged.tags.retention_anchor_at == delivered
    assert result.anchor_update is not None and result.anchor_update[1] == delivered


def test_an_older_delivery_arriving_late_never_moves_the_expiry_back(make_ctx: Callable[..., ChainContext]) -> None:
    stored = datetime(2024, 6, 1, tzinfo=UTC)
    event = build_event(Channel.CUSTOMER, interaction={"last_service_delivery_at": datetime(2021, 1, 1, tzinfo=UTC)})
    anchors = {anchor_key("last_service_delivery", event.subject_key): stored}
    result = run_chain(event, make_ctx(anchors=anchors))
    assert isinstance(result.outcome, Passed)
    assert result.outcome.tagged.tags.retention_anchor_at == stored
    assert result.outcome.tagged.tags.retention_expires_at == datetime(2030, 6, 1, tzinfo=UTC)
    assert result.anchor_update is None


def test_attendee_clock_anchors_on_the_event_registered_for(make_ctx: Callable[..., ChainContext]) -> None:
    event_date = datetime(2025, 9, 15, 18, 0, tzinfo=UTC)
    event = build_event(Channel.EVENT, interaction={"event_date": event_date, "event_name": "Meetup"})
    result = run_chain(event, make_ctx())
    assert isinstance(result.outcome, Passed)
    assert result.outcome.tagged.tags.retention_expires_at == datetime(2031, 9, 15, 18, 0, tzinfo=UTC)
    assert result.anchor_update == (anchor_key("last_event_registration", event.subject_key), event_date)


def test_customer_and_attendee_anchors_are_kept_apart(make_ctx: Callable[..., ChainContext]) -> None:
    """One person can be both; a registration must not move the customer clock."""
    event = build_event(Channel.EVENT, interaction={"event_date": datetime(2026, 1, 1, tzinfo=UTC)})
    anchors = {anchor_key("last_service_delivery", event.subject_key): datetime(2030, 1, 1, tzinfo=UTC)}
    result = run_chain(event, make_ctx(anchors=anchors))
    assert isinstance(result.outcome, Passed)
    assert result.outcome.tagged.tags.retention_anchor_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_interaction_clock_ignores_stored_anchors(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(Channel.WEB_FORM)
    anchors = {anchor_key("last_service_delivery", event.subject_key): datetime(2030, 1, 1, tzinfo=UTC)}
    result = run_chain(event, make_ctx(anchors=anchors))
    assert isinstance(result.outcome, Passed)
    assert result.outcome.tagged.tags.retention_anchor_at == NOW
    assert result.anchor_update is None


def test_without_fallback_a_missing_anchor_date_is_an_error_naming_the_field(tmp_path: Any) -> None:
    import yaml

    from pipeline.policy.model import default_policy_path

    data = yaml.safe_load(default_policy_path().read_text())
    del data["channels"]["customer"]["anchor_fallback"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(MissingAnchorError, match=r"interaction\.last_service_delivery_at"):
        retention_clock(build_event(Channel.CUSTOMER), load_policy(path), {})


def test_a_changed_period_changes_the_expiry_without_code(tmp_path: Any) -> None:
    import yaml

    from pipeline.policy.model import default_policy_path
    from pipeline.processors import compile_policy

    data = yaml.safe_load(default_policy_path().read_text())
    data["channels"]["web_form"]["retention"] = "2y"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    ctx = ChainContext(policy=compile_policy(load_policy(path)), now=NOW, pepper=b"p")
    result = run_chain(build_event(Channel.WEB_FORM), ctx)
    assert isinstance(result.outcome, Passed)
    assert result.outcome.tagged.tags.retention_expires_at == _years_after(NOW, 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=12))
@example([424])  # 2016-02-29: six years later is 2022-02-28
@example([100, 1885])  # 2020-02-29 after an earlier delivery
def test_the_anchor_after_any_sequence_of_deliveries_is_the_latest(day_offsets: list[int]) -> None:
    """Whatever order deliveries arrive in, the stored anchor ends at the latest and expiry = latest + 6 years."""
    from pipeline.processors import compile_policy

    ctx_policy = compile_policy(load_policy())
    anchors: dict[str, datetime] = {}
    base = datetime(2015, 1, 1, tzinfo=UTC)
    event: ContactEvent | None = None
    for offset in day_offsets:
        event = build_event(Channel.CUSTOMER, interaction={"last_service_delivery_at": base + timedelta(days=offset)})
        result = run_chain(event, ChainContext(policy=ctx_policy, now=NOW, pepper=b"p", anchors=anchors))
        assert isinstance(result.outcome, Passed)
        if result.anchor_update:
            anchors[result.anchor_update[0]] = result.anchor_update[1]
    assert event is not None
    latest = base + timedelta(days=max(day_offsets))
    assert anchors[anchor_key("last_service_delivery", event.subject_key)] == latest
    assert result.outcome.tagged.tags.retention_expires_at == _years_after(latest, 6)
