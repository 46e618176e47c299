"""The DPO's HTTP API (``/v1/dpo``): the same requests as ``leadpipe dpo``, for the DPO's principal.

Reading requests needs ``rights:read``; issuing one, extending it, recording a notice or closing a step by hand
``rights:issue``; downloading an export ``rights:export`` (``pipeline/http/auth.py`` enforces, logs and counts). Every
refusal is also written to the rights audit log (with the principal when one authenticated), so the log shows every
attempt, admitted or not. Every request, extension, notice and closed step names the principal who made it. E-mails and
phones arrive in the body (never in the URL, which proxies log) and are never echoed back, not even by a refusal of the
body's shape (``NoStoreRoute``). A field the API does not know, or one the request's kind does not take, is refused (422
naming it), never left out: a mistyped ``old_adress`` must not become the default. A caller may choose the request's id
(``request_id``): the same call repeated after a lost answer is answered 200 ``replayed`` with what was recorded, and
another request under that id is 409 ``duplicate_request_id``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline import tracing
from pipeline.db import ensure_schema
from pipeline.http.auth import Permission, Principal, require
from pipeline.http.caching import NoStoreRoute
from pipeline.http.deps import get_publisher, get_runtime
from pipeline.kafka.producer import PublishError
from pipeline.logging import get_logger, personal_data_in
from pipeline.models.common import Purpose
from pipeline.models.rights import AuditRecord, RightKind, SinkStatus
from pipeline.rights.bodies import OldAddress
from pipeline.rights.commands import AmbiguousSubject, ChangeError, IdentityError, RequestFieldError
from pipeline.rights.dpo import DpoTools, DuplicateRequestId, FoundBy, RequestOut, request_out
from pipeline.rights.effects.export import export_expired
from pipeline.rights.tracker import (
    CLOSE_REASON_MAX_CHARS,
    CLOSE_REASON_MIN_CHARS,
    RequestTracker,
    RequestView,
    StepClosure,
    UnknownSink,
)

log = get_logger(__name__)

router = APIRouter(prefix="/v1/dpo", tags=["dpo"], route_class=NoStoreRoute)

#: What the API accepts; retention expiry is issued by the sweep only.
RequestKind = Literal[
    "erasure",
    "objection",
    "objection_lifted",
    "restriction",
    "unrestriction",
    "rectification",
    "consent_withdrawal",
    "access",
    "portability",
]


def _audit_refusal(request: Request, reason: str, principal: Principal | None) -> None:
    """Every refused call to this router goes to the rights audit log too (no credential, no personal data)."""
    record = AuditRecord.new(
        "unauthenticated" if principal is None else principal.actor,
        "rights.api_refused",
        principal=principal,
        detail={"reason": reason, "method": request.method, "path": request.url.path},
    )
    try:
        RequestTracker(get_runtime(request).engine).audit(record)
    except Exception:  # the refusal stands even if the audit table is unreachable; the log line has it
        log.exception("rights.audit_refusal_failed")


Reader = Annotated[Principal, Depends(require(Permission.RIGHTS_READ, on_refused=_audit_refusal))]
Issuer = Annotated[Principal, Depends(require(Permission.RIGHTS_ISSUE, on_refused=_audit_refusal))]
Exporter = Annotated[Principal, Depends(require(Permission.RIGHTS_EXPORT, on_refused=_audit_refusal))]


class RightsRequestIn(BaseModel):
    """One request about one person, named by exactly one of e-mail or phone (an erasure also by visitor id)."""

    model_config = ConfigDict(extra="forbid")

    kind: RequestKind
    request_id: UUID | None = Field(
        default=None,
        description="Your own id for this request (a UUID), so that a call repeated after a lost answer records "
        "nothing twice: the same request again is answered 200 with replayed true; another under this id is 409",
    )
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    region: str | None = Field(
        default=None, max_length=100, description="Country of a national phone: an ISO code or a name (DE, Spain)"
    )
    subject_key: str | None = Field(
        default=None,
        max_length=100,
        description="With email/phone: the subject key the request is for, when several subjects hold it",
    )
    visitor_id: str | None = Field(
        default=None,
        max_length=200,
        description="erasure only: a website visitor's cookie id (anonymousId), to erase the device's history",
    )
    purposes: list[Purpose] = Field(default_factory=list, description="consent_withdrawal: default all on consent")
    changes: dict[str, str | None] = Field(default_factory=dict, description="rectification: field -> new value")
    old_address: OldAddress | None = Field(
        default=None,
        description="rectification of the e-mail: forget the old address (default) or keep it as an alias",
    )
    password: str | None = Field(
        default=None, min_length=12, max_length=200, description="access: the PDF password; generated when omitted"
    )


class SubmittedOut(BaseModel):
    request_id: UUID
    kind: RightKind
    subject_key: str
    due_at: datetime
    password: str | None = Field(default=None, description="access only: shown once; send it by another channel")
    related_subject_keys: list[str] = Field(
        default_factory=list,
        description="Other subjects in the CRM holding a phone number of this person's, or the e-mail or phone "
        "named: this request does not reach them; if they are this person (an address and, apart, calls or messages "
        "from the number), request for them too",
    )
    named_subject_key: str | None = Field(
        default=None, description="The key of the e-mail or phone as named (subject_key is the key acted on)"
    )
    found_by: FoundBy | None = Field(
        default=None,
        description="How subject_key was found: the named key itself, an alias of it, the one CRM subject holding "
        "the e-mail or phone (nobody held under its own key), or the subject_key given",
    )
    in_crm: bool | None = Field(
        default=None,
        description="Whether the CRM holds a person under subject_key; false: HubSpot is still searched, and the "
        "request runs all the same",
    )
    replayed: bool = Field(
        default=False,
        description="The request_id given was recorded already for this same request (answered 200): nothing new "
        "was recorded",
    )


def _names_nobody(reason: str) -> str:
    """A reason a person writes is kept with the request's evidence: refused (422, field ``reason``, the value never
    quoted) when it names an e-mail address or a phone number (``personal_data_in``)."""
    found = personal_data_in(reason)
    if found is not None:
        raise ValueError(f"names {found}; it is kept with the request's evidence, so it must name nobody")
    return reason


class ExtendIn(BaseModel):
    months: int = Field(ge=1, le=2)
    reason: str = Field(min_length=10, max_length=2000)

    _reason_names_nobody = field_validator("reason")(_names_nobody)


class CloseStepIn(BaseModel):
    """A step of a request closed by hand, and why."""

    model_config = ConfigDict(extra="forbid")

    closed_as: StepClosure = Field(
        description="done_by_hand: carried out outside leadpipe (e.g. the contact deleted in HubSpot); "
        "cannot_be_done: it never will be (HubSpot refuses for good, the sink was decommissioned)"
    )
    reason: str = Field(
        min_length=CLOSE_REASON_MIN_CHARS,
        max_length=CLOSE_REASON_MAX_CHARS,
        description="What was done and where, or why it cannot be done (a ticket number helps); no personal data is "
        "needed, so name none (a reason naming an e-mail address or a phone number is refused)",
    )

    _reason_names_nobody = field_validator("reason")(_names_nobody)


_schema_ready: set[int] = set()


def _tools(request: Request) -> DpoTools:
    runtime = get_runtime(request)
    if id(runtime) not in _schema_ready:
        ensure_schema(runtime.engine)
        _schema_ready.add(id(runtime))
    return DpoTools(runtime, get_publisher(request), migrate=False)


@router.post("/requests", status_code=202, response_model=SubmittedOut)
async def submit_request(body: RightsRequestIn, request: Request, response: Response, actor: Issuer) -> SubmittedOut:
    """Record, audit and publish a request in the caller's name; 202 once the broker confirmed it (the sinks
    follow), 200 when ``request_id`` names this same request recorded already."""
    kind = RightKind(body.kind)

    def run() -> SubmittedOut:
        submitted = _tools(request).request(
            kind,
            by=actor,
            email=body.email,
            phone=body.phone,
            region=body.region,
            visitor_id=body.visitor_id,
            subject_key=body.subject_key,
            purposes=tuple(body.purposes),
            rectify=body.changes or None,
            old_address=body.old_address,
            password=body.password,
            request_id=body.request_id,
        )
        command = submitted.command
        return SubmittedOut(
            request_id=command.request_id,
            kind=command.kind,
            subject_key=command.subject_key,
            due_at=command.due_at,
            password=submitted.password,
            related_subject_keys=list(submitted.related),
            named_subject_key=submitted.named_key,
            found_by=submitted.found_by if submitted.named_key is not None else None,
            in_crm=submitted.in_crm,
            replayed=submitted.replayed,
        )

    if not tracing.enabled():
        answer = await _submitted(run)
        response.status_code = 200 if answer.replayed else 202
        return answer
    span = tracing.start_request("POST", f"{router.prefix}/requests", request.headers.get(tracing.TRACEPARENT))
    try:
        with tracing.current(span):  # the command published in ``run`` carries this span's context
            answer = await _submitted(run)
    except HTTPException as exc:
        span.set_attribute("http.response.status_code", exc.status_code)
        tracing.end(span, failed=str(exc.status_code) if exc.status_code >= 500 else None)
        raise
    response.status_code = 200 if answer.replayed else 202
    span.set_attribute("http.response.status_code", response.status_code)
    tracing.end(span)
    return answer


async def _submitted(run: Callable[[], SubmittedOut]) -> SubmittedOut:
    """``run`` in a thread, its refusals as HTTP errors."""
    try:
        return await asyncio.to_thread(run)
    except AmbiguousSubject as exc:
        raise HTTPException(
            422,
            {
                "reason": "ambiguous_subject",
                "field": exc.field,
                "message": f"{exc} (subject_key)",
                "candidate_subject_keys": list(exc.candidates),
            },
        ) from None
    except DuplicateRequestId as exc:
        raise HTTPException(
            409,
            {
                "reason": "duplicate_request_id",
                "field": exc.field,
                "message": str(exc),
                "request_id": exc.view.request_id,
            },
        ) from None
    except IdentityError as exc:
        raise HTTPException(422, {"reason": "invalid_identity", "field": exc.field, "message": str(exc)}) from None
    except RequestFieldError as exc:
        raise HTTPException(422, {"reason": "invalid_request", "field": exc.field, "message": str(exc)}) from None
    except ChangeError as exc:
        raise HTTPException(
            422, {"reason": "invalid_change", "field": f"changes.{exc.field}", "message": str(exc)}
        ) from None
    except ValueError as exc:
        raise HTTPException(422, {"reason": "invalid_request", "message": str(exc)}) from None
    except PublishError:
        raise HTTPException(
            503, {"reason": "not_published", "message": "recorded; the broker did not confirm"}
        ) from None


@router.get("/requests", response_model=list[RequestOut])
async def list_requests(
    request: Request,
    _actor: Reader,
    state: Annotated[Literal["open", "overdue", "all"], "which requests"] = "open",
) -> list[RequestOut]:
    """Open requests (default: not completed, and restrictions whose person made contact since it was last reviewed),
    only overdue ones, or all, oldest first."""

    def run() -> list[RequestOut]:
        tools = _tools(request)
        views = tools.tracker.requests() if state == "all" else tools.open_requests()
        out = [request_out(v) for v in views]
        return [o for o in out if o.overdue] if state == "overdue" else out

    return await asyncio.to_thread(run)


def _view_or_404(tools: DpoTools, request_id: UUID) -> RequestView:
    view = tools.get(request_id)
    if view is None:
        raise HTTPException(404, {"reason": "unknown_request", "message": f"no request {request_id}"})
    return view


@router.get("/requests/{request_id}", response_model=RequestOut)
async def get_request(request_id: UUID, request: Request, _actor: Reader) -> RequestOut:
    return await asyncio.to_thread(lambda: request_out(_view_or_404(_tools(request), request_id)))


@router.get("/requests/{request_id}/audit", response_model=list[AuditRecord])
async def request_audit(request_id: UUID, request: Request, _actor: Reader) -> list[AuditRecord]:
    """The request's audit trail, oldest first: received, published, each sink's outcome on every run (failures and
    retries included), extensions, notices, downloads, contacts while restricted; who did each, never personal data
    (``leadpipe dpo show`` prints the same)."""

    def run() -> list[AuditRecord]:
        tools = _tools(request)
        _view_or_404(tools, request_id)
        return tools.tracker.audit_trail(request_id=request_id)

    return await asyncio.to_thread(run)


async def _change(
    request: Request, request_id: UUID, change: Callable[[DpoTools], RequestView], refused: str
) -> RequestOut:
    """Apply a DPO's change to a known request; a change the request does not allow is a 422 with ``refused``."""

    def run() -> RequestOut:
        tools = _tools(request)
        _view_or_404(tools, request_id)
        return request_out(change(tools))

    try:
        return await asyncio.to_thread(run)
    except ValueError as exc:
        raise HTTPException(422, {"reason": refused, "message": str(exc)}) from None


