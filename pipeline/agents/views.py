"""Typed read views over the processing agent's tables of raw bytes: what the chain reads, parsed on demand.

``ProcessingState`` wraps the tables of one app (or plain dicts in tests and benchmarks); the chain sees mappings of
subject keys and rate keys to parsed values, the agent writes updates into the raw mappings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from pipeline.models.rights import SuppressionRecord
from pipeline.processors import rates


class SuppressionView:
    """subject key -> SuppressionRecord, parsed on first use and cached by the raw value."""

    def __init__(self, data: Mapping[bytes, bytes]) -> None:
        self._data = data
        self._parsed: dict[bytes, tuple[bytes, SuppressionRecord]] = {}

    def __bool__(self) -> bool:
        """Whether any subject has a state (no state: nobody's contacts need a second key looked up)."""
        return bool(self._data)

    def get(self, subject_key: str) -> SuppressionRecord | None:
        key = subject_key.encode()
        raw = self._data.get(key)
        if not raw:
            return None
        hit = self._parsed.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]
        record = SuppressionRecord.model_validate_json(raw)
        if len(self._parsed) > 100_000:
            self._parsed.clear()
        self._parsed[key] = (raw, record)
        return record


class KeySetView:
    """A ``Container[str]`` over a table of bytes keys (the reviewer blocklist)."""

    def __init__(self, data: Mapping[bytes, bytes]) -> None:
        self._data = data

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self._data.get(key.encode()))


class AnchorView(Mapping[str, datetime]):
    """anchor key -> datetime over a table of ISO-8601 bytes."""

    def __init__(self, data: MutableMapping[bytes, bytes]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> datetime:
        raw = self._data.get(key.encode())
        if not raw:
            raise KeyError(key)
        return datetime.fromisoformat(raw.decode())

    def get(self, key: str, default: Any = None) -> Any:  # no KeyError round trip on the hot path
        raw = self._data.get(key.encode())
        return datetime.fromisoformat(raw.decode()) if raw else default

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in self._data)

    def __len__(self) -> int:
        return len(self._data)


class RateView(Mapping[str, rates.RateState]):
    """rate key -> window state over a table of JSON bytes."""

    def __init__(self, data: MutableMapping[bytes, bytes]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> rates.RateState:
        raw = self._data.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return rates.decode(raw)

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._data.get(key.encode())
        return rates.decode(raw) if raw is not None else default

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in self._data)

    def __len__(self) -> int:
        return len(self._data)


class ProcessingState:
    """Mappings of raw bytes (faust table data, or plain dicts in tests) and the typed views over them."""

    def __init__(
        self,
        *,
        suppression: Mapping[bytes, bytes],
        blocklist: Mapping[bytes, bytes],
        anchors: MutableMapping[bytes, bytes],
        rates: MutableMapping[bytes, bytes],
    ) -> None:
        self.suppression = SuppressionView(suppression)
        self.blocklist = KeySetView(blocklist)
        self.anchors_data = anchors
        self.rates_data = rates
        self.anchors = AnchorView(anchors)
        self.rates = RateView(rates)

    @classmethod
    def in_memory(cls) -> ProcessingState:
        return cls(suppression={}, blocklist={}, anchors={}, rates={})
