"""API keys: their format, their keyed hash, and the throttle that keeps ``last_used_at`` from costing a write.

A key reads ``lpk_<key id>_<secret>``: the ``lpk_`` prefix lets secret scanners and the log redaction recognise it,
the 12-character key id (60 random bits, not secret) finds the row, and the secret is 32 random bytes. The database
keeps only ``HMAC-SHA256(pepper, key id + secret)``.

Why a fast keyed hash and not argon2/scrypt: slow hashes protect low-entropy secrets (passwords) against guessing
after a database leak. A 256-bit random secret cannot be guessed however fast the hash, so a slow hash would add
only cost: tens of milliseconds of CPU on every API request, and a denial-of-service lever for anyone who sends
keys. The pepper (``LEADPIPE_API_KEY_PEPPER``, kept outside the database) means a stolen table alone does not even
allow offline checks. Comparison is constant-time. Passwords, should local ones ever exist, belong in argon2id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

KEY_PREFIX = "lpk_"
_KEY_ID_LENGTH = 12
_SECRET_BYTES = 32
#: The whole key; the log redaction (``pipeline/logging.py``) carries the same shape, a test keeps them in step.
KEY_PATTERN = re.compile(r"^lpk_([a-z2-7]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    secret: str = field(repr=False)


def new_key() -> tuple[str, ParsedKey]:
    """A fresh key: the full string to show once, and its parts."""
    key_id = base64.b32encode(secrets.token_bytes(10)).decode().lower()[:_KEY_ID_LENGTH]
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).decode().rstrip("=")
    return f"{KEY_PREFIX}{key_id}_{secret}", ParsedKey(key_id, secret)


def parse_key(presented: str) -> ParsedKey | None:
    """The parts of a well-formed key, or None (the caller refuses without a database lookup)."""
    match = KEY_PATTERN.match(presented.strip())
    return None if match is None else ParsedKey(match.group(1), match.group(2))


def key_hash(pepper: bytes, key: ParsedKey) -> str:
    """What the database stores: the key id is in the MAC so a hash cannot be moved to another row."""
    return hmac.new(pepper, f"leadpipe-api-key:{key.key_id}:{key.secret}".encode(), hashlib.sha256).hexdigest()


def key_matches(pepper: bytes, key: ParsedKey, stored_hash: str | None) -> bool:
    """Constant-time check; with no stored hash (unknown key id) the MAC is still computed, so timing says nothing."""
    expected = key_hash(pepper, key)
    return hmac.compare_digest(expected, stored_hash if stored_hash is not None else "0" * len(expected))


class LastUsedThrottle:
    """Decides when a key's ``last_used_at`` is worth a write: at most once per ``interval_s`` per key and process.

    Without it every authenticated request would be an UPDATE on a hot row. ``last_used_at`` is then accurate to
    ``interval_s`` (per process), which is what it is for: finding keys nobody uses. Bounded in memory: when it
    holds ``max_keys`` entries, it forgets them all (the next use of each key writes once more).
    """

    def __init__(self, interval_s: float = 300.0, max_keys: int = 100_000) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._written: dict[str, float] = {}

    def due(self, key_id: str, now: float) -> bool:
        """True when this use should be written (and then it counts as written)."""
        last = self._written.get(key_id)
        if last is not None and now - last < self.interval_s:
            return False
        if len(self._written) >= self.max_keys:
            self._written.clear()
        self._written[key_id] = now
        return True
