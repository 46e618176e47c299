"""Building rights commands: who the subject is, what changes, when it is due, and what travels sealed.

The DPO's tools (CLI, HTTP API) and the retention sweep all build commands here and hand them to ``RightsDesk``,
which records each in the tracker before it publishes it, so a request can never be published and forgotten.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import ValidationError

from pipeline import tracing
from pipeline.crm.schema import subjects
from pipeline.crypto.sealing import Sealer, subject_scope
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Purpose, StrictModel
from pipeline.models.identity import Principal
from pipeline.models.rights import AuditRecord, RightKind, RightsCommand
from pipeline.normalize import (
    NormalizationError,
    canonical_email,
    canonical_phone,
    country_code,
    subject_key,
    visitor_key,
)
from pipeline.rights.bodies import (
    RECTIFIABLE_FIELDS,
    ExportDelivery,
    OldAddress,
    RectifiableField,
    RectificationBody,
    RequestIdentity,
)
from pipeline.rights.deadlines import due_at
from pipeline.rights.plan import plan_for
from pipeline.rights.tracker import RequestTracker
from pipeline.topics import AUDIT_TOPIC, RIGHTS_COMMANDS_TOPIC


class IdentityError(ValueError):
    """The DPO named no subject, or two, or an address that is not valid; ``field`` says which option."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ChangeError(ValueError):
    """A corrected value a rectification cannot store; ``field`` names the profile field (never the value)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RequestFieldError(ValueError):
    """A detail the request cannot take (a purpose given to an erasure, corrections to an objection): refused, never
    left out silently, for the DPO meant something by it; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AmbiguousSubject(ValueError):
    """Several CRM subjects hold the e-mail or phone the DPO named and none is keyed by it (a shared switchboard
    number): nothing is chosen for the DPO, who names the subject key (``candidates``) the request is for."""

    def __init__(self, kind: str, candidates: Sequence[str]) -> None:
        what = "e-mail address" if kind == "email" else "phone number"
        super().__init__(
            f"{kind}: {len(candidates)} subjects in the CRM hold this {what} and none is keyed by it "
            f"({', '.join(candidates)}); name the subject key this request is for"
        )
        self.field = kind
        self.candidates = tuple(candidates)


def region_of(region: str | None) -> str | None:
    """The country a national phone number is read in, as an ISO code ("DE", "Spain", "UK" -> GB); ``IdentityError``
    when it names no country (read apart from the number, so that a bad country is not reported as a bad number)."""
    if region is None or not region.strip():
        return None
    code = country_code(region)
    if code is None:
        raise IdentityError("region", "not a country (an ISO 3166 code such as DE, or a country's name)")
    return code


def named(*, email: str | None = None, phone: str | None = None, region: str | None = None) -> RequestIdentity:
    """Exactly one of e-mail or phone, canonical (as the chain stores them); ``IdentityError`` names the bad option.

    A field holding two addresses or two numbers is refused, never read as its first (as ingest does): two may be
    two people, and a right carried out for the wrong one cannot be undone."""
    if bool(email) == bool(phone):
        raise IdentityError("email", "name the person by exactly one e-mail address or one phone number")
    country = region_of(region)
    try:
        if email:
            return RequestIdentity(email=canonical_email(email, first_of_two=False).lower())
        assert phone is not None
        return RequestIdentity(phone=canonical_phone(phone, country, first_of_two=False))
    except NormalizationError as exc:
        raise IdentityError(exc.field, str(exc).partition(": ")[2]) from None


def key_of(pepper: bytes, identity: RequestIdentity) -> str:
    """The subject key of a named person (as the chain computes it)."""
    return subject_key(pepper, email=identity.email, phone=identity.phone)


def identify(pepper: bytes, *, email: str | None = None, phone: str | None = None, region: str | None = None) -> str:
    """The subject key of the person a request is about, from exactly one of e-mail or phone (as the chain does)."""
    return key_of(pepper, named(email=email, phone=phone, region=region))


def visitor_subject(pepper: bytes, visitor_id: str) -> str:
    """The key of an anonymous website visitor the DPO names by its cookie id (as the website adapter makes it,
    ``normalize.visitor_key``); ``IdentityError`` when it is not a visitor id."""
    try:
        return visitor_key(pepper, visitor_id)
    except NormalizationError as exc:
        raise IdentityError(exc.field, str(exc).partition(": ")[2]) from None


def new_email_key(pepper: bytes, new_email: str) -> tuple[str, str]:
    """A corrected e-mail address, canonical, and the subject key it gives; ``ChangeError`` when it is invalid."""
    try:
        canonical = canonical_email(new_email, first_of_two=False).lower()
    except NormalizationError as exc:
        raise ChangeError("email", str(exc).partition(": ")[2]) from None
    return canonical, subject_key(pepper, email=canonical)


def corrected(changes: Mapping[str, str | None], *, region: str | None = None) -> RectificationBody:
    """The corrections as they will be stored, checked; ``ChangeError`` names the field a value cannot be stored in,
    and never quotes the value."""
    unknown = sorted(set(changes) - set(RECTIFIABLE_FIELDS))
    if unknown:
        raise ChangeError(unknown[0], f"not a rectifiable field; rectifiable: {', '.join(RECTIFIABLE_FIELDS)}")
    try:
        body = RectificationBody.model_validate({"changes": dict(changes)})
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        field, _, message = str(error["msg"]).removeprefix("Value error, ").partition(": ")
        raise ChangeError(field, message) from None
    stored = _stored_forms(body.changes, region)
    for field, value in stored.items():
        limit = _stored_length(field)
        if value is not None and limit is not None and len(value) > limit:
            raise ChangeError(field, f"longer than {limit} characters, the most the CRM keeps of it")
    return body.model_copy(update={"changes": stored})


