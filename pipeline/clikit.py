"""What every ``leadpipe`` command shares, declared where the command is written (the area's ``cli.py``):

- ``@needs(KAFKA, DATABASE)``: the command talks to the broker and/or the database. ``pipeline/cli.py`` checks both
  before the command runs, so an unreachable one is one line and exit code ``EXIT_UNAVAILABLE`` within seconds.
- ``@exits({3: "..."})``: the command's own exit codes, shown in its ``--help`` and in ``docs/cli.md`` beside the
  ones every command shares (``COMMON_EXITS``).
- ``Example: leadpipe ...`` lines in the docstring: every command's ``--help`` shows at least one (a test checks).
- ``fails_on(SomeError)``: a refusal the operator can act on is its message on stderr and exit 1, no traceback.
- ``write_generated`` and ``require_current``: the ``generate``/``check`` pair of a file made from the code (the CLI
  reference, the AsyncAPI document, the JSON Schemas), so each says the same and ``make lint`` reads one shape.
- ``confirm``: asks on a terminal; without one, refuses at once naming the flag that confirms (a script must say
  ``--yes`` rather than hang or read "no" from an empty stdin).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import typer

from pipeline.config import get_settings
from pipeline.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)
#: ``needs(...)`` or ``exits(...)`` as a value, e.g. shared by a group of commands.
Declaration = Callable[[Callable[..., Any]], Callable[..., Any]]

Dependency = Literal["kafka", "database"]
KAFKA: Dependency = "kafka"
DATABASE: Dependency = "database"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: sysexits.h EX_UNAVAILABLE: the broker or the database could not be reached.
EXIT_UNAVAILABLE = 69
#: sysexits.h EX_CONFIG: the settings (LEADPIPE_* variables) are invalid.
EXIT_CONFIG = 78

#: Exit codes every command shares; ``@exits`` adds or overrides a command's own.
COMMON_EXITS: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILED: "failed: the message on stderr says why",
    EXIT_USAGE: "usage error (unknown option, bad value, a confirmation refused without a terminal), or refused: "
    "no API key where one is needed, or one without the command's permission",
    EXIT_CONFIG: "invalid settings (a LEADPIPE_* variable)",
}
UNAVAILABLE_EXIT = {EXIT_UNAVAILABLE: "Kafka or the database could not be reached (one line says which and what to do)"}

_NEEDS = "__leadpipe_needs__"
_EXITS = "__leadpipe_exits__"


def needs(*dependencies: Dependency) -> Callable[[F], F]:
    """Mark a command as needing the broker and/or the database (checked before it runs)."""

    def mark(fn: F) -> F:
        setattr(fn, _NEEDS, tuple(dependencies))
        return fn

    return mark


def exits(codes: Mapping[int, str]) -> Callable[[F], F]:
    """Declare a command's own exit codes (beyond ``COMMON_EXITS``)."""

    def mark(fn: F) -> F:
        setattr(fn, _EXITS, dict(codes))
        return fn

    return mark


def needs_of(fn: Callable[..., Any] | None) -> tuple[Dependency, ...]:
    found: tuple[Dependency, ...] = getattr(fn, _NEEDS, ())
    return found


def exit_codes_of(fn: Callable[..., Any] | None) -> dict[int, str]:
    """Every exit code of a command: the shared ones, 69 when it needs a dependency, then its own."""
    codes = dict(COMMON_EXITS)
    if needs_of(fn):
        codes.update(UNAVAILABLE_EXIT)
    codes.update(getattr(fn, _EXITS, {}))
    return dict(sorted(codes.items()))


def examples_in(help_text: str | None) -> list[str]:
    """The ``Example: leadpipe ...`` lines of a help text, without the label."""
    out = []
    for line in (help_text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("Example:") and "leadpipe" in stripped:
            out.append(stripped.removeprefix("Example:").strip())
    return out


@contextmanager
def fails_on(*errors: type[Exception], prefix: str = "") -> Iterator[None]:
    """One of ``errors`` (a refusal with a message for the operator) ends the command: the message, exit 1."""
    try:
        yield
    except errors as exc:
        typer.echo(f"{prefix}{exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


@contextmanager
def command_service(build: Callable[[Runtime], C]) -> Iterator[C]:
    """A service for one command, on a runtime of the command's settings; closed after (its publisher's thread must
    not outlive the command when it runs in-process, as under tests) and the runtime's engine disposed."""
    runtime = Runtime(get_settings())
    service = build(runtime)
    try:
        yield service
    finally:
        service.close()
        runtime.engine.dispose()


def write_generated(path: Path, text: str) -> None:
    """Write a generated file and say whether that changed it."""
    changed = not path.exists() or path.read_text() != text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    typer.echo(f"{'wrote' if changed else 'unchanged'} {path}")


def require_current(problems: Iterable[str], *, generate: str, current: str) -> None:
    """End a ``check``: each problem with the command that fixes it on stderr and exit 1, else say ``current``."""
    stale = [f"{problem}: run `{generate}`" for problem in problems]
    for line in stale:
        typer.echo(line, err=True)
    if stale:
        raise typer.Exit(EXIT_FAILED)
    typer.echo(current)


def interactive() -> bool:
    """Whether a person can answer a question: standard input is a terminal."""
    return sys.stdin.isatty()


def confirm(question: str, *, flag: str = "--yes") -> None:
    """Ask ``question`` on a terminal (abort on no); without a terminal, refuse at once naming ``flag``."""
    if not interactive():
        typer.echo(f"{question} Refusing without a terminal to answer on: pass {flag} to confirm.", err=True)
        raise typer.Exit(EXIT_USAGE)
    typer.confirm(question, abort=True)


__all__ = [
    "COMMON_EXITS",
    "DATABASE",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "KAFKA",
    "Declaration",
    "confirm",
    "examples_in",
    "exit_codes_of",
    "exits",
    "fails_on",
    "interactive",
    "needs",
    "needs_of",
    "require_current",
    "write_generated",
]
