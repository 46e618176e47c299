"""``leadpipe spam review list|show|release|confirm``: the manual half of the spam filter (policy section 8).

Reading the queue needs ``review:read``, a decision ``review:decide``; the operator (an API key of a reviewer, see
``pipeline/identity/operator.py``) is recorded with each decision."""

from __future__ import annotations

import collections
import json
import sys
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Literal, cast, get_args

import typer

from pipeline.clikit import DATABASE, KAFKA, Declaration, command_service, exits, fails_on, needs
from pipeline.identity.operator import operator, operator_command
from pipeline.identity.permissions import Permission
from pipeline.models.review import BlockTarget
from pipeline.review.service import QueueSort, ReviewError, ReviewService

review_app = typer.Typer(help="Review quarantined events: release them or confirm them as spam.", no_args_is_help=True)


#: ``show`` works on one queued event: broker and database; a ``ReviewError`` exits 1.
ON_QUEUED_EVENT: tuple[Declaration, ...] = (
    needs(KAFKA, DATABASE),
    exits({1: "the event is not in the queue (unknown, expired or already decided)"}),
)

#: ``release`` and ``confirm`` decide one or many: an event not in the queue exits 1, the others are decided.
ON_QUEUED_EVENTS: tuple[Declaration, ...] = (
    needs(KAFKA, DATABASE),
    exits({1: "an event is not in the queue (unknown, expired or already decided); the others were decided"}),
)


def _service() -> AbstractContextManager[ReviewService]:
    return command_service(ReviewService)


