"""What every ``leadpipe`` command promises a new operator (issue 18): an example in its ``--help``, its exit codes
there and in docs/cli.md (generated, checked for drift), a shell completion that installs, a confirmation that
refuses at once without a terminal, and one line within seconds, never a traceback, when the broker or the
database it needs cannot be reached. Every command is found by walking the typer app, so a new one is held to the
same rules without being listed here."""

from __future__ import annotations

import enum
import os
import socket
import subprocess
import sys
import time
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer._completion_shared
from confluent_kafka import KafkaError, KafkaException
from typer.testing import CliRunner

from pipeline import cli as leadpipe_cli
from pipeline import clidocs, clikit
from pipeline.cli import app
from pipeline.config import get_settings
from pipeline.dlq import cli as dlq_cli
from pipeline.identity import operator as operator_module
from pipeline.kafka.producer import PublishError
from pipeline.models.identity import Role, system_principal
from pipeline.rights import cli as rights_cli

ROOT = typer.main.get_command(app)
COMMANDS = clidocs.leaf_commands(ROOT)
NAMES = [name for name, _ in COMMANDS]

ADMIN = system_principal("test-admin").model_copy(update={"roles": frozenset({Role.ADMIN})})


def _command(name: str) -> Any:
    return dict(COMMANDS)[name]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A fresh LEADPIPE_HOME (SQLite there), a broker address nothing answers on, settings read afresh."""
    for name in list(os.environ):
        if name.startswith("LEADPIPE_"):
            monkeypatch.delenv(name)
    values = {
        "LEADPIPE_HOME": str(tmp_path / "home"),
        "LEADPIPE_ENVIRONMENT": "test",
        "LEADPIPE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


# ---- help, examples, exit codes, the reference page ---------------------------------------------------------


def test_the_app_has_the_commands_the_readme_names() -> None:
    for name in ("leadpipe dpo erase", "leadpipe import", "leadpipe dlq list", "leadpipe worker", "leadpipe serve"):
        assert name in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_command_shows_an_example_of_itself_and_its_exit_codes(name: str) -> None:
    examples = clikit.examples_in(_command(name).help)
    assert any(name in example for example in examples), f"{name}: no 'Example: {name} ...' line in its docstring"
    result = CliRunner().invoke(app, [*name.split()[1:], "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"Example: {name}" in result.output and "Exit codes:" in result.output
    assert "69" in result.output if clikit.needs_of(_command(name).callback) else "69" not in result.output


def test_no_help_shows_restructured_texts_double_backquotes() -> None:
    """``--help`` prints the docstring as written (docs/cli.md turns ``x`` into `x`, a terminal does not): a group's
    list of commands showed "Stop the broker launched by ``leadpipe kafka up``"."""

    def texts(command: Any) -> Iterator[tuple[str, str]]:
        yield command.name or "leadpipe", command.help or ""
        for param in command.params:
            yield f"{command.name} {param.name}", getattr(param, "help", None) or ""
        for sub in getattr(command, "commands", {}).values():
            yield from texts(sub)

    assert [(where, text) for where, text in texts(ROOT) if "``" in text] == []


def test_docs_cli_md_is_what_the_commands_generate() -> None:
    assert clidocs.REFERENCE.read_text() == clidocs.render_reference(ROOT), "run `leadpipe docs generate`"
    text = clidocs.REFERENCE.read_text()
    for name in NAMES:
        assert f"### `{name}`" in text
    assert "| 69 |" in text and "--install-completion" in text


def test_docs_check_fails_on_a_stale_page(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(clidocs.render_reference(ROOT).replace("dlq", "dead", 1))
    result = CliRunner().invoke(app, ["docs", "check", "--path", str(stale)])
    assert result.exit_code == 1 and "leadpipe docs generate" in result.output
    assert CliRunner().invoke(app, ["docs", "generate", "--path", str(stale)]).exit_code == 0
    assert CliRunner().invoke(app, ["docs", "check", "--path", str(stale)]).exit_code == 0


def test_every_declared_exit_code_is_in_the_help_and_the_reference() -> None:
    text = clidocs.REFERENCE.read_text()
    erase = _command("leadpipe dpo erase")
    codes = clikit.exit_codes_of(erase.callback)
    assert {0, 1, 2, 3, 4, 69, 78} <= set(codes)
    section = text[text.index("### `leadpipe dpo erase`") :].split("### ", 2)[1]
    assert "3 with --wait: a sink failed" in section and "4 with --wait: not confirmed in time" in section


# ---- shell completion -----------------------------------------------------------------------------------------


def _leadpipe() -> str:
    return str(Path(sys.executable).with_name("leadpipe"))


def test_shell_completion_installs_and_completes_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # typer takes the shell from the process's ancestors (shellingham), not from the argument: a test run whose
    # parent shell has exited (a detached run) read "Shell None is not supported"
    monkeypatch.setattr(typer._completion_shared, "_get_shell_name", lambda: "bash")
    home = tmp_path / "home"
    home.mkdir()
    installed = CliRunner().invoke(
        app, ["--install-completion", "bash"], env={"HOME": str(home), "SHELL": "/bin/bash"}, prog_name="leadpipe"
    )
    assert installed.exit_code == 0, installed.output
    assert "leadpipe" in (home / ".bashrc").read_text()
    assert "_LEADPIPE_COMPLETE" in (home / ".bash_completions" / "leadpipe.sh").read_text()
    # what the installed script asks the real console script for when someone types `leadpipe dl<TAB>`
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEADPIPE_")}
    completed = subprocess.run(
        [_leadpipe()],
        check=False,
        env={**base, "_LEADPIPE_COMPLETE": "complete_bash", "COMP_WORDS": "leadpipe dl", "COMP_CWORD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.stdout.split() == ["dlq"], completed.stdout + completed.stderr


# ---- confirmation ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_erase_without_a_terminal_refuses_at_once_naming_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    submitted: list[Any] = []
    monkeypatch.setattr(rights_cli, "_submit", lambda *a, **kw: submitted.append(a))
    started = time.monotonic()
    result = CliRunner().invoke(app, ["dpo", "erase", "--email", "ana@example.com", "--wait"], input="y\n")
    assert result.exit_code == clikit.EXIT_USAGE, result.output
    assert "--yes" in result.output and "Kafka" not in result.output  # refused before the broker was checked
    assert time.monotonic() - started < 5
    assert submitted == []


@pytest.mark.usefixtures("env")
def test_erase_on_a_terminal_asks_and_a_no_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    submitted: list[Any] = []
    monkeypatch.setattr(rights_cli, "_submit", lambda *a, **kw: submitted.append(a))
    monkeypatch.setattr(clikit, "interactive", lambda: True)
    refused = CliRunner().invoke(rights_cli.dpo_app, ["erase", "--email", "ana@example.com"], input="n\n")
    assert refused.exit_code == 1 and "Erase this person everywhere?" in refused.output and submitted == []
    agreed = CliRunner().invoke(rights_cli.dpo_app, ["erase", "--email", "ana@example.com"], input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert len(submitted) == 1


# ---- fail fast: one line, exit 69, within seconds ------------------------------------------------------------


def _args_for(name: str, tmp_path: Path) -> list[str]:
    """Arguments a command accepts (so it gets past parsing and reaches its dependency check)."""
    command = _command(name)
    args = name.split()[1:]
    for param in command.params:
        if param.name == "yes":
            args.append("--yes")
        if not param.required:
            continue
        annotation = param.type_descriptor.annotation
        annotation = typing.get_args(annotation)[0] if typing.get_args(annotation) else annotation
        if annotation is uuid.UUID:
            value = str(uuid.uuid4())
        elif annotation is Path:
            value = str(tmp_path / "records.csv")
            Path(value).write_text("email\nana@example.com\n")
        elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            value = str(next(iter(annotation)).value)
        else:
            value = "x"
        if param.param_type_name == "argument":
            args.append(value)
        else:
            args += [param.opts[0], value]
    return args


def _needing(dependency: clikit.Dependency) -> list[str]:
    return [name for name, command in COMMANDS if dependency in clikit.needs_of(command.callback)]


def _one_line_failure(result: Any, started: float) -> str:
    assert result.exit_code == clikit.EXIT_UNAVAILABLE, result.output
    assert time.monotonic() - started < 5
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output and "%3|" not in result.output
    return lines[0]


def test_the_commands_that_need_the_broker_and_the_database_say_so() -> None:
    kafka, database = set(_needing(clikit.KAFKA)), set(_needing(clikit.DATABASE))
    for name in ("dlq list", "import", "topics apply", "dpo erase", "spam review list", "worker", "serve"):
        assert f"leadpipe {name}" in kafka
    for name in ("dlq list", "import", "dpo status", "crm search", "crm show", "worker", "serve", "db upgrade"):
        assert f"leadpipe {name}" in database


@pytest.mark.parametrize("name", _needing(clikit.KAFKA))
def test_without_a_broker_one_line_names_what_was_tried_and_what_to_do(
    name: str, env: dict[str, str], tmp_path: Path
) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(app, _args_for(name, tmp_path))
    line = _one_line_failure(result, started)
    assert env["LEADPIPE_KAFKA_BOOTSTRAP_SERVERS"] in line and "connection refused" in line
    assert "`leadpipe kafka up`" in line and "LEADPIPE_KAFKA_BOOTSTRAP_SERVERS" in line


@pytest.mark.parametrize("name", _needing(clikit.DATABASE))
def test_without_the_database_one_line_names_it_without_its_password(
    name: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADPIPE_DATABASE_URL", f"postgresql://leadpipe:s3cret-pw@127.0.0.1:{_closed_port()}/crm")
    get_settings.cache_clear()
    started = time.monotonic()
    result = CliRunner().invoke(app, _args_for(name, tmp_path))
    line = _one_line_failure(result, started)
    assert "cannot reach the database at postgresql://leadpipe:***@127.0.0.1" in line
    assert "s3cret-pw" not in result.output and "LEADPIPE_DATABASE_URL" in line


class _Service:
    """What ``dlq_cli._service()`` gives: a service in a ``with`` block."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None


