"""Old subject keys that lead to a person after their e-mail address was corrected (``crm_subject_aliases``).

The subject key is an HMAC of the canonical e-mail, so a corrected address gives the person a new key. When the DPO
keeps the old address as an alias (``dpo rectify --set email=... --old-address=alias``), the old key is redirected
to the new one: ingest takes a later contact from the old address in under the person's current key and address
(before anything is sealed or published, so every copy of it is the person's and dies with them), and the DPO's
tools resolve a request naming the old address to the person too.

Ingest asks for every event, so the set of alias keys is cached and read again at most every ``recheck_s`` (an
alias made a moment ago takes effect within that); the redirect itself is read when a key is in the set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import Engine, select

from pipeline.crm.schema import subject_aliases, subjects


@dataclass(frozen=True)
class Redirect:
    """Where an old key leads: the person's current key and their current e-mail address (from the CRM)."""

    subject_key: str
    email: str


class SubjectAliases:
    """Reads ``crm_subject_aliases``. Thread-safe."""

    def __init__(self, engine: Engine, *, recheck_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.recheck_s = recheck_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: frozenset[str] = frozenset()
        self._read_at: float | None = None

    def _alias_keys(self) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            if self._read_at is not None and now - self._read_at < self.recheck_s:
                return self._keys
        with self.engine.connect() as conn:
            keys = frozenset(conn.execute(select(subject_aliases.c.alias_key)).scalars())
        with self._lock:
            self._keys, self._read_at = keys, now
        return keys

    def resolve(self, keys: Collection[str]) -> dict[str, Redirect]:
        """The keys among ``keys`` that are aliases, with where each leads (a person erased since leads nowhere)."""
        wanted = sorted(set(keys) & self._alias_keys())
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(subject_aliases.c.alias_key, subjects.c.subject_key, subjects.c.email)
                .join(subjects, subjects.c.subject_key == subject_aliases.c.subject_key)
                .where(
                    subject_aliases.c.alias_key.in_(wanted),
                    subjects.c.erased_at.is_(None),
                    subjects.c.email.is_not(None),
                )
            ).all()
        return {alias: Redirect(key, email.lower()) for alias, key, email in rows}

    def current(self, key: str) -> str:
        """``key``, or the person's current key when it is an alias (the DPO's tools name people by address)."""
        found = self.resolve([key]).get(key)
        return key if found is None else found.subject_key
