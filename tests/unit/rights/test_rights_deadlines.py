from datetime import UTC, datetime

import pytest

from pipeline.rights.deadlines import add_months, due_at, extended_due_at


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 12, 0, tzinfo=UTC)


def test_one_month_is_the_same_day_next_month() -> None:
    assert due_at(at(2025, 3, 14)) == at(2025, 4, 14)


def test_month_end_is_clamped_not_rolled_over() -> None:
    assert due_at(at(2025, 1, 31)) == at(2025, 2, 28)
    assert due_at(at(2024, 1, 31)) == at(2024, 2, 29)


def test_december_rolls_into_next_year() -> None:
    assert add_months(at(2025, 12, 5), 1) == at(2026, 1, 5)
    assert add_months(at(2025, 11, 30), 3) == at(2026, 2, 28)


def test_extension_counts_from_receipt_and_is_capped_at_two_months() -> None:
    assert extended_due_at(at(2025, 1, 10), 2) == at(2025, 4, 10)
    assert extended_due_at(at(2025, 1, 10), 1) == at(2025, 3, 10)
    with pytest.raises(ValueError, match="1 to 2 months"):
        extended_due_at(at(2025, 1, 10), 3)
    with pytest.raises(ValueError):
        extended_due_at(at(2025, 1, 10), 0)
