"""The request tracker: every rights request with its deadline, per-sink status and evidence, and the audit log.

It lives in the CRM database beside the key store. After an erasure the request row and its sink rows are the
minimal, non-personal record that the erasure happened (subject key, request id, timestamps, which sinks
confirmed). Each names its people (``pipeline.models.identity.Principal``: id, display name at the time, roles):
who issued the request, who extended it, who recorded the notice, who (or which part of the product) completed
each sink's step, and who did each audited action. Nothing here holds personal data in clear: subject keys are
HMACs, a command's personal parts are sealed with the subject's key, and evidence is counts, ids and status codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Boolean, Engine, ForeignKey, Integer, String, Text, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from pipeline.db import Base, UtcDateTime
from pipeline.logging import personal_data_in
from pipeline.models.identity import Principal
from pipeline.models.records import Sealed
from pipeline.models.rights import AuditRecord, RightKind, RightsCommand, RightsStatus, SinkStatus, SuppressionRecord
from pipeline.rights.deadlines import MAX_EXTENSION_MONTHS, extended_due_at


class RequestState(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    # a sink failed after its retries; the retry timer keeps trying, a person should look (and may close the step by
    # hand when it can never succeed: ``RequestTracker.close_step``)
    ATTENTION = "attention"


class StepClosure(StrEnum):
    """How a person closed a request's step that the product could not carry out (``RequestTracker.close_step``)."""

    DONE_BY_HAND = "done_by_hand"  # carried out outside leadpipe (e.g. the HubSpot contact deleted in HubSpot)
    CANNOT_BE_DONE = "cannot_be_done"  # never will be (HubSpot refuses for good, the sink was decommissioned)


#: A closed step's reason: long enough to say what was done and where, short enough to hold no document.
CLOSE_REASON_MIN_CHARS = 10
CLOSE_REASON_MAX_CHARS = 500


def _check_reason(reason: str, what: str) -> None:
    found = personal_data_in(reason)
    if found is not None:
        raise ValueError(
            f"{what} names {found}: it is kept with the request's evidence (and outlives an erasure of the person), "
            "so it must name nobody; say what was done and where, or why, without the person's data (a ticket "
            "number helps)"
        )


#: The sink status a closed step takes, so the request settles and the executor never runs the step again.
_CLOSED_STATUS = {StepClosure.DONE_BY_HAND: SinkStatus.DONE, StepClosure.CANNOT_BE_DONE: SinkStatus.NOT_APPLICABLE}


class RightsRequest(Base):
    """One request as received; the deadline is fixed at receipt and moves only by a recorded extension."""

    __tablename__ = "rights_requests"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject_key: Mapped[str] = mapped_column(String(128), index=True)
    issued_by: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    extended_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    extension_months: Mapped[int | None] = mapped_column(Integer, nullable=True)
    extension_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    extended_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    extended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=RequestState.OPEN, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    notice_due: Mapped[bool] = mapped_column(Boolean, default=False)
    notice_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    command: Mapped[str] = mapped_column(Text, doc="RightsCommand JSON; its personal parts are sealed")
    handover: Mapped[str | None] = mapped_column(
        Text, nullable=True, doc="Sealed identities remote sinks need after an erasure (key destroyed when done)"
    )
    issued_by_principal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, doc="Principal JSON")
    extended_by_principal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, doc="Principal JSON")
    notice_sent_by: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, doc="Principal JSON")
    traceparent: Mapped[str | None] = mapped_column(
        String(55), nullable=True, doc="W3C trace context the request arrived in (the retry timer continues it)"
    )


