"""What sales may see: a restricted subject (policy 9.4) only as its key, counts and status, in every view of a
person (a search hit, a subject, a lead: one rule, ``PersonView.for_sales``)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from pipeline.crm.views import IdentityView, LeadView, PersonView, PurposeView, SubjectSummary, SubjectView
from pipeline.models.contact import PROFILE_FIELDS

AT = datetime(2025, 3, 1, tzinfo=UTC)
PROFILE = {name: f"value of {name}" for name in PROFILE_FIELDS}


def _view(status: str) -> SubjectView:
    return SubjectView.model_validate(
        {
            **PROFILE,
            "subject_key": "sk_" + "v" * 40,
            "status": status,
            "interactions": 3,
            "created_at": AT,
            "updated_at": AT,
            "restricted": status == "restricted",
            "identities": [IdentityView(kind="email", value="a@example.com", created_at=AT)],
            "consent_state": {"further_contact": True},
        }
    )


def test_a_restricted_subject_is_shown_without_any_profile_field_or_detail() -> None:
    shown = _view("restricted").for_sales()
    assert shown.withheld
    assert {name: getattr(shown, name) for name in PROFILE_FIELDS} == dict.fromkeys(PROFILE_FIELDS)
    assert (shown.identities, shown.interactions_detail, shown.consents, shown.consent_state) == ([], [], [], {})
    assert (shown.subject_key, shown.status, shown.interactions) == ("sk_" + "v" * 40, "restricted", 3)


def test_a_restricted_search_hit_is_withheld_too() -> None:
    hit = SubjectSummary.model_validate({**PROFILE, "subject_key": "sk_x", "status": "restricted"}).for_sales()
    assert hit.withheld and hit.email is None and hit.first_name is None and hit.company is None


def test_an_active_subject_is_shown_whole() -> None:
    view = _view("active")
    assert view.for_sales() is view and view.email == PROFILE["email"]


def test_a_restricted_subject_s_lead_is_withheld_by_the_same_rule() -> None:
    purpose = PurposeView(purpose="further_contact", legal_basis="consent", policy_section="3.3", direct_marketing=True)
    lead = LeadView.model_validate(
        {
            **PROFILE,
            "subject_key": "sk_l",
            "status": "restricted",
            "event_id": uuid4(),
            "channel": "web_form",
            "kind": "form",
            "received_at": AT,
            "purposes": [purpose],
            "marketing_allowed": True,
            "retention_expires_at": AT,
        }
    )
    shown = lead.for_sales()
    assert shown.withheld and (shown.purposes, shown.channel, shown.kind) == ([], "", "")
    assert (shown.subject_key, shown.received_at, shown.status) == ("sk_l", AT, "restricted")
    # every person field sales see of a lead is the person view's, withheld alike
    person_fields = set(PersonView.model_fields)
    assert person_fields <= set(LeadView.model_fields) and person_fields <= set(SubjectSummary.model_fields)
    assert {n: getattr(shown, n) for n in PROFILE_FIELDS if n in person_fields} == dict.fromkeys(
        n for n in PROFILE_FIELDS if n in person_fields
    )
    assert lead.model_copy(update={"status": "active"}).for_sales().email == PROFILE["email"]
