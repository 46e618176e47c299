"""Fixtures for the pure processor tests (no broker, no database)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from processor_events import NOW, PEPPER, build_event

from pipeline.models.contact import ContactEvent
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, CompiledPolicy, compile_policy


@pytest.fixture(scope="session")
def compiled() -> CompiledPolicy:
    return compile_policy(load_policy())


@pytest.fixture
def make_event() -> Callable[..., ContactEvent]:
    return build_event


@pytest.fixture
def make_ctx(compiled: CompiledPolicy) -> Callable[..., ChainContext]:
    def build(**overrides: Any) -> ChainContext:
        values: dict[str, Any] = {"policy": compiled, "now": NOW, "pepper": PEPPER}
        values.update(overrides)
        return ChainContext(**values)

    return build
