"""``leadpipe worker``: the stream processors (every ``REGISTRARS`` entry) in one faust worker process."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.config import get_settings


def worker(
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only these registrars ('module:function'); default: every REGISTRARS entry."),
    ] = None,
) -> None:
    """Run the faust worker (processing chain, spam review and the other areas' agents) until stopped."""
    from pipeline.agents.app import run_worker
    from pipeline.runtime import Runtime

    run_worker(Runtime(get_settings()), registrars=only or None)
