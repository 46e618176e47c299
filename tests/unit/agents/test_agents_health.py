"""The worker's readiness and liveness verdicts (``pipeline.agents.health``) over a fake clock: each reason alone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from clock_helpers import Clock
from faust.types import TP

from pipeline.agents.faust_adapter import PartitionProgress
from pipeline.agents.health import WorkerHealth
from pipeline.config import Settings

TP0 = TP("contacts.accepted", 0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(settings: Settings, clock: Clock) -> WorkerHealth:
    bounds = {"worker_ready_uncommitted_max_s": 60, "worker_ready_sink_pause_max_s": 30, "worker_live_loop_stall_s": 10}
    bounded = settings.model_copy(update=bounds)
    return WorkerHealth(bounded, clock)


def at(committed: int | None, consumed: int | None, end: int | None) -> dict[TP, PartitionProgress]:
    return {TP0: PartitionProgress(committed=committed, consumed=consumed, end=end)}


def ready(health: WorkerHealth, progress: dict[TP, PartitionProgress], **kw: Any) -> dict[str, str]:
    return health.not_ready(progress, kw.get("retrying", {}), kw.get("fenced_at"))


def test_a_partition_that_commits_what_it_is_given_stays_ready(health: WorkerHealth, clock: Clock) -> None:
    for step in range(20):  # records arrive and are committed every 10 s for 200 s
        progress = at(step * 10, step * 10, step * 10 + 1)  # +1: a transaction's commit marker past the last record
        health.observe(progress)
        clock.now += 10
        assert ready(health, progress) == {}


def test_a_commit_marker_or_an_idle_partition_is_not_waiting_work(health: WorkerHealth, clock: Clock) -> None:
    progress = at(41, 41, 42)
    health.observe(progress)
    clock.now += 3600
    assert ready(health, progress) == {}
    assert health.stale(progress) == {}


def test_records_handed_to_an_agent_and_not_committed_past_the_bound_are_not_ready(
    health: WorkerHealth, clock: Clock
) -> None:
    progress = at(10, 25, 25)
    health.observe(progress)
    clock.now += 59
    assert ready(health, progress) == {}
    clock.now += 1
    reasons = ready(health, progress)
    assert set(reasons) == {"uncommitted"}
    assert "contacts.accepted[0]: 60s" in reasons["uncommitted"]
    health.observe(at(25, 25, 25))  # it commits: ready again at once
    assert ready(health, at(25, 25, 25)) == {}


def test_right_after_a_seek_the_read_offset_one_past_the_commit_is_no_waiting_work(
    health: WorkerHealth, clock: Clock
) -> None:
    health.observe(at(41, 42, 41))  # faust sets the read offset to the committed offset when it seeks
    clock.now += 3600
    assert ready(health, at(41, 42, 41)) == {}
    health.observe(at(41, 43, 43))  # then one record is handed over and never committed
    clock.now += 60
    assert set(ready(health, at(41, 43, 43))) == {"uncommitted"}


def test_records_arriving_while_the_commit_stands_still_are_not_ready(health: WorkerHealth, clock: Clock) -> None:
    health.observe(at(10, 10, 10))  # nothing fetched since (a stuck fetcher): only the log end moves
    clock.now += 61
    assert set(ready(health, at(10, 10, 30))) == {"uncommitted"}


def test_a_fence_is_not_ready_until_the_next_assignment(health: WorkerHealth, clock: Clock) -> None:
    reasons = ready(health, {}, fenced_at=clock.now - 2)
    assert set(reasons) == {"fenced"}
    assert ready(health, {}) == {}


def test_the_database_is_not_ready_at_once_whether_checked_retried_or_paused(
    health: WorkerHealth, clock: Clock
) -> None:
    health.database_ok = False
    assert set(ready(health, {})) == {"database"}
    health.database_ok = True
    assert "retrying" in ready(health, {}, retrying={TP0: ("key store: OperationalError", clock.now)})["database"]
    health.pauses.paused("sink:crm", "database")
    assert "sink:crm" in ready(health, {})["database"]
    health.pauses.resumed("sink:crm")
    assert ready(health, {}) == {}


def test_a_sink_pausing_is_not_ready_only_past_its_bound_and_one_batch_through_ends_it(
    health: WorkerHealth, clock: Clock
) -> None:
    health.pauses.paused("sink:hubspot", "sink")
    clock.now += 20
    health.pauses.paused("sink:hubspot", "sink")  # another wait of the same episode keeps its start
    assert ready(health, {}) == {}
    clock.now += 10
    assert set(ready(health, {})) == {"sink_paused"}
    health.pauses.resumed("sink:hubspot")
    assert ready(health, {}) == {}


def test_liveness_fails_for_a_stalled_loop_or_a_crash_never_for_a_dependency(
    health: WorkerHealth, clock: Clock
) -> None:
    running = SimpleNamespace(crashed=False)
    agent = SimpleNamespace(name="sinks", supervisor=SimpleNamespace(crashed=False), started=True, _actors=[running])
    health.database_ok = False
    health.pauses.paused("sink:crm", "database")
    clock.now += 300  # the app starting (table recovery): no heartbeat yet, and the loop is not judged
    assert health.not_live([running], [agent]) == {}
    health.tick()
    assert health.not_live([running], [agent]) == {}
    clock.now += 10
    assert set(health.not_live([running], [agent])) == {"event_loop"}
    health.tick()
    dead = SimpleNamespace(name="sinks", supervisor=SimpleNamespace(crashed=False), started=True, _actors=[agent])
    dead._actors = [SimpleNamespace(crashed=True)]
    assert health.not_live([running], [dead]) == {"agent_crashed": "sinks"}
    assert health.not_live([SimpleNamespace(crashed=True)], []) == {"agent_crashed": "SimpleNamespace"}
