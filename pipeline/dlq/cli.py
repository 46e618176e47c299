"""``leadpipe dlq list|show|replay``: the operator's side of the dead-letter topics (``dlq:read``, ``dlq:replay``:
admins; each replay is audited with the operator's principal, ``pipeline/identity/operator.py``)."""

from __future__ import annotations

import json
import sys
import uuid
from contextlib import AbstractContextManager
from typing import Annotated

import typer

from pipeline.clikit import DATABASE, KAFKA, command_service, exits, needs
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.dlq.service import DeadLetterService
from pipeline.identity.operator import operator, operator_command
from pipeline.identity.permissions import Permission
from pipeline.topics import DLQ_TOPICS

dlq_app = typer.Typer(
    help="Dead letters: what no stage could handle, with why; replay them once the cause is fixed.",
    no_args_is_help=True,
)

Topics = Annotated[
    list[str] | None,
    typer.Option("--topic", help=f"{', '.join(DLQ_TOPICS)} (repeatable); default: all of them."),
]
Stage = Annotated[str | None, typer.Option(help="Only this stage, e.g. process:parse, sink:hubspot, ingest.")]
Reason = Annotated[str | None, typer.Option(help="Only this reason code, e.g. invalid_email, hubspot_validation.")]


def _service() -> AbstractContextManager[DeadLetterService]:
    return command_service(DeadLetterService)


def _topics(topics: list[str] | None) -> tuple[str, ...]:
    return tuple(topics) if topics else DLQ_TOPICS


@dlq_app.command("list")
@operator_command(Permission.DLQ_READ)
@needs(KAFKA, DATABASE)
def list_letters(
    *,
    topic: Topics = None,
    stage: Stage = None,
    reason: Reason = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest last.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line (without the payload).")] = False,
) -> None:
    """Dead letters, oldest first, with stage, reason and where they came from (no personal data), then a summary.

    Example: leadpipe dlq list

    Example: leadpipe dlq list --topic contacts.dlq.ingest --reason invalid_email --json
    """
    try:
        with _service() as service:
            listing = service.find(_topics(topic), stage=stage, reason=reason)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    shown = listing.letters[-limit:] if limit else listing.letters
    for found in shown:
        letter = found.letter
        if as_json:
            document = {"topic": found.topic, "times": found.times}
            typer.echo(json.dumps({**document, **letter.model_dump(mode="json", exclude={"payload"})}))
            continue
        where = (
            f"{letter.source_topic}:{letter.source_partition}:{letter.source_offset}"
            if letter.source_topic
            else f"{letter.channel.value} ({letter.content_type.partition(';')[0]})"  # refused at ingest: what it was
            if letter.channel
            else "-"
        )
        again = f"  (x{found.times})" if found.times > 1 else ""
        typer.echo(
            f"{letter.dead_letter_id}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  {found.topic:<19}  "
            f"{letter.stage:<16}  {letter.reason:<24}  from {where}{again}"
        )
    if as_json:
        return
    more = f", {len(shown)} shown" if len(shown) < len(listing.letters) else ""
    typer.echo(f"{len(listing.letters)} dead letter(s){more}")
    for (topic_name, stage_name, reason_code), count in sorted(listing.summary().items()):
        typer.echo(f"  {count:>6}  {topic_name}  {stage_name}  {reason_code}")
    if listing.unreadable:
        typer.echo(f"  {listing.unreadable:>6}  records on these topics that are not dead letters (see the log)")


@dlq_app.command("show")
@operator_command(Permission.DLQ_READ)
@needs(KAFKA, DATABASE)
@exits({1: "no such dead letter, or its payload cannot be shown (erased since, or none)"})
def show(
    dead_letter_id: uuid.UUID,
    payload: Annotated[
        bool,
        typer.Option(
            "--payload",
            help="Write the opened payload to standard output instead (personal data: redirect it to a protected "
            "file, e.g. to fix it and load it with `leadpipe import`).",
        ),
    ] = False,
) -> None:
    """One dead letter: stage, reason, the error, where it came from.

    Example: leadpipe dlq show 1c905c46-563d-5f49-ab92-659cd54d5414

    Example: leadpipe dlq show 1c905c46-563d-5f49-ab92-659cd54d5414 --payload > fix-me.json
    """
    with _service() as service:
        _show(service, dead_letter_id, payload=payload)


def _show(service: DeadLetterService, dead_letter_id: uuid.UUID, *, payload: bool) -> None:
    try:
        found = service.get(dead_letter_id)
    except KeyError as exc:
        typer.echo(exc.args[0], err=True)
        raise typer.Exit(1) from None
    if not payload:
        document = {"topic": found.topic, **found.letter.model_dump(mode="json", exclude={"payload"})}
        document["has_payload"] = found.letter.payload is not None
        typer.echo(json.dumps(document, indent=2))
        return
    try:
        data = service.payload(found.letter)
    except KeyDestroyedError:
        typer.echo("the subject was erased since: the payload cannot be opened any more", err=True)
        raise typer.Exit(1) from None
    if data is None:
        typer.echo("this dead letter carries no payload", err=True)
        raise typer.Exit(1)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@dlq_app.command("replay")
@operator_command(Permission.DLQ_REPLAY)
@needs(KAFKA, DATABASE)
@exits({1: "a dead letter could not be replayed (erased since, refused at ingest, or not found)"})
def replay(
    dead_letter_ids: Annotated[list[uuid.UUID] | None, typer.Argument(help="Dead letters to replay.")] = None,
    *,
    topic: Topics = None,
    stage: Stage = None,
    reason: Reason = None,
    all_matching: Annotated[
        bool, typer.Option("--all", help="Replay every dead letter the filters match (no ids needed).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be replayed; publish nothing.")] = False,
) -> None:
    """Publish dead letters back onto the topic they were consumed from, once their cause is fixed; audited.

    A payload refused at ingest is read again by its channel's adapter (the policy or the adapter fixed since):
    published when it reads now, else said why not, nothing published. Exit code 1 when any of them could not be
    replayed (erased since, or still refused at ingest).

    Example: leadpipe dlq replay --all --stage sink:hubspot --dry-run

    Example: leadpipe dlq replay 1c905c46-563d-5f49-ab92-659cd54d5414
    """
    if not dead_letter_ids and not (all_matching and (stage or reason or topic)):
        typer.echo("name dead letters by id, or pass --all with --stage, --reason or --topic", err=True)
        raise typer.Exit(2)
    with _service() as service:
        _replay(service, dead_letter_ids, _topics(topic), stage=stage, reason=reason, dry_run=dry_run)


def _replay(
    service: DeadLetterService,
    dead_letter_ids: list[uuid.UUID] | None,
    topics: tuple[str, ...],
    *,
    stage: str | None,
    reason: str | None,
    dry_run: bool,
) -> None:
    try:
        listing = service.find(topics, stage=stage, reason=reason, ids=dead_letter_ids or ())
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    missing = set(dead_letter_ids or ()) - {f.letter.dead_letter_id for f in listing.letters}
    for dead_letter_id in sorted(missing, key=str):
        typer.echo(f"{dead_letter_id}  not found (unknown, past retention, or not matching the filters)", err=True)
    results = service.replay(listing.letters, by=operator(), dry_run=dry_run)
    for result in results:
        typer.echo(f"{result.dead_letter_id}  {result.outcome:<14}  -> {result.to_topic or '-'}  {result.detail}")
    done = sum(r.outcome in ("replayed", "would_replay") for r in results)
    typer.echo(f"{done} of {len(results)} {'would be ' if dry_run else ''}replayed")
    if missing or done < len(results):
        raise typer.Exit(1)
