"""The console's pages (``router``) and what they need on the app (``install``).

Every page declares the permission it needs with ``require_session`` (``pipeline/http/auth.py``), so the permission
matrix test reads it like any API route, and only a browser session opens a page: the console adds no sign-in of its
own. A refusal is answered as a page: no session sends the browser to ``/login`` (and back), a role that may not see
the page gets a 403 page that says which permission it needs. Changes are forms carrying the session's CSRF token.

The pages read and act through the services the API and the CLI use, never their own queries: the CRM's read model
(sales see a restricted subject withheld, exactly as ``GET /v1/crm/...``), the review service (decisions carry the
reviewer's principal), and the DPO's tools (requests carry the DPO's principal).
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipeline.console import metrics as console_metrics
from pipeline.crm.api import read_model
from pipeline.crm.views import LeadQuery, LeadView
from pipeline.http.auth import CSRF_FORM_FIELD, require_session
from pipeline.http.deps import get_publisher, get_runtime
from pipeline.http.health import metrics_text
from pipeline.identity.permissions import Permission, allowed, permissions_of
from pipeline.identity.sessions import SessionPrincipal
from pipeline.kafka.producer import Outgoing, PublishError
from pipeline.logging import get_logger
from pipeline.models.common import Channel, Purpose
from pipeline.models.identity import Principal
from pipeline.models.rights import AuditRecord, RightKind
from pipeline.review.service import ReviewError, ReviewService
from pipeline.rights.bodies import RECTIFIABLE_FIELDS, OldAddress
from pipeline.rights.dpo import DpoTools, RequestOut, request_out
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.sweep import RetentionSweep
from pipeline.rights.tracker import (
    CLOSE_REASON_MAX_CHARS,
    CLOSE_REASON_MIN_CHARS,
    RequestTracker,
    RequestView,
    StepClosure,
    UnknownSink,
)
from pipeline.topics import AUDIT_TOPIC

log = get_logger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_PATH = "/static"

#: The rights the console's form issues; rectification has its own form (``/dpo/rectify``), retention expiry is the
#: sweep's.
FORM_RIGHTS = tuple(k for k in RightKind if k not in (RightKind.RECTIFICATION, RightKind.RETENTION_EXPIRY))
#: What the DPO must confirm before a right is issued, as ``leadpipe dpo`` asks it.
CONFIRMATIONS = {RightKind.ERASURE: "Erasure cannot be undone. Erase this person everywhere?"}

#: The pages of the navigation, each shown to whoever holds its permission.
NAVIGATION = (
    ("/leads", "Leads", Permission.CRM_READ),
    ("/review", "Spam review", Permission.REVIEW_READ),
    ("/dpo", "Privacy requests", Permission.RIGHTS_READ),
    ("/dpo/retention", "Retention", Permission.RETENTION_RUN),
    ("/charts", "Charts", Permission.CRM_READ),
    ("/charts", "Charts", Permission.RIGHTS_READ),
    ("/charts", "Charts", Permission.REVIEW_READ),
    ("/charts", "Charts", Permission.DLQ_READ),
)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["countdown"] = countdown
    return env


def when(value: datetime | None) -> str:
    """A time as people read it, in UTC."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def countdown(due: datetime, now: datetime | None = None) -> str:
    """How long until a deadline, or how long past it ("due in 12 days", "overdue by 3 h")."""
    left = due - (now or datetime.now(UTC))
    span = abs(left)
    amount = f"{span.days} days" if span >= timedelta(days=2) else f"{max(1, int(span.total_seconds() // 3600))} h"
    return f"due in {amount}" if left >= timedelta(0) else f"overdue by {amount}"


templates = Jinja2Templates(env=_environment())


#: The console's pages send their address to this site only. Not ``no-referrer`` (the API's): under it a browser
#: sends ``Origin: null`` with a form's POST, and the CSRF check refuses a null origin as another site's.
CONSOLE_REFERRER_POLICY = "same-origin"