@router.post("/requests/{request_id}/extend", response_model=RequestOut)
async def extend_request(request_id: UUID, body: ExtendIn, request: Request, actor: Issuer) -> RequestOut:
    return await _change(
        request,
        request_id,
        lambda tools: tools.extend(request_id, body.months, body.reason, by=actor),
        "invalid_extension",
    )


@router.post("/requests/{request_id}/notice-sent", response_model=RequestOut)
async def record_notice(request_id: UUID, request: Request, actor: Issuer) -> RequestOut:
    return await _change(
        request, request_id, lambda tools: tools.notice_sent(request_id, by=actor), "no_notice_for_kind"
    )


@router.post("/requests/{request_id}/contacts-reviewed", response_model=RequestOut)
async def record_contacts_reviewed(request_id: UUID, request: Request, actor: Issuer) -> RequestOut:
    """Record that the contacts a restricted person made (``contacts_while_restricted``) were looked at: the
    restriction leaves the open list until the person makes contact again."""
    return await _change(
        request, request_id, lambda tools: tools.contacts_reviewed(request_id, by=actor), "no_contacts_to_review"
    )


@router.post("/requests/{request_id}/sinks/{sink}/close", response_model=RequestOut)
async def close_step(
    request_id: UUID, sink: Annotated[str, PathParam(max_length=32)], body: CloseStepIn, request: Request, actor: Issuer
) -> RequestOut:
    """Close one step (sink) of a request by hand, in the caller's name and with the reason: the request completes
    once every step is done or closed, and neither the retry timer nor a late answer of the sink reopens it. 404
    ``unknown_sink`` when the request has no such step; 422 ``step_not_closable`` when it is finished already; 503
    when the broker did not confirm the audit record (the step is closed all the same)."""
    try:
        return await _change(
            request,
            request_id,
            lambda tools: tools.close_step(request_id, sink, body.closed_as, body.reason, by=actor),
            "step_not_closable",
        )
    except UnknownSink as exc:
        raise HTTPException(404, {"reason": "unknown_sink", "message": str(exc), "sinks": list(exc.steps)}) from None
    except PublishError:  # recorded, and audited in the tracker: only the audit topic's copy is missing
        raise HTTPException(
            503,
            {
                "reason": "audit_not_published",
                "message": "the step is closed; the broker did not confirm its audit record (the trail has it)",
            },
        ) from None


