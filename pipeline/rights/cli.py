"""``leadpipe dpo ...`` (the DPO's requests, the tracker), ``leadpipe retention sweep``, ``leadpipe restore verify``.

Every request is named by ``--email`` or ``--phone`` (an erasure also by ``--visitor-id``, a website visitor's
cookie id); the tool prints the request id, the subject key and the deadline, never the e-mail, phone or cookie id.
``--wait`` waits until every sink confirmed (exit 0), a sink failed (exit 3) or the time is up (exit 4). A request
needs the worker to run (``leadpipe worker``): until it does, the request waits on Kafka and ``--wait`` times out.
Each command runs as its operator (``pipeline/identity/operator.py``: an API key of a DPO, ``LEADPIPE_API_KEY`` or
``leadpipe --key-file``), who is recorded as the request's issuer.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from pipeline.clikit import DATABASE, KAFKA, confirm, exits, needs
from pipeline.config import get_settings
from pipeline.db import ensure_schema
from pipeline.identity.operator import operator, operator_command
from pipeline.identity.permissions import Permission
from pipeline.kafka.clients import check_kafka
from pipeline.kafka.consumer import ReadError
from pipeline.kafka.producer import ConfirmingPublisher, PublishError
from pipeline.models.common import Purpose
from pipeline.models.identity import Principal
from pipeline.models.rights import RightKind
from pipeline.rights.bodies import OldAddress
from pipeline.rights.commands import AmbiguousSubject, ChangeError, IdentityError, RightsDesk
from pipeline.rights.dpo import DpoTools, Submitted, request_out
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.effects.export import expire_exports
from pipeline.rights.restore import Restore
from pipeline.rights.sweep import RetentionSweep
from pipeline.rights.tracker import (
    CLOSE_REASON_MAX_CHARS,
    CLOSE_REASON_MIN_CHARS,
    RequestState,
    RequestTracker,
    RequestView,
    StepClosure,
    UnknownSink,
)
from pipeline.runtime import Runtime

dpo_app = typer.Typer(
    help="Data-subject rights (policy section 9): requests, deadlines, evidence.", no_args_is_help=True
)
retention_app = typer.Typer(help="Retention expiry (policy section 8).", no_args_is_help=True)
restore_app = typer.Typer(
    help="After restoring the database from a backup: carry out again the erasures it no longer shows.",
    no_args_is_help=True,
)

EXIT_FAILED = 3
EXIT_TIMEOUT = 4
REQUEST_EXITS = {
    1: "recorded but not published (the worker's retry timer publishes it)",
    EXIT_FAILED: "with --wait: a sink failed (the worker keeps retrying; `leadpipe dpo show` has the error)",
    EXIT_TIMEOUT: "with --wait: not confirmed in time (is `leadpipe worker` running?)",
}
#: ``dpo status`` lists open requests and those completed within this many days (``--all``: every request).
RECENT_DAYS = 7

Email = Annotated[str | None, typer.Option("--email", help="The person's e-mail address")]
Phone = Annotated[str | None, typer.Option("--phone", help="The person's phone number (E.164, or with --region)")]
Region = Annotated[
    str | None,
    typer.Option("--region", help="Country of a phone number without +prefix: an ISO code or a name, e.g. DE, Spain"),
]
SubjectKey = Annotated[
    str | None,
    typer.Option(
        "--subject-key",
        help="With --email/--phone: the subject key (sk_...) the request is for, when several subjects hold the "
        "e-mail or phone",
    ),
]
Wait = Annotated[bool, typer.Option("--wait", help="Wait until every sink has confirmed")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait")]
#: What a request command adds to the request besides who it is about (e.g. ``rectify`` -> the changes).
Extra = dict[str, object]


@contextmanager
def _tools() -> Iterator[DpoTools]:
    settings = get_settings()
    runtime = Runtime(settings)
    publisher = ConfirmingPublisher(settings)
    try:
        yield DpoTools(runtime, publisher)
    finally:
        publisher.close()
        runtime.engine.dispose()


@contextmanager
def _tracker() -> Iterator[RequestTracker]:
    """The tracker alone, for the commands that only read it (no producer: they work while Kafka is down)."""
    runtime = Runtime(get_settings())
    try:
        ensure_schema(runtime.engine)
        yield RequestTracker(runtime.engine)
    finally:
        runtime.engine.dispose()


def _fmt(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _sinks(view: RequestView) -> str:
    """Each step's status; a step a person closed shows how (``hubspot:cannot_be_done``)."""
    return " ".join(f"{s.sink}:{s.closed.closed_as.value if s.closed else s.status.value}" for s in view.sinks) or "-"