def _stored_length(field: str) -> int | None:
    """How many characters the CRM keeps of a profile field (its column's length): a longer corrected value would
    fail in the worker for good, after the request was accepted."""
    length = getattr(subjects.c[field].type, "length", None)
    return length if isinstance(length, int) else None


def _stored_forms(
    changes: Mapping[RectifiableField, str | None], region: str | None
) -> dict[RectifiableField, str | None]:
    """Identity fields as the CRM stores them and looks people up by: a phone in E.164 and a number that can exist
    (a national one read in ``region``, else in the corrected country), a country as its ISO code, an e-mail
    canonical; a field holding two numbers or addresses is refused, not read as its first."""
    out = dict(changes)
    if (country := out.get("country_code")) is not None:
        out["country_code"] = country_code(country)
        if out["country_code"] is None:
            raise ChangeError("country_code", "not a country (an ISO 3166 code such as IE, or a country's name)")
    try:
        if (phone := out.get("phone")) is not None:
            read_in = region or out.get("country_code")
            out["phone"] = canonical_phone(phone, read_in, require_valid=True, first_of_two=False)
        if (email := out.get("email")) is not None:
            out["email"] = canonical_email(email, first_of_two=False).lower()
    except NormalizationError as exc:
        raise ChangeError(exc.field, str(exc).partition(": ")[2]) from None
    return out


def new_password() -> str:
    """A password for the access PDF: 20 URL-safe characters, to be sent to the person by another channel."""
    return secrets.token_urlsafe(15)


def build_command(
    kind: RightKind,
    subject: str,
    *,
    issued_by: Principal,
    now: datetime | None = None,
    purposes: Sequence[Purpose] = (),
    event_ids: Sequence[UUID] = (),
    sealer: Sealer | None = None,
    rectify: Mapping[str, str | None] | None = None,
    old_address: OldAddress | None = None,
    new_subject_key: str | None = None,
    password: str | None = None,
    request_id: UUID | None = None,
    identity: RequestIdentity | None = None,
    region: str | None = None,
) -> RightsCommand:
    """A command with its deadline; rectified values, an export password and the identity the DPO named the person by
    are sealed with the subject's key. A corrected e-mail needs ``new_subject_key`` (the key its address gives); a
    corrected national phone number is read in ``region`` (else in a corrected country)."""
    issued_at = now or datetime.now(UTC)
    body: StrictModel | None = None
    if kind is RightKind.RECTIFICATION:
        if not rectify:
            raise ValueError("a rectification needs at least one corrected field")
        changes = corrected(rectify, region=region)
        if changes.new_email is not None:
            if new_subject_key is None:
                raise ValueError("a corrected e-mail needs the subject key of the new address")
            body = changes.model_copy(update={"old_address": old_address or "forget"})
        elif old_address is not None or new_subject_key is not None:
            raise ValueError("old_address applies only when the e-mail address is corrected")
        else:
            body = changes
    elif kind is RightKind.ACCESS:
        body = ExportDelivery(password=password or new_password())
    if (body is not None or identity is not None) and sealer is None:
        raise ValueError(f"a {kind.value} command carries sealed details: pass the sealer")
    scope = subject_scope(subject)
    sealed = None if body is None or sealer is None else sealer.seal_model(scope, body)
    named_by = None if identity is None or sealer is None else sealer.seal_model(scope, identity)
    if kind is RightKind.RETENTION_EXPIRY and not event_ids:
        raise ValueError("a retention expiry must name the expired interactions")
    return RightsCommand(
        request_id=request_id or uuid4(),
        kind=kind,
        subject_key=subject,
        issued_at=issued_at,
        issued_by=issued_by.actor,
        issuer=issued_by,
        due_at=due_at(issued_at),
        purposes=tuple(purposes),
        event_ids=tuple(event_ids),
        sealed=sealed,
        identity=named_by,
        new_subject_key=new_subject_key if isinstance(body, RectificationBody) and body.new_email else None,
    )


def audit_of(command: RightsCommand, action: str, actor: Principal | None = None, **detail: object) -> AuditRecord:
    """An audit record about a command, by ``actor`` (default: who issued it): ids and kinds only, never the sealed
    contents."""
    by = actor or command.issuer
    return AuditRecord.new(
        command.issued_by if by is None else by.actor,
        action,
        principal=by,
        subject_key=command.subject_key,
        request_id=command.request_id,
        detail={"kind": command.kind.value, **detail},
    )


class RightsDesk:
    """Where every request enters: recorded in the tracker and audited, then published and confirmed."""

    def __init__(self, tracker: RequestTracker, publisher: ConfirmingPublisher) -> None:
        self.tracker = tracker
        self.publisher = publisher

    def submit(self, commands: Iterable[RightsCommand]) -> list[RightsCommand]:
        batch = list(commands)
        trace = tracing.traceparent()  # the DPO's request (the API's span) or the sweep's, carried to the rights worker
        audits: list[AuditRecord] = []
        for command in batch:
            if self.tracker.record(command, plan_for(command), trace):
                audits.append(audit_of(command, "rights.request_received", due_at=command.due_at.isoformat()))
        for record in audits:
            self.tracker.audit(record)
        self.publisher.publish(
            [Outgoing(RIGHTS_COMMANDS_TOPIC, c.subject_key, c, trace) for c in batch]
            + [Outgoing(AUDIT_TOPIC, a.subject_key, a) for a in audits]
        )
        for command in batch:
            self.tracker.mark_published(command.request_id)
        return batch
