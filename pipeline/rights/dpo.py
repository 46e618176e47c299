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
from typing import Literal
from uuid import UUID

from pipeline.crm.aliases import SubjectAliases
from pipeline.crm.read import CrmReadModel
from pipeline.db import ensure_schema
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Purpose
from pipeline.models.identity import Principal
from pipeline.models.rights import AuditRecord, RightKind, RightsCommand
from pipeline.policy.model import Policy, load_policy
from pipeline.rights.bodies import OldAddress, RequestIdentity
from pipeline.rights.commands import (
    AmbiguousSubject,
    IdentityError,
    RightsDesk,
    build_command,
    key_of,
    named,
    new_email_key,
    new_password,
    region_of,
    visitor_subject,
)
from pipeline.rights.tracker import RequestState, RequestTracker, RequestView
from pipeline.runtime import Runtime
from pipeline.topics import AUDIT_TOPIC


class RequestOut(RequestView):
    """A request as the DPO is shown it, by the HTTP API and by ``leadpipe dpo status --json`` alike: the tracker's
    view, and whether it was past its deadline when asked."""

    overdue: bool


def request_out(view: RequestView, now: datetime | None = None) -> RequestOut:
    return RequestOut(**dict(view), overdue=view.is_overdue(now or datetime.now(UTC)))


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
    ) -> Submitted:
        """Record and publish one request; raises ``IdentityError``/``ChangeError``/``AmbiguousSubject``/``ValueError``
        on bad input, before anything is recorded.

        A website visitor known only by its cookie id (``visitor_id``) can be erased: everything kept under it goes.
        The other rights answer a person, whom the DPO names by e-mail or phone (and, when several subjects hold it,
        by ``subject_key`` among them).
        """
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
        )
        self.desk.submit([command])
        secret = password if kind is RightKind.ACCESS else None
        if found is None:
            return Submitted(command, secret)
        return Submitted(command, secret, found.related, found.named_key, found.found_by, found.in_crm)

    def open_requests(self) -> list[RequestView]:
        return self.tracker.open_requests()

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