class _Gone(_Service):
    """A dead-letter service whose broker went away after the check."""

    def find(self, *_args: Any, **_kwargs: Any) -> Any:
        error = KafkaError(KafkaError._TRANSPORT, "Failed to get metadata: Local: Broker transport failure")
        raise KafkaException(error)


@pytest.mark.usefixtures("env")
def test_a_failure_after_the_check_is_one_line_too_and_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(leadpipe_cli, "check_kafka", lambda _settings: None)
    monkeypatch.setattr(dlq_cli, "_service", _Gone)
    # the operator is resolved before the body runs (its first run on a fresh home bootstraps an admin, which logs)
    monkeypatch.setattr(operator_module, "resolve_operator", lambda _settings, _permission: ADMIN)
    started = time.monotonic()
    line = _one_line_failure(CliRunner().invoke(app, ["dlq", "list"]), started)
    assert line.startswith("leadpipe: Kafka at 127.0.0.1:") and "Broker transport failure" in line
    assert "`leadpipe kafka up`" in line

    debug = CliRunner().invoke(app, ["--debug", "dlq", "list"])
    assert debug.exit_code == clikit.EXIT_UNAVAILABLE
    assert "Traceback" in debug.output + capsys.readouterr().err


class _NoTopics(_Service):
    """A dead-letter service on a cluster where ``leadpipe topics apply`` was never run (as a publish reports it)."""

    def find(self, *_args: Any, **_kwargs: Any) -> Any:
        raise PublishError("2 of 2 records failed: Broker: Unknown topic or partition", total=2, topic_missing=True)


