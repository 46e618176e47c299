"""Fixtures of the sink integration tests: a fake HubSpot on 127.0.0.1 and settings pointing the client at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes.hubspot import FakeHubSpot

from pipeline.config import Settings


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as running:
        yield running


@pytest.fixture
def hubspot_settings(make_settings: Callable[..., Settings], fake: FakeHubSpot) -> Callable[..., Settings]:
    """Settings for the real client against the fake, with short timeouts and backoffs (overridable)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "hubspot_access_token": fake.token,
            "hubspot_base_url": fake.url,
            "hubspot_timeout_s": 10.0,  # only the timeout test shortens it: a stall must not add calls
            "hubspot_backoff_base_s": 0.02,
            "hubspot_backoff_max_s": 0.2,
            "hubspot_max_retries": 8,
        }
        values.update(overrides)
        return make_settings(**values)

    return build
