"""Alembic migrations of the one database (CRM, key store, rights tracker), run from code: no alembic.ini needed.

``upgrade(engine)`` brings a database to head and is safe to call from several processes at once: PostgreSQL takes a
transaction-scoped advisory lock, SQLite a file lock beside the database. ``leadpipe db upgrade|current`` wrap it.

Adding a table: put the model on ``pipeline.db.Base``, add its module to ``MODEL_MODULES`` (so autogenerate sees it),
then ``leadpipe db revision -m "..."`` (autogenerates against a scratch SQLite database at head; review the file) or
write the revision by hand. A revision must work on PostgreSQL and SQLite (``op.batch_alter_table`` for ALTERs).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

HERE = Path(__file__).resolve().parent

#: Every module that defines tables on ``pipeline.db.Base``: imported before autogenerate compares.
MODEL_MODULES: tuple[str, ...] = (
    "pipeline.crypto.keystore",
    "pipeline.sinks.crm.models",
    "pipeline.rights.tracker",
    "pipeline.identity.tables",
)

#: PostgreSQL advisory lock key for migrations ("leadpipe" as a 63-bit number).
PG_LOCK_KEY = 0x6C65616470697065 & 0x7FFFFFFFFFFFFFFF


def import_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at this package; the engine travels in ``attributes`` to env.py."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("path_separator", "os")
    if engine is not None:
        config.attributes["engine"] = engine
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    migration_log = logging.getLogger("alembic.runtime.migration")
    level = migration_log.level
    migration_log.setLevel(logging.WARNING)  # "Context impl ..." on every read is noise
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        migration_log.setLevel(level)


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Alembic's ``context`` is module-global: one migration at a time per process (other processes: the DB locks).
_PROCESS_LOCK = threading.Lock()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade to ``revision`` (default head); returns the revision the database is at afterwards."""
    if revision == "head" and current_revision(engine) == head_revision():
        return head_revision()
    with _PROCESS_LOCK, _sqlite_file_lock(engine):
        command.upgrade(alembic_config(engine), revision)
    return current_revision(engine)


__all__ = [
    "MODEL_MODULES",
    "PG_LOCK_KEY",
    "alembic_config",
    "current_revision",
    "head_revision",
    "import_models",
    "upgrade",
]