@pytest.mark.usefixtures("env")
def test_a_publish_to_topics_never_created_says_to_create_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not "start a broker": the broker answered; it does not know the topics (a new cluster or prefix)."""
    monkeypatch.setattr(leadpipe_cli, "check_kafka", lambda _settings: None)
    monkeypatch.setattr(dlq_cli, "_service", _NoTopics)
    monkeypatch.setattr(operator_module, "resolve_operator", lambda _settings, _permission: ADMIN)
    line = _one_line_failure(CliRunner().invoke(app, ["dlq", "list"]), time.monotonic())
    assert "Unknown topic or partition" in line and "`leadpipe topics apply`" in line
    assert "`leadpipe kafka up`" not in line


@pytest.mark.usefixtures("env")
def test_invalid_settings_are_one_line_and_exit_78(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADPIPE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["topics", "list"])
    assert result.exit_code == clikit.EXIT_CONFIG
    assert result.output.startswith("leadpipe: invalid setting") and "Traceback" not in result.output


@pytest.mark.usefixtures("env")
def test_serve_on_a_taken_port_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process on the API's port: one line naming it and what to do, exit 1, not uvicorn's traceback."""
    from pipeline.api import cli as api_cli

    monkeypatch.setattr(leadpipe_cli, "check_kafka", lambda _settings: None)
    monkeypatch.setattr(api_cli, "require_reapplied", lambda _runtime: None)  # reads the suppression topic
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 1, result.output
    said = [line for line in result.output.splitlines() if line.strip() and not line.startswith("{")]  # not the log
    assert len(said) == 1 and "Traceback" not in result.output, result.output
    assert said[0].startswith(f"leadpipe: cannot listen on 127.0.0.1:{port} (") and "LEADPIPE_INGEST_PORT" in said[0]


@pytest.mark.usefixtures("env")
def test_a_secret_production_requires_missing_is_one_line_and_exit_78(monkeypatch: pytest.MonkeyPatch) -> None:
    """In production the peppers and the key-encryption key are read where they are used, after the settings
    parsed: a missing one was a traceback ending in ValueError."""
    monkeypatch.setenv("LEADPIPE_ENVIRONMENT", "production")
    monkeypatch.setenv("LEADPIPE_API_KEY", "lpk_abcdefghijkl_" + "A" * 43)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["crm", "search", "--name", "garcia"])
    assert result.exit_code == clikit.EXIT_CONFIG, result.output
    said = [line for line in result.output.splitlines() if line.strip() and not line.startswith("{")]
    assert said == ["leadpipe: invalid settings: LEADPIPE_API_KEY_PEPPER must be set in production"], result.output
