"""Marketing choices that exports record: an opt-out column or an unsubscribed member is never marketed to, and a
consent is recorded only where the export says the person opted in (``pipeline.sources.choices``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from source_payloads import RECEIVED_AT, ctx_for

from pipeline.models.common import Purpose
from pipeline.models.contact import ContactEvent
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, Passed, compile_policy, run_chain
from pipeline.sources import NothingToTake, customer, event, fields, web_form

_CHAIN = ChainContext(policy=compile_policy(load_policy()), now=RECEIVED_AT + timedelta(minutes=5), pepper=b"p" * 32)


def _marketing_allowed(contact: ContactEvent) -> bool:
    result = run_chain(contact, _CHAIN)
    assert isinstance(result.outcome, Passed)
    return result.outcome.tagged.tags.marketing_allowed


def _customers(csv: str) -> list[ContactEvent]:
    raw = csv.encode()
    return customer.parse(raw, ctx_for("customer", raw, "text/csv"))


def _choices(contact: ContactEvent) -> set[tuple[Purpose, bool]]:
    return {(c.purpose, c.granted) for c in contact.consents}


_REFUSED = {(Purpose.FURTHER_CONTACT, False), (Purpose.INFORMATION_OF_INTEREST, False)}


@pytest.mark.parametrize(
    ("column", "refused", "not_refused"),
    [
        ("Accepts Email Marketing", "no", "yes"),  # Shopify
        ("Unsubscribed from all email", "true", "false"),  # HubSpot
        ("Email Opt Out", "1", "0"),  # Salesforce
        ("Email Opt Out", "true", "false"),  # Zoho
        ("Marketing status", "Unsubscribed", "Subscribed"),  # Pipedrive
        ("UNSUB_TIME", "2023-05-06 11:00:00", ""),  # Mailchimp's unsubscribed export
        ("CLEAN_TIME", "2023-05-06 11:00:00", ""),  # Mailchimp's cleaned export
    ],
)
def test_an_opt_out_column_refuses_marketing_through_the_chain(column: str, refused: str, not_refused: str) -> None:
    rows = f"no@example.com,{refused},2024-03-01\nok@example.com,{not_refused},2024-03-01\n"
    no, other = _customers(f"Email,{column},Last Order Date\n{rows}")
    assert _choices(no) == _REFUSED
    assert _marketing_allowed(no) is False
    assert not _choices(other) & _REFUSED
    assert _marketing_allowed(other) is True


def test_an_explicit_opt_in_is_an_imported_consent_dated_by_the_export() -> None:
    shopify, mailchimp, unsubscribed = _customers(
        "Email,Accepts Email Marketing,OPTIN_TIME,UNSUB_TIME,Last Order Date\n"
        "a@example.com,yes,,,2024-03-01\n"
        "b@example.com,,2020-01-02 10:00:00,,2024-03-01\n"
        "c@example.com,,2020-01-02 10:00:00,2023-05-06 11:00:00,2024-03-01\n"
    )
    assert [(c.purpose, c.granted, c.method) for c in shopify.consents] == [(Purpose.FURTHER_CONTACT, True, "import")]
    [opted_in] = mailchimp.consents
    assert opted_in.granted and opted_in.given_at == datetime(2020, 1, 2, 10, tzinfo=UTC)
    assert Purpose.FURTHER_CONTACT in {t.purpose for t in run_chain(mailchimp, _CHAIN).outcome.tagged.tags.purposes}  # type: ignore[union-attr]
    assert _marketing_allowed(unsubscribed) is False  # the later refusal stands over the earlier opt-in


def test_a_date_in_a_consent_column_is_no_consent_and_no_refusal() -> None:
    [contact] = _customers("Email,Subscribed,Last Order Date\na@example.com,2024-01-02T10:00:00Z,2024-03-01\n")
    assert contact.consents == ()


def test_an_attendee_export_honours_an_opt_out() -> None:
    raw = b"Email,Email Opt Out,Event Date\na@example.com,true,2024-03-01\nb@example.com,,2024-03-01\n"
    refused, other = event.parse(raw, ctx_for("event", raw, "text/csv"))
    assert _choices(refused) == _REFUSED and _marketing_allowed(refused) is False
    assert other.consents == () and _marketing_allowed(other) is True
    order = {
        "event": {"start": {"utc": "2024-03-01T09:00:00Z"}},
        "attendees": [
            {"profile": {"email": "c@example.com"}, "answers": [{"question": "Email Opt Out", "answer": "Yes"}]}
        ],
    }
    body = orjson.dumps(order)
    [attendee] = event.parse(body, ctx_for("event", body, "application/json"))
    assert _marketing_allowed(attendee) is False


def test_opt_out_fields_are_the_converse_of_consent_fields() -> None:
    for name in ("Email Opt Out", "Unsubscribed from all email", "UNSUB_TIME", "HasOptedOutOfEmail", "Do Not Call"):
        assert fields.is_opt_out_field(name) and not fields.is_consent_field(name), name
    for name in ("Accepts Email Marketing", "newsletter", "OPTIN_TIME"):
        assert fields.is_consent_field(name) and not fields.is_opt_out_field(name), name
    assert not fields.is_consent_field("consents_to_one_to_one_messaging")


def _member(**member: object) -> bytes:
    return orjson.dumps({"email_address": "pierre@example.fr", "merge_fields": {"FNAME": "Pierre"}, **member})


@pytest.mark.parametrize(
    ("status", "reason"),
    [("unsubscribed", "mailchimp_unsubscribe"), ("cleaned", "mailchimp_cleaned"), ("archived", "mailchimp_archived")],
)
def test_a_mailchimp_member_who_left_is_no_new_contact(status: str, reason: str) -> None:
    body = _member(status=status, consents_to_one_to_one_messaging=True)
    with pytest.raises(NothingToTake) as taken:
        web_form.parse(body, ctx_for("web_form", body, "application/json"))
    assert taken.value.reason == reason


def test_a_subscribed_mailchimp_member_consents_only_where_the_opt_in_is_recorded() -> None:
    opted = _member(
        status="subscribed",
        consents_to_one_to_one_messaging=True,
        timestamp_signup="2024-01-02T10:00:00+00:00",
        timestamp_opt="2024-01-02T10:05:00+00:00",
        ip_signup="192.0.2.1",
        member_rating=2,
        list_id="a6b5da1054",
    )
    [contact] = web_form.parse(opted, ctx_for("web_form", opted, "application/json"))
    [consent] = contact.consents
    assert (consent.purpose, consent.granted, consent.method) == (Purpose.FURTHER_CONTACT, True, "import")
    assert consent.given_at == datetime(2024, 1, 2, 10, 5, tzinfo=UTC)
    assert contact.person.first_name == "Pierre" and contact.provenance.ip == "192.0.2.1"
    assert contact.interaction.message is None  # Mailchimp's bookkeeping is not the person's words
    for member in (
        _member(status="subscribed", consents_to_one_to_one_messaging=True, timestamp_opt=""),
        _member(status="pending", consents_to_one_to_one_messaging=True, timestamp_opt="2024-01-02T10:05:00Z"),
    ):
        [contact] = web_form.parse(member, ctx_for("web_form", member, "application/json"))
        assert contact.consents == ()


@pytest.mark.parametrize("column", ["Consent Date", "Marketing Consent Given At", "Date of Consent"])
def test_a_consent_date_column_dates_the_tick_beside_it(column: str) -> None:
    """An old CRM export's "yes" with its "Consent Date" is a consent given then, not on the day it was imported
    (the consent's evidence, and what a DPO answers when asked since when the person agreed)."""
    dated, undated = _customers(
        f"Email,Marketing Consent,{column},Last Order Date\n"
        "ana@example.com,yes,2021-03-15,2024-03-01\nbo@example.com,yes,,2024-03-01\n"
    )
    [given] = dated.consents
    assert given.granted and given.given_at.date().isoformat() == "2021-03-15"
    [today] = undated.consents
    assert today.granted and today.given_at != given.given_at
