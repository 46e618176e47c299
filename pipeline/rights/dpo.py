"""The DPO's operations, shared by the ``leadpipe dpo`` CLI and the HTTP router so both behave the same.

A request is identified by e-mail or phone (an erasure also by a website visitor's cookie id), turned into the
subject key exactly as the chain does, recorded in the tracker, audited and published; nothing here prints or logs
the e-mail, phone or cookie id. Every operation takes the principal who asks for it (``by``): the tracker and the
audit name that person.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel

from pipeline.crm.aliases import SubjectAliases
from pipeline.crm.read import CrmReadModel
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.db import ensure_schema
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Purpose
from pipeline.models.identity import Principal
from pipeline.models.records import Sealed
from pipeline.models.rights import AuditRecord, RightKind, RightsCommand
from pipeline.policy.model import Policy, load_policy
from pipeline.rights.bodies import ExportDelivery, OldAddress, RectificationBody, RequestIdentity
from pipeline.rights.commands import (
    AmbiguousSubject,
    IdentityError,
    RequestFieldError,
    RightsDesk,
    build_command,
    key_of,
    named,
    new_email_key,
    new_password,
    region_of,
    visitor_subject,
)
from pipeline.rights.executor import handover_scope
from pipeline.rights.tracker import CONTACTS_REVIEWED, RequestState, RequestTracker, RequestView, StepClosure
from pipeline.runtime import Runtime
from pipeline.topics import AUDIT_TOPIC

#: The audit line of a step a person closed by hand (``DpoTools.close_step``).
STEP_CLOSED_BY_HAND = "rights.step_closed_by_hand"


class RequestOut(RequestView):
    """A request as the DPO is shown it, by the HTTP API and by ``leadpipe dpo status --json`` alike: the tracker's
    view, and whether it was past its deadline when asked."""

    overdue: bool


def request_out(view: RequestView, now: datetime | None = None) -> RequestOut:
    return RequestOut(**dict(view), overdue=view.is_overdue(now or datetime.now(UTC)))


_M = TypeVar("_M", bound=BaseModel)

#: How the subject a request is for was found from what the DPO named: the key of the e-mail or phone itself, an
#: alias of it (an address the DPO corrected and kept), the one CRM subject holding the e-mail or phone when nobody is
#: held under its own key, or the subject key the DPO named among those.
FoundBy = Literal["key", "alias", "identity", "subject_key"]


@dataclass(frozen=True)
class Submitted:
    command: RightsCommand
    password: str | None = None  # the access PDF's password: shown once to the DPO, never stored in clear
    related: tuple[str, ...] = ()
    """Other subject keys in the CRM that hold a phone number of this subject's (``CrmReadModel.sharing_a_phone``) or
    the e-mail or phone the DPO named: the request does not reach them; the DPO decides whether they are this person
    and asks for them too."""
    named_key: str | None = None
    """The subject key of the e-mail or phone as named (None for a website visitor)."""
    found_by: FoundBy = "key"
    in_crm: bool | None = None
    """Whether the CRM holds a person under the key the request is for (None: a website visitor, not looked up). When
    it does not, HubSpot is still searched by what the DPO named, and the request runs all the same."""
    replayed: bool = False
    """The request id the caller chose was recorded already, for this same request: nothing new was recorded (a
    request recorded but not yet published is published now)."""


class DuplicateRequestId(ValueError):
    """The request id the caller chose is recorded already for another request (another kind, person, issuer or
    detail): nothing is recorded or published."""

    def __init__(self, request_id: UUID, view: RequestView) -> None:
        super().__init__(
            f"request_id: {request_id} is already the id of another request ({_a(view.kind.value)} for "
            f"{view.subject_key}, received {view.received_at.isoformat()}); choose a new id for a new request"
        )
        self.field = "request_id"
        self.view = view


def _a(word: str) -> str:
    """``word`` with its indefinite article ("an erasure", "a restriction")."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


