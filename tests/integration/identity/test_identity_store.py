"""The identity store on both databases: principals, roles, API keys, authentication, bootstrap, audit outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session

from pipeline.db import current_revision, ensure_schema, head_revision, make_engine
from pipeline.identity.keys import LastUsedThrottle
from pipeline.identity.store import AuthenticationFailed, IdentityError, IdentityStore
from pipeline.identity.tables import ApiKeyRow
from pipeline.models.identity import Principal, PrincipalKind, Role, system_principal

pytestmark = pytest.mark.integration

PEPPER = b"test-api-key-pepper"
ADMIN = Principal(principal_id="op-1", display_name="Operator", kind=PrincipalKind.PERSON, auth="local")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(engine: Engine, clock: Clock) -> IdentityStore:
    return IdentityStore(engine, PEPPER, clock=clock, last_used=LastUsedThrottle(interval_s=60))


def test_migration_creates_the_tables_at_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()  # not pinned: later migrations add to the chain
    tables = set(inspect(engine).get_table_names())
    assert {"principals", "principal_roles", "api_keys", "identity_audit", "principal_sources", "browser_sessions"} <= (
        tables
    )


def test_people_and_clients_with_roles(store: IdentityStore) -> None:
    ana = store.add_principal("ana", display_name="Ana Garcia", kind=PrincipalKind.PERSON, roles=[Role.DPO], by=ADMIN)
    form = store.add_principal("web-form", display_name="", kind=PrincipalKind.CLIENT, roles=[Role.PRODUCER], by=ADMIN)
    assert ana.roles == {Role.DPO} and ana.display_name == "Ana Garcia" and ana.created_by == "person:op-1"
    assert form.display_name == "web-form" and form.kind is PrincipalKind.CLIENT
    assert store.grant("ana", [Role.SALES, Role.DPO], by=ADMIN).roles == {Role.DPO, Role.SALES}
    assert store.revoke("ana", [Role.DPO, Role.REVIEWER], by=ADMIN).roles == {Role.SALES}
    assert [p.name for p in store.list_principals()] == ["ana", "web-form"]
    assert store.get(ana.principal_id) == store.get("ana")


@pytest.mark.parametrize(
    ("name", "kind", "roles", "message"),
    [
        ("Ana", PrincipalKind.PERSON, [], "not a valid name"),
        ("a b", PrincipalKind.PERSON, [], "not a valid name"),
        ("0b6f7c1e-3a62-4a8e-9d0e-5f1c2b3a4d5e", PrincipalKind.PERSON, [], "not a UUID"),
        ("x", PrincipalKind.PERSON, [Role.PRODUCER], "only a machine client"),
        ("y", PrincipalKind.CLIENT, [Role.PRODUCER, Role.ADMIN], "cannot be combined"),
    ],
)
def test_refused_principals(
    store: IdentityStore, name: str, kind: PrincipalKind, roles: list[Role], message: str
) -> None:
    with pytest.raises(IdentityError, match=message):
        store.add_principal(name, display_name=name, kind=kind, roles=roles, by=ADMIN)


def test_refused_changes(store: IdentityStore) -> None:
    store.add_principal("ana", display_name="Ana", kind=PrincipalKind.PERSON, roles=[], by=ADMIN)
    with pytest.raises(IdentityError, match="exists already"):
        store.add_principal("ana", display_name="Other", kind=PrincipalKind.PERSON, roles=[], by=ADMIN)
    with pytest.raises(IdentityError, match="no user or client"):
        store.grant("nobody", [Role.SALES], by=ADMIN)
    store.add_principal("bot", display_name="Bot", kind=PrincipalKind.CLIENT, roles=[Role.PRODUCER], by=ADMIN)
    with pytest.raises(IdentityError, match="cannot be combined"):
        store.grant("bot", [Role.SALES], by=ADMIN)
    admin = store.add_principal("adam", display_name="Adam", kind=PrincipalKind.PERSON, roles=[Role.ADMIN], by=ADMIN)
    adam = admin.principal("api_key")
    with pytest.raises(IdentityError, match="yourself"):
        store.set_disabled("adam", True, by=adam)
    with pytest.raises(IdentityError, match="your own admin role"):
        store.revoke("adam", [Role.ADMIN], by=adam)


def test_api_key_lifecycle(store: IdentityStore, clock: Clock, engine: Engine) -> None:
    store.add_principal("ana", display_name="Ana Garcia", kind=PrincipalKind.PERSON, roles=[Role.DPO], by=ADMIN)
    created = store.create_key("ana", by=ADMIN, label="laptop", expires_in=timedelta(days=30))
    assert created.secret.startswith(f"lpk_{created.key_id}_") and created.secret not in repr(created)
    with Session(engine) as session:  # only the hash is stored
        row = session.get(ApiKeyRow, created.key_id)
        secret_part = created.secret.removeprefix(f"lpk_{created.key_id}_")  # itself may hold "_" (URL-safe base64)
        assert row is not None and secret_part not in row.key_hash and len(row.key_hash) == 64

    principal = store.authenticate_key(created.secret)
    assert principal.display_name == "Ana Garcia" and principal.roles == {Role.DPO} and principal.auth == "api_key"
    assert store.list_keys("ana")[0].last_used_at == clock.now

    tampered = created.secret[:-4] + ("AAAA" if not created.secret.endswith("AAAA") else "BBBB")
    for presented, reason in [
        (tampered, "wrong_key"),
        ("lpk_aaaaaaaaaaaa_" + "A" * 43, "unknown_key"),
        ("not-a-key", "malformed_key"),
    ]:
        with pytest.raises(AuthenticationFailed) as caught:
            store.authenticate_key(presented)
        assert caught.value.reason == reason

    clock.now += timedelta(days=31)
    with pytest.raises(AuthenticationFailed, match="expired_key"):
        store.authenticate_key(created.secret)
    assert store.list_keys()[0].state(clock.now) == "expired"


def test_revocation_and_disabling_take_effect_on_the_next_request(store: IdentityStore, clock: Clock) -> None:
    store.add_principal("sam", display_name="Sam", kind=PrincipalKind.PERSON, roles=[Role.SALES], by=ADMIN)
    first = store.create_key("sam", by=ADMIN)
    second = store.create_key("sam", by=ADMIN, expires_in=None)
    assert store.authenticate_key(first.secret).roles == {Role.SALES}
    store.revoke_key(first.key_id, by=ADMIN)
    with pytest.raises(AuthenticationFailed, match="revoked_key"):
        store.authenticate_key(first.secret)
    assert store.authenticate_key(second.secret)  # the other key still works
    store.revoke("sam", [Role.SALES], by=ADMIN)
    assert store.authenticate_key(second.secret).roles == frozenset()  # roles are read on every request
    store.set_disabled("sam", True, by=ADMIN)
    with pytest.raises(AuthenticationFailed, match="disabled"):
        store.authenticate_key(second.secret)
    with pytest.raises(IdentityError, match="disabled"):
        store.create_key("sam", by=ADMIN)
    store.set_disabled("sam", False, by=ADMIN)
    assert store.authenticate_key(second.secret)
    assert {k.key_id: k.state(clock.now) for k in store.list_keys("sam")} == {
        first.key_id: "revoked",
        second.key_id: "active",
    }
    with pytest.raises(IdentityError, match="no API key"):
        store.revoke_key("nosuchkey", by=ADMIN)


def test_last_used_is_written_at_most_once_per_interval(engine: Engine, clock: Clock) -> None:
    store = IdentityStore(engine, PEPPER, clock=clock, last_used=LastUsedThrottle(interval_s=3600))
    store.add_principal("sam", display_name="Sam", kind=PrincipalKind.PERSON, roles=[Role.SALES], by=ADMIN)
    key = store.create_key("sam", by=ADMIN)
    first_use = clock.now
    store.authenticate_key(key.secret)
    clock.now += timedelta(minutes=5)
    store.authenticate_key(key.secret)  # within the interval: no write
    assert store.list_keys()[0].last_used_at == first_use


def test_the_pepper_is_part_of_the_hash(engine: Engine, store: IdentityStore) -> None:
    store.add_principal("sam", display_name="Sam", kind=PrincipalKind.PERSON, roles=[Role.SALES], by=ADMIN)
    key = store.create_key("sam", by=ADMIN)
    with pytest.raises(AuthenticationFailed, match="wrong_key"):
        IdentityStore(engine, b"another pepper").authenticate_key(key.secret)


def test_bootstrap_creates_one_admin_once(store: IdentityStore) -> None:
    created = store.bootstrap_admin(system_principal("first-start"))
    assert created is not None and created.principal_name == "admin"
    admin = store.authenticate_key(created.secret)
    assert admin.roles == {Role.ADMIN}
    assert store.bootstrap_admin(system_principal("first-start")) is None  # an enabled admin exists
    # the only admin lost its role: bootstrap gives an admin back (the operator has database access anyway)
    store.add_principal("ops", display_name="Ops", kind=PrincipalKind.PERSON, roles=[], by=ADMIN)
    store.revoke("admin", [Role.ADMIN], by=ADMIN)
    again = store.bootstrap_admin(system_principal("first-start"))
    assert again is not None and store.authenticate_key(again.secret).roles == {Role.ADMIN}


def test_sso_people_are_linked_on_first_sight(store: IdentityStore) -> None:
    issuer = "https://id.example.test"
    first = store.linked_principal(
        issuer, "sub-1", display_name="Ana Garcia", preferred_name="Ana.Garcia@Staff", roles=frozenset({Role.DPO})
    )
    assert first.auth == "oidc" and first.roles == {Role.DPO} and first.kind is PrincipalKind.PERSON
    info = store.get(first.principal_id)
    assert info is not None and info.name == "ana.garcia@staff" and info.issuer == issuer
    # same person again, renamed at the provider, groups changed: same principal, new name, roles from the token
    again = store.linked_principal(issuer, "sub-1", display_name="Ana G.", preferred_name=None, roles=frozenset())
    assert again.principal_id == first.principal_id and again.display_name == "Ana G." and again.roles == frozenset()
    # a local grant adds to the provider's groups
    store.grant(first.principal_id, [Role.SALES], by=ADMIN)
    assert store.linked_principal(
        issuer, "sub-1", display_name="Ana G.", preferred_name=None, roles=frozenset({Role.DPO})
    ).roles == {
        Role.DPO,
        Role.SALES,
    }
    # another person with the same preferred name gets a distinct handle; a disabled person is refused
    other = store.linked_principal(
        issuer, "sub-2", display_name="Ana", preferred_name="ana.garcia@staff", roles=frozenset()
    )
    assert store.get(other.principal_id).name == "ana.garcia@staff-2"  # type: ignore[union-attr]
    store.set_disabled(first.principal_id, True, by=ADMIN)
    with pytest.raises(AuthenticationFailed, match="disabled"):
        store.linked_principal(issuer, "sub-1", display_name="Ana", preferred_name=None, roles=frozenset({Role.DPO}))


def test_every_change_is_audited_with_the_principal(store: IdentityStore) -> None:
    store.add_principal("ana", display_name="Ana", kind=PrincipalKind.PERSON, roles=[Role.DPO], by=ADMIN)
    key = store.create_key("ana", by=ADMIN)
    store.grant("ana", [Role.SALES], by=ADMIN)
    store.revoke("ana", [Role.SALES], by=ADMIN)
    store.revoke_key(key.key_id, by=ADMIN)
    store.set_disabled("ana", True, by=ADMIN)
    store.add_principal("form", display_name="Form", kind=PrincipalKind.CLIENT, roles=[Role.PRODUCER], by=ADMIN)
    store.bind_source("form", "wp-contact", by=ADMIN)
    store.unbind_source("form", "wp-contact", by=ADMIN)
    records = store.unpublished_audit()
    assert [r.action for r in records] == [
        "identity.principal_added",
        "identity.key_created",
        "identity.roles_granted",
        "identity.roles_revoked",
        "identity.key_revoked",
        "identity.principal_disabled",
        "identity.principal_added",
        "identity.source_bound",
        "identity.source_unbound",
    ]
    ana = store.get("ana")
    assert ana is not None
    for record in records:
        assert record.actor == "person:op-1"
        assert record.principal == ADMIN
        assert key.secret not in record.model_dump_json()
    assert {r.detail["target_principal_id"] for r in records[:6]} == {ana.principal_id}

    published: list[list[str]] = []
    assert store.forward_audit(lambda batch: published.append([r.action for r in batch]), limit=4) == 4
    assert published == [[r.action for r in records[:4]]]
    assert [r.action for r in store.unpublished_audit()] == [r.action for r in records[4:]]

    def broker_down(batch: object) -> None:
        raise RuntimeError("not confirmed")

    with pytest.raises(RuntimeError):
        store.forward_audit(broker_down)
    assert len(store.unpublished_audit()) == 5  # nothing marked: the next tick publishes them
    assert store.forward_audit(lambda batch: None) == 5 and store.forward_audit(lambda batch: None) == 0


def test_producer_clients_are_bound_to_sources(store: IdentityStore) -> None:
    store.add_principal(
        "form", display_name="Form", kind=PrincipalKind.CLIENT, roles=[Role.PRODUCER], by=ADMIN, sources=["wp"]
    )
    key = store.create_key("form", by=ADMIN)
    assert store.authenticate_key(key.secret).sources == {"wp"}
    assert store.bind_source("form", "crm-export", by=ADMIN).sources == {"wp", "crm-export"}
    assert store.unbind_source("form", "wp", by=ADMIN).sources == {"crm-export"}
    assert store.authenticate_key(key.secret).sources == {"crm-export"}
    store.add_principal("ana", display_name="Ana", kind=PrincipalKind.PERSON, roles=[Role.DPO], by=ADMIN)
    with pytest.raises(IdentityError, match="only a machine client"):
        store.bind_source("ana", "wp", by=ADMIN)
    with pytest.raises(IdentityError, match="not a source id"):
        store.bind_source("form", "../etc", by=ADMIN)
