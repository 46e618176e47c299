"""Where the classifier's counts live: Redis (the engine's own, append-only), shared by every worker.

Learning is one Lua script, so it is atomic and idempotent per event id: the event's label is kept under
``<prefix>:ev:<event id>``; the same decision again changes nothing (``duplicate``), the opposite one moves the
event's counts from one class to the other (``relearned``: the caller passes the same features, computed again from
the same event and the engine verdict its quarantined record carries). So replaying the review-decisions topic from
the start rebuilds the same model, and a redone batch cannot count a decision twice. Redis' append-only file keeps
it across restarts.

What it holds about people: per event, only its label; per feature, two counts over every message learned. Features
are keyed hashes (``classifier.feature_key``), never words, and no list of an event's features is kept, so nothing
links the counts back to a person's message (someone with the pepper could test whether a word occurs in the
counts at all, as with rspamd's own Bayes tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast
from uuid import UUID

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline.models.spam import LearnOutcome
from pipeline.spam.classifier import NaiveBayes

_LEARN = """
local ev_key, spam_key, ham_key, docs_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local label = ARGV[1]
local previous = redis.call('GET', ev_key)
if previous == label then return 'duplicate' end
local status = 'learned'
if previous then
  local old_key = (previous == 'spam') and spam_key or ham_key
  for i = 2, #ARGV do
    if redis.call('HINCRBY', old_key, ARGV[i], -1) <= 0 then redis.call('HDEL', old_key, ARGV[i]) end
  end
  redis.call('HINCRBY', docs_key, previous, -1)
  status = 'relearned'
end
local new_key = (label == 'spam') and spam_key or ham_key
for i = 2, #ARGV do redis.call('HINCRBY', new_key, ARGV[i], 1) end
redis.call('HINCRBY', docs_key, label, 1)
redis.call('SET', ev_key, label)
return status
"""


class ClassifierStore:
    """The counts of one classifier (``prefix`` names it) in one Redis."""

    def __init__(self, client: redis.Redis, prefix: str = "leadpipe:nb") -> None:
        self.client = client
        self.prefix = prefix
        self._learn = client.register_script(_LEARN)

    @classmethod
    def connect(cls, host: str, port: int, prefix: str = "leadpipe:nb", timeout_s: float = 2.0) -> ClassifierStore:
        """A client that fails fast: no retries with back-off (redis-py's default spends seconds on a refused
        connection), the caller gets ``unavailable`` and decides."""
        client = redis.Redis(
            host=host,
            port=port,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix)

    def _keys(self, event_id: UUID) -> list[str]:
        p = self.prefix
        return [f"{p}:ev:{event_id}", f"{p}:spam", f"{p}:ham", f"{p}:docs"]

    def learn(self, event_id: UUID, label: Literal["spam", "ham"], keys: Sequence[str]) -> LearnOutcome:
        """Count one decided event; never raises for a Redis fault (``unavailable``)."""
        try:
            status = self._learn(keys=self._keys(event_id), args=[label, *sorted(set(keys))])
        except redis.RedisError as exc:
            return LearnOutcome(event_id=event_id, label=label, status="unavailable", detail=type(exc).__name__)
        text = status.decode() if isinstance(status, bytes) else str(status)
        return LearnOutcome(
            event_id=event_id, label=label, status=cast(Literal["learned", "relearned", "duplicate"], text)
        )

    def label_of(self, event_id: UUID) -> str | None:
        """The label an event was learned with, or None; raises ``redis.RedisError`` when Redis does not answer."""
        value = self.client.get(self._keys(event_id)[0])
        return value.decode() if isinstance(value, bytes) else None

    def load(self) -> NaiveBayes:
        """The whole model, read once (a worker reloads it after learning; a few 10,000 features is ~100 ms)."""
        p = self.prefix
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(f"{p}:docs")
            pipe.hgetall(f"{p}:spam")
            pipe.hgetall(f"{p}:ham")
            docs, spam, ham = pipe.execute()
        return NaiveBayes.from_counts(
            int(docs.get(b"spam", 0)),
            int(docs.get(b"ham", 0)),
            {k.decode(): int(v) for k, v in spam.items()},
            {k.decode(): int(v) for k, v in ham.items()},
        )

    def clear(self) -> None:
        """Forget everything (before a rebuild from the review-decisions topic)."""
        names = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        for start in range(0, len(names), 500):
            self.client.delete(*names[start : start + 500])


__all__ = ["ClassifierStore"]