class ConsoleRoute(APIRoute):
    """A console page: a refusal is a page (or a redirect to sign in), not the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except HTTPException as exc:
                response = await _refusal_page(request, exc)
            response.headers["Referrer-Policy"] = CONSOLE_REFERRER_POLICY
            return response

        return page_handler


router = APIRouter(route_class=ConsoleRoute, include_in_schema=False, tags=["console"])

Session = SessionPrincipal
Anyone = Annotated[Session, Depends(require_session())]
SalesReader = Annotated[Session, Depends(require_session(Permission.CRM_READ))]
LeadExporter = Annotated[Session, Depends(require_session(Permission.CRM_EXPORT_LEADS))]
QueueReader = Annotated[Session, Depends(require_session(Permission.REVIEW_READ))]
Decider = Annotated[Session, Depends(require_session(Permission.REVIEW_DECIDE))]
RightsReader = Annotated[Session, Depends(require_session(Permission.RIGHTS_READ))]
RightsIssuer = Annotated[Session, Depends(require_session(Permission.RIGHTS_ISSUE))]
SweepPreviewer = Annotated[Session, Depends(require_session(Permission.RETENTION_RUN))]


def install(app: FastAPI) -> None:
    """The console's static files (its stylesheet, its script and the vendored htmx) on ``app``."""
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="console-static")
    app.state.public_routes[STATIC_PATH] = "the console's stylesheet and scripts: no data"


