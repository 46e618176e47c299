"""Anonymous website visitors in the chain: kept only with their analytics consent (the policy file's categories),
on the website clock of the policy file; a person's event is not asked for cookie consent; browsing is no
submission for the rate limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from processor_events import NOW, PEPPER, build_event

from pipeline.models.common import Channel, InteractionKind, Purpose
from pipeline.models.contact import ContactEvent
from pipeline.models.processing import DropReason
from pipeline.normalize import visitor_key
from pipeline.policy.model import PolicyError, default_policy_path, load_policy
from pipeline.processors import ChainContext, Dropped, Passed, compile_policy, run_chain

VISITOR = visitor_key(PEPPER, "cookie-1")


def visit(consent: dict[str, bool], **overrides: Any) -> ContactEvent:
    return build_event(
        Channel.WEBSITE,
        subject_key=VISITOR,
        person={"first_name": None, "email": None, "company": None},
        interaction={"message": None, "page_url": "https://www.example.com/pricing"},
        provenance={"visitor_key": VISITOR, "cookie_consent": consent},
        **overrides,
    )


@pytest.mark.parametrize(
    "consent",
    [{}, {"analytics": False}, {"advertising": True}, {"analytics": True, "statistics": False}],
    ids=["none", "refused", "other-category-only", "one-denied"],
)
def test_an_anonymous_visit_without_analytics_consent_is_dropped_no_consent(
    consent: dict[str, bool], make_ctx: Callable[..., ChainContext]
) -> None:
    outcome = run_chain(visit(consent), make_ctx()).outcome
    assert isinstance(outcome, Dropped)
    assert (outcome.reason, outcome.stage) == (DropReason.NO_CONSENT, "consent")


@pytest.mark.parametrize("category", ["analytics", "statistics", "analytics_storage", "c0002"])
def test_an_anonymous_visit_with_consent_is_kept_on_the_policy_s_website_clock(
    category: str, make_ctx: Callable[..., ChainContext]
) -> None:
    outcome = run_chain(visit({category: True, "advertising": False}), make_ctx()).outcome
    assert isinstance(outcome, Passed)
    tags = outcome.tagged.tags
    assert [p.purpose for p in tags.purposes] == [Purpose.ANALYTICS]
    assert tags.retention_expires_at == NOW.replace(year=NOW.year + 7)  # channels.website.retention: 7y


def test_the_retention_of_a_visit_is_the_policy_file_s_not_the_code_s(tmp_path: Path) -> None:
    data = yaml.safe_load(default_policy_path().read_text())
    data["channels"]["website"]["retention"] = "13m"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    ctx = ChainContext(policy=compile_policy(load_policy(path)), now=NOW, pepper=PEPPER)
    outcome = run_chain(visit({"analytics": True}), ctx).outcome
    assert isinstance(outcome, Passed)
    assert outcome.tagged.tags.retention_expires_at == NOW.replace(year=NOW.year + 1, month=NOW.month + 1)


def test_which_categories_count_is_the_policy_file_s(tmp_path: Path) -> None:
    data = yaml.safe_load(default_policy_path().read_text())
    data["visitors"]["consent_categories"] = ["Measurement"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    ctx = ChainContext(policy=compile_policy(load_policy(path)), now=NOW, pepper=PEPPER)
    assert isinstance(run_chain(visit({"measurement": True}), ctx).outcome, Passed)
    assert isinstance(run_chain(visit({"analytics": True}), ctx).outcome, Dropped)
    data["visitors"]["consent_categories"] = [" "]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError, match="consent_categories"):
        load_policy(path)


def test_a_person_s_page_view_needs_no_cookie_consent(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(Channel.WEBSITE, provenance={"visitor_key": VISITOR})  # identified: keyed by the e-mail
    assert isinstance(run_chain(event, make_ctx()).outcome, Passed)


def test_page_views_are_not_counted_by_the_rate_limits(make_ctx: Callable[..., ChainContext]) -> None:
    result = run_chain(visit({"analytics": True}), make_ctx())
    assert isinstance(result.outcome, Passed) and result.rate_updates == {}
    form = run_chain(build_event(Channel.WEB_FORM, InteractionKind.CONTACT_US), make_ctx())
    assert len(form.rate_updates) == 2
