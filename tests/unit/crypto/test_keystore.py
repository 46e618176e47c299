"""Sealing and the key store: destroying a subject's keys makes every sealed copy unreadable, and nothing else."""

from __future__ import annotations

import uuid

import pytest
from cryptography.exceptions import InvalidTag

from pipeline.crypto import KeyDestroyedError, Sealer, SqlKeyStore, subject_scope
from pipeline.crypto.codec import RecordCodec
from pipeline.db import ensure_schema, make_engine

KEK = b"k" * 32


@pytest.fixture
def keystore(db_url: str) -> SqlKeyStore:
    engine = make_engine(db_url)
    ensure_schema(engine)
    return SqlKeyStore(engine, KEK)


def test_seal_open_round_trip_and_destroy(keystore: SqlKeyStore) -> None:
    sealer = Sealer(keystore)
    alice, bob = subject_scope("sk_alice"), subject_scope("sk_bob")
    a, b = sealer.seal(alice, b"alice@example.com"), sealer.seal(bob, b"bob@example.com")
    assert b"alice@example.com" not in a.model_dump_json().encode()
    assert sealer.open(a) == b"alice@example.com"

    assert keystore.destroy(alice, "erasure") == 1
    with pytest.raises(KeyDestroyedError):
        sealer.open(a)
    # a fresh store (another process, no cache) cannot open it either; the other subject still opens
    fresh = Sealer(SqlKeyStore(keystore._engine, KEK))
    with pytest.raises(KeyDestroyedError):
        fresh.open(a)
    assert fresh.open(b) == b"bob@example.com"


def test_new_generation_after_destruction(keystore: SqlKeyStore) -> None:
    sealer = Sealer(keystore)
    scope = subject_scope("sk_comeback")
    old = sealer.seal(scope, b"before")
    keystore.destroy(scope, "erasure")
    new = sealer.seal(scope, b"after")
    assert new.key_id != old.key_id and new.key_id.endswith("#2")
    assert sealer.open(new) == b"after"
    with pytest.raises(KeyDestroyedError):
        sealer.open(old)


def test_ciphertext_is_bound_to_its_key_id(keystore: SqlKeyStore) -> None:
    sealer = Sealer(keystore)
    a = sealer.seal(subject_scope("sk_a"), b"secret")
    b = sealer.seal(subject_scope("sk_b"), b"other")
    moved = a.model_copy(update={"key_id": b.key_id})
    with pytest.raises(InvalidTag):
        sealer.open(moved)


def test_warm_creates_many_keys_consistently(keystore: SqlKeyStore) -> None:
    scopes = [subject_scope(f"sk_{i}") for i in range(1200)]
    keystore.warm(scopes)
    other = SqlKeyStore(keystore._engine, KEK)
    other.warm(scopes[::2])
    assert all(other.active_key(s) == keystore.active_key(s) for s in scopes[::2])


def test_shared_payload_key_dies_with_any_linked_subject(keystore: SqlKeyStore) -> None:
    codec = RecordCodec(Sealer(keystore))
    sealed = codec.seal_payload(
        b"name,email\nA,a@x.org\nB,b@x.org", subject_key=None, record_id=uuid.uuid4(), shared_with=["sk_a", "sk_b"]
    )
    assert sealed.key_id.startswith("record:")
    single = codec.seal_payload(b"only a", subject_key="sk_a", record_id=uuid.uuid4())
    assert single.key_id.startswith("subject:sk_a#")
    keystore.destroy(subject_scope("sk_b"), "erasure")
    with pytest.raises(KeyDestroyedError):
        codec.sealer.open(sealed)
    with pytest.raises(KeyDestroyedError):  # fresh process too
        Sealer(SqlKeyStore(keystore._engine, KEK)).open(sealed)
    assert codec.sealer.open(single) == b"only a"
