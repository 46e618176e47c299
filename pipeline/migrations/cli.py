"""``leadpipe db upgrade|current|revision``: the operator's side of the database schema."""

from __future__ import annotations

import tempfile
from typing import Annotated

import typer
from alembic import command

from pipeline.clikit import DATABASE, exits, needs
from pipeline.config import get_settings
from pipeline.db import alembic_config, current_revision, disposing_engine, head_revision
from pipeline.db import upgrade as run_upgrade

db_app = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
@needs(DATABASE)
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Migrate the database (`LEADPIPE_DATABASE_URL`; default the embedded SQLite) to a revision.

    Example: leadpipe db upgrade
    """
    settings = get_settings()
    if settings.resolved_database_url.startswith("sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    with disposing_engine(settings.resolved_database_url) as engine:
        now = run_upgrade(engine, revision)
    typer.echo(f"database at revision {now}")


@db_app.command("revision")
def revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the migration does")],
) -> None:
    """Autogenerate a migration from the models (against a scratch SQLite at head): review it before committing.

    Example: leadpipe db revision -m "add a column for the lead score"
    """
    with tempfile.TemporaryDirectory() as scratch, disposing_engine(f"sqlite:///{scratch}/scratch.sqlite3") as engine:
        run_upgrade(engine)
        command.revision(alembic_config(engine), message=message, autogenerate=True)


@db_app.command("current")
@needs(DATABASE)
@exits({1: "the database is behind the code (run `leadpipe db upgrade`)"})
def current() -> None:
    """The database's revision and the code's head; exit 1 when the database is behind.

    Example: leadpipe db current
    """
    settings = get_settings()
    with disposing_engine(settings.resolved_database_url) as engine:
        at = current_revision(engine)
    head = head_revision()
    typer.echo(f"current: {at or 'none (empty database)'}\nhead:    {head}")
    if at != head:
        raise typer.Exit(1)
