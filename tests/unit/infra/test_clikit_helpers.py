"""The shared pieces of ``leadpipe`` commands (``pipeline/clikit.py``): a refusal is one line and exit 1, a
generated file says whether it changed and its check names the fix, and declarations shared by a group of
commands reach each command's help through ``operator_command``."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pipeline import clikit
from pipeline.identity.operator import ACCESS_ATTRIBUTE, operator_command
from pipeline.identity.permissions import Permission


class Refused(Exception):
    pass


def test_fails_on_turns_the_named_errors_into_their_message_and_exit_1() -> None:
    app = typer.Typer()

    @app.command()
    def run(kind: str) -> None:
        with clikit.fails_on(Refused, prefix="error: "):
            if kind == "refused":
                raise Refused("no such principal")
            raise KeyError(kind)

    refused = CliRunner().invoke(app, ["refused"])
    assert refused.exit_code == clikit.EXIT_FAILED and refused.output == "error: no such principal\n"
    other = CliRunner().invoke(app, ["other"])
    assert isinstance(other.exception, KeyError)  # anything else is not a refusal: it is not swallowed


def test_write_generated_says_wrote_then_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "docs" / "out.md"
    clikit.write_generated(target, "text\n")
    clikit.write_generated(target, "text\n")
    assert target.read_text() == "text\n"
    assert capsys.readouterr().out == f"wrote {target}\nunchanged {target}\n"


def test_require_current_names_the_fix_on_each_stale_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as stale:
        clikit.require_current(["a: missing", "b: differs"], generate="leadpipe x generate", current="fine")
    assert stale.value.exit_code == clikit.EXIT_FAILED
    assert capsys.readouterr().err == "a: missing: run `leadpipe x generate`\nb: differs: run `leadpipe x generate`\n"
    clikit.require_current([], generate="leadpipe x generate", current="fine")
    assert capsys.readouterr().out == "fine\n"


def test_operator_command_applies_the_shared_declarations_under_the_permission() -> None:
    shared: tuple[clikit.Declaration, ...] = (clikit.needs(clikit.DATABASE), clikit.exits({3: "it was three"}))

    @operator_command(Permission.PRINCIPALS_READ, *shared)
    def command() -> None:
        """Example: leadpipe nothing"""

    assert getattr(command, ACCESS_ATTRIBUTE) is Permission.PRINCIPALS_READ
    assert clikit.needs_of(command) == (clikit.DATABASE,)
    assert clikit.exit_codes_of(command)[3] == "it was three"
