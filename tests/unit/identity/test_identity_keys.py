"""API key format, keyed hash, constant-time check, the last-used throttle, and redaction of keys in logs."""

from __future__ import annotations

from pipeline.identity.keys import KEY_PATTERN, LastUsedThrottle, key_hash, key_matches, new_key, parse_key
from pipeline.logging import scrub_text

PEPPER = b"p" * 32


def test_new_keys_parse_and_differ() -> None:
    keys = {new_key()[0] for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert KEY_PATTERN.match(key)
        parsed = parse_key(key)
        assert parsed is not None and key == f"lpk_{parsed.key_id}_{parsed.secret}"
        assert parsed.secret not in repr(parsed)


def test_malformed_keys_do_not_parse() -> None:
    key, _ = new_key()
    for bad in ("", "lpk_", key[:-1], key + "x", key.replace("lpk_", "lpx_"), key.upper(), "Bearer " + key):
        assert parse_key(bad) is None, bad
    assert parse_key(f"  {key}\n") is not None  # pasted with whitespace


def test_hash_binds_secret_key_id_and_pepper() -> None:
    _, a = new_key()
    _, b = new_key()
    stored = key_hash(PEPPER, a)
    assert len(stored) == 64 and a.secret not in stored
    assert key_matches(PEPPER, a, stored)
    assert not key_matches(PEPPER, b, stored)
    assert not key_matches(b"q" * 32, a, stored)
    moved = type(a)(b.key_id, a.secret)  # a row's hash does not fit another key id
    assert not key_matches(PEPPER, moved, stored)
    assert not key_matches(PEPPER, a, None)


def test_throttle_writes_once_per_interval_per_key() -> None:
    throttle = LastUsedThrottle(interval_s=60)
    assert throttle.due("a", 0.0)
    assert not throttle.due("a", 30.0)
    assert throttle.due("b", 30.0)
    assert not throttle.due("a", 59.9)
    assert throttle.due("a", 60.0)


def test_throttle_memory_is_bounded() -> None:
    throttle = LastUsedThrottle(interval_s=60, max_keys=3)
    for key in "abc":
        assert throttle.due(key, 0.0)
    assert throttle.due("d", 1.0)  # full: forgets, so the next use of each key writes once more
    assert throttle.due("a", 2.0)


def test_log_redaction_knows_the_key_format() -> None:
    key, parsed = new_key()
    scrubbed = scrub_text(f"refused {key} from a client")
    assert parsed.secret not in scrubbed
    assert f"lpk_{parsed.key_id}_[redacted]" in scrubbed  # the key id stays: it is not secret
