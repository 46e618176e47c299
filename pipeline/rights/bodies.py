"""The personal details a rights command carries sealed (``RightsCommand.sealed``), and nothing else.

Kept apart from the command builders so the JSON Schemas (``pipeline.schemas``) can import them cheaply.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipeline.models.common import StrictModel
from pipeline.models.contact import PROFILE_FIELDS, ProfileField

#: Person fields a rectification may change: the whole profile, the e-mail included (policy 9.2). The e-mail is the
#: identity the subject key is made of: correcting it moves the subject to the new address's key
#: (``RightsCommand.new_subject_key``, docs/rights.md "Correcting an e-mail address").
RECTIFIABLE_FIELDS: tuple[str, ...] = PROFILE_FIELDS
RectifiableField = ProfileField

#: What becomes of the corrected (old) address: ``forget`` it (a later contact from it is somebody new) or keep it as
#: an ``alias`` of the person (a later contact from it joins them, under the corrected address).
OldAddress = Literal["forget", "alias"]


class RectificationBody(StrictModel):
    """The corrected values (inside ``RightsCommand.sealed``); None clears a field that was wrong to keep at all."""

    changes: dict[RectifiableField, str | None] = Field(min_length=1)
    old_address: OldAddress | None = Field(
        default=None, description="With a corrected e-mail: forget the old address, or keep it as an alias"
    )

    @field_validator("changes")
    @classmethod
    def _clean(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        cleaned = {k: (v.strip() or None) if isinstance(v, str) else None for k, v in value.items()}
        if "email" in cleaned and cleaned["email"] is None:
            raise ValueError(
                "email: an e-mail address cannot be cleared, only corrected (to a new address); to remove the "
                "person's data, erase them"
            )
        return cleaned

    @property
    def new_email(self) -> str | None:
        return self.changes.get("email")


class RequestIdentity(StrictModel):
    """Who the DPO named (inside ``RightsCommand.identity``): the canonical e-mail or the E.164 phone.

    The CRM is keyed by the subject key alone; a remote sink may hold a contact the CRM never saw, so it is searched
    for exactly what the DPO gave."""

    email: str | None = None
    phone: str | None = None


class ExportDelivery(StrictModel):
    """How to hand an export over (inside ``RightsCommand.sealed``): the password of the access PDF."""

    password: str | None = Field(default=None, min_length=12, max_length=200)
