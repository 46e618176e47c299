"""Sliding-window submission counts (per source IP, per subject) as plain data.

A window is kept as a few buckets ``((bucket_start_epoch_s, count), ...)``; bumping it returns the new state and
the count inside the window. Time is the event's ``received_at``, never the wall clock, so a replay counts alike.
The agent stores the state in a table (keyed by a hashed key, never an address) and writes it to the changelog.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

RateState = tuple[tuple[int, int], ...]

EMPTY: RateState = ()


def bump(state: RateState, at_s: float, window_s: int, buckets: int) -> tuple[RateState, int]:
    """Count one submission at ``at_s``; returns the new state and the submissions within the window."""
    width = max(1, -(-window_s // buckets))  # ceil: the buckets together cover at least the window
    at = int(at_s)
    start = at - at % width
    if not state and window_s >= 0:  # the first submission of a key (most keys): its bucket is inside the window
        return ((start, 1),), 1
    now = max([at, *(b for b, _ in state)])
    horizon = now - window_s  # a bucket counts while any part of it is inside (horizon, now]: never undercounts
    kept: dict[int, int] = {b: n for b, n in state if b + width > horizon}
    if start + width > horizon:
        kept[start] = kept.get(start, 0) + 1
    new_state = tuple(sorted(kept.items()))
    return new_state, sum(n for _, n in new_state)


def encode(state: RateState) -> bytes:
    data: bytes = orjson.dumps(state)
    return data


def decode(raw: bytes | None) -> RateState:
    if not raw:
        return EMPTY
    return tuple((int(b), int(n)) for b, n in orjson.loads(raw))


def lookup(table: Mapping[str, bytes], key: str) -> RateState:
    return decode(table.get(key))
