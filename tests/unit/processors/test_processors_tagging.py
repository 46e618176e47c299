"""Purposes and legal bases: every (channel, interaction) row of the policy, consent rules, objection, withdrawal."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from processor_events import NOW, build_event

from pipeline.models.common import Channel, InteractionKind, LegalBasis, Purpose
from pipeline.models.contact import Consent
from pipeline.models.processing import DropReason
from pipeline.models.rights import SuppressionRecord
from pipeline.policy.model import default_policy_path, load_policy
from pipeline.processors import ChainContext, Dropped, Passed, compile_policy, run_chain
from pipeline.processors.suppression import suppress_accepted

P = Purpose
C, LI = LegalBasis.CONTRACT, LegalBasis.LEGITIMATE_INTEREST

#: (channel, kind) -> {purpose: (basis, section)}, read off the policy text (sections 2.3 ... 7.3).
ROWS: dict[tuple[Channel, InteractionKind], dict[Purpose, tuple[LegalBasis, str]]] = {
    (Channel.WEBSITE, InteractionKind.PAGE_VIEW): {P.ANALYTICS: (LI, "2.3")},
    (Channel.WEB_FORM, InteractionKind.CONTACT_US): {
        P.CONTRACT_REQUEST: (C, "3.3(1)"),
        P.INFORMATION_OF_INTEREST: (LI, "3.3(2)"),
        P.COMMUNICATION_HISTORY: (LI, "3.3(2)"),
    },
    (Channel.WEB_FORM, InteractionKind.EXPERT_REQUEST): {
        P.CONTRACT_REQUEST: (C, "3.3(1)"),
        P.INFORMATION_OF_INTEREST: (LI, "3.3(2)"),
        P.COMMUNICATION_HISTORY: (LI, "3.3(2)"),
    },
    (Channel.WEB_FORM, InteractionKind.WHITE_PAPER): {
        P.SPAM_PREVENTION: (LI, "3.3(3)"),
        P.INFORMATION_OF_INTEREST: (LI, "3.3(3)"),
    },
    (Channel.WEB_FORM, InteractionKind.DEMO_REQUEST): {
        P.SPAM_PREVENTION: (LI, "3.3(3)"),
        P.INFORMATION_OF_INTEREST: (LI, "3.3(3)"),
    },
    (Channel.CHATBOT, InteractionKind.CHAT): {
        P.CONTRACT_REQUEST: (C, "4.3(1)"),
        P.INFORMATION_OF_INTEREST: (LI, "4.3(2)"),
        P.COMMUNICATION_HISTORY: (LI, "4.3(2)"),
        P.CRM_MAINTENANCE: (LI, "4.3(2)"),
    },
    (Channel.CHATBOT, InteractionKind.WHITE_PAPER): {
        P.SPAM_PREVENTION: (LI, "4.3(3)"),
        P.INFORMATION_OF_INTEREST: (LI, "4.3(3)"),
    },
    (Channel.EMAIL, InteractionKind.EMAIL): {
        P.CONTRACT_REQUEST: (C, "5.3(1)"),
        P.INFORMATION_OF_INTEREST: (LI, "5.3(2)"),
        P.COMMUNICATION_HISTORY: (LI, "5.3(2)"),
        P.CRM_MAINTENANCE: (LI, "5.2"),
    },
    (Channel.MESSENGER, InteractionKind.CALL): {
        P.CONTRACT_REQUEST: (C, "5.3(1)"),
        P.INFORMATION_OF_INTEREST: (LI, "5.3(2)"),
        P.COMMUNICATION_HISTORY: (LI, "5.3(2)"),
        P.CRM_MAINTENANCE: (LI, "5.2"),
    },
    (Channel.MESSENGER, InteractionKind.MESSAGE): {
        P.CONTRACT_REQUEST: (C, "5.3(1)"),
        P.INFORMATION_OF_INTEREST: (LI, "5.3(2)"),
        P.COMMUNICATION_HISTORY: (LI, "5.3(2)"),
        P.CRM_MAINTENANCE: (LI, "5.2"),
    },
    (Channel.CUSTOMER, InteractionKind.CUSTOMER_RECORD): {
        P.SERVICE_DELIVERY: (C, "6.3(1)"),
        P.INVOICING: (C, "6.3(1)"),
        P.INFORMATION_OF_INTEREST: (LI, "6.3(2)"),
        P.COMMUNICATION_HISTORY: (LI, "6.3(2)"),
        P.CRM_MAINTENANCE: (LI, "6.3(2)"),
    },
    (Channel.EVENT, InteractionKind.REGISTRATION): {
        P.CONTRACT_REQUEST: (C, "7.3(1)"),
        P.INFORMATION_OF_INTEREST: (LI, "7.3(2)"),
        P.CRM_MAINTENANCE: (LI, "7.3(2)"),
    },
    (Channel.EVENT, InteractionKind.BUSINESS_CARD): {
        P.CONTRACT_REQUEST: (C, "7.3(1)"),
        P.INFORMATION_OF_INTEREST: (LI, "7.3(2)"),
        P.CRM_MAINTENANCE: (LI, "7.3(2)"),
    },
    # "any other purpose" (3.3(3), 5.3(3)): a kind the channel does not list
    (Channel.EMAIL, InteractionKind.DEMO_REQUEST): {
        P.SPAM_PREVENTION: (LI, "5.3(3)"),
        P.INFORMATION_OF_INTEREST: (LI, "5.3(3)"),
    },
}


def _tags(event: object, ctx: ChainContext) -> dict[Purpose, tuple[LegalBasis, str]]:
    result = run_chain(event, ctx)  # type: ignore[arg-type]
    assert isinstance(result.outcome, Passed), result.outcome
    return {t.purpose: (t.legal_basis, t.policy_section) for t in result.outcome.tagged.tags.purposes}


@pytest.mark.parametrize(("channel", "kind"), list(ROWS))
def test_each_interaction_row_gets_its_purposes_bases_and_sections(
    channel: Channel, kind: InteractionKind, make_ctx: Callable[..., ChainContext]
) -> None:
    assert _tags(build_event(channel, kind), make_ctx()) == ROWS[(channel, kind)]


def test_every_purpose_basis_row_is_tagged_somewhere(make_ctx: Callable[..., ChainContext]) -> None:
    """Each purpose of the policy appears with its basis on at least one row (consent through a consent)."""
    seen: dict[Purpose, LegalBasis] = {}
    for (channel, kind), _ in ROWS.items():
        for purpose, (basis, _section) in _tags(build_event(channel, kind), make_ctx()).items():
            seen[purpose] = basis
    consent = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=NOW, method="checkbox")
    seen.update(_tags_with_basis(build_event(Channel.WEB_FORM, consents=(consent,)), make_ctx()))
    assert seen[P.FURTHER_CONTACT] is LegalBasis.CONSENT
    assert set(seen) == set(Purpose)


def _tags_with_basis(event: object, ctx: ChainContext) -> dict[Purpose, LegalBasis]:
    return {p: b for p, (b, _) in _tags(event, ctx).items()}


@pytest.mark.parametrize(
    ("channel", "section"),
    [(Channel.WEB_FORM, "3.2"), (Channel.CHATBOT, "4.2"), (Channel.CUSTOMER, "6.2(9)"), (Channel.EMAIL, "9(8)")],
)
def test_a_given_consent_adds_the_consent_purpose_with_its_section(
    channel: Channel, section: str, make_ctx: Callable[..., ChainContext]
) -> None:
    consent = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=NOW, method="checkbox", wording="Yes")
    tags = _tags(build_event(channel, consents=(consent,)), make_ctx())
    assert tags[P.FURTHER_CONTACT] == (LegalBasis.CONSENT, section)


def test_no_consent_no_consent_purpose(make_ctx: Callable[..., ChainContext]) -> None:
    for channel in Channel:
        assert P.FURTHER_CONTACT not in _tags(build_event(channel), make_ctx())


def test_the_website_channel_accepts_no_consent(make_ctx: Callable[..., ChainContext]) -> None:
    consent = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=NOW, method="checkbox")
    assert P.FURTHER_CONTACT not in _tags(build_event(Channel.WEBSITE, consents=(consent,)), make_ctx())


def test_an_imported_consent_counts_only_for_customers(make_ctx: Callable[..., ChainContext]) -> None:
    consent = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=NOW, method="import")
    assert P.FURTHER_CONTACT in _tags(build_event(Channel.CUSTOMER, consents=(consent,)), make_ctx())
    assert P.FURTHER_CONTACT not in _tags(build_event(Channel.WEB_FORM, consents=(consent,)), make_ctx())


def test_a_consent_dated_after_the_contact_is_not_a_consent_to_it(make_ctx: Callable[..., ChainContext]) -> None:
    later = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=NOW + timedelta(days=3), method="checkbox")
    assert P.FURTHER_CONTACT not in _tags(build_event(Channel.WEB_FORM, consents=(later,)), make_ctx())


def test_the_latest_choice_wins(make_ctx: Callable[..., ChainContext]) -> None:
    yes = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=NOW - timedelta(minutes=2), method="checkbox")
    no = Consent(purpose=P.FURTHER_CONTACT, granted=False, given_at=NOW - timedelta(minutes=1), method="checkbox")
    assert P.FURTHER_CONTACT not in _tags(build_event(Channel.WEB_FORM, consents=(yes, no)), make_ctx())
    assert P.FURTHER_CONTACT not in _tags(build_event(Channel.WEB_FORM, consents=(no, yes)), make_ctx())
    yes_later = yes.model_copy(update={"given_at": NOW})
    assert P.FURTHER_CONTACT in _tags(build_event(Channel.WEB_FORM, consents=(no, yes_later)), make_ctx())


def test_a_refusal_of_marketing_removes_it_and_marketing_is_not_allowed(
    make_ctx: Callable[..., ChainContext],
) -> None:
    no = Consent(purpose=P.INFORMATION_OF_INTEREST, granted=False, given_at=NOW, method="checkbox")
    result = run_chain(build_event(Channel.WEB_FORM, consents=(no,)), make_ctx())
    assert isinstance(result.outcome, Passed)
    tags = result.outcome.tagged.tags
    assert P.INFORMATION_OF_INTEREST not in {t.purpose for t in tags.purposes}
    assert P.CONTRACT_REQUEST in {t.purpose for t in tags.purposes}
    assert tags.marketing_allowed is False


def test_marketing_is_allowed_by_default_where_a_marketing_purpose_is_tagged(
    make_ctx: Callable[..., ChainContext],
) -> None:
    result = run_chain(build_event(Channel.WEB_FORM), make_ctx())
    assert isinstance(result.outcome, Passed) and result.outcome.tagged.tags.marketing_allowed
    result = run_chain(build_event(Channel.WEBSITE), make_ctx())
    assert isinstance(result.outcome, Passed) and not result.outcome.tagged.tags.marketing_allowed


def _state(event: object, **flags: object) -> SuppressionRecord:
    import uuid

    return SuppressionRecord(subject_key=event.subject_key, updated_at=NOW, request_id=uuid.uuid4(), **flags)  # type: ignore[attr-defined,arg-type]


def test_an_objection_removes_every_direct_marketing_purpose(make_ctx: Callable[..., ChainContext]) -> None:
    consent = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=NOW, method="checkbox")
    event = build_event(Channel.WEB_FORM, consents=(consent,))
    result = run_chain(event, make_ctx(suppression=_state(event, marketing_objected=True)))
    assert isinstance(result.outcome, Passed)
    tags = result.outcome.tagged.tags
    assert {t.purpose for t in tags.purposes} == {P.CONTRACT_REQUEST, P.COMMUNICATION_HISTORY}
    assert not any(t.direct_marketing for t in tags.purposes)
    assert tags.marketing_allowed is False


def test_a_withdrawal_removes_exactly_the_withdrawn_purposes(make_ctx: Callable[..., ChainContext]) -> None:
    consent = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=NOW, method="checkbox")
    event = build_event(Channel.WEB_FORM, consents=(consent,))
    result = run_chain(event, make_ctx(suppression=_state(event, consent_withdrawn=(P.FURTHER_CONTACT,))))
    assert isinstance(result.outcome, Passed)
    purposes = {t.purpose for t in result.outcome.tagged.tags.purposes}
    assert P.FURTHER_CONTACT not in purposes
    assert P.INFORMATION_OF_INTEREST in purposes
    assert result.outcome.tagged.tags.marketing_allowed is True


@pytest.mark.parametrize(
    ("given", "method", "counts"),
    [
        (timedelta(minutes=5), "checkbox", True),  # a ticked box on a form sent after the withdrawal
        (timedelta(minutes=5), "chat_answer", True),
        (timedelta(minutes=-5), "checkbox", False),  # given before the withdrawal: an old request replayed
        (timedelta(0), "checkbox", False),  # not after it
        (timedelta(minutes=5), "import", False),  # a "yes" copied from another system, not the person's new act
    ],
)
def test_a_consent_given_again_after_the_withdrawal_counts_for_that_event(
    make_ctx: Callable[..., ChainContext], given: timedelta, method: str, counts: bool
) -> None:
    """Policy 9.8: after withdrawing, the person may give consent again case by case; the chain used to keep the
    withdrawal whatever a later form ticked (a person who subscribed again was never written to)."""
    withdrawn_at = NOW - timedelta(days=2)
    consent = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=withdrawn_at + given, method=method)  # type: ignore[arg-type]
    event = build_event(Channel.WEB_FORM, consents=(consent,))
    state = _state(
        event, consent_withdrawn=(P.FURTHER_CONTACT,), consent_withdrawn_at={P.FURTHER_CONTACT: withdrawn_at}
    )
    result = run_chain(event, make_ctx(suppression=state))
    assert isinstance(result.outcome, Passed)
    purposes = {t.purpose for t in result.outcome.tagged.tags.purposes}
    assert (P.FURTHER_CONTACT in purposes) is counts
    # the same at the sinks, to the state of now (suppress_accepted), and without a consent the withdrawal holds
    assert suppress_accepted(result.outcome.tagged, state, make_ctx().policy.policy) is result.outcome.tagged
    plain = run_chain(build_event(Channel.WEB_FORM), make_ctx(suppression=state)).outcome
    assert isinstance(plain, Passed) and P.FURTHER_CONTACT not in {t.purpose for t in plain.tagged.tags.purposes}


def test_a_withdrawal_after_the_new_consent_stops_it_again(make_ctx: Callable[..., ChainContext]) -> None:
    """Withdrawn, given again, withdrawn again: the latest withdrawal is what a consent must come after."""
    consent = Consent(purpose=P.FURTHER_CONTACT, granted=True, given_at=NOW - timedelta(days=1), method="checkbox")
    event = build_event(Channel.WEB_FORM, consents=(consent,))
    once = _state(
        event,
        consent_withdrawn=(P.FURTHER_CONTACT,),
        consent_withdrawn_at={P.FURTHER_CONTACT: NOW - timedelta(days=2)},
    )
    again = once.model_copy(update={"consent_withdrawn_at": {P.FURTHER_CONTACT: NOW - timedelta(hours=1)}})
    accepted = run_chain(event, make_ctx(suppression=once)).outcome
    assert isinstance(accepted, Passed)
    assert P.FURTHER_CONTACT in {t.purpose for t in accepted.tagged.tags.purposes}
    restated = suppress_accepted(accepted.tagged, again, make_ctx().policy.policy)
    assert not isinstance(restated, DropReason)
    assert P.FURTHER_CONTACT not in {t.purpose for t in restated.tags.purposes}
    # a state written before the times were kept reads its updated_at (NOW): the consent a day before stays off
    legacy = _state(event, consent_withdrawn=(P.FURTHER_CONTACT,))
    assert legacy.withdrawn_since(P.FURTHER_CONTACT) == NOW
    outcome = run_chain(event, make_ctx(suppression=legacy)).outcome
    assert isinstance(outcome, Passed) and P.FURTHER_CONTACT not in {t.purpose for t in outcome.tagged.tags.purposes}


def test_nothing_left_to_keep_it_for_is_a_drop(tmp_path: Path) -> None:
    """A policy row with only marketing purposes, and an objection: no lawful purpose remains, so it is dropped."""
    data = yaml.safe_load(default_policy_path().read_text())
    data["interactions"]["event"]["other"] = {"information_of_interest": "7.3(2)"}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    ctx = ChainContext(policy=compile_policy(load_policy(path)), now=NOW, pepper=b"p")
    event = build_event(Channel.EVENT, InteractionKind.CHAT)
    result = run_chain(event, ChainContext(**{**_fields(ctx), "suppression": _state(event, marketing_objected=True)}))
    assert isinstance(result.outcome, Dropped)
    assert result.outcome.reason is DropReason.NO_LAWFUL_PURPOSE
    assert isinstance(run_chain(event, ctx).outcome, Passed)


def _fields(ctx: ChainContext) -> dict[str, object]:
    return {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.init}
