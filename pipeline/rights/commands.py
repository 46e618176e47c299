"""Building rights commands: who the subject is, what changes, when it is due, and what travels sealed.

The DPO's tools (CLI, HTTP API) and the retention sweep all build commands here and hand them to ``RightsDesk``,
which records each in the tracker before it publishes it, so a request can never be published and forgotten.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

from pipeline import tracing
from pipeline.crypto.sealing import Sealer, subject_scope
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Purpose, StrictModel
from pipeline.models.identity import Principal
from pipeline.models.rights import AuditRecord, RightKind, RightsCommand
from pipeline.normalize import NormalizationError, canonical_email, canonical_phone, subject_key, visitor_key
from pipeline.rights.bodies import RECTIFIABLE_FIELDS, ExportDelivery, OldAddress, RectificationBody, RequestIdentity
from pipeline.rights.deadlines import due_at
from pipeline.rights.plan import plan_for
from pipeline.rights.tracker import RequestTracker
from pipeline.topics import AUDIT_TOPIC, RIGHTS_COMMANDS_TOPIC


class IdentityError(ValueError):
    """The DPO named no subject, or two, or an address that is not valid; ``field`` says which option."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def named(*, email: str | None = None, phone: str | None = None, region: str | None = None) -> RequestIdentity:
    """Exactly one of e-mail or phone, canonical (as the chain stores them); ``IdentityError`` names the bad option."""
    if bool(email) == bool(phone):
        raise IdentityError("email", "name the person by exactly one of --email or --phone")
    try:
        if email:
            return RequestIdentity(email=canonical_email(email).lower())
        assert phone is not None
        return RequestIdentity(phone=canonical_phone(phone, region))
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
    """A corrected e-mail address, canonical, and the subject key it gives; ``IdentityError`` when it is invalid."""
    try:
        canonical = canonical_email(new_email).lower()
    except NormalizationError as exc:
        raise IdentityError("set", f"email: {str(exc).partition(': ')[2]}") from None
    return canonical, subject_key(pepper, email=canonical)


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
) -> RightsCommand:
    """A command with its deadline; rectified values, an export password and the identity the DPO named the person by
    are sealed with the subject's key. A corrected e-mail needs ``new_subject_key`` (the key its address gives)."""
    issued_at = now or datetime.now(UTC)
    body: StrictModel | None = None
    if kind is RightKind.RECTIFICATION:
        if not rectify:
            raise ValueError("a rectification needs at least one corrected field")
        unknown = sorted(set(rectify) - set(RECTIFIABLE_FIELDS))
        if unknown:
            raise ValueError(f"cannot rectify {', '.join(unknown)}; rectifiable: {', '.join(RECTIFIABLE_FIELDS)}")
        corrected = RectificationBody.model_validate({"changes": dict(rectify)})
        if corrected.new_email is not None:
            if new_subject_key is None:
                raise ValueError("a corrected e-mail needs the subject key of the new address")
            body = corrected.model_copy(update={"old_address": old_address or "forget"})
        elif old_address is not None or new_subject_key is not None:
            raise ValueError("--old-address applies only when the e-mail address is corrected (--set email=...)")
        else:
            body = corrected
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
