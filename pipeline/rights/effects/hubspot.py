"""HubSpot's part of each request, through the sinks' gateway (the real client, or the dry run).

Who the person is in HubSpot: every contact found by the e-mails the CRM held and the e-mail or phone the DPO gave
(``HubSpotLookup``): a read by e-mail (consistent: it sees a contact created a moment ago), then one search by every
e-mail (also as an additional e-mail) and phone. So a contact that exists only in HubSpot (a HubSpot form, an import
in HubSpot, a sales rep) is reached too. A contact found by phone alone is acted on only when it holds no other
e-mail address or carries this subject's key (a shared switchboard number must not erase a colleague); the others
are listed in the evidence as ``skipped`` for the DPO to look at.

Then, by contact id: erasure is the GDPR delete, never the 90-day-restorable archive; an objection unsubscribes
every e-mail subscription (communication preferences v4) and clears ``leadpipe_marketing_allowed``; a restriction
marks ``leadpipe_processing_restricted`` (policy 9.5: recipients are told) and clears the marketing flag; a
withdrawal of consent unsubscribes the consent-based subscription types and removes the consent purposes; a
rectification updates the mapped properties, and a corrected e-mail address changes the contact's ``email``
(``leadpipe_subject_key`` follows). ``leadpipe_marketing_allowed`` is always the one rule's answer
(``pipeline.models.marketing``): the CRM's when the CRM knows the person, else from the contact's own purposes.
Evidence holds HubSpot's contact ids and what was done, and says "deleted" or "not found in HubSpot"; never an
e-mail or phone.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.models.common import LegalBasis
from pipeline.models.marketing import MarketingState, may_market
from pipeline.models.rights import RightKind, RightsCommand
from pipeline.rights.bodies import RectificationBody
from pipeline.rights.effects.base import Context, Effect, EffectError, EffectResult, Handover
from pipeline.rights.effects.suppression import SuppressionPublisher
from pipeline.rights.plan import rekeys
from pipeline.sinks.hubspot.dryrun import DryRunGateway
from pipeline.sinks.hubspot.gateway import HubSpotRequestError, HubSpotUnavailable
from pipeline.sinks.hubspot.properties import CUSTOM_PROPERTIES, PERSON_PROPERTIES

RESTRICTED_PROPERTY = "leadpipe_processing_restricted"
#: Evidence of a withdrawal that stopped every e-mail subscription for want of the consent-based ones.
NO_CONSENT_TYPES = "no consent subscription types configured (LEADPIPE_RIGHTS_HUBSPOT_CONSENT_SUBSCRIPTIONS)"
MARKETING_PROPERTY = "leadpipe_marketing_allowed"
PURPOSES_PROPERTY = "leadpipe_purposes"
BASES_PROPERTY = "leadpipe_legal_basis"
SUBJECT_KEY_PROPERTY = "leadpipe_subject_key"
ADDITIONAL_EMAILS = "hs_additional_emails"
#: What the evidence says when HubSpot holds nobody by the identities looked up.
NOT_FOUND = "not found in HubSpot"

#: What the lookup reads of each contact: enough to tell whose it is and to restate its marketing flag.
LOOKUP_PROPERTIES: tuple[str, ...] = (
    "email",
    ADDITIONAL_EMAILS,
    "phone",
    "mobilephone",
    SUBJECT_KEY_PROPERTY,
    PURPOSES_PROPERTY,
    BASES_PROPERTY,
)

#: HubSpot's own contact properties that hold what a person is or gave, beyond those leadpipe writes: what a sales rep
#: types, what a form of HubSpot's own collects, and the addresses a merge of two contacts keeps
#: (``hs_additional_emails``). Policy 9.1 asks for a copy of all personal data held; the look-up already finds the
#: person by some of these. HubSpot's computed counters (visits, scores) are not the person's data and stay out.
HUBSPOT_PERSON_PROPERTIES: tuple[str, ...] = (
    ADDITIONAL_EMAILS,
    "work_email",
    "mobilephone",
    "fax",
    "salutation",
    "date_of_birth",
    "address",
    "city",
    "state",
    "zip",
    "website",
    "twitterhandle",
)

#: What an export reads back: everything leadpipe writes on a contact, and HubSpot's properties of the person.
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
    *HUBSPOT_PERSON_PROPERTIES,
    *(p.name for p in CUSTOM_PROPERTIES),
)


class HubSpotRightsPort(Protocol):
    """The gateway methods the rights effects use (``HubSpotGateway`` and ``DryRunGateway`` both have them)."""

    def read_contact(
        self, identifier: str, properties: Sequence[str] = (), *, by_id: bool = False
    ) -> dict[str, Any] | None: ...
    def search_contacts(
        self, *, emails: Sequence[str] = (), phones: Sequence[str] = (), properties: Sequence[str] = ()
    ) -> list[dict[str, Any]]: ...
    def update_contact(
        self, identifier: str, properties: Mapping[str, str], *, by_id: bool = False
    ) -> dict[str, Any] | None: ...
    def purge_contact(self, identifier: str, *, by_id: bool = False) -> bool: ...
    def unsubscribe(
        self, email: str, subscription_id: str, *, legal_basis: str | None = None, explanation: str | None = None
    ) -> dict[str, Any]: ...
    def unsubscribe_all(self, emails: Sequence[str], channel: str = "EMAIL") -> dict[str, Any]: ...


#: Evidence of an erasure without a HubSpot account (the dry run, ``pipeline/sinks/hubspot/dryrun.py``).
DRY_RUN_ERASED = "no HubSpot account (dry run): the requests naming the person were removed from the dry-run file"


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


@dataclass
class Found:
    """One HubSpot contact of the person, and by what it was found (``email``, ``phone``)."""

    contact_id: str
    properties: dict[str, Any]
    found_by: set[str] = field(default_factory=set)

    @property
    def emails(self) -> set[str]:
        """Its e-mail and additional e-mails, lowercased."""
        primary = str(self.properties.get("email") or "").lower()
        extra = str(self.properties.get(ADDITIONAL_EMAILS) or "").lower().replace(",", ";").split(";")
        return {e.strip() for e in (primary, *extra) if e.strip()}

    def evidence(self, **result: Any) -> dict[str, Any]:
        return {"contact_id": self.contact_id, "found_by": sorted(self.found_by), **result}


@dataclass
class Lookup:
    """The person's contacts (``contacts``) and those found by phone alone that seem to be somebody else's."""

    contacts: list[Found]
    skipped: list[Found]
    searched: dict[str, int]

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lookup": {**self.searched, "found": len(self.contacts)}}
        if self.skipped:
            out["skipped"] = [
                f.evidence(reason="found by phone only; holds another e-mail address and another subject's key")
                for f in self.skipped
            ]
        return out


class HubSpotLookup:
    """Finds the person's contacts by every identity known for them (``Handover``)."""

    def __init__(self, gateway: HubSpotRightsPort) -> None:
        self.gateway = gateway

    def find(
        self,
        subject_key: str,
        handover: Handover,
        *,
        phones: bool = True,
        properties: Sequence[str] = LOOKUP_PROPERTIES,
    ) -> Lookup:
        emails = tuple(dict.fromkeys(e.lower() for e in handover.emails))
        numbers = tuple(dict.fromkeys(handover.phones)) if phones else ()
        wanted = tuple(dict.fromkeys((*LOOKUP_PROPERTIES, *properties)))
        found: dict[str, Found] = {}
        for email in emails:  # consistent reads first: a search may not see a contact created a moment ago
            contact = _hubspot_call(self.gateway.read_contact, email, wanted)
            if contact is not None:
                found.setdefault(contact["id"], Found(contact["id"], contact["properties"])).found_by.add("email")
        if emails or numbers:
            for contact in _hubspot_call(
                self.gateway.search_contacts, emails=emails, phones=numbers, properties=wanted
            ):
                entry = found.setdefault(contact["id"], Found(contact["id"], contact["properties"]))
                if entry.emails & set(emails):
                    entry.found_by.add("email")
                props = entry.properties
                if {str(props.get("phone") or ""), str(props.get("mobilephone") or "")} & set(numbers):
                    entry.found_by.add("phone")
        mine: list[Found] = []
        skipped: list[Found] = []
        for entry in found.values():
            theirs = entry.emails and str(entry.properties.get(SUBJECT_KEY_PROPERTY) or "") != subject_key
            (skipped if "email" not in entry.found_by and theirs else mine).append(entry)
        return Lookup(mine, skipped, {"emails": len(emails), "phones": len(numbers)})


