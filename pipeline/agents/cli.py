"""``leadpipe worker``: the stream processors (every ``REGISTRARS`` entry) in one faust worker process."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.config import get_settings
from pipeline.runtime import Runtime


def worker(
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only these registrars ('module:function'); default: every REGISTRARS entry."),
    ] = None,
) -> None:
    """Run the faust worker (processing chain, spam review and the other areas' agents) until stopped."""
    from pipeline.agents.worker import registrar, run_worker  # noqa: PLC0415  # start-up: faust, all agents (1.4-2 s)

    run_worker(Runtime(get_settings()), registrars=[registrar(r) for r in only] if only else None)
