"""A service that makes its own publisher closes it (its delivery-report thread must not outlive the command); one it
was given belongs to the giver."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.dlq import service as dlq_service
from pipeline.review import service as review_service
from pipeline.runtime import Runtime


class Publisher:
    made: list[Publisher] = []

    def __init__(self, _settings: Settings | None = None) -> None:
        self.closed = 0
        Publisher.made.append(self)

    def close(self, timeout_s: float = 10.0) -> None:
        self.closed += 1


def _dlq(runtime: Runtime, given: Any) -> Any:
    service = dlq_service.DeadLetterService(runtime, given)
    if given is None:  # made on the first replay
        service.publisher = dlq_service.ConfirmingPublisher(runtime.settings)
    return service


def _review(runtime: Runtime, given: Any) -> Any:
    service = review_service.ReviewService(runtime, given)
    assert service.publisher is not None  # made on first use
    return service


@pytest.mark.parametrize("build", [_dlq, _review], ids=["dlq", "review"])
def test_a_service_closes_the_publisher_it_made_and_not_one_it_was_given(
    build: Callable[[Runtime, Any], Any], make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dlq_service, "ConfirmingPublisher", Publisher)
    monkeypatch.setattr(review_service, "ConfirmingPublisher", Publisher)
    runtime = Runtime(make_settings())
    Publisher.made.clear()

    own = build(runtime, None)
    own.close()
    own.close()  # twice is harmless
    assert [p.closed for p in Publisher.made] == [1]

    given = Publisher()
    build(runtime, given).close()
    assert given.closed == 0
    runtime.engine.dispose()
