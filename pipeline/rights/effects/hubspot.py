"""HubSpot's part of each request, through the sinks' gateway (the real client, or the dry run).

HubSpot keeps contacts by e-mail, so every effect works on the e-mails the CRM knew for the subject (captured
before an erasure as the request's handover). Erasure is the GDPR delete, never the 90-day-restorable archive;
an objection unsubscribes from every e-mail subscription (communication preferences v4) and marks the contact;
a restriction marks the contact ``leadpipe_processing_restricted`` (policy 9.5: recipients are told); a
withdrawal of consent unsubscribes the consent-based subscription types and removes the consent purposes from the
contact's purpose properties. Evidence holds HubSpot's contact ids and statuses, never an e-mail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pipeline.models.common import LegalBasis
from pipeline.models.rights import RightKind
from pipeline.rights.bodies import RectificationBody
from pipeline.rights.effects.base import Context, Effect, EffectError, EffectResult
from pipeline.sinks.hubspot.gateway import HubSpotRequestError, HubSpotUnavailable
from pipeline.sinks.hubspot.properties import CUSTOM_PROPERTIES, PERSON_PROPERTIES

RESTRICTED_PROPERTY = "leadpipe_processing_restricted"
#: Evidence of a withdrawal that stopped every e-mail subscription for want of the consent-based ones.
NO_CONSENT_TYPES = "no consent subscription types configured (LEADPIPE_RIGHTS_HUBSPOT_CONSENT_SUBSCRIPTIONS)"
MARKETING_PROPERTY = "leadpipe_marketing_allowed"
PURPOSES_PROPERTY = "leadpipe_purposes"
BASES_PROPERTY = "leadpipe_legal_basis"

#: Everything leadpipe writes on a contact: what an export reads back.
EXPORT_PROPERTIES: tuple[str, ...] = (
    "email",
    "firstname",
    "lastname",
    "phone",
    "jobtitle",
    "company",
    "country",
    "message",
    "createdate",
    "lastmodifieddate",
    *(p.name for p in CUSTOM_PROPERTIES),
)


class HubSpotRightsPort(Protocol):
    """The gateway methods the rights effects use (``HubSpotGateway`` and ``DryRunGateway`` both have them)."""

    def read_contact(self, email: str, properties: Sequence[str] = ()) -> dict[str, Any] | None: ...
    def update_contact(self, email: str, properties: Mapping[str, str]) -> dict[str, Any] | None: ...
    def purge_contact(self, email: str) -> bool: ...
    def unsubscribe(
        self, email: str, subscription_id: str, *, legal_basis: str | None = None, explanation: str | None = None
    ) -> dict[str, Any]: ...
    def unsubscribe_all(self, emails: Sequence[str], channel: str = "EMAIL") -> dict[str, Any]: ...


def _erased(found: dict[str, Any] | None, purged: bool) -> str:
    """What the GDPR delete did, in words: ``{"contact_id": null, "gdpr_deleted": false}`` beside ``done`` reads as
    if nothing was deleted, when there was nothing to delete."""
    if purged:
        return "GDPR-deleted"
    if found is None:
        return "no HubSpot contact existed: nothing to delete"
    return "the contact was gone when the delete came: nothing left to delete"


#: Evidence of an erasure without a HubSpot account (the dry run, ``pipeline/sinks/hubspot/dryrun.py``).
DRY_RUN_ERASED = "no HubSpot account (dry run): the requests naming the person were removed from the dry-run file"


class ExportReader:
    """The export's view of HubSpot: every property leadpipe writes, by e-mail. Failures are ``EffectError``s (an
    outage retryable, a refusal not), so an export never completes without the HubSpot part it could not read."""

    def __init__(self, gateway: HubSpotRightsPort) -> None:
        self.gateway = gateway

    def read_contact(self, email: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = _hubspot_call(self.gateway.read_contact, email, EXPORT_PROPERTIES)
        return found


def _hubspot_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a gateway call; turn its failures into EffectErrors with HubSpot's status and correlation id."""
    try:
        return fn(*args, **kwargs)
    except HubSpotUnavailable as exc:
        raise EffectError("hubspot_unavailable", exc.reason, retryable=True) from None
    except HubSpotRequestError as exc:
        raise EffectError(
            f"hubspot_{exc.status}",
            f"{exc.category}: {exc.message}",
            retryable=False,
            status=exc.status,
            correlation_id=exc.correlation_id,
        ) from None


