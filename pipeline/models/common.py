"""Vocabulary shared by every event: channels, purposes, legal bases, and the strict base model.

The words live here; which purpose rests on which basis, and for how long, lives in the policy data file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An aware datetime, normalised to UTC. Naive datetimes are rejected: a retention clock cannot guess a zone."""


class StrictModel(BaseModel):
    """Immutable, no unknown fields, no silent coercion of wrong types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=False)


class Channel(StrEnum):
    """Where a contact came from; one per row of the policy's channel table."""

    WEBSITE = "website"
    WEB_FORM = "web_form"
    CHATBOT = "chatbot"
    EMAIL = "email"
    MESSENGER = "messenger"
    EVENT = "event"
    CUSTOMER = "customer"


class InteractionKind(StrEnum):
    """What happened: the form type, or the kind of conversation or record."""

    PAGE_VIEW = "page_view"
    CONTACT_US = "contact_us"
    EXPERT_REQUEST = "expert_request"
    WHITE_PAPER = "white_paper"
    DEMO_REQUEST = "demo_request"
    CHAT = "chat"
    EMAIL = "email"
    CALL = "call"
    MESSAGE = "message"
    REGISTRATION = "registration"
    BUSINESS_CARD = "business_card"
    CUSTOMER_RECORD = "customer_record"


class Purpose(StrEnum):
    """Why the data is processed (policy sections 2.3, 3.3 ... 7.3)."""

    CONTRACT_REQUEST = "contract_request"
    SERVICE_DELIVERY = "service_delivery"
    INVOICING = "invoicing"
    INFORMATION_OF_INTEREST = "information_of_interest"
    COMMUNICATION_HISTORY = "communication_history"
    CRM_MAINTENANCE = "crm_maintenance"
    SPAM_PREVENTION = "spam_prevention"
    ANALYTICS = "analytics"
    FURTHER_CONTACT = "further_contact"


class LegalBasis(StrEnum):
    """GDPR Art. 6 bases the policy uses."""

    CONTRACT = "contract"
    LEGITIMATE_INTEREST = "legitimate_interest"
    CONSENT = "consent"
