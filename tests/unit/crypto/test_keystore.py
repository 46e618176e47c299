"""Sealing and the key store: destroying a subject's keys makes every sealed copy unreadable, and nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from clock_helpers import Clock
from cryptography.exceptions import InvalidTag
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from pipeline.crypto import KeyDestroyedError, Sealer, SqlKeyStore, SubjectKey, subject_scope
from pipeline.crypto import keystore as keystore_module
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


def test_warm_uses_the_key_another_process_created_after_its_read(
    keystore: SqlKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert returns only the rows it made; a key another process created between this store's read and its
    insert is read back and used, never a second key for one scope."""
    ours, theirs = subject_scope("sk_ours"), subject_scope("sk_theirs")
    other = SqlKeyStore(keystore._engine, KEK)
    real_insert = keystore_module.insert_ignoring_duplicates

    def racing_insert(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(keystore_module, "insert_ignoring_duplicates", real_insert)
        other.warm([theirs])  # another process wins the race for one of the two scopes
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(keystore_module, "insert_ignoring_duplicates", racing_insert)
    keystore.warm([ours, theirs])
    statements: list[str] = []
    event.listen(keystore._engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert keystore.active_key(theirs) == other.active_key(theirs)
    assert keystore.active_key(ours) != other.active_key(theirs)
    assert statements == [], "warm confirmed both keys; sealing under them asks the database nothing"
    with Session(keystore._engine) as session:
        rows = session.scalars(select(SubjectKey).where(SubjectKey.scope.in_([ours, theirs]))).all()
    assert sorted(r.scope for r in rows) == sorted([ours, theirs])  # one generation each


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


def test_own_key_payload_creates_no_subject_generation_and_dies_with_the_subject(keystore: SqlKeyStore) -> None:
    """Dead letters (``own_key``): sealing one for an erased subject must not bring a subject key back to life."""
    codec = RecordCodec(Sealer(keystore))
    scope = subject_scope("sk_gone")
    codec.sealer.seal(scope, b"before the erasure")
    keystore.destroy(scope, "erasure")
    late = codec.seal_payload(b"an old record", subject_key="sk_gone", record_id=uuid.uuid4(), own_key=True)
    assert late.key_id.startswith("record:")
    assert _key_rows(keystore, scope) == [(f"{scope}#1", False)]  # still only the destroyed generation

    live = codec.seal_payload(b"a record", subject_key="sk_here", record_id=uuid.uuid4(), own_key=True)
    assert live.key_id.startswith("record:") and codec.sealer.open(live) == b"a record"
    keystore.destroy(subject_scope("sk_here"), "erasure")
    with pytest.raises(KeyDestroyedError):
        Sealer(SqlKeyStore(keystore._engine, KEK)).open(live)


# ---- another process erased the subject: this process's cache must let go -------------------------------------


def _two_processes(keystore: SqlKeyStore) -> tuple[SqlKeyStore, SqlKeyStore, Clock]:
    """The erasing process (the rights worker) and another one (ingest API, another worker) with its own cache."""
    clock = Clock()
    return SqlKeyStore(keystore._engine, KEK), SqlKeyStore(keystore._engine, KEK, recheck_s=1.0, clock=clock), clock


def _key_rows(keystore: SqlKeyStore, scope: str) -> list[tuple[str, bool]]:
    with Session(keystore._engine) as session:
        query = select(SubjectKey.key_id, SubjectKey.wrapped_key).where(SubjectKey.scope == scope)
        rows = session.execute(query.order_by(SubjectKey.generation)).all()
    return [(key_id, wrapped is not None) for key_id, wrapped in rows]


def test_warm_never_seals_new_data_under_a_key_destroyed_by_another_process(keystore: SqlKeyStore) -> None:
    eraser, other, _clock = _two_processes(keystore)
    scope = subject_scope("sk_comes_back")
    other.warm([scope])
    before = Sealer(other).seal(scope, b"first form")
    assert before.key_id == f"{scope}#1"

    eraser.destroy(scope, "erasure")
    # at once, without waiting for any cache to expire: the batch sealer re-reads the row and makes generation 2
    other.warm([scope])
    after = Sealer(other).seal(scope, b"a new form: a new, lawful collection")
    assert after.key_id == f"{scope}#2"
    fresh = Sealer(SqlKeyStore(keystore._engine, KEK))
    assert fresh.open(after) == b"a new form: a new, lawful collection"
    with pytest.raises(KeyDestroyedError):
        fresh.open(before)
    with pytest.raises(KeyDestroyedError):  # warm also dropped the destroyed generation from its own cache
        Sealer(other).open(before)


def test_single_seals_and_opens_trust_the_cache_for_at_most_recheck_s(keystore: SqlKeyStore) -> None:
    eraser, other, clock = _two_processes(keystore)
    scope = subject_scope("sk_dead_letter")
    sealer = Sealer(other)
    old = sealer.seal(scope, b"before")
    assert sealer.open(old) == b"before"

    eraser.destroy(scope, "erasure")
    clock.now += 1.01  # the previous 30 s cache kept both for half a minute
    with pytest.raises(KeyDestroyedError):
        sealer.open(old)
    new = sealer.seal(scope, b"after")
    assert new.key_id == f"{scope}#2" and Sealer(eraser).open(new) == b"after"


def test_preload_drops_keys_destroyed_by_another_process(keystore: SqlKeyStore) -> None:
    eraser, other, _clock = _two_processes(keystore)
    gone, kept = subject_scope("sk_gone"), subject_scope("sk_kept")
    records = [Sealer(eraser).seal(gone, b"gone"), Sealer(eraser).seal(kept, b"kept")]
    other.preload(r.key_id for r in records)
    assert [Sealer(other).open(r) for r in records] == [b"gone", b"kept"]

    eraser.destroy(gone, "erasure")
    other.preload(r.key_id for r in records)  # the next batch: no clock movement needed
    with pytest.raises(KeyDestroyedError):
        Sealer(other).open(records[0])
    assert Sealer(other).open(records[1]) == b"kept"


def test_a_replayed_old_record_never_revives_its_destroyed_key(keystore: SqlKeyStore) -> None:
    eraser, other, _clock = _two_processes(keystore)
    scope = subject_scope("sk_replayed")
    old = Sealer(eraser).seal(scope, b"old event")
    eraser.destroy(scope, "erasure")

    # reading the old record again (a replay from offset 0) creates nothing and opens nothing
    other.preload([old.key_id])
    with pytest.raises(KeyDestroyedError):
        Sealer(other).open(old)
    assert _key_rows(keystore, scope) == [(f"{scope}#1", False)]

    # the person comes back: a new generation; the old one stays destroyed, whoever asks
    other.warm([scope])
    eraser.warm([scope])
    assert _key_rows(keystore, scope) == [(f"{scope}#1", False), (f"{scope}#2", True)]
    for store in (other, eraser, SqlKeyStore(keystore._engine, KEK)):
        with pytest.raises(KeyDestroyedError):
            Sealer(store).open(old)


def test_a_preloaded_batch_is_opened_from_the_cache_however_long_it_takes(keystore: SqlKeyStore) -> None:
    """One query confirms the batch; a slow batch (longer than recheck_s) must not query again per record."""
    from sqlalchemy import event

    eraser, other, clock = _two_processes(keystore)
    records = [Sealer(eraser).seal(subject_scope(f"sk_batch_{i}"), b"x") for i in range(5)]
    queries: list[str] = []
    event.listen(keystore._engine, "before_cursor_execute", lambda *args: queries.append(args[2]))

    other.preload(r.key_id for r in records)
    assert len(queries) == 1
    clock.now += 5.0  # the batch outlives recheck_s
    assert [Sealer(other).open(r) for r in records] == [b"x"] * 5
    assert len(queries) == 1

    other.preload([records[0].key_id])  # the next batch pins only its own keys
    assert Sealer(other).open(records[1]) == b"x"  # not in this batch and stale: confirmed again
    assert len(queries) == 3


def test_destroy_up_to_a_moment_spares_what_came_after(keystore: SqlKeyStore) -> None:
    """Re-applying an erasure after a restore (``pipeline.rights.restore``): the keys that existed when it took
    effect go again, own and linked; a generation or a shared payload key made after it (the person came back) stays."""
    sealer = Sealer(keystore)
    scope, payload = subject_scope("sk_restored"), "record:import-1"
    before = sealer.seal(scope, b"before")
    shared = sealer.seal(payload, b"a list naming them")
    keystore.link(payload, [scope])
    with Session(keystore._engine) as session:  # the backup: the rows as they were before the erasure
        snapshot = [(r.key_id, r.wrapped_key) for r in session.scalars(select(SubjectKey))]
    erased_at = datetime.now(UTC)
    assert keystore.destroy(scope, "erasure") == 2
    after = sealer.seal(scope, b"came back")
    later_payload = "record:import-2"
    later_shared = sealer.seal(later_payload, b"a later list naming them")
    keystore.link(later_payload, [scope])
    assert keystore.live_keys({scope: erased_at}) == {}

    with Session(keystore._engine) as session:  # the restore brings the destroyed keys back
        for key_id, wrapped in snapshot:
            session.execute(
                update(SubjectKey).where(SubjectKey.key_id == key_id).values(wrapped_key=wrapped, destroyed_at=None)
            )
        session.commit()
    fresh = Sealer(SqlKeyStore(keystore._engine, KEK))
    assert fresh.open(before) == b"before" and fresh.open(shared) == b"a list naming them"
    assert keystore.live_keys({scope: erased_at, subject_scope("sk_other"): erased_at}) == {
        scope: sorted([before.key_id, shared.key_id])
    }
    assert keystore.live_scopes("record:import-") == {payload, later_payload}

    assert keystore.destroy(scope, "restore", created_by=erased_at) == 2
    fresh = Sealer(SqlKeyStore(keystore._engine, KEK))
    for gone in (before, shared):
        with pytest.raises(KeyDestroyedError):
            fresh.open(gone)
    assert fresh.open(after) == b"came back" and fresh.open(later_shared) == b"a later list naming them"
    assert keystore.live_keys({scope: erased_at}) == {}
    assert keystore.live_scopes("record:import-") == {later_payload}


def test_the_cache_stays_bounded_over_many_new_people_and_every_key_still_works(keystore: SqlKeyStore) -> None:
    """A long-running API meets a new person (a new key) with nearly every request: the cache kept every key it had
    seen for as long as the process lived (~1 KB a person, measured growing with a 20,000-message import). It is
    bounded now, and what left it is read from the database again, never used unconfirmed."""
    clock = Clock()
    store = SqlKeyStore(keystore._engine, KEK, recheck_s=1.0, clock=clock, max_cached=20)
    sealer = Sealer(store)
    sealed = []
    for batch in range(12):
        scopes = [subject_scope(f"sk_new_{batch}_{n}") for n in range(5)]
        store.warm(scopes)  # the API's group commit: one batch of new people
        sealed += [sealer.seal(scope, scope.encode()) for scope in scopes]
        clock.now += 0.4
        assert len(store._by_id) <= 20 + 5 and len(store._active) <= 20 + 5  # the bound, plus one batch
    store.preload(s.key_id for s in sealed)  # a reader's batch of every record: all 60 keys at once
    assert [sealer.open(s) for s in sealed] == [s.key_id.rpartition("#")[0].encode() for s in sealed]
    clock.now += 5
    store.warm([subject_scope("sk_next")])  # the next batch: the one above (60 keys at once) is stale now
    assert len(store._by_id) <= 20 + 1 and len(store._active) <= 20 + 1
    assert sealer.open(sealed[0]) == sealed[0].key_id.rpartition("#")[0].encode()  # left the cache: read again
