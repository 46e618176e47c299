"""HubSpot's part of each request, against a recording stand-in for the gateway (the HTTP path is covered by the
integration tests against the fake HubSpot): how the person's contacts are found (HubSpot-only ones too), which
calls are made on them by id, and what evidence is left."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from identity_helpers import person

from pipeline.crypto.sealing import Sealer
from pipeline.models.common import Purpose
from pipeline.models.rights import RightKind, RightsCommand, SinkStatus
from pipeline.rights.commands import build_command
from pipeline.rights.effects.base import Context, EffectError, EffectResult, Handover
from pipeline.rights.effects.hubspot import NOT_FOUND, HubSpotEffect
from pipeline.sinks.hubspot.gateway import HubSpotRequestError, HubSpotUnavailable

SK = "sk_" + "h" * 40
NEW_SK = "sk_" + "n" * 40
EMAIL = "ada@example.com"
PHONE = "+442079460958"
DIRECT_MARKETING = {"information_of_interest", "further_contact"}


class Keys:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def active_key(self, scope: str) -> tuple[str, bytes]:
        return f"{scope}#1", self.keys.setdefault(f"{scope}#1", os.urandom(32))

    def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)


class Port:
    """Contacts by id, found by e-mail or by search as HubSpot would; every call recorded."""

    def __init__(self, *contacts: dict[str, Any], fail: Exception | None = None) -> None:
        self.contacts = {c["id"]: {"id": c["id"], "properties": dict(c["properties"])} for c in contacts}
        self.fail = fail
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _called(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.fail is not None:
            raise self.fail

    def _by_email(self, email: str) -> dict[str, Any] | None:
        return next((c for c in self.contacts.values() if c["properties"].get("email") == email.lower()), None)

    def read_contact(self, identifier: str, properties: Sequence[str] = (), *, by_id: bool = False) -> Any:
        self._called("read", identifier)
        return self.contacts.get(identifier) if by_id else self._by_email(identifier)

    def search_contacts(
        self, *, emails: Sequence[str] = (), phones: Sequence[str] = (), properties: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        self._called("search", tuple(emails), tuple(phones))
        return [
            c
            for c in self.contacts.values()
            if c["properties"].get("email") in emails
            or any(e in str(c["properties"].get("hs_additional_emails") or "").split(";") for e in emails)
            or c["properties"].get("phone") in phones
        ]

    def update_contact(self, identifier: str, properties: Mapping[str, str], *, by_id: bool = False) -> Any:
        self._called("update", identifier, dict(properties))
        found = self.contacts.get(identifier) if by_id else self._by_email(identifier)
        if found is not None:
            found["properties"].update(properties)
        return found

    def purge_contact(self, identifier: str, *, by_id: bool = False) -> bool:
        self._called("purge", identifier)
        return self.contacts.pop(identifier, None) is not None

    def unsubscribe(self, email: str, subscription_id: str, **kw: Any) -> dict[str, Any]:
        self._called("unsubscribe", email, subscription_id, kw.get("legal_basis"))
        return {"subscription_id": subscription_id, "status": "NOT_SUBSCRIBED"}

    def unsubscribe_all(self, emails: Sequence[str], channel: str = "EMAIL") -> dict[str, Any]:
        self._called("unsubscribe_all", tuple(emails), channel)
        return {"status": "COMPLETE", "results": [{"statuses": [{"status": "NOT_SUBSCRIBED"}]} for _ in emails]}

    def acted(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The calls that changed something (not the look-ups)."""
        return [c for c in self.calls if c[0] not in ("read", "search")]


SEALER = Sealer(Keys())
ADA = {"id": "501", "properties": {"email": EMAIL, "leadpipe_purposes": "contract_request;information_of_interest"}}


def ctx(
    command: RightsCommand,
    emails: tuple[str, ...] = (EMAIL,),
    phones: tuple[str, ...] = (),
    evidence: Mapping[str, Mapping[str, Any]] | None = None,
) -> Context:
    return Context(
        command=command,
        now=datetime.now(UTC),
        open_sealed=SEALER.open_model,
        handover=Handover(emails=emails, phones=phones),
        evidence=evidence or {},
    )


def cmd(kind: RightKind, **kw: Any) -> RightsCommand:
    return build_command(kind, SK, issued_by=person("dpo"), sealer=SEALER, **kw)


def effect(port: Port, **kw: Any) -> HubSpotEffect:
    return HubSpotEffect(port, direct_marketing=DIRECT_MARKETING, **kw)


def test_erasure_is_the_gdpr_delete_by_id_and_says_deleted() -> None:
    port = Port(ADA)
    result = effect(port).apply(ctx(cmd(RightKind.ERASURE)))
    assert port.acted() == [("purge", ("501",))]
    assert result.status is SinkStatus.DONE
    assert result.evidence["outcome"] == "deleted"
    assert result.evidence["contacts"] == [{"contact_id": "501", "found_by": ["email"], "result": "deleted"}]
    assert EMAIL not in str(result.evidence)


