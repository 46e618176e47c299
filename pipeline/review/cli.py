"""``leadpipe spam review list|show|release|confirm``: the manual half of the spam filter (policy section 8).

Reading the queue needs ``review:read``, a decision ``review:decide``; the operator (an API key of a reviewer, see
``pipeline/identity/operator.py``) is recorded with each decision."""

from __future__ import annotations

import json
import uuid
from contextlib import AbstractContextManager
from typing import Annotated, Literal

import typer

from pipeline.clikit import DATABASE, KAFKA, Declaration, command_service, exits, fails_on, needs
from pipeline.identity.operator import operator, operator_command
from pipeline.identity.permissions import Permission
from pipeline.models.review import BlockTarget
from pipeline.review.service import ReviewError, ReviewService

review_app = typer.Typer(help="Review quarantined events: release them or confirm them as spam.", no_args_is_help=True)


#: ``show``, ``release`` and ``confirm`` work on one queued event: broker and database; a ``ReviewError`` exits 1.
ON_QUEUED_EVENT: tuple[Declaration, ...] = (
    needs(KAFKA, DATABASE),
    exits({1: "the event is not in the queue (unknown, expired or already decided)"}),
)


def _service() -> AbstractContextManager[ReviewService]:
    return command_service(ReviewService)


@review_app.command("list")
@operator_command(Permission.REVIEW_READ)
@needs(KAFKA, DATABASE)
def list_queue(
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Quarantined events waiting for a decision, with their spam reasons (no personal data).

    Example: leadpipe spam review list --limit 20
    """
    with _service() as service:
        items = service.pending(limit)
    for item in items:
        if as_json:
            typer.echo(item.model_dump_json())
            continue
        reasons = ", ".join(r["code"] for r in item.reasons)
        typer.echo(
            f"{item.event_id}  {item.quarantined_at:%Y-%m-%d %H:%M}  {item.channel:<9}  "
            f"score {item.score:g}/{item.threshold:g}  {reasons}"
        )
    if not as_json:
        typer.echo(f"{len(items)} event(s) waiting")


@review_app.command("show")
@operator_command(Permission.REVIEW_READ, *ON_QUEUED_EVENT)
def show(event_id: uuid.UUID) -> None:
    """One quarantined event with what the person sent (personal data: shown here, never logged).

    Example: leadpipe spam review show 4f4186a9-16eb-593d-b2cb-662739edc699
    """
    with fails_on(ReviewError), _service() as service:
        item = service.show(event_id)
    typer.echo(json.dumps(item.model_dump(mode="json"), indent=2, ensure_ascii=False))


def _decide(event_id: uuid.UUID, decision: Literal["release", "confirm"], block: tuple[BlockTarget, ...]) -> None:
    with fails_on(ReviewError), _service() as service:
        made = service.decide(event_id, decision, operator(), block)
    typer.echo(f"{made.decision} {made.event_id}: decision {made.decision_id} published")


@review_app.command("release")
@operator_command(Permission.REVIEW_DECIDE, *ON_QUEUED_EVENT)
def release(event_id: uuid.UUID) -> None:
    """Not spam: the event continues through the pipeline, with your decision recorded on it.

    Example: leadpipe spam review release 4f4186a9-16eb-593d-b2cb-662739edc699
    """
    _decide(event_id, "release", ())


@review_app.command("confirm")
@operator_command(Permission.REVIEW_DECIDE, *ON_QUEUED_EVENT)
def confirm(
    event_id: uuid.UUID,
    block: Annotated[bool, typer.Option("--block", help="Block the sender (their subject key, hashed).")] = False,
    block_domain: Annotated[bool, typer.Option("--block-domain", help="Block the sender's e-mail domain.")] = False,
    block_ip: Annotated[bool, typer.Option("--block-ip", help="Block the source IP.")] = False,
) -> None:
    """Spam: the event stays out; optionally block the sender, their domain or their IP (stored hashed).

    Example: leadpipe spam review confirm 4f4186a9-16eb-593d-b2cb-662739edc699 --block-domain
    """
    targets: list[BlockTarget] = []
    if block:
        targets.append("sender")
    if block_domain:
        targets.append("domain")
    if block_ip:
        targets.append("ip")
    _decide(event_id, "confirm", tuple(targets))