def _who(principal: Principal | None, fallback: str = "-") -> str:
    return fallback if principal is None else f"{principal.display_name} ({principal.actor})"


def _people(view: RequestView) -> str:
    """Who issued the request, who extended it or recorded its notice, and who completed each step."""
    parts = [f"issued by {_who(view.issuer, view.issued_by)}"]
    if view.extended_by is not None:
        parts.append(f"extended by {_who(view.extended_by)}")
    if view.notice_sent_by is not None:
        parts.append(f"notice recorded by {_who(view.notice_sent_by)}")
    done = [
        f"{s.sink} by {s.completed_by.display_name}"
        for s in view.sinks
        if s.completed_by is not None and s.closed is None
    ]
    if done:
        parts.append("completed: " + ", ".join(done))
    parts.extend(
        f"{s.sink} closed by hand ({s.closed.closed_as.value}) by {_who(s.closed.closed_by)} "
        f"{_fmt(s.closed.closed_at)}: {s.closed.reason}"
        for s in view.sinks
        if s.closed is not None
    )
    return "; ".join(parts)


def _print_view(view: RequestView, now: datetime) -> None:
    flags = []
    if view.is_overdue(now):
        flags.append("OVERDUE")
    if view.notice_due:
        flags.append("NOTICE-DUE")
    if view.contacts_unreviewed:
        flags.append(f"CONTACT-WHILE-RESTRICTED x{view.contacts_unreviewed}")
    if view.extension_reason:
        flags.append("extended")
    typer.echo(
        f"{view.request_id}  {view.kind.value:<18} {view.subject_key}  received {_fmt(view.received_at)}  "
        f"due {_fmt(view.effective_due_at)}  {view.state.value:<9} {_sinks(view)}"
        + (f"  [{' '.join(flags)}]" if flags else "")
    )
    typer.echo(f"    {_people(view)}")


def _submit(kind: RightKind, wait: bool, timeout: float, **kwargs: object) -> None:
    with _tools() as tools:
        try:
            submitted: Submitted = tools.request(kind, by=operator(), **kwargs)  # type: ignore[arg-type]
        except AmbiguousSubject as exc:
            raise typer.BadParameter(f"{exc} (--subject-key)", param_hint=f"--{exc.field}") from None
        except IdentityError as exc:
            raise typer.BadParameter(str(exc), param_hint=f"--{exc.field.replace('_', '-')}") from None
        except ChangeError as exc:
            raise typer.BadParameter(str(exc), param_hint="--set/--clear") from None
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        except PublishError as exc:
            typer.echo(f"recorded but NOT published ({exc}); the worker's retry timer publishes it", err=True)
            raise typer.Exit(1) from None
        command = submitted.command
        typer.echo(
            f"request {command.request_id} ({kind.value}) for subject {command.subject_key} published; "
            f"due {_fmt(command.due_at)}"
        )
        if submitted.password:
            typer.echo(
                f"PDF password (send it to the person by another channel; it is not shown again): {submitted.password}"
            )
        _notes(submitted)
        if submitted.related:
            typer.echo(
                f"note: the CRM also holds {len(submitted.related)} other subject(s) with a phone number of this "
                f"person's ({', '.join(submitted.related)}): this request does not reach them. If they are this "
                "person (who wrote with an address and called or messaged from the number), issue it for them too "
                "(`leadpipe crm show <key>`; by --phone, or --email for theirs)",
                err=True,
            )
        if not wait:
            return
        view = tools.wait(command.request_id, timeout)
        if view is None:
            typer.echo(_not_confirmed(command.request_id, timeout), err=True)
            raise typer.Exit(EXIT_TIMEOUT)
        for sink in view.sinks:
            by = f"  by {sink.completed_by.display_name}" if sink.completed_by else ""
            typer.echo(f"  {sink.sink:<12} {sink.status.value:<15} {json.dumps(sink.evidence, default=str)}{by}")
        if view.state is RequestState.COMPLETED:
            typer.echo(f"completed {_fmt(view.completed_at)}")
            return
        if view.state is RequestState.ATTENTION:
            typer.echo("a sink failed; the worker keeps retrying")
            raise typer.Exit(EXIT_FAILED)
        typer.echo(_not_confirmed(command.request_id, timeout), err=True)
        raise typer.Exit(EXIT_TIMEOUT)


