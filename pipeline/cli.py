"""The ``leadpipe`` command line: one entry point for the whole product; each area contributes a sub-command.

What every command gets from here, declared in the area's own ``cli.py`` with ``pipeline.clikit``: its dependencies
checked before it runs (``@needs``), its exit codes in ``--help`` (``@exits``), and one place that turns an
unreachable broker or database into one line and exit code 69 instead of a traceback (``--debug`` shows it).

Every command declares who may run it: an operator command carries ``@operator_command(Permission.X)``
(``pipeline/identity/operator.py``), and the commands that act for nobody (they start a process, or work with the
deployment's own credentials) are the groups in ``WITHOUT_OPERATOR``. ``--key-file`` names the operator's API key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from confluent_kafka import KafkaException
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from typer.core import TyperGroup

from pipeline import asyncapi, clidocs, clikit, demo, importer, schemas
from pipeline.agents import cli as agents_cli
from pipeline.api import cli as api_cli
from pipeline.config import SettingError, get_settings
from pipeline.crm import cli as crm_cli
from pipeline.db import DATABASE_HINT, DatabaseUnavailable, check_database, safe_url
from pipeline.dlq import cli as dlq_cli
from pipeline.identity import cli as identity_cli
from pipeline.identity.operator import API_KEY_ENV, use_key_file
from pipeline.kafka import cli as kafka_cli
from pipeline.kafka.clients import KAFKA_HINT, KafkaUnavailable, check_kafka
from pipeline.kafka.consumer import ReadError, TopicMissing
from pipeline.kafka.producer import PublishError
from pipeline.logging import configure_logging, get_logger
from pipeline.migrations import cli as migrations_cli
from pipeline.policy import cli as policy_cli
from pipeline.review import cli as review_cli
from pipeline.rights import cli as rights_cli
from pipeline.spam import cli as spam_cli

log = get_logger(__name__)


TOPICS_HINT = "create the topics with `leadpipe topics apply` (LEADPIPE_TOPIC_PREFIX names the set)"


class _Leadpipe(TyperGroup):
    """The root command. Built from the areas' apps on every run (typer builds the click commands afresh), it wraps
    each command in the checks it declared and puts its exit codes in its ``--help``, on these click objects only:
    an area's own typer app, invoked alone (its unit tests), stays as written. Failures of the broker or the
    database, wherever they happen, end as one line."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for command in _leaves(self):
            _finish(command)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (KafkaUnavailable, DatabaseUnavailable) as exc:
            raise _unavailable(str(exc), exc.hint) from None
        except TopicMissing as exc:
            raise _unavailable(str(exc), TOPICS_HINT) from None
        except (PublishError, ReadError, KafkaException) as exc:
            servers = get_settings().kafka_bootstrap_servers
            hint = TOPICS_HINT if isinstance(exc, PublishError) and exc.topic_missing else KAFKA_HINT
            raise _unavailable(f"Kafka at {servers} failed the command ({_reason(exc)})", hint) from None
        except DBAPIError as exc:
            where = safe_url(get_settings().resolved_database_url)
            raise _unavailable(f"the database at {where} failed the command ({_reason(exc)})", DATABASE_HINT) from None
        except SettingError as exc:  # a secret production requires, read where it is used
            log.debug("command_failed", exc_info=True)
            typer.echo(f"leadpipe: invalid settings: {exc}", err=True)
            raise typer.Exit(clikit.EXIT_CONFIG) from None


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    if isinstance(exc, KafkaException) and exc.args:
        text = getattr(exc.args[0], "str", lambda: str(exc.args[0]))()
    else:
        text = str(orig if orig is not None else exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _unavailable(message: str, hint: str) -> typer.Exit:
    """One line on stderr; the traceback only at debug level (``--debug``, ``LEADPIPE_LOG_LEVEL=DEBUG``)."""
    log.debug("command_failed", exc_info=True)
    typer.echo(f"leadpipe: {message}; {hint}", err=True)
    return typer.Exit(clikit.EXIT_UNAVAILABLE)


app = typer.Typer(
    cls=_Leadpipe,
    help="leadpipe: contact events in, lawful records out.\n\nExample: leadpipe kafka up",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a local may hold a person's data
)

# `leadpipe spam` holds the engine's and the classifier's commands (pipeline.spam) and the review queue's
# (pipeline.review): composed here, where both are known, so that neither package imports the other.
spam_cli.spam_app.add_typer(review_cli.review_app, name="review")

#: (command name, each area's typer app or command), in the order ``leadpipe --help`` lists them.
SUBCOMMANDS: list[tuple[str, typer.Typer | Callable[..., Any]]] = [
    ("kafka", kafka_cli.kafka_app),
    ("topics", kafka_cli.topics_app),
    ("lag", kafka_cli.lag),
    ("schemas", schemas.app),
    ("asyncapi", asyncapi.app),
    ("serve", api_cli.serve),
    ("import", importer.import_file),
    ("dpo", rights_cli.dpo_app),
    ("retention", rights_cli.retention_app),
    ("restore", rights_cli.restore_app),
    ("crm", crm_cli.crm_app),
    ("db", migrations_cli.db_app),
    ("worker", agents_cli.worker),
    ("policy", policy_cli.policy_app),
    ("spam", spam_cli.spam_app),
    ("dlq", dlq_cli.dlq_app),
    ("users", identity_cli.users_app),
    ("keys", identity_cli.keys_app),
    ("demo", demo.demo),
    ("docs", clidocs.docs_app),
]

LogFormat = Literal["auto", "json", "console"]


#: Top-level commands that act for no operator, and why (every other command declares its permission).
WITHOUT_OPERATOR: dict[str, str] = {
    "kafka": "starts and stops the local broker",
    "topics": "creates topics with the deployment's broker credentials",
    "lag": "reads consumer-group offsets with the deployment's broker credentials (no records, no personal data)",
    "asyncapi": "writes and checks the AsyncAPI document of the topics",
    "restore": "re-applies recorded erasures after a restore with the deployment's credentials (the restore hook Job)",
    "schemas": "writes and checks the JSON Schema files",
    "serve": "starts the API; each request authenticates on its own",
    "import": "publishes a file as a source, with the deployment's broker credentials",
    "db": "migrates the database with the deployment's credentials",
    "worker": "starts the stream processors",
    "policy": "checks a policy file",
    "demo": "the end-to-end demo on the embedded default",
    "docs": "writes and checks the generated CLI reference",
}


@app.callback()
def _main(
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            "--log-format",
            help="json: one JSON object per line, for machines; console: readable. Default (auto): readable and "
            "warnings only on a terminal, JSON otherwise. Also LEADPIPE_LOG_FORMAT.",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log at debug level and show the traceback behind a one-line error.")
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help=f"A file holding your API key (default: the {API_KEY_ENV} variable); operator commands run as you",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    use_key_file(key_file)
    try:
        settings = get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = " LEADPIPE_" + "_".join(str(p) for p in error["loc"]).upper() if error["loc"] else "s"
            typer.echo(f"leadpipe: invalid setting{where}: {error['msg']}", err=True)
        raise typer.Exit(clikit.EXIT_CONFIG) from None
    configure_logging("DEBUG" if debug else settings.log_level, log_format or settings.log_format)


def _preflight(fn: Callable[..., Any], dependencies: tuple[clikit.Dependency, ...]) -> Callable[..., Any]:
    """``fn`` behind a check of its dependencies: the database first (every such command opens it), then Kafka."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        settings = get_settings()
        if clikit.DATABASE in dependencies:
            check_database(settings.resolved_database_url)
        if clikit.KAFKA in dependencies:
            check_kafka(settings)
        return fn(*args, **kwargs)

    return run


def _epilog(fn: Callable[..., Any] | None) -> str:
    codes = clikit.exit_codes_of(fn)
    return "Exit codes:\n" + "\n".join(f"  {code:>2}  {meaning}" for code, meaning in codes.items())


def _leaves(command: Any) -> Iterator[Any]:
    """Every click command below ``command`` that runs something."""
    for sub in getattr(command, "commands", {}).values():
        yield from _leaves(sub) if hasattr(sub, "commands") else (sub,)


def _finish(command: Any) -> None:
    """Wrap a click command in the checks it declared and put its exit codes in its ``--help``."""
    callback = command.callback
    command.epilog = command.epilog or _epilog(callback)
    dependencies = clikit.needs_of(callback)
    if dependencies and callback is not None:
        command.callback = _preflight(callback, dependencies)


def _register() -> None:
    for name, sub in SUBCOMMANDS:
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name)
        else:
            app.command(name)(sub)


_register()


def main() -> None:
    app()
