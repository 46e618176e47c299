"""The worker's and the API's garbage-collector settings (``pipeline.runtime.tune_gc``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pipeline.config import explicit_settings
from pipeline.runtime import tune_gc


@pytest.fixture
def collector() -> Iterator[None]:
    """Put Python's collector back as it was after each test."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_start_up_is_frozen_and_the_youngest_generation_collected_less_often(collector: None) -> None:
    _, gen1, gen2 = gc.get_threshold()
    survivor: list[list[int]] = [[1]]  # a list is always tracked by the collector
    assert any(o is survivor for o in gc.get_objects())
    tune_gc(50_000)
    assert gc.get_threshold() == (50_000, gen1, gen2)
    assert not any(o is survivor for o in gc.get_objects())  # frozen: no collection scans it again


def test_zero_leaves_pythons_collector_alone(collector: None) -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    tune_gc(0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen


def test_the_default_is_tuned() -> None:
    assert explicit_settings(environment="test").gc_gen0_threshold > 700