def _not_confirmed(request_id: object, timeout: float) -> str:
    """What a DPO whose --wait ran out needs: the request stands; is anything carrying it out?"""
    return (
        f"not confirmed by every sink within {timeout:g} s: the request stands and is carried out when the rights "
        f"worker runs (is `leadpipe worker` running?); follow it with `leadpipe dpo show {request_id}`"
    )


def _notes(submitted: Submitted) -> None:
    """Tell the DPO, on stderr and by key only, when the request went to another subject than the key of what they
    named, and when the CRM holds nobody for it."""
    command = submitted.command
    if submitted.found_by == "identity":
        typer.echo(
            f"note: the CRM holds nobody under the key of what was named ({submitted.named_key}); the one subject "
            f"holding it is {command.subject_key}, and the request is issued for that subject",
            err=True,
        )
    if submitted.in_crm is False:
        typer.echo(
            f"note: the CRM holds nobody under {command.subject_key}, and no other subject holds what was named: "
            "HubSpot is still searched by it, and the request runs all the same",
            err=True,
        )


#: The options every request command takes, after its own: who the person is, and whether to wait.
_COMMON_OPTIONS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, annotation, default in (
        ("email", Email, None),
        ("phone", Phone, None),
        ("region", Region, None),
        ("subject_key", SubjectKey, None),
        ("wait", Wait, False),
        ("timeout", Timeout, 60.0),
    )
]


def _request_command(
    kind: RightKind, name: str | None = None
) -> Callable[[Callable[..., Extra]], Callable[..., Extra]]:
    """Register ``leadpipe dpo <name>`` for ``kind`` (``rights:issue``): the decorated function declares only the
    command's own options and returns the request's extra fields; the identity and ``--wait`` options are added here,
    once."""

    def register(extras: Callable[..., Extra]) -> Callable[..., Extra]:
        own = list(inspect.signature(extras, eval_str=True).parameters.values())
        common = [p.name for p in _COMMON_OPTIONS]

        def command(**values: Any) -> None:
            shared = {n: values.pop(n) for n in common}
            wait, timeout = shared.pop("wait"), shared.pop("timeout")
            _submit(kind, wait, timeout, **shared, **extras(**values))

        command.__signature__ = inspect.Signature([*own, *_COMMON_OPTIONS])  # type: ignore[attr-defined]
        command.__doc__ = extras.__doc__
        needs(KAFKA, DATABASE)(command)
        exits(REQUEST_EXITS)(command)
        dpo_app.command(name or extras.__name__.replace("_", "-"))(operator_command(Permission.RIGHTS_ISSUE)(command))
        return extras

    return register


def _confirm_erasure(ctx: typer.Context, yes: bool) -> bool:
    """Asked while the options are read, before the broker and the database are checked: a script without --yes is
    refused at once, whatever the state of the cluster."""
    if not yes and not ctx.resilient_parsing:  # resilient: shell completion, which must never prompt
        confirm("Erasure cannot be undone. Erase this person everywhere?")
    return yes


@_request_command(RightKind.ERASURE)
def erase(
    *,
    visitor_id: Annotated[
        str | None,
        typer.Option("--visitor-id", help="Instead of --email/--phone: a website visitor's cookie id (anonymousId)"),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            callback=_confirm_erasure,
            help="Confirm without being asked (scripts; required without a terminal)",
        ),
    ] = False,
) -> Extra:
    """Erase the person everywhere (9.3): CRM, HubSpot (GDPR delete), Kafka (their keys are destroyed), with the
    anonymous website history of every device they identified on; or, by --visitor-id, one device's history.

    Asks for confirmation on a terminal; without one (a script, a pipe) it refuses at once unless --yes is given.

    Example: leadpipe dpo erase --email ana@example.com --yes --wait
    """
    return {"visitor_id": visitor_id}


@_request_command(RightKind.OBJECTION, "object")
def objection() -> Extra:
    """Objection to direct marketing (9.6): stops at once, everywhere.

    Example: leadpipe dpo object --email ana@example.com --wait
    """
    return {}


