"""The ``leadpipe`` command line: one entry point for the whole product; each area contributes a sub-command."""

from __future__ import annotations

import importlib

import typer

from pipeline.config import get_settings
from pipeline.logging import configure_logging

app = typer.Typer(help="leadpipe: contact events in, lawful records out.", no_args_is_help=True)

#: (module, attribute, command name): each area's typer app. Add a line here when an area grows a CLI.
SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("pipeline.kafka.cli", "kafka_app", "kafka"),
    ("pipeline.kafka.cli", "topics_app", "topics"),
    ("pipeline.schemas", "app", "schemas"),
    ("pipeline.ingest.cli", "serve", "serve"),
    ("pipeline.importer", "import_file", "import"),
    ("pipeline.rights.cli", "dpo_app", "dpo"),
    ("pipeline.rights.cli", "retention_app", "retention"),
    ("pipeline.sinks.crm.cli", "crm_app", "crm"),
    ("pipeline.sinks.crm.cli", "db_app", "db"),
    ("pipeline.agents.cli", "worker", "worker"),
    ("pipeline.policy.cli", "policy_app", "policy"),
    ("pipeline.review.cli", "spam_app", "spam"),
    ("pipeline.dlq.cli", "dlq_app", "dlq"),
    ("pipeline.identity.cli", "users_app", "users"),
    ("pipeline.identity.cli", "keys_app", "keys"),
    ("pipeline.demo", "demo", "demo"),
]


@app.callback()
def _main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


def _register() -> None:
    for module, attribute, name in SUBCOMMANDS:
        sub = getattr(importlib.import_module(module), attribute)
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name)
        else:
            app.command(name)(sub)


_register()


def main() -> None:
    app()
