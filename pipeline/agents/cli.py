"""``leadpipe worker``: the stream processors (every ``REGISTRARS`` entry) in one faust worker process."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.clikit import DATABASE, KAFKA, needs
from pipeline.config import get_settings
from pipeline.rights.restore import UnappliedErasuresError
from pipeline.runtime import Runtime


@needs(KAFKA, DATABASE)
def worker(
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only these registrars ('module:function'); default: every REGISTRARS entry."),
    ] = None,
) -> None:
    """Run the faust worker (processing chain, spam review and the other areas' agents) until stopped.

    Nothing submitted (API, import, SDK, DPO requests) is processed until a worker runs: it waits on Kafka.

    Example: leadpipe worker

    Example: LEADPIPE_APP_ID=leadpipe-rights leadpipe worker --only pipeline.agents.rights:register
    """
    from pipeline.agents.worker import registrar, run_worker  # noqa: PLC0415  # start-up: faust, all agents (1.4-2 s)

    settings = get_settings()
    servers = settings.kafka_bootstrap_servers
    typer.echo(f"leadpipe worker {settings.app_id} starting (Kafka at {servers}); Ctrl-C stops it")
    try:
        run_worker(Runtime(settings), registrars=[registrar(r) for r in only] if only else None)
    except UnappliedErasuresError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