@_request_command(RightKind.OBJECTION_LIFTED, "lift-objection")
def lift_objection() -> Extra:
    """Record that the person withdrew their objection (9.6): only on their explicit word, never from a form.

    What the objection stopped stays stopped; later contacts may be marketed to again. HubSpot subscriptions are
    not restored: the person subscribes again there.

    Example: leadpipe dpo lift-objection --email ana@example.com
    """
    return {}


@_request_command(RightKind.RESTRICTION)
def restrict() -> Extra:
    """Restrict processing (9.4): the data is kept but no longer processed or synced.

    Example: leadpipe dpo restrict --phone "+49 30 1234567" --wait
    """
    return {}


@_request_command(RightKind.UNRESTRICTION)
def unrestrict() -> Extra:
    """Lift a restriction; the person must be told (9.5): `leadpipe dpo notice-sent` records that they were.

    Example: leadpipe dpo unrestrict --email ana@example.com
    """
    return {}


@_request_command(RightKind.RECTIFICATION)
def rectify(
    *,
    set_: Annotated[list[str], typer.Option("--set", help="field=value, e.g. --set last_name=Kowalska")] = [],  # noqa: B006
    clear: Annotated[list[str], typer.Option("--clear", help="A field to empty")] = [],  # noqa: B006
    old_address: Annotated[
        OldAddress | None,
        typer.Option(
            "--old-address",
            help="With --set email=...: forget the old address (a later contact from it is somebody new) or keep it "
            "as an alias (a later contact from it joins this person). Default: forget; alias for a person known by "
            "their phone alone (the number stays theirs)",
        ),
    ] = None,
) -> Extra:
    """Correct or complete the person's data in the CRM and HubSpot (9.2), the e-mail address included.

    Example: leadpipe dpo rectify --email ana@example.com --set last_name=Kowalska --clear position
    """
    changes: dict[str, str | None] = {}
    for item in set_:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise typer.BadParameter("use field=value", param_hint="--set")
        changes[field.strip()] = value
    changes.update(dict.fromkeys((c.strip() for c in clear), None))
    return {"rectify": changes, "old_address": old_address}


@_request_command(RightKind.CONSENT_WITHDRAWAL)
def withdraw_consent(
    *,
    purpose: Annotated[
        list[Purpose], typer.Option("--purpose", help="A purpose that rests on consent; default: all of them")
    ] = [],  # noqa: B006
) -> Extra:
    """Withdrawal of consent (9.8): every purpose resting on consent stops; other purposes continue.

    Example: leadpipe dpo withdraw-consent --email ana@example.com --purpose further_contact
    """
    return {"purposes": tuple(purpose)}


@_request_command(RightKind.PORTABILITY)
def export() -> Extra:
    """Portability (9.7): everything held, as JSON in the documented structure (schemas/subject-export).

    Example: leadpipe dpo export --email ana@example.com --wait
    """
    return {}


@_request_command(RightKind.ACCESS)
def access() -> Extra:
    """Access (9.1): everything held, as a password-protected PDF; the password is printed once.

    Example: leadpipe dpo access --email ana@example.com --wait
    """
    return {}