@router.get("/requests/{request_id}/export", response_class=FileResponse)
async def download_export(request_id: UUID, request: Request, actor: Exporter) -> FileResponse:
    """The export file of a completed access (PDF) or portability (JSON) request, given once its download is audited
    in the caller's name (503 when the broker did not confirm the audit record).

    Refused (410) once the export is older than ``rights_export_max_age_h`` or its person was erased after the
    request (the file is deleted then, if an erasure or the sweep has not already done so).
    """
    settings = get_runtime(request).settings
    max_age = timedelta(hours=settings.rights_export_max_age_h)

    def find() -> tuple[RequestView, Path | None, str | None]:
        tools = _tools(request)
        view = _view_or_404(tools, request_id)
        export = next((s for s in view.sinks if s.sink == "export" and s.status is SinkStatus.DONE), None)
        if export is None or "path" not in export.evidence:
            return view, None, None
        path = Path(str(export.evidence["path"]))
        if not path.is_file():  # an erasure deletes its person's exports: say so, as when the file is still there
            return view, path, "subject_erased" if _erased_since(tools.tracker, view) else "export_gone"
        if _erased_since(tools.tracker, view):
            path.unlink(missing_ok=True)
            return view, path, "subject_erased"
        if export_expired(path, datetime.now(UTC), max_age):
            path.unlink(missing_ok=True)
            return view, path, "export_expired"
        return view, path, None

    view, path, gone = await asyncio.to_thread(find)
    if view.kind not in (RightKind.ACCESS, RightKind.PORTABILITY):  # "not produced yet" would have a DPO wait forever
        raise HTTPException(
            404,
            {
                "reason": "no_export",
                "message": f"a {view.kind.value} request has no export (access and portability do)",
            },
        )
    if path is None:
        raise HTTPException(409, {"reason": "export_not_ready", "message": "the export has not been produced yet"})
    if gone is not None:
        raise HTTPException(410, {"reason": gone, "message": _GONE[gone]})
    try:
        await asyncio.to_thread(_tools(request).export_downloaded, view, by=actor, file=path.name)
    except PublishError:
        raise HTTPException(
            503, {"reason": "audit_not_published", "message": "the download could not be audited; try again shortly"}
        ) from None
    media = "application/pdf" if path.suffix == ".pdf" else "application/json"
    return FileResponse(path, media_type=media, filename=f"personal-data-{request_id}{path.suffix}")


_GONE = {
    "export_gone": "the export file was removed (delivered, expired or erased)",
    "subject_erased": "the person was erased after this request; the export was deleted",
    "export_expired": "the export is older than the configured maximum age and was deleted; issue a new request",
}


def _erased_since(tracker: RequestTracker, view: RequestView) -> bool:
    """Whether the request's person was erased (or an erasure of them was requested) after the request came in."""
    state = tracker.state(view.subject_key)
    if state is not None and state.erased and state.erased_at is not None and state.erased_at >= view.received_at:
        return True
    erasures = tracker.requests(subject_key=view.subject_key, kinds=[RightKind.ERASURE])
    return any(e.received_at >= view.received_at for e in erasures)
