"""Deadlines of a rights request (GDPR Art. 12(3), policy 9.1): one month, extendable by two more with a reason.

Pure calendar arithmetic; "one month" is the same day of the next month, clamped to that month's last day.
"""

from __future__ import annotations

import calendar
from datetime import datetime

#: The base period and the most a request may be extended by, in calendar months.
RESPONSE_MONTHS = 1
MAX_EXTENSION_MONTHS = 2


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months; 31 January + 1 month is 28/29 February, not 3 March."""
    if months < 0:
        raise ValueError("months must not be negative")
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_at(received_at: datetime) -> datetime:
    """When the answer to a request received at ``received_at`` is due."""
    return add_months(received_at, RESPONSE_MONTHS)


def extended_due_at(received_at: datetime, months: int) -> datetime:
    """The new deadline after an extension of ``months`` (1 or 2) beyond the base month."""
    if not 1 <= months <= MAX_EXTENSION_MONTHS:
        raise ValueError(f"an extension is 1 to {MAX_EXTENSION_MONTHS} months (policy 9.1), not {months}")
    return add_months(received_at, RESPONSE_MONTHS + months)