#: The details each kind of request takes, beyond whom it is for: any other is refused (``RequestFieldError``).
_ONLY_FOR: dict[str, RightKind] = {
    "purposes": RightKind.CONSENT_WITHDRAWAL,
    "changes": RightKind.RECTIFICATION,
    "old_address": RightKind.RECTIFICATION,
    "password": RightKind.ACCESS,
}


@dataclass(frozen=True)
class _Subject:
    """Whom a request naming a person is for, and what the CRM holds around them."""

    key: str
    named_key: str
    found_by: FoundBy
    in_crm: bool
    related: tuple[str, ...]


class DpoTools:
    def __init__(self, runtime: Runtime, publisher: ConfirmingPublisher, *, migrate: bool = True) -> None:
        self.runtime = runtime
        self.publisher = publisher
        if migrate:
            ensure_schema(runtime.engine)
        self.tracker = RequestTracker(runtime.engine)
        self.desk = RightsDesk(self.tracker, publisher)

    @cached_property
    def policy(self) -> Policy:
        return load_policy(self.runtime.settings.policy_file)

    def check_withdrawal(self, purposes: Sequence[Purpose]) -> None:
        """A withdrawal of consent (9.8) may only name purposes that rest on consent under the policy file."""
        for purpose in purposes:
            rule = self.policy.purposes[purpose]
            if purpose not in self.policy.consent_purposes():
                raise ValueError(
                    f"{purpose.value}: this purpose does not rest on consent (the policy file gives it the legal "
                    f"basis {rule.legal_basis.value}), so there is no consent to withdraw; an objection (9.6) or an "
                    "erasure (9.3) stops it"
                )

    def subject(self, *, email: str | None = None, phone: str | None = None, region: str | None = None) -> str:
        """The person's subject key: the one their address gives, or (an address the DPO corrected and kept as an
        alias) the key of the person it leads to."""
        return self._subject_of(named(email=email, phone=phone, region=region))

    def _subject_of(self, identity: RequestIdentity) -> str:
        return SubjectAliases(self.runtime.engine).current(key_of(self.runtime.pepper, identity))

    def _find(self, identity: RequestIdentity, chosen: str | None) -> _Subject:
        """Whom a request naming ``identity`` is for. A key is the e-mail's, else the phone's: a person who wrote with
        an address and gave a number is held under the address, so when nobody is held under the named key the
        subjects holding the e-mail or phone are the candidates; one is the person, several are never chosen from
        (``AmbiguousSubject``) unless the DPO names one (``chosen``). Read before anything is recorded."""
        aliases, crm = SubjectAliases(self.runtime.engine), CrmReadModel(self.runtime.engine)
        named_key = key_of(self.runtime.pepper, identity)
        key = aliases.current(named_key)
        found_by: FoundBy = "key" if key == named_key else "alias"
        holders = crm.holders(email=identity.email, phone=identity.phone)
        if chosen is not None:
            wanted = aliases.current(chosen.strip())
            allowed = {key, *holders, *crm.sharing_a_phone(key)}
            if wanted not in allowed:
                raise IdentityError(
                    "subject_key",
                    "not a subject this e-mail address or phone number leads to (candidates: "
                    f"{', '.join(sorted(allowed))})",
                )
            key, found_by = wanted, "subject_key"
        elif not crm.holds(key) and holders:
            if len(holders) > 1:
                raise AmbiguousSubject("email" if identity.email else "phone", holders)
            key, found_by = holders[0], "identity"
        related = tuple(sorted({*crm.sharing_a_phone(key), *holders} - {key}))
        return _Subject(key, named_key, found_by, crm.holds(key), related)

    def _rectification(
        self,
        subject: _Subject,
        identity: RequestIdentity,
        changes: Mapping[str, str | None],
        old_address: OldAddress | None,
        region: str | None,
    ) -> tuple[str | None, OldAddress | None, str | None]:
        """(the country a corrected national number is read in, what becomes of the old key, the new key) of a
        rectification. A subject keyed by their phone (no e-mail) who is given an address keeps the phone as an
        alias by default: the number is still valid and still theirs, so a later call or chat from it must join
        them and their flags, not start somebody new."""
        held = CrmReadModel(self.runtime.engine).show(subject.key) if subject.in_crm else None
        country = region_of(region)
        if country is None and not changes.get("country_code") and held is not None:
            country = held.country_code
        if not changes.get("email"):
            return country, old_address, None
        new_key = new_email_key(self.runtime.pepper, str(changes["email"]))[1]
        phones = {p for p in (identity.phone, held.phone if held is not None else None) if p}
        keyed_by_phone = any(subject.key == key_of(self.runtime.pepper, RequestIdentity(phone=p)) for p in phones)
        return country, old_address or ("alias" if keyed_by_phone else None), new_key

    def request(
        self,
        kind: RightKind,
        *,
        by: Principal,
        email: str | None = None,
        phone: str | None = None,
        region: str | None = None,
        visitor_id: str | None = None,
        subject_key: str | None = None,
        purposes: Sequence[Purpose] = (),
        rectify: Mapping[str, str | None] | None = None,
        old_address: OldAddress | None = None,
        password: str | None = None,
        now: datetime | None = None,
        request_id: UUID | None = None,
    ) -> Submitted:
        """Record and publish one request; raises ``IdentityError``/``ChangeError``/``AmbiguousSubject``/
        ``RequestFieldError``/``DuplicateRequestId``/``ValueError`` on bad input, before anything is recorded.

        A website visitor known only by its cookie id (``visitor_id``) can be erased: everything kept under it goes.
        The other rights answer a person, whom the DPO names by e-mail or phone (and, when several subjects hold it,
        by ``subject_key`` among them).

        ``request_id``: the caller's own id for the request, so that a call repeated after a lost answer (a timeout,
        a 503) records and publishes nothing twice: the same request again is answered ``replayed`` with what was
        recorded; another request under a recorded id is refused (``DuplicateRequestId``).
        """
        given = {"purposes": bool(purposes), "changes": bool(rectify), "old_address": old_address is not None}
        for field, present in {**given, "password": password is not None}.items():
            if present and kind is not _ONLY_FOR[field]:
                raise RequestFieldError(
                    field, f"{_a(kind.value)} request takes none (only {_a(_ONLY_FOR[field].value)} does)"
                )
        if kind is RightKind.CONSENT_WITHDRAWAL:
            self.check_withdrawal(purposes)
        identity: RequestIdentity | None = None
        found: _Subject | None = None
        if visitor_id:
            if email or phone or subject_key:
                raise IdentityError(
                    "visitor_id",
                    "name the subject by exactly one of an e-mail address, a phone number or a website visitor id",
                )
            if kind is not RightKind.ERASURE:
                raise IdentityError(
                    "visitor_id", f"a website visitor id names whom to erase, not whom a {kind.value} is for"
                )
            subject = visitor_subject(self.runtime.pepper, visitor_id)
        else:
            identity = named(email=email, phone=phone, region=region)
            # read before anything is recorded: a database that fails here fails the request, not its answer after it
            found = self._find(identity, subject_key)
            subject = found.key
        new_key, read_in = None, None
        if rectify and identity is not None and found is not None:
            read_in, old_address, new_key = self._rectification(found, identity, rectify, old_address, region)
        chosen_password = password
        if kind is RightKind.ACCESS:
            password = password or new_password()
        command = build_command(
            kind,
            subject,
            issued_by=by,
            now=now,
            purposes=purposes,
            sealer=self.runtime.codec.sealer,
            rectify=rectify,
            old_address=old_address,
            new_subject_key=new_key,
            password=password,
            identity=identity,
            region=read_in,
            request_id=request_id,
        )
        if request_id is not None and (recorded := self.tracker.get(request_id)) is not None:
            return self._replayed(recorded, command, found, compare_password=chosen_password is not None)
        self.desk.submit([command])
        secret = password if kind is RightKind.ACCESS else None
        if found is None:
            return Submitted(command, secret)
        return Submitted(command, secret, found.related, found.named_key, found.found_by, found.in_crm)

    def _replayed(
        self, recorded: RequestView, command: RightsCommand, found: _Subject | None, *, compare_password: bool
    ) -> Submitted:
        """The answer to a request id recorded already: the same request (kind, issuer, person, details) is published
        again if it never was and answered as it was recorded; anything else is ``DuplicateRequestId``."""
        stored = self.tracker.command(recorded.request_id)
        same_person = stored.subject_key == command.subject_key or (
            found is not None and stored.subject_key in {found.named_key, *found.related}
        )
        same = (
            stored.kind is command.kind
            and stored.issuer is not None
            and command.issuer is not None
            and stored.issuer.principal_id == command.issuer.principal_id
            and same_person
            and set(stored.purposes) == set(command.purposes)
            and stored.new_subject_key == command.new_subject_key
            and self._same_sealed(stored.identity, command.identity, RequestIdentity)
        )
        password: str | None = None
        if same and command.kind is RightKind.RECTIFICATION:
            same = self._same_sealed(stored.sealed, command.sealed, RectificationBody)
        elif same and command.kind is RightKind.ACCESS:
            delivery = self._opened(stored.sealed, ExportDelivery)
            password = None if delivery is None else delivery.password
            same = not compare_password or self._same_sealed(stored.sealed, command.sealed, ExportDelivery)
        if not same:
            raise DuplicateRequestId(command.request_id, recorded)
        if recorded.published_at is None:  # recorded, but the broker never confirmed it: publish it now
            self.desk.submit([stored])
        if found is None:
            return Submitted(stored, password, replayed=True)
        return Submitted(stored, password, found.related, found.named_key, found.found_by, found.in_crm, replayed=True)

    def _opened(self, sealed: Sealed | None, model: type[_M]) -> _M | None:
        if sealed is None:
            return None
        try:
            return self.runtime.codec.sealer.open_model(sealed, model)
        except KeyDestroyedError:  # the person was erased since: what the request carried went with them
            return None

    def _same_sealed(self, stored: Sealed | None, given: Sealed | None, model: type[_M]) -> bool:
        """Whether two requests carry the same sealed details (True when the recorded ones cannot be read any more:
        the person was erased since, and nothing tells the two apart)."""
        if stored is None or given is None:
            return (stored is None) == (given is None)
        old, new = self._opened(stored, model), self._opened(given, model)
        return old is None or old == new

    def open_requests(self) -> list[RequestView]:
        """Requests not completed, and restrictions whose person made contact since the DPO last reviewed it (the
        contact was set aside, 9.4: someone has to decide what the person is told), in order of receipt."""
        waiting = self.tracker.open_requests()
        told = [
            v
            for v in self.tracker.requests(states=[RequestState.COMPLETED], kinds=[RightKind.RESTRICTION])
            if v.contacts_unreviewed
        ]
        return sorted([*waiting, *told], key=lambda v: (v.received_at, v.request_id))

    def contacts_reviewed(self, request_id: UUID | str, *, by: Principal) -> RequestView:
        """Record that the DPO looked at the contacts filed under a restriction (the request leaves the open list
        until the person makes contact again)."""
        view = self.tracker.get(request_id)
        if view is None:
            raise KeyError(f"no rights request {request_id}")
        if view.kind is not RightKind.RESTRICTION:
            raise ValueError("contacts while restricted are filed under restrictions only")
        if not view.contacts_while_restricted:
            raise ValueError("the person made no contact while this restriction stood; there is nothing to review")
        through = max(c.dropped_at for c in view.contacts_while_restricted)
        self._audit(
            by, CONTACTS_REVIEWED, view, through=through.isoformat(), contacts=len(view.contacts_while_restricted)
        )
        refreshed = self.tracker.get(request_id)
        assert refreshed is not None
        return refreshed

    def get(self, request_id: UUID | str) -> RequestView | None:
        return self.tracker.get(request_id)

    def extend(self, request_id: UUID | str, months: int, reason: str, *, by: Principal) -> RequestView:
        view = self.tracker.extend(request_id, months, reason, by=by)
        self._audit(by, "rights.request_extended", view, months=months, due_at=view.effective_due_at.isoformat())
        return view

    def notice_sent(self, request_id: UUID | str, *, by: Principal) -> RequestView:
        """Record that the person was told a restriction was lifted (policy 9.5)."""
        view = self.tracker.get(request_id)
        if view is None:
            raise KeyError(f"no rights request {request_id}")
        if view.kind is not RightKind.UNRESTRICTION:
            raise ValueError("a notice is recorded for lifted restrictions only")
        if view.notice_sent_by is not None:  # recorded again, it would rewrite who told the person and when
            raise ValueError(f"the notice was recorded already, by {view.notice_sent_by.display_name}")
        self.tracker.mark_notice_sent(request_id, by=by)
        self._audit(by, "rights.notice_sent", view)
        refreshed = self.tracker.get(request_id)
        assert refreshed is not None
        return refreshed

    def close_step(
        self, request_id: UUID | str, sink: str, closed_as: StepClosure, reason: str, *, by: Principal
    ) -> RequestView:
        """Close one step of a request by hand (``RequestTracker.close_step``): a request that can never succeed (the
        contact was deleted in HubSpot already, HubSpot refuses for good, the sink is gone) can still be answered, in
        the name of the person who decided it. The audit line names the step and how it was closed, not the reason
        (free text). When this completes the request, what the rights agent does on completion is done here: the
        handover of identities is destroyed and the completion audited."""
        closed = self.tracker.close_step(request_id, sink, closed_as, reason, by=by)
        view = closed.view
        if closed.completed and self.tracker.handover(view.request_id) is not None:  # before a broker can fail us
            self.runtime.keystore.destroy(handover_scope(view.request_id), f"handover_done:{view.request_id}")
        self._audit(
            by, STEP_CLOSED_BY_HAND, view, sink=sink, closed_as=closed_as.value, status_before=closed.previous.value
        )
        if closed.completed:
            self._audit(by, "rights.request_completed", view, issued_by=view.issued_by, closed_by_hand=sink)
        return view

    def export_downloaded(self, view: RequestView, *, by: Principal, file: str) -> None:
        """Record that ``by`` took the request's export file (the person's data leaving the product), on the audit
        topic too; raises ``PublishError`` when the broker did not confirm it, and then the file must not be given."""
        self._audit(by, "rights.export_downloaded", view, file=file)

    def wait(
        self,
        request_id: UUID | str,
        timeout_s: float,
        poll_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RequestView | None:
        """Poll the tracker until the request completed or a sink failed, or the time is up; the latest view."""
        deadline = time.monotonic() + timeout_s
        while True:
            view = self.tracker.get(request_id)
            if view is not None and view.state in (RequestState.COMPLETED, RequestState.ATTENTION):
                return view
            if time.monotonic() >= deadline:
                return view
            sleep(poll_s)

    def _audit(self, by: Principal, action: str, view: RequestView, **detail: object) -> None:
        record = AuditRecord.new(
            by.actor,
            action,
            principal=by,
            subject_key=view.subject_key,
            request_id=UUID(view.request_id),
            detail={"kind": view.kind.value, **detail},
        )
        self.tracker.audit(record)
        self.publisher.publish([Outgoing(AUDIT_TOPIC, view.subject_key, record)])