class RightsRequestExtension(Base):
    """One extension of a request's deadline (policy 9.1): how many months and the reason the person is told.

    Extensions add up (never beyond ``MAX_EXTENSION_MONTHS`` in all) and every reason is kept, in order.
    """

    __tablename__ = "rights_request_extensions"

    request_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("rights_requests.request_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    months: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    extended_by: Mapped[str] = mapped_column(String(200))
    principal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, doc="Principal JSON")
    extended_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RightsRequestSink(Base):
    """What one sink did for one request: status, attempts, last error (no personal data) and evidence."""

    __tablename__ = "rights_request_sinks"

    request_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("rights_requests.request_id", ondelete="CASCADE"), primary_key=True
    )
    sink: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    completed_by: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, nullable=True, doc="Principal JSON of whoever completed the step (the rights agent, or a person)"
    )
    closed_as: Mapped[str | None] = mapped_column(
        String(16), nullable=True, doc="StepClosure: a person closed the step by hand (None: the sink's own outcome)"
    )
    closed_reason: Mapped[str | None] = mapped_column(Text, nullable=True, doc="Why, as the person wrote it")
    closed_by: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, doc="Principal JSON")
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class RightsSubjectState(Base):
    """The latest suppression state per subject: the 'previous state' the next request is folded onto."""

    __tablename__ = "rights_subject_state"

    subject_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RightsAuditEntry(Base):
    """Every request and every action it caused (also published on the audit topic)."""

    __tablename__ = "rights_audit"

    audit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject_key: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    request_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    principal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, doc="Principal JSON of the actor")


class ClosureView(BaseModel):
    """A step a person closed by hand: how, why, who and when (the sink's own evidence stays beside it)."""

    model_config = ConfigDict(frozen=True)

    closed_as: StepClosure
    reason: str
    closed_by: Principal | None
    closed_at: datetime


class SinkView(BaseModel):
    """What one sink did for one request, as the DPO is shown it."""

    model_config = ConfigDict(frozen=True)

    sink: str
    status: SinkStatus
    attempts: int
    error: str | None = Field(description="The last attempt's error (no personal data)")
    evidence: dict[str, Any]
    updated_at: datetime = Field(exclude=True, description="When the sink last answered (the retry timer's clock)")
    completed_by: Principal | None = Field(default=None, description="Who completed this step (done or n/a)")
    closed: ClosureView | None = Field(
        default=None,
        description="A person closed this step by hand (done outside leadpipe, or impossible), with the reason: its "
        "status became done or not_applicable so the request settles; the evidence stays the sink's own, and a later "
        "success of the sink is still recorded",
    )


class ExtensionView(BaseModel):
    """One extension as the DPO is shown it (and tells the person: its reason)."""

    model_config = ConfigDict(frozen=True)

    months: int
    reason: str
    extended_by: str = Field(description="The actor string of who extended it")
    principal: Principal | None = Field(default=None, description="Who extended it (None: before people were named)")
    extended_at: datetime


#: The rights audit's line for a new contact from a restricted subject (its event was dropped from processing, 9.4),
#: filed under the restriction that stood (``RequestTracker.file_contact_while_restricted``).
CONTACT_WHILE_RESTRICTED = "rights.contact_while_restricted"
#: The DPO looked at the contacts filed under a restriction up to ``detail.through``.
CONTACTS_REVIEWED = "rights.contacts_reviewed"
_CONTACT_NAMESPACE = UUID("6c1f8e0a-3b7d-4f4e-9a51-0d2c7e5b9f13")


class RestrictedContactView(BaseModel):
    """A contact that reached the pipeline from a restricted person: dropped from processing (9.4: stored data is not
    processed further), told to the DPO. Ids and times only: what the person wrote is not kept."""

    model_config = ConfigDict(frozen=True)

    event_id: UUID | None
    channel: str | None
    received_at: datetime | None = Field(description="When the pipeline received it")
    dropped_at: datetime = Field(description="When the chain set it aside")


