"""An ingest app over a real SQLite key store and an in-memory publisher that records what it was given.

The broker itself is exercised by tests/integration/ingest; here the question is what the app decides to publish.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ingest_helpers import BEARER, HMAC_SECRET, VERIFY, RecordingPublisher

from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.runtime import Runtime


@pytest.fixture
def ingest_settings(make_settings: Callable[..., Settings]) -> Settings:
    sources: dict[str, Any] = {
        "wp-contact": {"channel": "web_form", "hmac_secret": HMAC_SECRET},
        "drift": {"channel": "chatbot", "bearer_token": BEARER},
        "mailbox": {"channel": "email", "hmac_secret": HMAC_SECRET},
        "cards": {"channel": "event", "hmac_secret": HMAC_SECRET},
        "broken": {"channel": "website"},
        "whatsapp": {"channel": "messenger", "signature": "meta", "hmac_secret": HMAC_SECRET, "verify_token": VERIFY},
    }
    return make_settings(sources=sources, ingest_max_body_bytes=64_000, dpo_token="dpo-secret")


@pytest.fixture
def runtime(ingest_settings: Settings) -> Runtime:
    built = Runtime(ingest_settings)
    ensure_schema(built.engine)
    return built


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def client(runtime: Runtime, publisher: RecordingPublisher) -> TestClient:
    return TestClient(create_api(runtime, publisher))  # type: ignore[arg-type]
