"""The personal details a rights command carries sealed (``RightsCommand.sealed``), and nothing else.

Kept apart from the command builders so the JSON Schemas (``pipeline.schemas``) can import them cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from pipeline.models.common import StrictModel
from pipeline.models.contact import PROFILE_FIELDS, ProfileField

#: Person fields a rectification may change: the profile but the e-mail. The e-mail is the identity the subject key
#: is made of: correcting it is an erasure of the old identity plus a new collection, not a rectification.
RECTIFIABLE_FIELDS: tuple[str, ...] = tuple(name for name in PROFILE_FIELDS if name != "email")
if TYPE_CHECKING:
    RectifiableField = ProfileField  # mypy cannot take a name out of a Literal; pydantic below gets the exact one
else:
    RectifiableField = Literal[RECTIFIABLE_FIELDS]


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