@dpo_app.command()
@operator_command(Permission.RIGHTS_READ)
@needs(DATABASE)
def status(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open requests past their deadline")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Every request, however long ago it completed")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Open requests and those completed in the last 7 days, with deadlines and per-sink status, who issued them
    and who completed each step; overdue ones are flagged.

    Example: leadpipe dpo status

    Example: leadpipe dpo status --overdue --json
    """
    now = datetime.now(UTC)
    since = now - timedelta(days=RECENT_DAYS)
    with _tracker() as tracker:
        every = tracker.requests()
    open_ = [v for v in every if v.state is not RequestState.COMPLETED]
    if overdue:
        views = [v for v in open_ if v.is_overdue(now)]
    elif all_:
        views = every
    else:
        views = [
            v
            for v in every
            if v.state is not RequestState.COMPLETED or _completed_since(v, since) or v.contacts_unreviewed
        ]
    if as_json:
        typer.echo(json.dumps([request_out(v, now).model_dump(mode="json") for v in views], indent=2))
        return
    late = sum(1 for v in open_ if v.is_overdue(now))
    done = len(views) - sum(1 for v in views if v.state is not RequestState.COMPLETED)
    shown = "" if overdue else f"; {done} completed" + ("" if all_ else f" in the last {RECENT_DAYS} days")
    typer.echo(f"{len(open_)} open request(s), {late} overdue{shown}")
    for view in views:
        _print_view(view, now)
    older = len(every) - len(views)
    if older and not all_ and not overdue:
        typer.echo(f"{older} older completed request(s) not shown: `leadpipe dpo status --all` lists every request")


def _completed_since(view: RequestView, since: datetime) -> bool:
    return view.completed_at is not None and view.completed_at >= since


@dpo_app.command()
@operator_command(Permission.RIGHTS_READ)
@needs(DATABASE)
def show(
    request_id: str,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document: the request and its audit trail (for scripts)")
    ] = False,
) -> None:
    """One request with each sink's evidence and the audit trail, naming who did each thing.

    Example: leadpipe dpo show 5960a942-3953-434c-85df-b97c97e12d4c
    """
    with _tracker() as tracker:
        view = tracker.get(request_id)
        if view is None:
            raise typer.BadParameter(f"no request {request_id}")
        trail = tracker.audit_trail(request_id=request_id)
    if as_json:  # the text below prints the JSON and then the trail as lines: no parser reads both
        document = {
            "request": request_out(view).model_dump(mode="json"),
            "audit": [record.model_dump(mode="json") for record in trail],
        }
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    typer.echo(request_out(view).model_dump_json(indent=2))
    for record in trail:
        typer.echo(f"{_fmt(record.at)}  {_who(record.principal, record.actor):<40} {record.action}")


@dpo_app.command()
@operator_command(Permission.RIGHTS_ISSUE)
@needs(KAFKA, DATABASE)
def extend(
    request_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (told to the person, policy 9.1)")],
    months: Annotated[int, typer.Option("--months", min=1, max=2)] = 2,
) -> None:
    """Extend a request's deadline by one or two months, with the reason the person will be told.

    Example: leadpipe dpo extend 5960a942-3953-434c-85df-b97c97e12d4c --months 1 --reason "records in three systems"
    """
    with _tools() as tools:
        try:
            view = tools.extend(request_id, months, reason, by=operator())
        except (KeyError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from None
    typer.echo(f"request {view.request_id} now due {_fmt(view.effective_due_at)}")


@dpo_app.command("notice-sent")
@operator_command(Permission.RIGHTS_ISSUE)
@needs(KAFKA, DATABASE)
def notice_sent(request_id: str) -> None:
    """Record that the person was told their restriction was lifted.

    Example: leadpipe dpo notice-sent 5960a942-3953-434c-85df-b97c97e12d4c
    """
    with _tools() as tools:
        try:
            tools.notice_sent(request_id, by=operator())
        except (KeyError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from None
    typer.echo(f"notice recorded for {request_id}")


@dpo_app.command("contacts-reviewed")
@operator_command(Permission.RIGHTS_ISSUE)
@needs(KAFKA, DATABASE)
def contacts_reviewed(request_id: str) -> None:
    """Record that you looked at the contacts a restricted person made (CONTACT-WHILE-RESTRICTED); audited.

    Example: leadpipe dpo contacts-reviewed 5960a942-3953-434c-85df-b97c97e12d4c
    """
    with _tools() as tools:
        try:
            view = tools.contacts_reviewed(request_id, by=operator())
        except (KeyError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from None
    typer.echo(f"{len(view.contacts_while_restricted)} contact(s) recorded as reviewed for {request_id}")


@dpo_app.command("close-step")
@operator_command(Permission.RIGHTS_ISSUE)
@needs(KAFKA, DATABASE)
def close_step(
    request_id: str,
    sink: Annotated[str, typer.Argument(help="The step to close: a sink of the request (`leadpipe dpo show` lists)")],
    closed_as: Annotated[
        StepClosure,
        typer.Option(
            "--as",
            help="done_by_hand: you carried it out outside leadpipe (e.g. deleted the contact in HubSpot); "
            "cannot_be_done: it never will be (HubSpot refuses for good, the sink was decommissioned)",
        ),
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help=f"What was done and where, or why it cannot be done ({CLOSE_REASON_MIN_CHARS} to "
            f"{CLOSE_REASON_MAX_CHARS} characters; a ticket number helps). No personal data is needed: name none",
        ),
    ],
) -> None:
    """Close one step of a request by hand, in your name and with the reason, when the product cannot carry it out
    (the request stays in ATTENTION otherwise). The request completes once every step is done or closed; the retry
    timer does not reopen a closed step, and a later success of the sink is still recorded as its evidence.

    Example: leadpipe dpo close-step "$REQUEST_ID" hubspot --as done_by_hand --reason "deleted in HubSpot, DPO-118"
    """
    with _tools() as tools:
        try:
            view = tools.close_step(request_id, sink, closed_as, reason, by=operator())
        except (KeyError, UnknownSink, ValueError) as exc:
            raise typer.BadParameter(str(exc).strip("'\"")) from None
    typer.echo(
        f"the {sink} step of {view.request_id} is closed by hand ({closed_as.value}); the request is {view.state}"
    )


def parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("an ISO 8601 time, e.g. 2031-01-01T00:00:00Z", param_hint="--now") from None
    if moment.tzinfo is None:
        raise typer.BadParameter("give a time zone (e.g. Z or +02:00)", param_hint="--now")
    return moment.astimezone(UTC)


@retention_app.command()
@operator_command(Permission.RETENTION_RUN)
@needs(DATABASE)
def sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; change nothing")] = False,
    now: Annotated[str | None, typer.Option("--now", help="Pretend it is this time (ISO 8601)")] = None,
) -> None:
    """Delete interactions past their retention expiry in every sink; a subject with nothing left is erased.

    Example: leadpipe retention sweep --dry-run

    Example: leadpipe retention sweep
    """
    moment = parse_now(now)
    settings = get_settings()
    if not dry_run:
        check_kafka(settings)  # the erasures it issues go through the rights topics
    runtime = Runtime(settings)
    try:
        ensure_schema(runtime.engine)
        crm = CrmRights(runtime.engine)
        if dry_run:
            report = RetentionSweep(crm, None).run(moment, dry_run=True)
        else:
            publisher = ConfirmingPublisher(settings)
            try:
                desk = RightsDesk(RequestTracker(runtime.engine), publisher)
                report = RetentionSweep(crm, desk).run(moment)
            finally:
                publisher.close()
    finally:
        runtime.engine.dispose()
    plan = report.plan
    verb = "would delete" if dry_run else "deleting"
    typer.echo(f"{_fmt(moment)}: {verb} {plan.interaction_count} interaction(s) of {len(plan.subjects)} subject(s)")
    for subject in plan.subjects:
        tail = "nothing left: subject erased entirely" if subject.erases_subject else f"{subject.remaining} kept"
        typer.echo(f"  {subject.subject_key}  {len(subject.expired)} expired, {tail}")
    if not dry_run:
        typer.echo(f"{len(report.commands)} new request(s) published")
        max_age = timedelta(hours=settings.rights_export_max_age_h)
        expired = expire_exports(settings.resolved_exports_dir, moment, max_age)
        typer.echo(f"{len(expired)} export(s) older than {settings.rights_export_max_age_h:g} h deleted")


@restore_app.command("verify")
@needs(KAFKA, DATABASE)
@exits(
    {
        1: "something is left to re-apply (after --apply: still left)",
        2: "the suppression topic, the tracker or the database could not be read, or a record not published",
    }
)
def restore_verify(
    apply: Annotated[
        bool, typer.Option("--apply", help="Re-apply what is found (the chart's restore hook Job runs this)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON, subject keys included")] = False,
) -> None:
    """Compare the database with the suppression topic and the tracker. Exit 0: nothing to re-apply (after --apply:
    nothing left); 1: something is; 2: they could not be read.

    Example: leadpipe restore verify

    Example: leadpipe restore verify --apply
    """
    settings = get_settings()
    runtime = Runtime(settings)
    try:
        ensure_schema(runtime.engine)
        restore = Restore(runtime)
        if apply:
            publisher = ConfirmingPublisher(settings)
            try:
                report = restore.reapply(publisher)
            finally:
                publisher.close()
        else:
            report = restore.verify()
    except (ReadError, PublishError, ValueError) as exc:
        typer.echo(f"restore verify failed: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        runtime.engine.dispose()
    typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.summary())
    if not report.clean:
        raise typer.Exit(1)
