"""The ``leadpipe`` command line: one entry point for the whole product; each area contributes a sub-command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from pipeline import demo, importer, schemas
from pipeline.agents import cli as agents_cli
from pipeline.api import cli as api_cli
from pipeline.config import get_settings
from pipeline.dlq import cli as dlq_cli
from pipeline.identity import cli as identity_cli
from pipeline.kafka import cli as kafka_cli
from pipeline.logging import configure_logging
from pipeline.migrations import cli as migrations_cli
from pipeline.policy import cli as policy_cli
from pipeline.rights import cli as rights_cli
from pipeline.sinks.crm import cli as crm_cli
from pipeline.spam import cli as spam_cli

app = typer.Typer(help="leadpipe: contact events in, lawful records out.", no_args_is_help=True)

#: (command name, each area's typer app or command), in the order ``leadpipe --help`` lists them.
SUBCOMMANDS: list[tuple[str, typer.Typer | Callable[..., Any]]] = [
    ("kafka", kafka_cli.kafka_app),
    ("topics", kafka_cli.topics_app),
    ("schemas", schemas.app),
    ("serve", api_cli.serve),
    ("import", importer.import_file),
    ("dpo", rights_cli.dpo_app),
    ("retention", rights_cli.retention_app),
    ("crm", crm_cli.crm_app),
    ("db", migrations_cli.db_app),
    ("worker", agents_cli.worker),
    ("policy", policy_cli.policy_app),
    ("spam", spam_cli.spam_app),
    ("dlq", dlq_cli.dlq_app),
    ("users", identity_cli.users_app),
    ("keys", identity_cli.keys_app),
    ("demo", demo.demo),
]


@app.callback()
def _main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


def _register() -> None:
    for name, sub in SUBCOMMANDS:
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name)
        else:
            app.command(name)(sub)


_register()


def main() -> None:
    app()
