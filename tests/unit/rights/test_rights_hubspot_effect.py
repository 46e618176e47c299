"""HubSpot's part of each request, against a recording stand-in for the gateway (the HTTP path is covered by the
end-to-end tests against the fake HubSpot): which calls, with which properties, and what evidence."""

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
from pipeline.rights.effects.base import Context, EffectError, Handover
from pipeline.rights.effects.hubspot import HubSpotEffect
from pipeline.sinks.hubspot.gateway import HubSpotRequestError, HubSpotUnavailable

SK = "sk_" + "h" * 40
EMAIL = "ada@example.com"


class Keys:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def active_key(self, scope: str) -> tuple[str, bytes]:
        return f"{scope}#1", self.keys.setdefault(f"{scope}#1", os.urandom(32))

    def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)


class Port:
    def __init__(self, contact: dict[str, Any] | None = None, fail: Exception | None = None) -> None:
        self.contact = contact
        self.fail = fail
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _called(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.fail is not None:
            raise self.fail

    def read_contact(self, email: str, properties: Sequence[str] = ()) -> dict[str, Any] | None:
        self._called("read", email, tuple(properties))
        return self.contact

    def update_contact(self, email: str, properties: Mapping[str, str]) -> dict[str, Any] | None:
        self._called("update", email, dict(properties))
        return None if self.contact is None else {"id": self.contact["id"], "properties": dict(properties)}

    def purge_contact(self, email: str) -> bool:
        self._called("purge", email)
        return self.contact is not None

    def unsubscribe(self, email: str, subscription_id: str, **kw: Any) -> dict[str, Any]:
        self._called("unsubscribe", email, subscription_id, kw.get("legal_basis"))
        return {"subscription_id": subscription_id, "status": "NOT_SUBSCRIBED"}

    def unsubscribe_all(self, emails: Sequence[str], channel: str = "EMAIL") -> dict[str, Any]:
        self._called("unsubscribe_all", tuple(emails), channel)
        return {"status": "COMPLETE", "results": [{"statuses": [{"status": "NOT_SUBSCRIBED"}]} for _ in emails]}


SEALER = Sealer(Keys())


def ctx(command: RightsCommand, emails: tuple[str, ...] = (EMAIL,)) -> Context:
    return Context(
        command=command,
        now=datetime.now(UTC),
        open_sealed=SEALER.open_model,
        handover=Handover(emails=emails),
    )


def cmd(kind: RightKind, **kw: Any) -> RightsCommand:
    return build_command(kind, SK, issued_by=person("dpo"), sealer=SEALER, **kw)


def test_erasure_is_the_gdpr_delete_with_the_contact_id_as_evidence() -> None:
    port = Port({"id": "501", "properties": {}})
    result = HubSpotEffect(port).apply(ctx(cmd(RightKind.ERASURE)))
    assert [c[0] for c in port.calls] == ["read", "purge"]
    assert result.status is SinkStatus.DONE
    assert result.evidence == {"operation": "gdpr-delete", "contacts": [{"contact_id": "501", "gdpr_deleted": True}]}
    assert EMAIL not in str(result.evidence)


def test_without_an_email_hubspot_has_nothing_to_do() -> None:
    port = Port()
    result = HubSpotEffect(port).apply(ctx(cmd(RightKind.ERASURE), emails=()))
    assert result.status is SinkStatus.NOT_APPLICABLE and port.calls == []


def test_objection_unsubscribes_everything_and_marks_the_contact() -> None:
    port = Port({"id": "7", "properties": {}})
    result = HubSpotEffect(port).apply(ctx(cmd(RightKind.OBJECTION)))
    assert port.calls[0] == ("unsubscribe_all", ((EMAIL,), "EMAIL"))
    assert port.calls[1] == ("update", (EMAIL, {"leadpipe_marketing_allowed": "false"}))
    assert result.evidence["unsubscribed"] == 1


def test_restriction_and_its_lifting_set_the_restriction_property() -> None:
    port = Port({"id": "7", "properties": {}})
    HubSpotEffect(port).apply(ctx(cmd(RightKind.RESTRICTION)))
    HubSpotEffect(port).apply(ctx(cmd(RightKind.UNRESTRICTION)))
    assert [c[1][1] for c in port.calls] == [
        {"leadpipe_processing_restricted": "true"},
        {"leadpipe_processing_restricted": "false"},
    ]


def test_rectification_maps_fields_to_hubspot_properties_and_clears_with_empty() -> None:
    port = Port({"id": "7", "properties": {}})
    command = cmd(RightKind.RECTIFICATION, rectify={"last_name": "Byron", "position": None, "location": "Oslo"})
    HubSpotEffect(port).apply(ctx(command))
    assert port.calls == [("update", (EMAIL, {"lastname": "Byron", "jobtitle": "", "leadpipe_location": "Oslo"}))]


def test_withdrawal_unsubscribes_consent_subscriptions_and_strips_consent_purposes() -> None:
    port = Port(
        {
            "id": "9",
            "properties": {
                "leadpipe_purposes": "contract_request;further_contact",
                "leadpipe_legal_basis": "contract_request=contract;further_contact=consent",
            },
        }
    )
    result = HubSpotEffect(port, consent_subscriptions=("1001",)).apply(ctx(cmd(RightKind.CONSENT_WITHDRAWAL)))
    assert port.calls[0] == ("unsubscribe", (EMAIL, "1001", "CONSENT_WITH_NOTICE"))
    assert port.calls[-1] == (
        "update",
        (EMAIL, {"leadpipe_purposes": "contract_request", "leadpipe_legal_basis": "contract_request=contract"}),
    )
    assert result.evidence["contacts"][0]["purposes_stopped"] == [Purpose.FURTHER_CONTACT.value]


def test_retention_expiry_touches_hubspot_only_when_the_subject_is_erased() -> None:
    port = Port({"id": "1", "properties": {}})
    command = cmd(RightKind.RETENTION_EXPIRY, event_ids=[uuid4()])
    assert HubSpotEffect(port).apply(ctx(command)).status is SinkStatus.NOT_APPLICABLE
    erase = Context(
        command=command,
        now=datetime.now(UTC),
        open_sealed=SEALER.open_model,
        handover=Handover(emails=(EMAIL,)),
        erase_subject=True,
    )
    assert HubSpotEffect(port).apply(erase).status is SinkStatus.DONE
    assert [c[0] for c in port.calls] == ["read", "purge"]


def test_hubspot_failures_become_effect_errors_with_status_and_correlation() -> None:
    refused = Port(fail=HubSpotRequestError(400, "VALIDATION_ERROR", "bad", "corr-1"))
    with pytest.raises(EffectError) as info:
        HubSpotEffect(refused).apply(ctx(cmd(RightKind.OBJECTION)))
    assert not info.value.retryable and info.value.evidence == {"status": 400, "correlation_id": "corr-1"}
    down = Port(fail=HubSpotUnavailable(3.0, "429 TEN_SECONDLY_ROLLING"))
    with pytest.raises(EffectError) as info:
        HubSpotEffect(down).apply(ctx(cmd(RightKind.ERASURE)))
    assert info.value.retryable


def test_withdrawal_without_configured_consent_subscriptions_stops_every_e_mail_subscription() -> None:
    """Not knowing which subscriptions rest on consent, keeping any could go on mailing the person (9.8)."""
    port = Port({"id": "9", "properties": {"leadpipe_legal_basis": "further_contact=consent"}})
    result = HubSpotEffect(port).apply(ctx(cmd(RightKind.CONSENT_WITHDRAWAL)))
    assert port.calls[0] == ("unsubscribe_all", ((EMAIL,), "EMAIL"))
    assert result.status is SinkStatus.DONE
    assert "LEADPIPE_RIGHTS_HUBSPOT_CONSENT_SUBSCRIPTIONS" in result.evidence["subscriptions_unsubscribed"][0]["reason"]