class ExportReader:
    """The export's view of HubSpot: every property leadpipe writes and HubSpot's properties of the person
    (``EXPORT_PROPERTIES``), of every contact of the person. Failures are ``EffectError``s (an outage retryable, a
    refusal not), so an export never completes without the HubSpot part it could not read."""

    def __init__(self, gateway: HubSpotRightsPort) -> None:
        self.lookup = HubSpotLookup(gateway)
        self.gateway = gateway

    def dry_run_requests(self, handover: Handover) -> list[dict[str, Any]] | None:
        """In dry-run mode (no HubSpot account) the requests the dry-run file holds about the person, which stand
        for what HubSpot would hold; None when HubSpot is real."""
        if not isinstance(self.gateway, DryRunGateway):
            return None
        return self.gateway.requests_naming(handover.emails)

    def contacts(self, subject_key: str, handover: Handover) -> list[dict[str, Any]]:
        found = self.lookup.find(subject_key, handover, properties=EXPORT_PROPERTIES).contacts
        return [
            {"id": f.contact_id, "properties": {k: v for k, v in f.properties.items() if k in EXPORT_PROPERTIES}}
            for f in found
        ]


@dataclass(frozen=True)
class _StoredPurpose:
    """A purpose as HubSpot's ``leadpipe_purposes`` lists it, with the policy's direct-marketing mark."""

    purpose: str
    direct_marketing: bool