class RequestView(BaseModel):
    """A request as the DPO sees it: ``leadpipe dpo status``, and (with ``overdue``) the API's ``RequestOut``."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    kind: RightKind
    subject_key: str
    issued_by: str
    issuer: Principal | None = Field(description="Who issued the request (None: recorded before people were named)")
    received_at: datetime
    due_at: datetime
    effective_due_at: datetime
    extension_reason: str | None = Field(description="Every extension's reason, oldest first, joined by '; '")
    extensions: tuple[ExtensionView, ...] = ()
    extended_by: Principal | None = Field(default=None, description="Who extended it last")
    state: RequestState
    completed_at: datetime | None
    published_at: datetime | None = Field(exclude=True, description="None until the command is on rights.commands")
    notice_due: bool
    notice_sent_by: Principal | None = None
    sinks: tuple[SinkView, ...]
    contacts_while_restricted: tuple[RestrictedContactView, ...] = Field(
        default=(),
        description="A restriction: every contact the person made while it stood (dropped from processing, 9.4), "
        "oldest first",
    )
    contacts_unreviewed: int = Field(
        default=0,
        description="A restriction: how many of those contacts came after the DPO last recorded reviewing them "
        "(POST .../contacts-reviewed); while above 0 the request is listed with the open ones",
    )

    def is_overdue(self, now: datetime) -> bool:
        return self.state is not RequestState.COMPLETED and now > self.effective_due_at


def _now() -> datetime:
    return datetime.now(UTC)


class UnknownSink(LookupError):
    """The request has no step in this sink (its plan never named it)."""

    def __init__(self, request_id: object, sink: str, steps: Sequence[str]) -> None:
        super().__init__(f"request {request_id} has no {sink!r} step (its steps: {', '.join(steps) or 'none'})")
        self.steps = tuple(steps)


@dataclass(frozen=True)
class ClosedStep:
    """What closing a step did: the request as it is now, the step's status before, and whether it completed."""

    view: RequestView
    previous: SinkStatus
    completed: bool


_TERMINAL = (SinkStatus.DONE, SinkStatus.NOT_APPLICABLE)


