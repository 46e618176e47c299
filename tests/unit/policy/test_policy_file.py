"""The policy file: every row of the policy's tables, validation errors that name the entry, the override path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pipeline.models.common import Channel, LegalBasis, Purpose
from pipeline.policy.model import Duration, PolicyError, default_policy_path, load_policy

#: POLICY-MAP.md, channel table: (period in years, clock, section).
CHANNEL_ROWS = {
    Channel.WEBSITE: (7, "interaction", "2.4"),
    Channel.WEB_FORM: (8, "interaction", "3.4"),
    Channel.CHATBOT: (8, "interaction", "4.4"),
    Channel.EMAIL: (6, "interaction", "5.4"),
    Channel.MESSENGER: (6, "interaction", "5.4"),
    Channel.CUSTOMER: (6, "last_service_delivery", "6.4"),
    Channel.EVENT: (6, "last_event_registration", "7.5"),
}

#: POLICY-MAP.md, legal-basis table: purpose -> (basis, direct marketing).
PURPOSE_ROWS = {
    Purpose.CONTRACT_REQUEST: (LegalBasis.CONTRACT, False),
    Purpose.SERVICE_DELIVERY: (LegalBasis.CONTRACT, False),
    Purpose.INVOICING: (LegalBasis.CONTRACT, False),
    Purpose.INFORMATION_OF_INTEREST: (LegalBasis.LEGITIMATE_INTEREST, True),
    Purpose.COMMUNICATION_HISTORY: (LegalBasis.LEGITIMATE_INTEREST, False),
    Purpose.CRM_MAINTENANCE: (LegalBasis.LEGITIMATE_INTEREST, False),
    Purpose.SPAM_PREVENTION: (LegalBasis.LEGITIMATE_INTEREST, False),
    Purpose.ANALYTICS: (LegalBasis.LEGITIMATE_INTEREST, False),
    Purpose.FURTHER_CONTACT: (LegalBasis.CONSENT, True),
}


def _raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_policy_path().read_text())
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_packaged_policy_loads_and_has_a_version() -> None:
    policy = load_policy()
    assert policy.version
    assert load_policy(default_policy_path()) == policy


@pytest.mark.parametrize("channel", list(Channel))
def test_each_channel_has_the_policy_period_clock_and_section(channel: Channel) -> None:
    years, clock, section = CHANNEL_ROWS[channel]
    rule = load_policy().channels[channel]
    assert rule.retention == Duration(years=years)
    assert rule.clock == clock
    assert rule.section == section


@pytest.mark.parametrize("purpose", list(Purpose))
def test_each_purpose_has_the_policy_basis(purpose: Purpose) -> None:
    basis, direct_marketing = PURPOSE_ROWS[purpose]
    rule = load_policy().purposes[purpose]
    assert rule.legal_basis is basis
    assert rule.direct_marketing is direct_marketing


def test_consent_purposes_are_the_consent_based_ones() -> None:
    assert load_policy().consent_purposes() == (Purpose.FURTHER_CONTACT,)


def test_every_system_that_holds_data_is_stored_where_the_policy_says() -> None:
    storage = load_policy().storage
    assert set(storage.countries) == {"US", "IE"}  # section 10: "the United States and Ireland"
    assert {"kafka", "crm", "hubspot"} <= set(storage.systems)


def test_children_minimum_age_is_16() -> None:
    assert load_policy().children.minimum_age == 16


def test_quarantine_retention_fits_the_topic() -> None:
    """topics.yaml keeps contacts.quarantine for 14 days; the policy must not promise longer."""
    topics = yaml.safe_load((Path(__file__).resolve().parents[3] / "topics.yaml").read_text())
    retention_ms = next(
        int(t["config"]["retention.ms"]) for t in topics["topics"] if t["name"] == "contacts.quarantine"
    )
    assert load_policy().quarantine.retention.as_timedelta().total_seconds() * 1000 <= retention_ms


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["channels"]["web_form"].update(retention="eight years"), "channels.web_form.retention:"),
        (lambda d: d["channels"]["web_form"].update(retention="0y"), "channels.web_form.retention:"),
        (lambda d: d["channels"]["web_form"].update(clock="sometimes"), "channels.web_form.clock:"),
        (lambda d: d["channels"].pop("email"), "channels.email: missing"),
        (lambda d: d["channels"].update(webform=d["channels"]["web_form"]), "channels.webform"),
        (lambda d: d["purposes"]["analytics"].update(legal_basis="vibes"), "purposes.analytics.legal_basis:"),
        (lambda d: d["purposes"].pop("invoicing"), "purposes.invoicing: missing"),
        (
            lambda d: d["interactions"]["web_form"]["contact_us"].update(further_contact="3.2"),
            "interactions.web_form.contact_us.further_contact: rests on consent",
        ),
        (
            lambda d: d["interactions"]["web_form"].update(cntact_us={"analytics": "2.3"}),
            "interactions.web_form.cntact_us",
        ),
        (lambda d: d["interactions"]["chatbot"].pop("other"), "interactions.chatbot.other: missing"),
        (lambda d: d["spam"]["weights"].pop("honeypot"), "spam.weights.honeypot: Field required"),
        (lambda d: d["spam"].update(threshold=0), "spam.threshold:"),
        (lambda d: d["spam"]["blocklist"].update(ips=["10.0.0.300"]), "spam.blocklist.ips: [0] is not an IP"),
        (lambda d: d["spam"]["rate_limits"]["per_ip"].update(window="1y"), "spam.rate_limits.per_ip.window:"),
        (lambda d: d["children"].update(minimum_age=0), "children.minimum_age:"),
        (lambda d: d["children"]["age_statement_patterns"].insert(1, "(open"), "children.age_statement_patterns: [1]"),
        (lambda d: d["children"]["age_statement_patterns"].append(r"\d+"), "has no named group 'age'"),
        (lambda d: d["consent"].update(accepted_methods=["telepathy"]), "consent.accepted_methods:"),
        (lambda d: d.update(surprise=1), "surprise: Extra inputs are not permitted"),
        (lambda d: d["storage"]["systems"].pop("hubspot"), "storage: systems.hubspot: missing"),
        (
            lambda d: d["storage"]["systems"]["crm"].update(countries=["IE", "SG"]),
            "systems.crm.countries: SG not among the policy's US, IE",
        ),
    ],
)
def test_invalid_entries_are_named(tmp_path: Path, mutate: Any, expected: str) -> None:
    data = _raw()
    mutate(data)
    with pytest.raises(PolicyError) as info:
        load_policy(_write(tmp_path, data))
    assert expected in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_unreadable_and_non_yaml_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)
    bad.write_text("- a list")
    with pytest.raises(PolicyError, match="mapping at the top level"):
        load_policy(bad)


def test_a_changed_period_is_read_from_the_file(tmp_path: Path) -> None:
    data = _raw()
    data["channels"]["web_form"]["retention"] = "3y"
    assert load_policy(_write(tmp_path, data)).channels[Channel.WEB_FORM].retention == Duration(years=3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8y", Duration(years=8)), ("6m", Duration(months=6)), ("14d", Duration(days=14)), ("1h", Duration(hours=1))],
)
def test_duration_syntax(text: str, expected: Duration) -> None:
    assert Duration.model_validate(text) == expected
    assert str(expected) == text


def test_leap_day_plus_years_lands_on_28_february() -> None:
    assert Duration(years=1).after(datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2025, 2, 28, tzinfo=UTC)
    assert Duration(years=8).after(datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2032, 2, 29, tzinfo=UTC)


@given(
    start=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    years=st.integers(min_value=1, max_value=20),
)
def test_years_keep_the_time_and_move_the_year(start: datetime, years: int) -> None:
    end = Duration(years=years).after(start)
    assert end.year == start.year + years
    assert (end.month, end.time()) == (start.month, start.time())
    assert end.day == start.day or (start.month, start.day, end.day) == (2, 29, 28)