async def _refusal_page(request: Request, exc: HTTPException) -> Response:
    """A browser (``Accept: text/html``) gets a page or the way to sign in; any other client the API's JSON refusal."""
    if "text/html" not in request.headers.get("accept", ""):
        return await http_exception_handler(request, exc)
    detail: dict[str, Any] = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
    if exc.status_code == 401 and request.app.state.sign_in is not None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return templates.TemplateResponse(
        request,
        "refused.html",
        {
            "title": "Not signed in" if exc.status_code == 401 else "Refused",
            "status": exc.status_code,
            "reason": str(detail.get("reason", "refused")),
            "message": str(detail.get("message", "")),
            "sign_in": request.app.state.sign_in is not None,
            "nav": [],
            "session": None,
        },
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _page(request: Request, session: Session, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    held = permissions_of(session.principal.roles)
    context.update(
        session=session,
        principal=session.principal,
        csrf_field=CSRF_FORM_FIELD,
        nav=list(dict.fromkeys((path, label) for path, label, needed in NAVIGATION if needed in held)),
        current=max((p for p, _l, _n in NAVIGATION if request.url.path.startswith(p)), key=len, default=None),
        can={p.name.lower() for p in held},
        path=request.url.path,
    )
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def _not_found(request: Request, session: Session, what: str) -> HTMLResponse:
    return _page(request, session, "not_found.html", status_code=404, title="Not found", what=what)


# ---- home ------------------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, session: Anyone) -> Response:
    """The first page this person's roles open, or a page saying the console has nothing for them."""
    held = permissions_of(session.principal.roles)
    for path, _label, needed in NAVIGATION:
        if needed in held:
            return RedirectResponse(path, status_code=303)
    return _page(request, session, "home.html", title="leadpipe")


# ---- charts ----------------------------------------------------------------------------------------------------

#: Days the leads chart covers, and its drawing size (SVG user units).
CHART_DAYS = 14
CHART_W, CHART_H = 720, 220


@dataclass(frozen=True)
class Bar:
    """One segment of a stacked bar, placed."""

    x: float
    y: float
    width: float
    height: float
    label: str
    colour: str


#: Colours told apart by people with the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def stacked_bars(
    columns: list[str], series: list[str], counts: dict[tuple[str, str], int]
) -> tuple[list[Bar], int, dict[str, str]]:
    """Bars for ``counts[(column, series)]``, one stacked bar per column: (the bars, the tallest total, colours)."""
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    top = max([sum(counts.get((c, n), 0) for n in series) for c in columns] + [1])
    step = CHART_W / max(1, len(columns))
    bars = []
    for i, column in enumerate(columns):
        base = float(CHART_H)
        for name in series:
            count = counts.get((column, name), 0)
            if not count:
                continue
            height = CHART_H * count / top
            base -= height
            width = min(step - 4, 80.0)
            x = i * step + (step - width) / 2
            bars.append(Bar(x, base, width, height, f"{column} {name}: {count}", colours[name]))
    return bars, top, colours


@router.get("/charts", response_class=HTMLResponse)
async def charts(request: Request, session: Anyone) -> HTMLResponse:
    """Leads per channel per day (sales, DPO), rights requests answered on time or late (DPO), spam share per channel
    (reviewers, sales) and sink health (DPO, admins), drawn on the server as SVG, each with its numbers as a table:
    the first two from the CRM's read model and the request tracker, the last two from the served metrics."""
    held = permissions_of(session.principal.roles)
    context: dict[str, Any] = {}
    now = datetime.now(UTC)
    if Permission.CRM_READ in held:
        first = (now - timedelta(days=CHART_DAYS - 1)).date()
        since = datetime.combine(first, time(), UTC)
        rows = await asyncio.to_thread(read_model(request).leads_per_day, since)
        days = [(first + timedelta(days=i)).isoformat() for i in range(CHART_DAYS)]
        channels = sorted({channel for _, channel, _ in rows})
        counts = {(day.isoformat(), channel): count for day, channel, count in rows}
        bars, top, colours = stacked_bars(days, channels, counts)
        context["leads"] = {"bars": bars, "top": top, "colours": colours, "days": days, "counts": counts}
    if Permission.RIGHTS_READ in held:
        views = await asyncio.to_thread(_tools(request).tracker.requests)
        outcome: dict[tuple[str, str], int] = {}
        for view in views:
            if view.completed_at is not None:
                state = "answered on time" if view.completed_at <= view.effective_due_at else "answered late"
            else:
                state = "open, overdue" if view.is_overdue(now) else "open, in time"
            outcome[(view.kind.value, state)] = outcome.get((view.kind.value, state), 0) + 1
        kinds = sorted({kind for kind, _ in outcome})
        bars, top, colours = stacked_bars(kinds, list(RIGHT_STATES), outcome)
        context["rights"] = {"bars": bars, "top": top, "colours": colours, "kinds": kinds, "counts": outcome}
    spam_readers = {Permission.REVIEW_READ, Permission.CRM_READ}
    sink_readers = {Permission.DLQ_READ, Permission.RIGHTS_READ}
    if held & (spam_readers | sink_readers):
        urls = get_runtime(request).settings.console_metrics_urls
        found = await console_metrics.scrape(urls, await asyncio.to_thread(metrics_text, request))
        context["metrics_unreachable"] = found.unreachable
        context["metrics_configured"] = bool(urls)
        if held & spam_readers:
            counts = console_metrics.spam_share(found)
            channels = sorted({channel for channel, _ in counts})
            bars, top, colours = stacked_bars(channels, list(console_metrics.CHANNEL_OUTCOMES), counts)
            context["spam"] = {
                "bars": bars,
                "top": top,
                "colours": colours,
                "channels": channels,
                "counts": counts,
                "shares": console_metrics.shares(counts),
            }
        if held & sink_readers:
            health = console_metrics.sink_health(found)
            names = sorted({sink for sink, _ in health})
            bars, top, colours = stacked_bars(names, list(console_metrics.SINK_SERIES), health)
            context["sinks"] = {"bars": bars, "top": top, "colours": colours, "names": names, "counts": health}
    return _page(
        request, session, "charts.html", title="Charts", width=CHART_W, height=CHART_H, states=RIGHT_STATES, **context
    )


RIGHT_STATES = ("answered on time", "answered late", "open, in time", "open, overdue")


# ---- sales -----------------------------------------------------------------------------------------------------


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


@router.get("/leads", response_class=HTMLResponse)
async def leads(
    request: Request,
    *,
    session: SalesReader,
    q: Annotated[str | None, Query(max_length=200)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    phone: Annotated[str | None, Query(max_length=40)] = None,
    company: Annotated[str | None, Query(max_length=200)] = None,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    since: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=10)] = None,
) -> HTMLResponse:
    """The lead inbox, newest first, filtered by name, e-mail, phone, company, channel and arrival day."""
    first, last = _day(since), _day(until)
    query = LeadQuery(
        name=_blank(q),
        email=_blank(email),
        phone=_blank(phone),
        company=_blank(company),
        channel=_blank(channel),
        received_from=None if first is None else datetime.combine(first, time(), UTC),
        received_before=None if last is None else datetime.combine(last + timedelta(days=1), time(), UTC),
    )
    rows = await asyncio.to_thread(read_model(request).leads, query)
    if not allowed(session.principal, Permission.CRM_READ_RESTRICTED):
        rows = [row.for_sales() for row in rows]
    form = {"q": q or "", "email": email or "", "phone": phone or "", "company": company or ""}
    form.update(channel=channel or "", since=since or "", until=until or "")
    template = "leads_rows.html" if request.headers.get("hx-request") == "true" else "leads.html"
    filtered = any(form.values())
    newest = max((row.received_at for row in rows), default=datetime.now(UTC))
    return _page(
        request,
        session,
        template,
        title="Leads",
        rows=rows,
        form=form,
        channels=[c.value for c in Channel],
        live_since=None if filtered else newest.isoformat(),
    )


