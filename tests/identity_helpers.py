"""People and clients for tests: a principal with a role and its API key, on the database of some settings."""

from __future__ import annotations

import uuid

from pipeline.config import Settings
from pipeline.db import ensure_schema, make_engine
from pipeline.identity.store import IdentityStore
from pipeline.models.identity import Principal, PrincipalKind, Role, system_principal

SETUP = system_principal("test-setup")


def person(name: str = "ana", display_name: str | None = None, *roles: Role) -> Principal:
    """A principal as a request would carry it (not stored): for code that only records who acted."""
    return Principal(
        principal_id=str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        display_name=display_name or name.title(),
        kind=PrincipalKind.PERSON,
        roles=frozenset(roles),
        auth="api_key",
    )


def key_for(
    settings: Settings,
    role: Role,
    name: str | None = None,
    *,
    display_name: str | None = None,
    sources: tuple[str, ...] = (),
) -> str:
    """A new principal holding ``role`` (a client for producer) on ``settings``' database, and its API key."""
    engine = make_engine(settings.resolved_database_url)
    try:
        ensure_schema(engine)
        store = IdentityStore(engine, settings.api_key_pepper_bytes())
        name = name or f"{role.value}-{uuid.uuid4().hex[:8]}"
        kind = PrincipalKind.CLIENT if role is Role.PRODUCER else PrincipalKind.PERSON
        store.add_principal(
            name, display_name=display_name or name.title(), kind=kind, roles=[role], by=SETUP, sources=sources
        )
        return store.create_key(name, by=SETUP).secret
    finally:
        engine.dispose()
