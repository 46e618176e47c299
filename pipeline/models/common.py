"""Vocabulary shared by every event: channels, purposes, legal bases, and the strict base model.

The words live here; which purpose rests on which basis, and for how long, lives in the policy data file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict
from pydantic_core import PydanticUndefined


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An aware datetime, normalised to UTC. Naive datetimes are rejected: a retention clock cannot guess a zone."""


class StrictModel(BaseModel):
    """Immutable, no unknown fields, no silent coercion of wrong types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=False)

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """An instance of values that this process produced and validated already, without validating them again.

        For the hot path only (the processing chain builds its tags from validated models and policy data; one
        validation costs about as much as the rest of a rule). What a validated instance holds, this holds: the
        fields in declared order, plain defaults for the ones not given, ``model_fields_set`` = the given names.
        Nothing but the names is checked, so the caller answers for the types (each call site has a unit test
        that compares it with the validated model). ``model_construct`` does the same in a generic loop over
        aliases and factories that costs more than validating.
        """
        names = tuple(values)
        recipe = _TRUSTED_RECIPES.get((cls, names))
        if recipe is None:
            recipe = _trusted_recipe(cls, names)
        data = {name: values[name] if value is _GIVEN else value for name, value in recipe} if recipe else values
        model = cls.__new__(cls)
        _set = object.__setattr__
        _set(model, "__dict__", data)
        _set(model, "__pydantic_fields_set__", set(names))
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model


_GIVEN: Any = object()
_TRUSTED_RECIPES: dict[tuple[type[BaseModel], tuple[str, ...]], tuple[tuple[str, Any], ...]] = {}


def _trusted_recipe(cls: type[BaseModel], names: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """How ``trusted`` fills a model from these given names: () when they are every field in declared order, else
    (field, _GIVEN or its plain default) in declared order. A missing field with no plain default is an error."""
    if cls.__pydantic_post_init__ or cls.__private_attributes__:
        raise TypeError(f"{cls.__name__}.trusted: a model with private attributes or post-init needs validation")
    fields = cls.model_fields
    unknown = sorted(set(names) - set(fields))
    if unknown:
        raise TypeError(f"{cls.__name__}.trusted: unknown field(s) {unknown}")
    recipe: list[tuple[str, Any]] = []
    for name, field in fields.items():
        if name in names:
            recipe.append((name, _GIVEN))
        elif field.default is PydanticUndefined:  # required, or a default factory (a fresh value per instance)
            raise TypeError(f"{cls.__name__}.trusted: {name} must be given")
        else:
            recipe.append((name, field.default))
    result = () if names == tuple(fields) else tuple(recipe)
    _TRUSTED_RECIPES[(cls, names)] = result
    return result


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
