"""The ``leadpipe`` command line: one entry point for the whole product; each area contributes a sub-command.

Every command declares who may run it: an operator command carries ``@operator_command(Permission.X)``
(``pipeline/identity/operator.py``), and the commands that act for nobody (they start a process, or work with the
deployment's own credentials) are the groups in ``WITHOUT_OPERATOR``. ``--key-file`` names the operator's API key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline import demo, importer, schemas
from pipeline.agents import cli as agents_cli
from pipeline.api import cli as api_cli
from pipeline.config import get_settings
from pipeline.dlq import cli as dlq_cli
from pipeline.identity import cli as identity_cli
from pipeline.identity.operator import API_KEY_ENV, use_key_file
from pipeline.kafka import cli as kafka_cli
from pipeline.logging import configure_logging
from pipeline.migrations import cli as migrations_cli
from pipeline.policy import cli as policy_cli
from pipeline.review import cli as review_cli
from pipeline.rights import cli as rights_cli
from pipeline.sinks.crm import cli as crm_cli

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
    ("spam", review_cli.spam_app),
    ("dlq", dlq_cli.dlq_app),
    ("users", identity_cli.users_app),
    ("keys", identity_cli.keys_app),
    ("demo", demo.demo),
]


#: Top-level commands that act for no operator, and why (every other command declares its permission).
WITHOUT_OPERATOR: dict[str, str] = {
    "kafka": "starts and stops the local broker",
    "topics": "creates topics with the deployment's broker credentials",
    "schemas": "writes and checks the JSON Schema files",
    "serve": "starts the API; each request authenticates on its own",
    "import": "publishes a file as a source, with the deployment's broker credentials",
    "db": "migrates the database with the deployment's credentials",
    "worker": "starts the stream processors",
    "policy": "checks a policy file",
    "demo": "the end-to-end demo on the embedded default",
}


@app.callback()
def _main(
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