class RequestTracker:
    """Reads and writes the tracker tables; every write is idempotent (commands and statuses may be redelivered)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ---- requests -----------------------------------------------------------------------------------------

    def record(self, command: RightsCommand, sinks: Iterable[str] = (), trace: bytes | None = None) -> bool:
        """Record a received request (and the sinks it must reach) with the trace context it arrived in; False when
        it was already recorded."""
        with Session(self._engine) as session:
            session.add(
                RightsRequest(
                    request_id=str(command.request_id),
                    kind=command.kind.value,
                    subject_key=command.subject_key,
                    issued_by=command.issued_by,
                    received_at=command.issued_at,
                    due_at=command.due_at,
                    state=RequestState.OPEN,
                    notice_due=False,  # a lifted restriction sets it (``mark_notice_due``)
                    command=command.model_dump_json(),
                    issued_by_principal=_json(command.issuer),
                    traceparent=trace.decode("ascii", "replace")[:55] if trace else None,
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                created = False
            else:
                created = True
        self.expect_sinks(command.request_id, sinks)
        return created

    def expect_sinks(self, request_id: object, sinks: Iterable[str]) -> None:
        """Add PENDING rows for sinks a request must reach (existing rows are left as they are)."""
        for sink in sinks:
            with Session(self._engine) as session:
                if session.get(RightsRequestSink, (str(request_id), sink)) is not None:
                    continue
                session.add(
                    RightsRequestSink(
                        request_id=str(request_id),
                        sink=sink,
                        status=SinkStatus.PENDING,
                        attempts=0,
                        evidence={},
                        updated_at=_now(),
                    )
                )
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()

    def mark_published(self, request_id: object, at: datetime | None = None) -> None:
        with Session(self._engine) as session:
            session.execute(
                update(RightsRequest)
                .where(RightsRequest.request_id == str(request_id))
                .values(published_at=at or _now())
            )
            session.commit()

    def save_handover(self, request_id: object, sealed: Sealed) -> None:
        with Session(self._engine) as session:
            session.execute(
                update(RightsRequest)
                .where(RightsRequest.request_id == str(request_id))
                .values(handover=sealed.model_dump_json())
            )
            session.commit()

    def handover(self, request_id: object) -> Sealed | None:
        with Session(self._engine) as session:
            text = session.scalar(select(RightsRequest.handover).where(RightsRequest.request_id == str(request_id)))
        return None if text is None else Sealed.model_validate_json(text)

    def command(self, request_id: object) -> RightsCommand:
        with Session(self._engine) as session:
            text = session.scalar(select(RightsRequest.command).where(RightsRequest.request_id == str(request_id)))
        if text is None:
            raise KeyError(f"no rights request {request_id}")
        return RightsCommand.model_validate_json(text)

    def trace(self, request_id: object) -> bytes | None:
        """The trace context the request arrived in (``traceparent``), if it came with one."""
        with Session(self._engine) as session:
            value = session.scalar(select(RightsRequest.traceparent).where(RightsRequest.request_id == str(request_id)))
        return value.encode() if value else None

    def get(self, request_id: object) -> RequestView | None:
        with Session(self._engine) as session:
            row = session.get(RightsRequest, str(request_id))
            if row is None:
                return None
            sinks = session.scalars(select(RightsRequestSink).where(RightsRequestSink.request_id == str(request_id)))
            extensions = session.scalars(
                select(RightsRequestExtension)
                .where(RightsRequestExtension.request_id == str(request_id))
                .order_by(RightsRequestExtension.seq)
            )
            contacts = _contact_lines(session, [row.request_id]) if row.kind == RightKind.RESTRICTION.value else {}
            return _view(row, list(sinks), list(extensions), contacts.get(row.request_id, ()))

    def requests(
        self,
        *,
        states: Sequence[RequestState] | None = None,
        subject_key: str | None = None,
        kinds: Sequence[RightKind] | None = None,
    ) -> list[RequestView]:
        """Requests in order of receipt, filtered by state, subject and kind."""
        query = select(RightsRequest).order_by(RightsRequest.received_at, RightsRequest.request_id)
        if states is not None:
            query = query.where(RightsRequest.state.in_([s.value for s in states]))
        if subject_key is not None:
            query = query.where(RightsRequest.subject_key == subject_key)
        if kinds is not None:
            query = query.where(RightsRequest.kind.in_([k.value for k in kinds]))
        with Session(self._engine) as session:
            rows = list(session.scalars(query))
            ids = [r.request_id for r in rows]
            by_request: dict[str, list[RightsRequestSink]] = {}
            extended: dict[str, list[RightsRequestExtension]] = {}
            restrictions = [r.request_id for r in rows if r.kind == RightKind.RESTRICTION.value]
            contacts = _contact_lines(session, restrictions)
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                for sink in session.scalars(select(RightsRequestSink).where(RightsRequestSink.request_id.in_(chunk))):
                    by_request.setdefault(sink.request_id, []).append(sink)
                for extension in session.scalars(
                    select(RightsRequestExtension)
                    .where(RightsRequestExtension.request_id.in_(chunk))
                    .order_by(RightsRequestExtension.seq)
                ):
                    extended.setdefault(extension.request_id, []).append(extension)
            return [
                _view(
                    r, by_request.get(r.request_id, []), extended.get(r.request_id, []), contacts.get(r.request_id, [])
                )
                for r in rows
            ]

    def open_requests(self) -> list[RequestView]:
        return self.requests(states=[RequestState.OPEN, RequestState.ATTENTION])

    def overdue(self, now: datetime) -> list[RequestView]:
        return [r for r in self.open_requests() if r.is_overdue(now)]

    def pending_counts(self, now: datetime) -> tuple[dict[str, int], int]:
        """Requests not completed, by state, and how many of them are past their deadline (``RequestView.is_overdue``),
        counted in the database: the worker's metrics ask on every scrape."""
        pending = RightsRequest.state != RequestState.COMPLETED.value
        late = or_(
            and_(RightsRequest.extended_due_at.is_not(None), RightsRequest.extended_due_at < now),
            and_(RightsRequest.extended_due_at.is_(None), RightsRequest.due_at < now),
        )
        with Session(self._engine) as session:
            by_state = {
                str(state): int(count)
                for state, count in session.execute(
                    select(RightsRequest.state, func.count()).where(pending).group_by(RightsRequest.state)
                )
            }
            overdue = session.scalar(select(func.count()).select_from(RightsRequest).where(pending, late)) or 0
        return by_state, int(overdue)

    def extend(
        self, request_id: object, months: int, reason: str, by: Principal, at: datetime | None = None
    ) -> RequestView:
        """Extend a request by 1 or 2 more months (policy 9.1); extensions add up to two months at most, the
        deadline only ever moves later, and every reason is kept to tell the person, with who extended it."""
        reason = reason.strip()
        if len(reason) < 10:
            raise ValueError("an extension needs a reason the person can be told (at least 10 characters)")
        _check_reason(reason, "the extension's reason")
        if not 1 <= months <= MAX_EXTENSION_MONTHS:
            raise ValueError(f"an extension is 1 to {MAX_EXTENSION_MONTHS} months (policy 9.1), not {months}")
        moment = at or _now()
        with Session(self._engine) as session:
            row = session.get(RightsRequest, str(request_id), with_for_update=True)
            if row is None:
                raise KeyError(f"no rights request {request_id}")
            if row.state == RequestState.COMPLETED:
                raise ValueError(f"request {request_id} is already completed")
            already = row.extension_months or 0
            if already + months > MAX_EXTENSION_MONTHS:
                left = MAX_EXTENSION_MONTHS - already
                raise ValueError(
                    f"request {request_id} is already extended by {already} month(s); the policy allows "
                    f"{MAX_EXTENSION_MONTHS} in all (9.1), so "
                    + (f"at most {left} more" if left else "it cannot be extended again")
                )
            count = session.scalar(
                select(func.count())
                .select_from(RightsRequestExtension)
                .where(RightsRequestExtension.request_id == str(request_id))
            )
            session.add(
                RightsRequestExtension(
                    request_id=str(request_id),
                    seq=int(count or 0) + 1,
                    months=months,
                    reason=reason,
                    extended_by=by.actor,
                    principal=_json(by),
                    extended_at=moment,
                )
            )
            row.extended_due_at = extended_due_at(row.received_at, already + months)
            row.extension_months = already + months
            row.extension_reason = reason
            row.extended_by = by.actor
            row.extended_by_principal = _json(by)
            row.extended_at = moment
            session.commit()
        view = self.get(request_id)
        assert view is not None
        return view

    def mark_notice_due(self, request_id: object) -> None:
        """A restriction was lifted: the person must be told (policy 9.5). Set when it is lifted, not when asked:
        lifting a restriction that never stood tells the person nothing. Never set again once the notice was sent."""
        with Session(self._engine) as session:
            session.execute(
                update(RightsRequest)
                .where(RightsRequest.request_id == str(request_id), RightsRequest.notice_sent_at.is_(None))
                .values(notice_due=True)
            )
            session.commit()

    def mark_notice_sent(self, request_id: object, *, by: Principal, at: datetime | None = None) -> None:
        with Session(self._engine) as session:
            session.execute(
                update(RightsRequest)
                .where(RightsRequest.request_id == str(request_id))
                .values(notice_due=False, notice_sent_at=at or _now(), notice_sent_by=_json(by))
            )
            session.commit()

    # ---- per-sink status ----------------------------------------------------------------------------------

    def set_sink(
        self,
        status: RightsStatus,
        *,
        error: str | None = None,
        attempts: int | None = None,
        by: Principal | None = None,
    ) -> None:
        """Record what a sink answered (``by``: who carried the step out), then settle the request's state."""
        request_id = str(status.request_id)
        with Session(self._engine) as session:
            row = session.get(RightsRequestSink, (request_id, status.sink))
            if row is None:
                row = RightsRequestSink(request_id=request_id, sink=status.sink, attempts=0, evidence={})
                session.add(row)
            elif row.closed_as is not None and status.status not in _TERMINAL:
                return  # a person closed the step: a run that failed since (or was under way) reopens nothing
            row.status = status.status.value
            row.evidence = dict(status.evidence)
            row.updated_at = status.at
            row.last_error = error
            row.attempts = attempts if attempts is not None else (row.attempts or 0) + 1
            row.completed_by = _json(by) if status.status in _TERMINAL else None
            session.commit()
        self._settle(request_id, status.at)

    def _settle(self, request_id: str, at: datetime) -> bool:
        """The request's state from its steps' statuses; True when this call completed it."""
        completed = False
        with Session(self._engine) as session:
            request = session.get(RightsRequest, request_id)
            if request is None:
                return False
            statuses = list(
                session.scalars(select(RightsRequestSink.status).where(RightsRequestSink.request_id == request_id))
            )
            if statuses and all(SinkStatus(s) in _TERMINAL for s in statuses):
                if request.state != RequestState.COMPLETED:
                    request.state = RequestState.COMPLETED
                    request.completed_at = at
                    completed = True
            elif any(s == SinkStatus.FAILED for s in statuses):
                request.state = RequestState.ATTENTION
            else:
                request.state = RequestState.OPEN
            session.commit()
        return completed

    def close_step(
        self,
        request_id: object,
        sink: str,
        closed_as: StepClosure,
        reason: str,
        *,
        by: Principal,
        at: datetime | None = None,
    ) -> ClosedStep:
        """A person closes one step the product cannot carry out (done by hand elsewhere, or impossible), with the
        reason: the step counts as finished so the request can complete, its evidence is kept, and neither the retry
        timer nor a late answer of the sink reopens it. Raises ``KeyError`` (no such request), ``UnknownSink`` (the
        request has no such step) and ``ValueError`` (the step is finished already; no reason, or too long)."""
        reason = reason.strip()
        if len(reason) < CLOSE_REASON_MIN_CHARS:
            raise ValueError(
                f"closing a step by hand needs a reason (at least {CLOSE_REASON_MIN_CHARS} characters): what was done "
                "and where, or why it cannot be done"
            )
        if len(reason) > CLOSE_REASON_MAX_CHARS:
            raise ValueError(f"the reason is at most {CLOSE_REASON_MAX_CHARS} characters, not {len(reason)}")
        _check_reason(reason, "the reason")
        moment = at or _now()
        with Session(self._engine) as session:
            request = session.get(RightsRequest, str(request_id), with_for_update=True)
            if request is None:
                raise KeyError(f"no rights request {request_id}")
            row = session.get(RightsRequestSink, (str(request_id), sink), with_for_update=True)
            if row is None:
                steps = session.scalars(
                    select(RightsRequestSink.sink).where(RightsRequestSink.request_id == str(request_id))
                )
                raise UnknownSink(request_id, sink, sorted(steps))
            previous = SinkStatus(row.status)
            if row.closed_as is not None:
                who = _principal(row.closed_by)
                raise ValueError(
                    f"the {sink} step of request {request_id} was closed by hand already ({row.closed_as}"
                    + (f", by {who.display_name}" if who is not None else "")
                    + ")"
                )
            if previous in _TERMINAL:
                raise ValueError(
                    f"the {sink} step of request {request_id} is {previous.value} already: nothing to close"
                )
            row.status = _CLOSED_STATUS[closed_as].value
            row.closed_as = closed_as.value
            row.closed_reason = reason
            row.closed_by = _json(by)
            row.closed_at = moment
            row.completed_by = _json(by)
            session.commit()
        completed = self._settle(str(request_id), moment)
        view = self.get(request_id)
        assert view is not None
        return ClosedStep(view=view, previous=previous, completed=completed)

    def sink_status(self, request_id: object, sink: str) -> SinkStatus | None:
        with Session(self._engine) as session:
            value = session.scalar(
                select(RightsRequestSink.status).where(
                    RightsRequestSink.request_id == str(request_id), RightsRequestSink.sink == sink
                )
            )
        return None if value is None else SinkStatus(value)

    # ---- suppression state --------------------------------------------------------------------------------

    def state(self, subject_key: str) -> SuppressionRecord | None:
        with Session(self._engine) as session:
            text = session.scalar(select(RightsSubjectState.state).where(RightsSubjectState.subject_key == subject_key))
        return None if text is None else SuppressionRecord.model_validate_json(text)

    def save_state(self, record: SuppressionRecord) -> None:
        with Session(self._engine) as session:
            row = session.get(RightsSubjectState, record.subject_key)
            if row is None:
                session.add(
                    RightsSubjectState(
                        subject_key=record.subject_key, state=record.model_dump_json(), updated_at=record.updated_at
                    )
                )
            else:
                row.state = record.model_dump_json()
                row.updated_at = record.updated_at
            try:
                session.commit()
            except IntegrityError:  # a concurrent first write of the same subject: write over it
                session.rollback()
                self.save_state(record)

    def states(self) -> list[SuppressionRecord]:
        with Session(self._engine) as session:
            return [SuppressionRecord.model_validate_json(t) for t in session.scalars(select(RightsSubjectState.state))]

    # ---- audit --------------------------------------------------------------------------------------------

    def audit(self, record: AuditRecord) -> None:
        with Session(self._engine) as session:
            if session.get(RightsAuditEntry, str(record.audit_id)) is not None:
                return
            session.add(
                RightsAuditEntry(
                    audit_id=str(record.audit_id),
                    at=record.at,
                    actor=record.actor,
                    action=record.action,
                    subject_key=record.subject_key,
                    request_id=None if record.request_id is None else str(record.request_id),
                    detail=dict(record.detail),
                    principal=_json(record.principal),
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()

    def file_contact_while_restricted(self, dropped: AuditRecord) -> AuditRecord | None:
        """File the chain's drop of a restricted subject's new event (``dropped``, the processing audit line that names
        the subject) in the rights audit, under the restriction that stood when it arrived, so the DPO is told that the
        person wrote (policy 9.4 keeps what they sent out of processing; the person may be asking for something).

        Idempotent (the line's id derives from the drop's); None when the line is not such a drop."""
        if dropped.subject_key is None or dropped.detail.get("reason") != "subject_restricted":
            return None
        with Session(self._engine) as session:
            standing = session.scalars(
                select(RightsRequest.request_id)
                .where(
                    RightsRequest.subject_key == dropped.subject_key,
                    RightsRequest.kind == RightKind.RESTRICTION.value,
                    RightsRequest.received_at <= dropped.at,
                )
                .order_by(RightsRequest.received_at.desc())
                .limit(1)
            ).first()
        record = AuditRecord(
            audit_id=uuid5(_CONTACT_NAMESPACE, str(dropped.audit_id)),
            at=dropped.at,
            actor=dropped.actor,
            principal=dropped.principal,
            action=CONTACT_WHILE_RESTRICTED,
            subject_key=dropped.subject_key,
            request_id=None if standing is None else UUID(standing),
            event_id=dropped.event_id,
            detail={
                **({"event_id": str(dropped.event_id)} if dropped.event_id is not None else {}),
                **{k: dropped.detail[k] for k in ("channel", "received_at", "stage") if k in dropped.detail},
            },
        )
        self.audit(record)
        return record

    def audit_trail(self, request_id: object | None = None, subject_key: str | None = None) -> list[AuditRecord]:
        query = select(RightsAuditEntry).order_by(RightsAuditEntry.at, RightsAuditEntry.audit_id)
        if request_id is not None:
            query = query.where(RightsAuditEntry.request_id == str(request_id))
        if subject_key is not None:
            query = query.where(RightsAuditEntry.subject_key == subject_key)
        with Session(self._engine) as session:
            return [AuditRecord.model_validate(row, from_attributes=True) for row in session.scalars(query)]


def _json(principal: Principal | None) -> dict[str, Any] | None:
    return None if principal is None else principal.model_dump(mode="json")


def _principal(stored: dict[str, Any] | None) -> Principal | None:
    return None if stored is None else Principal.model_validate(stored)


def _contact_lines(session: Session, request_ids: Sequence[str]) -> dict[str, list[RightsAuditEntry]]:
    """The contacts filed under each of these restrictions and the DPO's reviews of them, oldest first."""
    lines: dict[str, list[RightsAuditEntry]] = {}
    for chunk in (request_ids[i : i + 500] for i in range(0, len(request_ids), 500)):
        query = (
            select(RightsAuditEntry)
            .where(
                RightsAuditEntry.request_id.in_(chunk),
                RightsAuditEntry.action.in_([CONTACT_WHILE_RESTRICTED, CONTACTS_REVIEWED]),
            )
            .order_by(RightsAuditEntry.at, RightsAuditEntry.audit_id)
        )
        for line in session.scalars(query):
            lines.setdefault(str(line.request_id), []).append(line)
    return lines


def _contacts(lines: Sequence[RightsAuditEntry]) -> tuple[tuple[RestrictedContactView, ...], int]:
    """The contacts among ``lines`` and how many came after the latest review."""
    contacts = tuple(
        RestrictedContactView(
            event_id=None if line.detail.get("event_id") is None else UUID(str(line.detail["event_id"])),
            channel=line.detail.get("channel"),
            received_at=_when(line.detail.get("received_at")),
            dropped_at=line.at,
        )
        for line in lines
        if line.action == CONTACT_WHILE_RESTRICTED
    )
    reviews = [_when(line.detail.get("through")) for line in lines if line.action == CONTACTS_REVIEWED]
    through = max((r for r in reviews if r is not None), default=None)
    return contacts, sum(1 for c in contacts if through is None or c.dropped_at > through)


def _closure(row: RightsRequestSink) -> ClosureView | None:
    if row.closed_as is None or row.closed_at is None:
        return None
    return ClosureView(
        closed_as=StepClosure(row.closed_as),
        reason=row.closed_reason or "",
        closed_by=_principal(row.closed_by),
        closed_at=row.closed_at,
    )


def _when(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _view(
    row: RightsRequest,
    sinks: list[RightsRequestSink],
    extensions: list[RightsRequestExtension],
    contact_lines: Sequence[RightsAuditEntry] = (),
) -> RequestView:
    contacts, unreviewed = _contacts(contact_lines)
    return RequestView(
        request_id=row.request_id,
        kind=RightKind(row.kind),
        subject_key=row.subject_key,
        issued_by=row.issued_by,
        issuer=_principal(row.issued_by_principal),
        extended_by=_principal(row.extended_by_principal),
        notice_sent_by=_principal(row.notice_sent_by),
        received_at=row.received_at,
        due_at=row.due_at,
        effective_due_at=row.extended_due_at or row.due_at,
        extension_reason="; ".join(e.reason for e in extensions) or row.extension_reason,
        extensions=tuple(
            ExtensionView(
                months=e.months,
                reason=e.reason,
                extended_by=e.extended_by,
                principal=_principal(e.principal),
                extended_at=e.extended_at,
            )
            for e in extensions
        ),
        state=RequestState(row.state),
        completed_at=row.completed_at,
        published_at=row.published_at,
        notice_due=row.notice_due,
        sinks=tuple(
            SinkView(
                sink=s.sink,
                status=SinkStatus(s.status),
                attempts=s.attempts,
                error=s.last_error,
                evidence=s.evidence or {},
                updated_at=s.updated_at,
                completed_by=_principal(s.completed_by),
                closed=_closure(s),
            )
            for s in sorted(sinks, key=lambda s: s.sink)
        ),
        contacts_while_restricted=contacts,
        contacts_unreviewed=unreviewed,
    )
