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
    IdentityError,
    RightsDesk,
    build_command,
    key_of,
    named,
    new_email_key,
    new_password,
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


@dataclass(frozen=True)
class Submitted:
    command: RightsCommand
    password: str | None = None  # the access PDF's password: shown once to the DPO, never stored in clear
    related: tuple[str, ...] = ()
    """Other subject keys in the CRM that hold a phone number of this subject's (``CrmReadModel.sharing_a_phone``):
    the request does not reach them; the DPO decides whether they are this person and asks for them too."""


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

    def request(
        self,
        kind: RightKind,
        *,
        by: Principal,
        email: str | None = None,
        phone: str | None = None,
        region: str | None = None,
        visitor_id: str | None = None,
        purposes: Sequence[Purpose] = (),
        rectify: Mapping[str, str | None] | None = None,
        old_address: OldAddress | None = None,
        password: str | None = None,
        now: datetime | None = None,
    ) -> Submitted:
        """Record and publish one request; raises ``IdentityError``/``ValueError`` on bad input, before anything.

        A website visitor known only by its cookie id (``visitor_id``) can be erased: everything kept under it goes.
        The other rights answer a person, whom the DPO names by e-mail or phone.
        """
        if kind is RightKind.CONSENT_WITHDRAWAL:
            self.check_withdrawal(purposes)
        identity: RequestIdentity | None = None
        if visitor_id:
            if email or phone:
                raise IdentityError("visitor_id", "name the subject by exactly one of --email, --phone or --visitor-id")
            if kind is not RightKind.ERASURE:
                raise IdentityError(
                    "visitor_id", f"a website visitor id names whom to erase, not whom a {kind.value} is for"
                )
            subject = visitor_subject(self.runtime.pepper, visitor_id)
        else:
            identity = named(email=email, phone=phone, region=region)
            subject = self._subject_of(identity)
        new_key = None
        if rectify and rectify.get("email"):  # a corrected address: canonical, and the key it gives
            address, new_key = new_email_key(self.runtime.pepper, str(rectify["email"]))
            rectify = {**rectify, "email": address}
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
        )
        # read before anything is recorded: a database that fails here fails the request, not its answer after it
        related = () if visitor_id else CrmReadModel(self.runtime.engine).sharing_a_phone(subject)
        self.desk.submit([command])
        return Submitted(command, password if kind is RightKind.ACCESS else None, related)

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
