"""The one rule of "may we market to this person now" (policy 9.4, 9.6, 9.8), over the purposes as the chain tags
them and as the CRM stores them."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.crm.views import PurposeView
from pipeline.models.common import LegalBasis, Purpose
from pipeline.models.marketing import MarketingState, may_market
from pipeline.models.tagged import PurposeTag

CONTRACT = PurposeTag(
    purpose=Purpose.CONTRACT_REQUEST, legal_basis=LegalBasis.CONTRACT, policy_section="3.3(1)", direct_marketing=False
)
INTEREST = PurposeTag(
    purpose=Purpose.INFORMATION_OF_INTEREST,
    legal_basis=LegalBasis.LEGITIMATE_INTEREST,
    policy_section="3.3(2)",
    direct_marketing=True,
)
FURTHER = PurposeTag(
    purpose=Purpose.FURTHER_CONTACT, legal_basis=LegalBasis.CONSENT, policy_section="3.2", direct_marketing=True
)


def test_a_direct_marketing_purpose_allows_marketing_and_none_does_not() -> None:
    assert may_market([CONTRACT, INTEREST])
    assert not may_market([CONTRACT])
    assert not may_market([])


def test_an_objection_or_a_restriction_says_no_whatever_the_purposes() -> None:
    assert not may_market([INTEREST, FURTHER], MarketingState(objected=True))
    assert not may_market([INTEREST, FURTHER], MarketingState(restricted=True))


def test_a_withdrawn_consent_stops_only_what_rested_on_it() -> None:
    withdrawn = MarketingState(withdrawn=frozenset({Purpose.FURTHER_CONTACT.value}))
    assert not may_market([CONTRACT, FURTHER], withdrawn)  # marketing rested on the consent alone
    assert may_market([CONTRACT, INTEREST, FURTHER], withdrawn)  # legitimate interest still carries it


def test_a_stored_purpose_that_was_stopped_no_longer_counts() -> None:
    stored = PurposeView.model_validate(INTEREST.model_dump() | {"stopped_at": datetime.now(UTC)})
    assert not may_market([stored]) and may_market([PurposeView.model_validate(INTEREST.model_dump())])
