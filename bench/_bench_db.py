"""The database a benchmark runs against: a fresh PostgreSQL database when ``LEADPIPE_TEST_POSTGRES_URL`` is set
(``make bench``), else SQLite under the run's home."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


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