#: How often the live inbox asks the CRM for new leads, and how long one stream lasts before the browser reconnects.
STREAM_POLL_S = 2.0
STREAM_MAX_S = 600.0


def _sse(event: str, html: str) -> str:
    """One server-sent event whose data is HTML (every line of it a ``data:`` line)."""
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"


@router.get("/leads/stream", response_class=StreamingResponse)
async def leads_stream(
    request: Request,
    session: SalesReader,
    since: Annotated[datetime, Query(description="The newest lead the page shows")],
) -> StreamingResponse:
    """New leads as they arrive (server-sent events, each the rows to put on top of the inbox), withheld as on the
    page; the browser's EventSource reconnects after ``STREAM_MAX_S``, or when the connection drops."""
    read = read_model(request)
    full = allowed(session.principal, Permission.CRM_READ_RESTRICTED)
    env = templates.env
    rows_template = env.get_template("leads_rows.html")

    async def events() -> AsyncIterator[str]:
        shown = newest = since  # the page shows leads up to ``since``: only later ones are new
        sent: set[uuid.UUID] = set()
        started = asyncio.get_running_loop().time()
        yield "retry: 3000\n\n"
        while asyncio.get_running_loop().time() - started < STREAM_MAX_S:
            if await request.is_disconnected():
                return
            found = await asyncio.to_thread(read.leads, LeadQuery(received_from=newest, limit=200))
            fresh = [
                row if full else row.for_sales()
                for row in found
                if row.event_id not in sent and row.received_at > shown
            ]
            if fresh:
                sent.update(row.event_id for row in fresh)
                newest = max(newest, *(row.received_at for row in fresh))
                yield _sse("leads", rows_template.render(rows=fresh))
            await asyncio.sleep(STREAM_POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


#: The export's columns: who, how to reach them, and on what the contact rests.
CSV_COLUMNS = ("first_name", "last_name", "email", "phone", "company", "position", "channel", "received_at", "purposes")


def _cell(value: str) -> str:
    """A cell a spreadsheet shows as text: a leading = + - @ (or tab, CR) would make it a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def leads_csv(rows: list[LeadView]) -> str:
    """One line per person (their newest lead), with a header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in {row.subject_key: row for row in reversed(rows)}.values():
        purposes = " ".join(f"{p.purpose}:{p.legal_basis}" for p in row.purposes)
        values = [getattr(row, c) or "" for c in CSV_COLUMNS[:7]] + [row.received_at.isoformat(), purposes]
        writer.writerow([_cell(str(v)) for v in values])
    return out.getvalue()


def export_audit(by: Principal, rows: list[LeadView], name: str, at: datetime) -> list[Outgoing]:
    """What the audit topic learns of a CSV export: one record of the export (who, when, the file, how many people)
    and one per exported person under their subject key, all sharing the export's id, so that the audit says whose
    data left for the mailing tools and when (a later objection or erasure can be told to those who received it)."""
    export_id = str(uuid.uuid4())
    people = list(dict.fromkeys(row.subject_key for row in rows))
    detail = {"export_id": export_id, "file": name, "use": "marketing"}
    summary = AuditRecord.new(
        by.actor, "crm.leads_exported", at=at, principal=by, detail={**detail, "people": len(people)}
    )
    each = [
        AuditRecord.new(by.actor, "crm.lead_exported", at=at, principal=by, subject_key=key, detail=detail)
        for key in people
    ]
    return [Outgoing(AUDIT_TOPIC, None, summary), *(Outgoing(AUDIT_TOPIC, r.subject_key, r) for r in each)]


@router.get("/export/leads.csv", response_class=PlainTextResponse)
async def leads_export(request: Request, session: LeadExporter) -> Response:
    """The leads that may be contacted for marketing now, as CSV (sales' mailing tools read it); given out only once
    the broker confirmed its audit records (``export_audit``), else a 503 page and no file."""
    now = datetime.now(UTC)
    rows = await asyncio.to_thread(read_model(request).leads, LeadQuery(marketing_at=now, limit=10_000))
    name = f"leads-marketing-{now:%Y%m%d}.csv"
    try:
        await asyncio.to_thread(get_publisher(request).publish, export_audit(session.principal, rows, name, now))
    except PublishError:
        refused = {
            "status": "unavailable",
            "reason": "audit_not_published",
            "message": "the export could not be audited (the broker did not confirm its records); try again shortly",
        }
        raise HTTPException(503, refused) from None
    log.info("crm_leads_exported", principal_id=session.principal.principal_id, leads=len(rows))
    return Response(
        leads_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/contacts/{subject_key}", response_class=HTMLResponse)
async def contact(request: Request, subject_key: str, session: SalesReader) -> HTMLResponse:
    """One contact: status, profile, identities, consents with their evidence, and the timeline of interactions."""
    view = await asyncio.to_thread(read_model(request).show, subject_key)
    if view is None:
        return _not_found(request, session, "no contact with this key")
    if not allowed(session.principal, Permission.CRM_READ_RESTRICTED):
        view = view.for_sales()
    timeline = sorted(view.interactions_detail, key=lambda i: i.occurred_at, reverse=True)
    name = " ".join(p for p in (view.first_name, view.last_name) if p) or view.email or "Contact"
    trail: list[AuditRecord] = []
    if allowed(session.principal, Permission.AUDIT_READ):
        tracker = RequestTracker(get_runtime(request).engine)
        trail = await asyncio.to_thread(tracker.audit_trail, subject_key=subject_key)
    return _page(request, session, "contact.html", title=name, view=view, timeline=timeline, trail=trail)


# ---- spam review -----------------------------------------------------------------------------------------------


def _review(request: Request) -> ReviewService:
    return ReviewService(get_runtime(request), get_publisher(request))


@router.get("/review", response_class=HTMLResponse)
async def review_queue(
    request: Request,
    *,
    session: QueueReader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    released: int = 0,
    confirmed: int = 0,
    taken: int = 0,
    gone: int = 0,
    changed: int = 0,
) -> HTMLResponse:
    """The spam queue, oldest first, with each item's score and the signals that made it (and what became of the
    last decision's items)."""
    items = await asyncio.to_thread(_review(request).pending, limit)
    done = {"released": released, "confirmed": confirmed, "taken": taken, "gone": gone, "changed": changed}
    return _page(request, session, "review.html", title="Spam review", items=items, done=done)


@router.get("/review/{event_id}", response_class=HTMLResponse)
async def review_item(request: Request, event_id: uuid.UUID, session: QueueReader) -> HTMLResponse:
    """One queued item with what the person sent, to judge it."""
    try:
        item = await asyncio.to_thread(_review(request).show, event_id)
    except ReviewError as exc:
        return _not_found(request, session, str(exc))
    return _page(request, session, "review_item.html", title="Spam review item", item=item)


#: A queue row's checkbox carries the item's event id and the ``quarantined_at`` the reviewer was shown.
SEEN_SEPARATOR = "@"


def parse_seen(values: list[str]) -> dict[uuid.UUID, datetime | None]:
    """``event_id`` or ``event_id@quarantined_at`` form values, in order, once each; ``ValueError`` when malformed."""
    seen: dict[uuid.UUID, datetime | None] = {}
    for value in values:
        event_id, _, shown = value.partition(SEEN_SEPARATOR)
        seen.setdefault(uuid.UUID(event_id), datetime.fromisoformat(shown) if shown else None)
    return seen


@router.post("/review/decide", response_class=RedirectResponse, status_code=303)
async def review_decide(
    request: Request,
    session: Decider,
    decision: Annotated[Literal["release", "confirm"], Form()],
    event_id: Annotated[list[str], Form(min_length=1, max_length=200)],
) -> Response:
    """Release or confirm one or many items in the reviewer's name, each re-read from the queue first: one decided
    meanwhile, gone, or changed since the page showed it is left alone and reported (``ReviewService.decide_seen``)."""
    try:
        seen = parse_seen([v[:100] for v in event_id])
    except ValueError:
        refused = {"status": "refused", "reason": "invalid_item", "message": "not a queue item"}
        raise HTTPException(422, refused) from None
    outcomes = await asyncio.to_thread(_review(request).decide_seen, seen, decision, session.principal)
    counted = Counter(outcomes.values())
    done = "released" if decision == "release" else "confirmed"
    query = {done: counted["decided"], "taken": counted["already_decided"], "gone": counted["not_found"]}
    query["changed"] = counted["changed"]
    return RedirectResponse("/review?" + urlencode({k: v for k, v in query.items() if v}), status_code=303)


# ---- the DPO ---------------------------------------------------------------------------------------------------


def _tools(request: Request) -> DpoTools:
    return DpoTools(get_runtime(request), get_publisher(request), migrate=False)


def _by_urgency(requests: list[RequestOut]) -> list[RequestOut]:
    """Overdue first, then the nearest deadline first; completed ones last."""
    return sorted(requests, key=lambda r: (r.state == "completed", not r.overdue, r.effective_due_at))


@router.get("/dpo", response_class=HTMLResponse)
async def dpo_requests(request: Request, session: RightsReader, state: Literal["open", "all"] = "open") -> HTMLResponse:
    """Requests with their deadline countdown, overdue first."""

    def load() -> list[RequestOut]:
        tools = _tools(request)
        views = tools.tracker.requests() if state == "all" else tools.open_requests()
        return _by_urgency([request_out(v) for v in views])

    found = await asyncio.to_thread(load)
    return _page(request, session, "dpo.html", title="Privacy requests", requests=found, state=state)


@router.get("/dpo/requests/{request_id}", response_class=HTMLResponse)
async def dpo_request(request: Request, request_id: uuid.UUID, session: RightsReader) -> HTMLResponse:
    """One request: deadline, who issued it, and each sink's status and evidence (refreshed while it is open)."""
    view = await asyncio.to_thread(_tools(request).get, request_id)
    if view is None:
        return _not_found(request, session, "no such request")
    template = "dpo_sinks.html" if request.headers.get("hx-request") == "true" else "dpo_request.html"
    return _request_page(request, session, view, template=template)


def _request_page(
    request: Request,
    session: Session,
    view: RequestView,
    status_code: int = 200,
    template: str = "dpo_request.html",
    **context: Any,
) -> HTMLResponse:
    """The request's page (``context``: what a refused change says and where, or what is shown once)."""
    return _page(
        request,
        session,
        template,
        status_code=status_code,
        title=f"Request {view.kind.value}",
        req=request_out(view),
        closures=list(StepClosure),
        close_reason=(CLOSE_REASON_MIN_CHARS, CLOSE_REASON_MAX_CHARS),
        **context,
    )


async def _dpo_change(
    request: Request, session: Session, request_id: uuid.UUID, change: Callable[[DpoTools], object], where: str
) -> Response:
    """Apply a DPO's change to a request and go back to its page; a refusal is the page again (422) saying why, in
    the section of the form (``where``) that asked for it."""
    tools = _tools(request)
    try:
        await asyncio.to_thread(change, tools)
    except (KeyError, UnknownSink, ValueError) as exc:
        view = await asyncio.to_thread(tools.get, request_id)
        if view is None:
            return _not_found(request, session, "no such request")
        return _request_page(request, session, view, 422, error=str(exc).strip("'\""), error_at=where)
    except PublishError:
        view = await asyncio.to_thread(tools.get, request_id)
        if view is None:
            return _not_found(request, session, "no such request")
        message = "recorded, but the audit line was not confirmed by the broker; it is in the request's trail"
        return _request_page(request, session, view, 503, error=message, error_at=where)
    return RedirectResponse(f"/dpo/requests/{request_id}", status_code=303)


@router.post("/dpo/requests/{request_id}/extend", response_class=HTMLResponse)
async def dpo_extend(
    request: Request,
    request_id: uuid.UUID,
    session: RightsIssuer,
    months: Annotated[int, Form(ge=1, le=2)],
    reason: Annotated[str, Form(max_length=2000)],
) -> Response:
    """Extend a request's deadline by one or two months with the reason the person will be told (policy 9.1)."""
    return await _dpo_change(
        request,
        session,
        request_id,
        lambda tools: tools.extend(request_id, months, reason.strip(), by=session.principal),
        "extend",
    )


@router.post("/dpo/requests/{request_id}/contacts-reviewed", response_class=HTMLResponse)
async def dpo_contacts_reviewed(request: Request, request_id: uuid.UUID, session: RightsIssuer) -> Response:
    """Record that the DPO looked at the contacts a restricted person made (as ``POST .../contacts-reviewed``): the
    restriction leaves the open list until the person makes contact again."""
    return await _dpo_change(
        request,
        session,
        request_id,
        lambda tools: tools.contacts_reviewed(request_id, by=session.principal),
        "contacts",
    )


@router.post("/dpo/requests/{request_id}/close-step", response_class=HTMLResponse)
async def dpo_close_step(
    request: Request,
    request_id: uuid.UUID,
    *,
    session: RightsIssuer,
    sink: Annotated[str, Form(max_length=32)],
    closed_as: Annotated[StepClosure, Form()],
    reason: Annotated[str, Form(max_length=CLOSE_REASON_MAX_CHARS * 2)],
) -> Response:
    """Close one step of a request by hand with the reason (as ``leadpipe dpo close-step``): done outside leadpipe,
    or impossible; the request completes once every step is done or closed."""
    return await _dpo_change(
        request,
        session,
        request_id,
        lambda tools: tools.close_step(request_id, sink, closed_as, reason, by=session.principal),
        "close",
    )


@router.get("/dpo/retention", response_class=HTMLResponse)
async def retention_preview(
    request: Request, session: SweepPreviewer, at: Annotated[str | None, Query(max_length=10)] = None
) -> HTMLResponse:
    """What the retention sweep would delete if it ran at the end of a given day (today by default): the sweep's own
    dry run, which changes nothing."""
    day = _day(at) or datetime.now(UTC).date()
    moment = datetime.combine(day, time(23, 59, 59), UTC)
    sweep = RetentionSweep(CrmRights(get_runtime(request).engine), None)
    report = await asyncio.to_thread(sweep.run, moment, dry_run=True)
    return _page(request, session, "retention.html", title="Retention sweep preview", plan=report.plan, day=day)


@router.get("/dpo/new", response_class=HTMLResponse)
async def dpo_form(request: Request, session: RightsIssuer) -> HTMLResponse:
    """The form that issues a right for one person, named by e-mail or phone."""
    purposes = _tools(request).policy.consent_purposes()
    return _page(
        request, session, "dpo_new.html", title="Issue a request", kinds=FORM_RIGHTS, purposes=purposes, form={}
    )


@router.post("/dpo/new", response_class=HTMLResponse)
async def dpo_issue(
    request: Request,
    *,
    session: RightsIssuer,
    kind: Annotated[RightKind, Form()],
    email: Annotated[str, Form(max_length=320)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
    region: Annotated[str, Form(max_length=60)] = "",
    subject_key: Annotated[str, Form(max_length=60)] = "",
    visitor_id: Annotated[str, Form(max_length=200)] = "",
    confirmed: Annotated[str, Form(max_length=10)] = "",
    purpose: Annotated[list[Purpose] | None, Form()] = None,
) -> Response:
    """Issue the right in the DPO's name, after the confirmation the CLI asks for; the access PDF's password is shown
    here, once."""
    chosen = tuple(dict.fromkeys(purpose or ()))
    form: dict[str, Any] = {"kind": kind.value, "email": email, "phone": phone, "region": region}
    form.update(subject_key=subject_key)
    form.update(visitor_id=visitor_id, purposes=chosen)
    tools = _tools(request)

    def again(error: str | None, status_code: int, confirm: str | None = None) -> HTMLResponse:
        return _page(
            request,
            session,
            "dpo_new.html",
            status_code=status_code,
            title="Issue a request",
            kinds=FORM_RIGHTS,
            purposes=tools.policy.consent_purposes(),
            form=form,
            error=error,
            confirm=confirm,
        )

    if kind not in FORM_RIGHTS:
        return again("this right is issued with leadpipe dpo or the API, not from this form", 422)
    if [bool(_blank(email)), bool(_blank(phone)), bool(_blank(visitor_id))].count(True) != 1:
        return again("name the person by exactly one of e-mail, phone or (an erasure) website visitor id", 422)
    if chosen and kind is not RightKind.CONSENT_WITHDRAWAL:
        return again("purposes are chosen for a withdrawal of consent only", 422)
    question = CONFIRMATIONS.get(kind)
    if question is not None and confirmed != "yes":
        return again(None, 200, confirm=question)

    def issue() -> tuple[uuid.UUID, str | None, tuple[str, ...]]:
        submitted = tools.request(
            kind,
            by=session.principal,
            email=_blank(email),
            phone=_blank(phone),
            region=_blank(region),
            visitor_id=_blank(visitor_id),
            subject_key=_blank(subject_key),
            purposes=chosen,
        )
        return submitted.command.request_id, submitted.password, submitted.related

    try:
        request_id, password, related = await asyncio.to_thread(issue)
    except ValueError as exc:  # IdentityError (an address that is no address) included
        return again(str(exc), 422)
    except PublishError:
        return again("recorded, but the broker did not confirm it; it will be published again", 503)
    if password is None and not related:
        return RedirectResponse(f"/dpo/requests/{request_id}", status_code=303)
    view = await asyncio.to_thread(tools.get, request_id)
    assert view is not None
    return _request_page(
        request,
        session,
        view,
        password=password,
        related=related,  # shown this once, like the password: the other subjects with this person's phone number
    )


#: A corrected value's longest accepted length (a company's address is the longest field people type).
RECTIFY_MAX_CHARS = 500
#: How the form names the person (``who_*``) apart from the corrected fields (``set_*``, ``clear_*``).
RECTIFY_LABELS = {
    "first_name": "First name",
    "last_name": "Last name",
    "position": "Position",
    "email": "E-mail",
    "phone": "Phone",
    "location": "Location",
    "country_code": "Country (2 letters)",
    "company": "Company",
    "company_address": "Company address",
    "skype_id": "Skype id",
    "linkedin_url": "LinkedIn URL",
}


def rectify_changes(form: Mapping[str, str]) -> dict[str, str | None]:
    """The corrections a rectification form asks for: ``set_<field>`` with a value sets it, ``clear_<field>`` empties
    it; a field left blank stays as it is. Raises ``ValueError`` for a value too long or a field both set and cleared.
    """
    changes: dict[str, str | None] = {}
    for field in RECTIFIABLE_FIELDS:
        value = (form.get(f"set_{field}") or "").strip()
        cleared = form.get(f"clear_{field}") == "yes"
        if len(value) > RECTIFY_MAX_CHARS:
            raise ValueError(f"{RECTIFY_LABELS.get(field, field)}: at most {RECTIFY_MAX_CHARS} characters")
        if value and cleared:
            raise ValueError(f"{RECTIFY_LABELS.get(field, field)}: either a corrected value or empty, not both")
        if value:
            changes[field] = value
        elif cleared:
            changes[field] = None
    return changes


@router.get("/dpo/rectify", response_class=HTMLResponse)
async def dpo_rectify_form(request: Request, session: RightsIssuer) -> HTMLResponse:
    """The form that corrects or completes a person's data everywhere (rectification, policy 9.2)."""
    return _rectify_page(request, session, {}, None, 200)


def _rectify_page(
    request: Request, session: Session, form: Mapping[str, str], error: str | None, status_code: int
) -> HTMLResponse:
    return _page(
        request,
        session,
        "dpo_rectify.html",
        status_code=status_code,
        title="Correct a person's data",
        fields=[(f, RECTIFY_LABELS.get(f, f)) for f in RECTIFIABLE_FIELDS],
        form=form,
        error=error,
    )


@router.post("/dpo/rectify", response_class=HTMLResponse)
async def dpo_rectify(request: Request, session: RightsIssuer) -> Response:
    """Issue the rectification in the DPO's name, as ``leadpipe dpo rectify`` does: the person named by e-mail or
    phone, each field corrected or emptied, and with a corrected e-mail what becomes of the old address."""
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str) and len(k) < 40}
    who_email, who_phone = _blank(form.get("who_email")), _blank(form.get("who_phone"))
    if bool(who_email) == bool(who_phone):
        return _rectify_page(request, session, form, "name the person by exactly one of e-mail or phone", 422)
    old_address = form.get("old_address") or None
    if old_address not in (None, "forget", "alias"):
        return _rectify_page(request, session, form, "the old address is forgotten or kept as an alias", 422)
    try:
        changes = rectify_changes(form)
        if not changes:
            raise ValueError("correct or empty at least one field")
        if "email" not in changes:
            old_address = None  # the choice applies only to a corrected e-mail address
        tools = _tools(request)
        submitted = await asyncio.to_thread(
            tools.request,
            RightKind.RECTIFICATION,
            by=session.principal,
            email=who_email,
            phone=who_phone,
            region=_blank(form.get("who_region")),
            subject_key=_blank(form.get("who_subject_key")),
            rectify=changes,
            old_address=cast(OldAddress | None, old_address),
        )
    except ValueError as exc:  # IdentityError and a refused field included
        return _rectify_page(request, session, form, str(exc), 422)
    except PublishError:
        return _rectify_page(request, session, form, "recorded, but the broker did not confirm it", 503)
    return RedirectResponse(f"/dpo/requests/{submitted.command.request_id}", status_code=303)
