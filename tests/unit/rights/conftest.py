"""A runtime over a fresh SQLite database (tracker, key store, CRM), for the rights unit tests that need one."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pipeline.config import explicit_settings
from pipeline.db import ensure_schema
from pipeline.runtime import Runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    settings = explicit_settings(
        environment="test",
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        subject_key_pepper="p",
        key_encryption_key=base64.urlsafe_b64encode(b"k" * 32).decode(),
    )
    rt = Runtime(settings)
    ensure_schema(rt.engine)
    return rt