def test_erasure_of_someone_hubspot_does_not_hold_says_not_found_after_asking() -> None:
    port = Port()
    result = effect(port).apply(ctx(cmd(RightKind.ERASURE)))
    assert [c[0] for c in port.calls] == ["read", "search"] and port.acted() == []
    assert result.status is SinkStatus.DONE and result.evidence["outcome"] == NOT_FOUND


def test_a_contact_only_hubspot_holds_is_found_by_phone_and_erased() -> None:
    """Issue 19: the DPO names the person by phone; HubSpot holds them (created by a sales rep) without an e-mail."""
    rep_made = {"id": "777", "properties": {"phone": PHONE, "email": None}}
    port = Port(rep_made)
    result = effect(port).apply(ctx(cmd(RightKind.ERASURE), emails=(), phones=(PHONE,)))
    assert port.acted() == [("purge", ("777",))] and result.evidence["outcome"] == "deleted"
    assert result.evidence["contacts"][0]["found_by"] == ["phone"]


def test_a_phone_match_holding_somebody_else_s_address_is_left_alone_and_reported() -> None:
    """A shared switchboard number must not erase a colleague: phone-only matches with another e-mail are skipped."""
    colleague = {"id": "42", "properties": {"phone": PHONE, "email": "colleague@example.com"}}
    port = Port(ADA, colleague)
    result = effect(port).apply(ctx(cmd(RightKind.ERASURE), phones=(PHONE,)))
    assert port.acted() == [("purge", ("501",))]
    assert [s["contact_id"] for s in result.evidence["skipped"]] == ["42"]
    assert "42" in port.contacts


def test_without_any_identity_hubspot_has_nothing_to_look_up() -> None:
    port = Port()
    result = effect(port).apply(ctx(cmd(RightKind.ERASURE), emails=()))
    assert result.status is SinkStatus.NOT_APPLICABLE and port.calls == []


def test_objection_unsubscribes_everything_and_clears_the_marketing_flag() -> None:
    port = Port(ADA)
    result = effect(port).apply(ctx(cmd(RightKind.OBJECTION)))
    assert port.acted() == [
        ("unsubscribe_all", ((EMAIL,), "EMAIL")),
        ("update", ("501", {"leadpipe_marketing_allowed": "false"})),
    ]
    assert result.evidence["unsubscribed"] == 1 and result.evidence["outcome"] == "updated"


def test_restriction_clears_marketing_and_its_lifting_restores_it_by_the_one_rule() -> None:
    port = Port(ADA)
    effect(port).apply(ctx(cmd(RightKind.RESTRICTION)))
    assert port.contacts["501"]["properties"]["leadpipe_processing_restricted"] == "true"
    assert port.contacts["501"]["properties"]["leadpipe_marketing_allowed"] == "false"
    effect(port).apply(ctx(cmd(RightKind.UNRESTRICTION)))
    assert port.contacts["501"]["properties"]["leadpipe_processing_restricted"] == "false"
    assert port.contacts["501"]["properties"]["leadpipe_marketing_allowed"] == "true"  # information_of_interest
    objected = {"suppression": {"marketing_objected": True, "restricted": False, "consent_withdrawn": []}}
    effect(port).apply(ctx(cmd(RightKind.UNRESTRICTION), evidence=objected))
    assert port.contacts["501"]["properties"]["leadpipe_marketing_allowed"] == "false"  # the objection stands


def test_the_crm_s_answer_wins_when_the_crm_knows_the_person() -> None:
    """One meaning everywhere: HubSpot's flag is the CRM's when the CRM restated it."""
    port = Port(ADA)
    effect(port).apply(ctx(cmd(RightKind.UNRESTRICTION), evidence={"crm": {"marketing_allowed": False}}))
    assert port.contacts["501"]["properties"]["leadpipe_marketing_allowed"] == "false"


def test_rectification_maps_fields_to_hubspot_properties_and_clears_with_empty() -> None:
    port = Port(ADA)
    command = cmd(RightKind.RECTIFICATION, rectify={"last_name": "Byron", "position": None, "location": "Oslo"})
    effect(port).apply(ctx(command))
    assert port.acted() == [("update", ("501", {"lastname": "Byron", "jobtitle": "", "leadpipe_location": "Oslo"}))]


def rekey(old_address: str = "forget") -> RightsCommand:
    return cmd(
        RightKind.RECTIFICATION,
        rectify={"email": "ada@new.example", "last_name": "King"},
        new_subject_key=NEW_SK,
        old_address=old_address,  # type: ignore[arg-type]
    )


def test_a_corrected_address_changes_the_contact_s_email_by_id() -> None:
    port = Port({"id": "501", "properties": {"email": EMAIL, "hs_additional_emails": EMAIL}})
    result = effect(port).apply(ctx(rekey()))
    [(name, (contact_id, properties))] = port.acted()
    assert (name, contact_id) == ("update", "501")
    assert properties == {"email": "ada@new.example", "lastname": "King", "leadpipe_subject_key": NEW_SK}
    assert result.evidence["outcome"] == "email corrected" and result.evidence["new_subject_key"] == NEW_SK
    assert result.evidence["old_address_in_additional_emails"] is True  # for a person in HubSpot to remove
    assert "ada@" not in str(result.evidence)
    again = effect(port).apply(ctx(rekey()))  # a retry after the change: the contact is under the new address
    assert again.evidence["outcome"] == "already under the corrected address"