class HubSpotEffect(Effect):
    sink = "hubspot"

    def __init__(self, gateway: HubSpotRightsPort, consent_subscriptions: Sequence[str] = ()) -> None:
        self.gateway = gateway
        self.consent_subscriptions = tuple(consent_subscriptions)

    def apply(self, ctx: Context) -> EffectResult:
        command = ctx.command
        kind = command.kind
        if kind is RightKind.RETENTION_EXPIRY and not ctx.erase_subject:
            return EffectResult.not_applicable("interactions_remain")  # HubSpot holds contact-level properties only
        if kind in (RightKind.ACCESS, RightKind.PORTABILITY):
            return EffectResult.not_applicable("read_by_the_export")
        emails = ctx.handover.emails
        if not emails:
            return EffectResult.not_applicable("no_email_known")  # HubSpot holds contacts by e-mail only
        if kind in (RightKind.ERASURE, RightKind.RETENTION_EXPIRY):
            return self._erase(emails)
        if kind is RightKind.OBJECTION:
            return self._object(emails)
        if kind in (RightKind.RESTRICTION, RightKind.UNRESTRICTION):
            flag = "true" if kind is RightKind.RESTRICTION else "false"
            return self._update(emails, {RESTRICTED_PROPERTY: flag})
        if kind is RightKind.RECTIFICATION:
            if command.sealed is None:
                raise EffectError("missing_values", "a rectification without sealed values", retryable=False)
            changes = ctx.open(command.sealed, RectificationBody).changes
            properties = {prop: changes[field] or "" for field, prop in PERSON_PROPERTIES if field in changes}
            if not properties:
                return EffectResult.not_applicable("no_hubspot_property_for_fields")
            return self._update(emails, properties)
        if kind is RightKind.CONSENT_WITHDRAWAL:
            return self._withdraw(emails, {p.value for p in command.purposes})
        return EffectResult.not_applicable(f"no_hubspot_effect_for_{kind.value}")

    def _erase(self, emails: Sequence[str]) -> EffectResult:
        contacts = []
        for email in emails:
            found = _hubspot_call(self.gateway.read_contact, email)
            purged = _hubspot_call(self.gateway.purge_contact, email)
            contacts.append(
                {"contact_id": found["id"] if found else None, "gdpr_deleted": purged, "result": _erased(found, purged)}
            )
        extra = {"dry_run": DRY_RUN_ERASED} if getattr(self.gateway, "dry_run", False) else {}
        return EffectResult.done(operation="gdpr-delete", contacts=contacts, **extra)

    def _object(self, emails: Sequence[str]) -> EffectResult:
        answer = _hubspot_call(self.gateway.unsubscribe_all, list(emails), "EMAIL")
        unsubscribed = sum(
            1
            for result in answer.get("results") or []
            if all(s.get("status") == "NOT_SUBSCRIBED" for s in result.get("statuses") or [])
        )
        marked = self._update(emails, {MARKETING_PROPERTY: "false"})
        return EffectResult.done(
            operation="unsubscribe-all",
            batch_status=answer.get("status"),
            unsubscribed=unsubscribed,
            contacts=marked.evidence.get("contacts", []),
        )

    def _update(self, emails: Sequence[str], properties: Mapping[str, str]) -> EffectResult:
        contacts = []
        for email in emails:
            updated = _hubspot_call(self.gateway.update_contact, email, properties)
            contacts.append({"contact_id": updated["id"] if updated else None, "updated": updated is not None})
        return EffectResult.done(properties=sorted(properties), contacts=contacts)

    def _withdraw(self, emails: Sequence[str], purposes: set[str]) -> EffectResult:
        unsubscribed: list[dict[str, Any]] = []
        if not self.consent_subscriptions:
            # Which e-mail subscriptions rest on consent is not configured: keeping any of them could go on
            # mailing the person against the withdrawal (9.8), so every e-mail subscription stops, as on objection.
            answer = _hubspot_call(self.gateway.unsubscribe_all, list(emails), "EMAIL")
            unsubscribed.append(
                {"operation": "unsubscribe-all", "batch_status": answer.get("status"), "reason": NO_CONSENT_TYPES}
            )
        for email in emails:
            for subscription in self.consent_subscriptions:
                answer = _hubspot_call(
                    self.gateway.unsubscribe,
                    email,
                    subscription,
                    legal_basis="CONSENT_WITH_NOTICE",
                    explanation="Consent withdrawn (leadpipe rights request)",
                )
                unsubscribed.append(answer)
        contacts: list[dict[str, Any]] = []
        for email in emails:
            found = _hubspot_call(self.gateway.read_contact, email, (PURPOSES_PROPERTY, BASES_PROPERTY))
            if found is None:
                contacts.append({"contact_id": None, "updated": False})
                continue
            props = found.get("properties") or {}
            pairs = [p.split("=", 1) for p in str(props.get(BASES_PROPERTY) or "").split(";") if "=" in p]
            stop = {
                purpose
                for purpose, basis in pairs
                if basis == LegalBasis.CONSENT and (not purposes or purpose in purposes)
            }
            if not stop:
                contacts.append({"contact_id": found["id"], "updated": False})
                continue
            kept_purposes = [p for p in str(props.get(PURPOSES_PROPERTY) or "").split(";") if p and p not in stop]
            kept_bases = [f"{p}={b}" for p, b in pairs if p not in stop]
            update = {PURPOSES_PROPERTY: ";".join(kept_purposes), BASES_PROPERTY: ";".join(kept_bases)}
            _hubspot_call(self.gateway.update_contact, email, update)
            contacts.append({"contact_id": found["id"], "updated": True, "purposes_stopped": sorted(stop)})
        return EffectResult.done(subscriptions_unsubscribed=unsubscribed, contacts=contacts)
