"""The shared sink contract: outcomes map to result statuses, answers must be complete, backoff is bounded."""

from __future__ import annotations

import random
import uuid

import pytest
from fakes.contacts import make_tagged

from pipeline.models.rights import SinkStatus
from pipeline.sinks.base import RecordResult, SinkBackpressureError, WriteOutcome, backoff_delay, check_complete


def test_outcomes_map_to_sink_statuses() -> None:
    assert WriteOutcome.WRITTEN.sink_status is SinkStatus.DONE
    assert WriteOutcome.FAILED.sink_status is SinkStatus.FAILED
    assert WriteOutcome.NOT_APPLICABLE.sink_status is SinkStatus.NOT_APPLICABLE


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 8.0, rng) for n in range(10)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(0 < d <= 8.0 for d in delays)
    assert delays[-1] >= 4.0  # capped ceiling 8, jitter keeps at least half


def test_backpressure_never_negative() -> None:
    assert SinkBackpressureError(-3).retry_after == 0.0


def test_check_complete_refuses_missing_and_unknown_answers() -> None:
    batch = [make_tagged(f"p{i}@example.com") for i in range(3)]
    results = [RecordResult.written(t.event.event_id) for t in batch]
    check_complete(batch, results)
    with pytest.raises(RuntimeError, match="1 missing"):
        check_complete(batch, results[:2])
    with pytest.raises(RuntimeError, match="1 unknown"):
        check_complete(batch, [*results, RecordResult.written(uuid.uuid4())])
    with pytest.raises(RuntimeError):
        check_complete(batch, [*results, results[0]])
