"""The personal details a rights command carries sealed (``RightsCommand.sealed``), and nothing else.

Kept apart from the command builders so the JSON Schemas (``pipeline.schemas``) can import them cheaply.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipeline.models.common import StrictModel

#: Person fields a rectification may change. The e-mail is the identity the subject key is made of: correcting it
#: is an erasure of the old identity plus a new collection, not a rectification.
RectifiableField = Literal[
    "first_name",
    "last_name",
    "position",
    "phone",
    "location",
    "country_code",
    "company",
    "company_address",
    "skype_id",
    "linkedin_url",
]
RECTIFIABLE_FIELDS: tuple[str, ...] = RectifiableField.__args__  # type: ignore[attr-defined]


class RectificationBody(StrictModel):
    """The corrected values (inside ``RightsCommand.sealed``); None clears a field that was wrong to keep at all."""

    changes: dict[RectifiableField, str | None] = Field(min_length=1)

    @field_validator("changes")
    @classmethod
    def _clean(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        return {k: (v.strip() or None) if isinstance(v, str) else None for k, v in value.items()}


class ExportDelivery(StrictModel):
    """How to hand an export over (inside ``RightsCommand.sealed``): the password of the access PDF."""

    password: str | None = Field(default=None, min_length=12, max_length=200)
