"""The batch consumer's guard against handling a record twice within one assignment (pure part)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.agents.batching import unhandled


@dataclass(frozen=True)
class Fetched:
    offset: int


def batch(first: int, last: int) -> list[Fetched]:
    return [Fetched(o) for o in range(first, last + 1)]


def test_nothing_handled_yet_keeps_every_record() -> None:
    records = batch(224, 314)
    assert unhandled(records, None) is records


def test_a_batch_after_the_handled_mark_is_kept_whole() -> None:
    records = batch(315, 664)
    assert unhandled(records, 315) is records


def test_a_batch_delivered_again_after_a_seek_back_is_skipped() -> None:
    """Recovery seeks to the committed offset (224) after 224..314 was handled: the same records come back."""
    assert unhandled(batch(224, 314), 315) == []


def test_a_batch_straddling_the_mark_keeps_only_the_new_records() -> None:
    kept = unhandled(batch(224, 664), 315)
    assert [r.offset for r in kept] == list(range(315, 665))


def test_an_empty_batch_stays_empty() -> None:
    assert unhandled([], 10) == []