def test_two_contacts_for_one_person_are_left_for_a_person_to_merge() -> None:
    port = Port(ADA, {"id": "600", "properties": {"email": "ada@new.example"}})
    with pytest.raises(EffectError) as refused:
        effect(port).apply(ctx(rekey()))
    assert refused.value.code == "hubspot_two_contacts" and not refused.value.retryable
    assert refused.value.evidence["contact_ids"] == ["501", "600"] and port.acted() == []


def test_withdrawal_unsubscribes_consent_subscriptions_and_strips_consent_purposes() -> None:
    port = Port(
        {
            "id": "9",
            "properties": {
                "email": EMAIL,
                "leadpipe_purposes": "contract_request;further_contact",
                "leadpipe_legal_basis": "contract_request=contract;further_contact=consent",
            },
        }
    )
    result = effect(port, consent_subscriptions=("1001",)).apply(ctx(cmd(RightKind.CONSENT_WITHDRAWAL)))
    assert port.acted() == [
        ("unsubscribe", (EMAIL, "1001", "CONSENT_WITH_NOTICE")),
        (
            "update",
            (
                "9",
                {
                    "leadpipe_purposes": "contract_request",
                    "leadpipe_legal_basis": "contract_request=contract",
                    "leadpipe_marketing_allowed": "false",  # marketing rested on the withdrawn consent only
                },
            ),
        ),
    ]
    assert result.evidence["contacts"][0]["purposes_stopped"] == [Purpose.FURTHER_CONTACT.value]


def test_retention_expiry_touches_hubspot_only_when_the_subject_is_erased() -> None:
    port = Port(ADA)
    command = cmd(RightKind.RETENTION_EXPIRY, event_ids=[uuid4()])
    assert effect(port).apply(ctx(command)).status is SinkStatus.NOT_APPLICABLE
    erase = ctx(command).after("crm", EffectResult.done(remaining_interactions=0))  # nothing left in the CRM
    assert erase.erase_subject
    assert effect(port).apply(erase).status is SinkStatus.DONE
    assert port.acted() == [("purge", ("501",))]


def test_hubspot_failures_become_effect_errors_with_status_and_correlation() -> None:
    refused = Port(fail=HubSpotRequestError(400, "VALIDATION_ERROR", "bad", "corr-1"))
    with pytest.raises(EffectError) as info:
        effect(refused).apply(ctx(cmd(RightKind.OBJECTION)))
    assert not info.value.retryable and info.value.evidence == {"status": 400, "correlation_id": "corr-1"}
    down = Port(fail=HubSpotUnavailable(3.0, "429 TEN_SECONDLY_ROLLING"))
    with pytest.raises(EffectError) as info:
        effect(down).apply(ctx(cmd(RightKind.ERASURE)))
    assert info.value.retryable


def test_withdrawal_without_configured_consent_subscriptions_stops_every_e_mail_subscription() -> None:
    """Not knowing which subscriptions rest on consent, keeping any could go on mailing the person (9.8)."""
    port = Port({"id": "9", "properties": {"email": EMAIL, "leadpipe_legal_basis": "further_contact=consent"}})
    result = effect(port).apply(ctx(cmd(RightKind.CONSENT_WITHDRAWAL)))
    assert port.acted()[0] == ("unsubscribe_all", ((EMAIL,), "EMAIL"))
    assert result.status is SinkStatus.DONE
    assert "LEADPIPE_RIGHTS_HUBSPOT_CONSENT_SUBSCRIPTIONS" in result.evidence["subscriptions_unsubscribed"][0]["reason"]


def test_an_export_holds_what_hubspot_holds_of_the_person_not_only_what_leadpipe_wrote() -> None:
    """9.1 asks for a copy of all personal data held: the additional address HubSpot keeps after a merge, a mobile
    number and an address a sales rep typed were found by (or sat beside) the look-up, and left out of the copy."""
    from pipeline.rights.effects.hubspot import ExportReader

    merged = {
        "id": "777",
        "properties": {
            "email": EMAIL,
            "hs_additional_emails": "ada.work@example.org",
            "mobilephone": "+447700900123",
            "city": "Leeds",
            "address": "1 Park Row",
            "zip": "LS1 5HN",
            "leadpipe_subject_key": SK,
            "hs_analytics_num_visits": "3",  # HubSpot's own counters are not what the person gave or is
        },
    }
    [contact] = ExportReader(Port(merged)).contacts(SK, Handover(emails=(EMAIL,)))
    assert contact["id"] == "777"
    held = contact["properties"]
    assert held["hs_additional_emails"] == "ada.work@example.org" and held["mobilephone"] == "+447700900123"
    assert (held["city"], held["address"], held["zip"]) == ("Leeds", "1 Park Row", "LS1 5HN")
    assert held["email"] == EMAIL and held["leadpipe_subject_key"] == SK
    assert "hs_analytics_num_visits" not in held
