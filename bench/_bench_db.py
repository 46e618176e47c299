"""The database a benchmark runs against: a fresh PostgreSQL database when ``LEADPIPE_TEST_POSTGRES_URL`` is set
(``make bench``), else SQLite under the run's home.

A brand-new database is not what production runs on: the planner has no statistics until autovacuum's first ANALYZE
(up to its naptime, a minute, after the first writes), and statements prepared on nearly empty tables keep
sequential-scan plans while the tables grow. A bench that measures steady speed seeds its tables, then ``analyze``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import Engine


@contextmanager
def database(home: Path, name_prefix: str = "bench") -> Iterator[str]:
    """The database URL; a PostgreSQL database is dropped afterwards."""
    admin_url = os.environ.get("LEADPIPE_TEST_POSTGRES_URL")
    if not admin_url:
        yield f"sqlite:///{home / 'crm.sqlite3'}"
        return
    name = f"{name_prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def analyze(engine: Engine) -> None:
    """Gather the planner's statistics now, as autovacuum does for a database in use; plans cached on its tables are
    made again at their next use."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
