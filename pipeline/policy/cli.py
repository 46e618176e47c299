"""``leadpipe policy check [FILE]``: validate a policy file the way the worker does at start."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.clikit import exits
from pipeline.config import get_settings
from pipeline.policy.model import PolicyError, load_policy

policy_app = typer.Typer(help="The processing policy (periods, purposes, bases, spam signals).", no_args_is_help=True)


@policy_app.command("check")
@exits({1: "the policy file is invalid (each bad entry is printed by its path)"})
def check(
    file: Annotated[
        Path | None, typer.Argument(help="Policy file; default LEADPIPE_POLICY_FILE or the packaged one.")
    ] = None,
) -> None:
    """Validate a policy file; prints each bad entry by its path and exits 1 when it is invalid.

    Example: leadpipe policy check

    Example: leadpipe policy check my-policy.yaml
    """
    path = file or get_settings().policy_file
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok: policy version {policy.version}, {len(policy.channels)} channels, {len(policy.purposes)} purposes")