@review_app.command("list")
@operator_command(Permission.REVIEW_READ)
@needs(KAFKA, DATABASE)
def list_queue(
    *,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Leave out this many first (the next page: --offset 50).")] = 0,
    sort: Annotated[
        str, typer.Option(help="oldest (first quarantined), newest, or score (the clearest spam first).")
    ] = "oldest",
    channel: Annotated[str | None, typer.Option(help="Only this channel's events (email, web_form, ...).")] = None,
    reason: Annotated[
        str | None, typer.Option(help="Only events with this spam reason code (classifier, ...).")
    ] = None,
    counts: Annotated[
        bool, typer.Option("--counts", help="How many wait, by channel and by reason; no events.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Quarantined events waiting for a decision, with their spam reasons (no personal data); the last line says how
    many wait in all.

    Example: leadpipe spam review list --limit 20

    Example: leadpipe spam review list --reason classifier --sort score --offset 100 --limit 100

    Example: leadpipe spam review list --counts
    """
    if sort not in get_args(QueueSort):
        raise typer.BadParameter(f"--sort takes {'|'.join(get_args(QueueSort))}, not {sort}")
    with _service() as service:
        page = service.page(limit, offset, sort=cast(QueueSort, sort), channel=channel, reason=reason)
    if counts:
        if as_json:
            typer.echo(
                json.dumps({"waiting": page.waiting, "by_channel": page.by_channel, "by_reason": page.by_reason})
            )
            return
        for what, counted in (("channel", page.by_channel), ("reason", page.by_reason)):
            for name, count in counted.most_common():
                typer.echo(f"{what} {name:<28} {count}")
        typer.echo(f"{page.waiting} event(s) waiting")
        return
    for item in page.items:
        if as_json:
            typer.echo(item.model_dump_json())
            continue
        reasons = ", ".join(r["code"] for r in item.reasons)
        typer.echo(
            f"{item.event_id}  {item.quarantined_at:%Y-%m-%d %H:%M}  {item.channel:<9}  "
            f"score {item.score:g}/{item.threshold:g}  {reasons}"
        )
    if not as_json:
        shown = f"{offset + 1}-{offset + len(page.items)}" if page.items else "none"
        scope = f" of {page.matching} matching" if channel or reason else ""
        more = f"; next: --offset {offset + len(page.items)}" if offset + len(page.items) < page.matching else ""
        typer.echo(f"{shown} shown{scope} ({sort} first){more}; {page.waiting} event(s) waiting")


@review_app.command("show")
@operator_command(Permission.REVIEW_READ, *ON_QUEUED_EVENT)
def show(event_id: uuid.UUID) -> None:
    """One quarantined event with what the person sent (personal data: shown here, never logged).

    Example: leadpipe spam review show 4f4186a9-16eb-593d-b2cb-662739edc699
    """
    with fails_on(ReviewError), _service() as service:
        item = service.show(event_id)
    typer.echo(json.dumps(item.model_dump(mode="json"), indent=2, ensure_ascii=False))


#: Decisions published per confirmed batch when many are made at once.
_DECIDE_BATCH = 1000


def _ids(event_ids: list[uuid.UUID] | None, ids_from: Path | None) -> list[uuid.UUID]:
    """The events named on the command line and, one per line, in ``ids_from`` (``-``: standard input)."""
    found = list(event_ids or [])
    if ids_from is not None:
        text = sys.stdin.read() if str(ids_from) == "-" else ids_from.read_text()
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    found.append(uuid.UUID(line.strip()))
                except ValueError:
                    raise typer.BadParameter(f"line {n} of {ids_from} is no event id") from None
    if not found:
        raise typer.BadParameter("name at least one event id, or --ids-from FILE")
    return list(dict.fromkeys(found))


def _decide(
    event_ids: list[uuid.UUID], decision: Literal["release", "confirm"], block: tuple[BlockTarget, ...]
) -> None:
    if len(event_ids) == 1:
        with fails_on(ReviewError), _service() as service:
            made = service.decide(event_ids[0], decision, operator(), block)
        typer.echo(f"{made.decision} {made.event_id}: decision {made.decision_id} published")
        return
    outcomes: collections.Counter[str] = collections.Counter()
    with _service() as service:  # each batch re-reads the queue: an event decided meanwhile is left alone
        for start in range(0, len(event_ids), _DECIDE_BATCH):
            chunk = {event_id: None for event_id in event_ids[start : start + _DECIDE_BATCH]}
            for event_id, outcome in service.decide_seen(chunk, decision, operator(), block).items():
                outcomes[outcome] += 1
                if outcome != "decided":
                    typer.echo(f"{event_id}: {outcome.replace('_', ' ')}", err=True)
    typer.echo(
        f"{decision}: {outcomes['decided']} of {len(event_ids)} decided and published"
        + "".join(f", {n} {o.replace('_', ' ')}" for o, n in sorted(outcomes.items()) if o != "decided")
    )
    if outcomes["decided"] < len(event_ids):
        raise typer.Exit(1)


EventIds = Annotated[
    list[uuid.UUID] | None,
    typer.Argument(help="One or more event ids (leadpipe spam review list).", show_default=False),
]
IdsFrom = Annotated[
    Path | None,
    typer.Option("--ids-from", help="Event ids one per line from a file, or - for standard input.", show_default=False),
]


@review_app.command("release")
@operator_command(Permission.REVIEW_DECIDE, *ON_QUEUED_EVENTS)
def release(event_ids: EventIds = None, ids_from: IdsFrom = None) -> None:
    """Not spam: the events continue through the pipeline, with your decision recorded on each.

    Example: leadpipe spam review release 4f4186a9-16eb-593d-b2cb-662739edc699

    Example: leadpipe spam review release --ids-from ids.txt
    """
    _decide(_ids(event_ids, ids_from), "release", ())


@review_app.command("confirm")
@operator_command(Permission.REVIEW_DECIDE, *ON_QUEUED_EVENTS)
def confirm(
    event_ids: EventIds = None,
    ids_from: IdsFrom = None,
    block: Annotated[bool, typer.Option("--block", help="Block the sender (their subject key, hashed).")] = False,
    block_domain: Annotated[bool, typer.Option("--block-domain", help="Block the sender's e-mail domain.")] = False,
    block_ip: Annotated[bool, typer.Option("--block-ip", help="Block the source IP.")] = False,
) -> None:
    """Spam: the events stay out; optionally block each sender, their domain or their IP (stored hashed).

    Example: leadpipe spam review confirm 4f4186a9-16eb-593d-b2cb-662739edc699 --block-domain
    """
    targets: list[BlockTarget] = []
    if block:
        targets.append("sender")
    if block_domain:
        targets.append("domain")
    if block_ip:
        targets.append("ip")
    _decide(_ids(event_ids, ids_from), "confirm", tuple(targets))
