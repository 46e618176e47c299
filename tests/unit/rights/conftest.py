"""A runtime over a fresh SQLite database (tracker, key store, CRM), for the rights unit tests that need one, and the
HTTP API signed in as the DPO over a module's runtime."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from identity_helpers import key_for
from ingest_helpers import RecordingPublisher

from pipeline.api.app import create_api
from pipeline.config import explicit_settings
from pipeline.db import ensure_schema
from pipeline.models.identity import Role
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


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    made = TestClient(create_api(runtime, RecordingPublisher()))  # type: ignore[arg-type]
    made.headers["authorization"] = f"Bearer {key_for(runtime.settings, Role.DPO, display_name='Dora')}"
    return made