def _rights(ctx: Context) -> MarketingState:
    """The person's rights after this request, from the suppression step's evidence (or the request itself)."""
    command, state = ctx.command, ctx.evidence.get(SuppressionPublisher.sink) or {}
    kind = command.kind
    return MarketingState(
        objected=bool(state.get("marketing_objected", kind is RightKind.OBJECTION)),
        restricted=bool(state.get("restricted", kind is RightKind.RESTRICTION)),
        withdrawn=frozenset(state.get("consent_withdrawn", [p.value for p in command.purposes])),
    )


class HubSpotEffect(Effect):
    sink = "hubspot"

    def __init__(
        self,
        gateway: HubSpotRightsPort,
        consent_subscriptions: Sequence[str] = (),
        direct_marketing: Collection[str] = (),
    ) -> None:
        self.gateway = gateway
        self.lookup = HubSpotLookup(gateway)
        self.consent_subscriptions = tuple(consent_subscriptions)
        self.direct_marketing = frozenset(direct_marketing)

    def apply(self, ctx: Context) -> EffectResult:
        command = ctx.command
        kind = command.kind
        if kind is RightKind.RETENTION_EXPIRY and not ctx.erase_subject:
            return EffectResult.not_applicable("interactions_remain")  # HubSpot holds contact-level properties only
        if kind in (RightKind.ACCESS, RightKind.PORTABILITY):
            return EffectResult.not_applicable("read_by_the_export")
        if not ctx.handover.emails and not ctx.handover.phones:
            return EffectResult.not_applicable("no_identity_to_look_up")
        if kind is RightKind.RECTIFICATION:
            if command.sealed is None:
                raise EffectError("missing_values", "a rectification without sealed values", retryable=False)
            body = ctx.open(command.sealed, RectificationBody)
            if rekeys(command):
                return self._move(ctx, body)
            return self._rectify(ctx, body)
        lookup = self.lookup.find(command.subject_key, ctx.handover)
        if kind in (RightKind.ERASURE, RightKind.RETENTION_EXPIRY):
            return self._erase(ctx, lookup)
        if kind is RightKind.OBJECTION:
            return self._object(ctx, lookup)
        if kind in (RightKind.RESTRICTION, RightKind.UNRESTRICTION):
            flag = "true" if kind is RightKind.RESTRICTION else "false"
            return self._mark(ctx, lookup, {RESTRICTED_PROPERTY: flag})
        if kind is RightKind.CONSENT_WITHDRAWAL:
            return self._withdraw(ctx, lookup, {p.value for p in command.purposes})
        if kind is RightKind.OBJECTION_LIFTED:  # the flag is restated; subscriptions wait for the person's opt-in
            return self._mark(ctx, lookup, {})
        return EffectResult.not_applicable(f"no_hubspot_effect_for_{kind.value}")

    # ---- the rights ------------------------------------------------------------------------------------------

    def _erase(self, ctx: Context, lookup: Lookup) -> EffectResult:
        contacts = []
        for found in lookup.contacts:
            deleted = _hubspot_call(self.gateway.purge_contact, found.contact_id, by_id=True)
            contacts.append(found.evidence(result="deleted" if deleted else "already gone"))
        outcome = "deleted" if any(c["result"] == "deleted" for c in contacts) else NOT_FOUND
        extra: dict[str, Any] = {}
        if getattr(self.gateway, "dry_run", False):  # no HubSpot: the dry-run file forgets the person's requests
            for email in ctx.handover.emails:
                _hubspot_call(self.gateway.purge_contact, email)
            extra["dry_run"] = DRY_RUN_ERASED
        return EffectResult.done(
            operation="gdpr-delete", outcome=outcome, contacts=contacts, **lookup.evidence(), **extra
        )

    def _object(self, ctx: Context, lookup: Lookup) -> EffectResult:
        emails = sorted({*ctx.handover.emails, *(e for f in lookup.contacts for e in f.emails)})
        answer = _hubspot_call(self.gateway.unsubscribe_all, emails, "EMAIL") if emails else {}
        unsubscribed = sum(
            1
            for result in answer.get("results") or []
            if all(s.get("status") == "NOT_SUBSCRIBED" for s in result.get("statuses") or [])
        )
        marked = self._mark(ctx, lookup, {})
        return EffectResult.done(
            operation="unsubscribe-all",
            batch_status=answer.get("status"),
            unsubscribed=unsubscribed,
            **marked.evidence,
        )

    def _marketing(self, ctx: Context, properties: Mapping[str, Any]) -> str:
        """``leadpipe_marketing_allowed`` after this request: the CRM's answer when it knows the person, else the
        one rule over the contact's own purposes."""
        crm = ctx.evidence.get("crm") or {}
        if crm.get("marketing_allowed") is not None:
            return "true" if crm["marketing_allowed"] else "false"
        purposes = [
            _StoredPurpose(p, p in self.direct_marketing)
            for p in str(properties.get(PURPOSES_PROPERTY) or "").split(";")
            if p
        ]
        return "true" if may_market(purposes, _rights(ctx)) else "false"

    def _mark(
        self, ctx: Context, lookup: Lookup, properties: Mapping[str, str], *, restate_marketing: bool = True
    ) -> EffectResult:
        """Set ``properties`` (and, ``restate_marketing``, the marketing flag) on each of the person's contacts."""
        contacts = []
        for found in lookup.contacts:
            update = dict(properties)
            if restate_marketing:
                update[MARKETING_PROPERTY] = self._marketing(ctx, found.properties)
            updated = _hubspot_call(self.gateway.update_contact, found.contact_id, update, by_id=True)
            contacts.append(found.evidence(result="updated" if updated is not None else "already gone"))
        return EffectResult.done(
            properties=sorted({*properties, *([MARKETING_PROPERTY] if restate_marketing else [])}),
            outcome="updated" if contacts else NOT_FOUND,
            contacts=contacts,
            **lookup.evidence(),
        )

    def _withdraw(self, ctx: Context, lookup: Lookup, purposes: set[str]) -> EffectResult:
        emails = sorted({*ctx.handover.emails, *(e for f in lookup.contacts for e in f.emails)})
        unsubscribed: list[dict[str, Any]] = []
        if not self.consent_subscriptions and emails:
            # Which e-mail subscriptions rest on consent is not configured: keeping any of them could go on
            # mailing the person against the withdrawal (9.8), so every e-mail subscription stops, as on objection.
            answer = _hubspot_call(self.gateway.unsubscribe_all, emails, "EMAIL")
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
        for found in lookup.contacts:
            props = found.properties
            pairs = [p.split("=", 1) for p in str(props.get(BASES_PROPERTY) or "").split(";") if "=" in p]
            stop = {
                purpose
                for purpose, basis in pairs
                if basis == LegalBasis.CONSENT and (not purposes or purpose in purposes)
            }
            kept_purposes = [p for p in str(props.get(PURPOSES_PROPERTY) or "").split(";") if p and p not in stop]
            update = {
                PURPOSES_PROPERTY: ";".join(kept_purposes),
                BASES_PROPERTY: ";".join(f"{p}={b}" for p, b in pairs if p not in stop),
            }
            update[MARKETING_PROPERTY] = self._marketing(ctx, update)
            _hubspot_call(self.gateway.update_contact, found.contact_id, update, by_id=True)
            contacts.append(found.evidence(result="updated", purposes_stopped=sorted(stop)))
        return EffectResult.done(
            subscriptions_unsubscribed=unsubscribed,
            outcome="updated" if contacts else NOT_FOUND,
            contacts=contacts,
            **lookup.evidence(),
        )

    def _rectify(self, ctx: Context, body: RectificationBody) -> EffectResult:
        changes = body.changes
        properties = {prop: changes[field] or "" for field, prop in PERSON_PROPERTIES if field in changes}
        if body.new_email:  # the same address, spelled differently: the contact keeps its key
            properties["email"] = body.new_email
        if not properties:
            return EffectResult.not_applicable("no_hubspot_property_for_fields")
        lookup = self.lookup.find(ctx.command.subject_key, ctx.handover, phones=False)
        return self._mark(ctx, lookup, properties, restate_marketing=False)

    def _move(self, ctx: Context, body: RectificationBody) -> EffectResult:
        """A corrected e-mail address: the contact's ``email`` changes (by id) and ``leadpipe_subject_key`` follows the
        person. Two contacts (one per address) are merged by a person in HubSpot first: merging keeps HubSpot's own
        history, which leadpipe cannot move. HubSpot keeps additional e-mails apart from the properties leadpipe
        writes: an old address found there is reported (``old_address_in_additional_emails``) for a person to remove.
        """
        command: RightsCommand = ctx.command
        new_email = body.new_email
        assert new_email is not None and command.new_subject_key is not None
        old = Handover(emails=tuple(e for e in ctx.handover.emails if e != new_email))
        lookup = self.lookup.find(command.subject_key, old, phones=False)
        target = _hubspot_call(self.gateway.read_contact, new_email, LOOKUP_PROPERTIES)
        others = [f for f in lookup.contacts if target is None or f.contact_id != target["id"]]
        if (target is not None and others) or len(others) > 1:
            ids = sorted({*(f.contact_id for f in others), *([target["id"]] if target else [])})
            raise EffectError(
                "hubspot_two_contacts",
                "HubSpot holds this person as more than one contact (the old and the corrected address): merge them "
                "in HubSpot, then the worker's retry finishes the correction",
                retryable=False,
                contact_ids=ids,
            )
        changes = body.changes
        properties = {prop: changes[f] or "" for f, prop in PERSON_PROPERTIES if f in changes}
        properties[SUBJECT_KEY_PROPERTY] = command.new_subject_key
        if others:
            contact = others[0]
            found_id, props, result = contact.contact_id, contact.properties, "email corrected"
            properties["email"] = new_email
        elif target is not None:
            found_id, props, result = target["id"], target["properties"], "already under the corrected address"
        else:
            return EffectResult.done(outcome=NOT_FOUND, new_subject_key=command.new_subject_key, **lookup.evidence())
        lingering = Found(found_id, {ADDITIONAL_EMAILS: props.get(ADDITIONAL_EMAILS)}).emails & set(old.emails)
        _hubspot_call(self.gateway.update_contact, found_id, properties, by_id=True)
        return EffectResult.done(
            outcome=result,
            contact_id=found_id,
            properties=sorted(properties),
            new_subject_key=command.new_subject_key,
            old_address_in_additional_emails=bool(lingering),
            **lookup.evidence(),
        )
