"""Views of the CRM for sales (``leadpipe crm search|show``, ``GET /v1/crm/...``) and for the rights effects.

Plain pydantic models built from rows, so the CLI, the HTTP router and exports all show the same thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from pipeline.models.contact import PROFILE_FIELDS


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class PurposeView(_View):
    purpose: str
    legal_basis: str
    policy_section: str
    direct_marketing: bool
    stopped_at: datetime | None = None
    stopped_request_id: UUID | None = None


class InteractionView(_View):
    event_id: UUID
    channel: str
    kind: str
    occurred_at: datetime
    received_at: datetime
    source_id: str
    source_ref: str | None = None
    subject_line: str | None = None
    message: str | None = None
    transcript: list[dict[str, Any]] | None = None
    call_duration_s: float | None = None
    recording_ref: str | None = None
    page_url: str | None = None
    event_name: str | None = None
    event_date: datetime | None = None
    last_service_delivery_at: datetime | None = None
    ip: str | None = None
    user_agent: str | None = None
    device_id: str | None = None
    policy_version: str
    retention_clock: str
    retention_anchor_at: datetime
    retention_expires_at: datetime
    marketing_allowed: bool
    spam_score: float | None = None
    purposes: list[PurposeView] = Field(default_factory=list)


class IdentityView(_View):
    kind: str
    value: str
    first_event_id: UUID | None = None
    created_at: datetime


class ConsentView(_View):
    purpose: str
    granted: bool
    given_at: datetime
    method: str
    wording: str | None = None
    cause_event_id: UUID | None = None
    cause_request_id: UUID | None = None


class VisitorLinkView(_View):
    """A website visitor (its key: an HMAC of the cookie id) the person identified on, with the anonymous browsing
    attributed to them (``pipeline.crm.stitching``: the first person to identify on a device, until another did)."""

    visitor_key: str
    linked_at: datetime = Field(description="When the person first identified on the visitor's device")
    linked_by_event_id: UUID = Field(description="The event that did (a form, a chat, an identify)")
    attributed: bool = Field(description="The visitor's history is this person's (the first to identify on it)")
    shared_at: datetime | None = Field(
        default=None, description="When another person first identified on the device: what followed is nobody's"
    )
    interactions: list[InteractionView] = Field(
        default_factory=list, description="The visitor's anonymous events attributed to the person, oldest first"
    )


class PersonView(_View):
    """Who a row is about, as every sales view shows them (a search hit, a lead): key, name, how to reach them,
    company, status, and the one rule of what sales may see of a restricted subject (``for_sales``)."""

    subject_key: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    position: str | None = None
    status: Literal["active", "restricted", "erased"]
    marketing_objected: bool = False
    withheld: bool = Field(
        default=False,
        description="True for a restricted subject (policy 9.4): only its key and status are shown, the data is kept "
        "but not processed further, which includes being read by sales.",
    )

    #: What a restricted subject's view shows instead of its detail (its profile fields are left out too).
    _WITHHELD_DETAIL: ClassVar[dict[str, Any]] = {}

    def for_sales(self) -> Self:
        """The view as sales may see it: a restricted subject only as its key, counts and status (9.4)."""
        if self.status != "restricted":
            return self
        profile: dict[str, Any] = dict.fromkeys(name for name in PROFILE_FIELDS if name in type(self).model_fields)
        return self.model_copy(update={**profile, **self._WITHHELD_DETAIL, "withheld": True})


class SubjectSummary(PersonView):
    """One search hit: enough for sales to tell people apart."""

    last_seen_at: datetime | None = None
    interactions: int = 0


class SubjectView(SubjectSummary):
    """Everything sales may see about one subject: profile, identities, interactions with basis, consents, status."""

    _WITHHELD_DETAIL: ClassVar[dict[str, Any]] = {
        "identities": [],
        "interactions_detail": [],
        "consents": [],
        "consent_state": {},
        "website_history": [],
    }

    created_at: datetime
    updated_at: datetime
    first_seen_at: datetime | None = None
    location: str | None = None
    country_code: str | None = None
    company_address: str | None = None
    skype_id: str | None = None
    linkedin_url: str | None = None
    marketing_allowed: bool | None = None
    marketing_objected_at: datetime | None = None
    restricted: bool = False
    restricted_at: datetime | None = None
    erased_at: datetime | None = None
    erasure_request_id: UUID | None = None
    identities: list[IdentityView] = Field(default_factory=list)
    interactions_detail: list[InteractionView] = Field(default_factory=list)
    consents: list[ConsentView] = Field(default_factory=list)
    consent_state: dict[str, bool] = Field(
        default_factory=dict, description="purpose -> granted, from the newest consent choice of each purpose"
    )
    website_history: list[VisitorLinkView] = Field(
        default_factory=list,
        description="Website visitors (cookie ids) the person identified on, with the browsing attributed to them",
    )


class LeadQuery(_View):
    """The lead inbox's filters (every one optional; all given must match): who by name, e-mail, phone or company,
    which channel, and when the lead arrived (``received_from`` inclusive, ``received_before`` exclusive)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    channel: str | None = None
    received_from: datetime | None = None
    received_before: datetime | None = None
    marketing_at: datetime | None = Field(
        default=None,
        description="Only leads that may be contacted for marketing at this time: marketing allowed on the lead, "
        "its retention not expired, the person neither restricted, erased nor objecting to marketing",
    )
    limit: int = Field(default=100, ge=1, le=10_000)


class LeadView(PersonView):
    """One row of the lead inbox: an interaction with who it came from and what it may be used for (a restricted
    subject's lead shows its key, arrival and status only)."""

    _WITHHELD_DETAIL: ClassVar[dict[str, Any]] = {"purposes": [], "channel": "", "kind": ""}

    event_id: UUID
    channel: str
    kind: str
    received_at: datetime
    purposes: list[PurposeView] = Field(default_factory=list)
    marketing_allowed: bool
    retention_expires_at: datetime

    def marketing_stopped(self) -> bool:
        """A direct-marketing purpose of this lead was stopped (consent withdrawn)."""
        return any(p.direct_marketing and p.stopped_at is not None for p in self.purposes)
