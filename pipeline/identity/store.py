"""The identity store: principals, roles and API keys in the product's database, every change audited.

Each change (add, disable, grant, revoke, key created or revoked, source bound or unbound) writes its audit record in
the same transaction (``identity_audit``), naming the principal who made it; the records wait there until
``forward_audit`` publishes them on the audit topic (the rights worker's timer). Authentication
(``authenticate_key``) reads the key, its principal and its roles in one query and writes ``last_used_at`` at most
once per throttle interval, so a revoked key or a disabled principal is refused on the very next request.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.identity.keys import LastUsedThrottle, key_hash, key_matches, new_key, parse_key
from pipeline.identity.permissions import check_roles
from pipeline.identity.tables import ApiKeyRow, IdentityAuditRow, PrincipalRoleRow, PrincipalRow, PrincipalSourceRow
from pipeline.models.identity import AuthMethod, Principal, PrincipalKind, Role, system_principal
from pipeline.models.rights import AuditRecord

#: A login handle: lower-case letters, digits and ``.-_@``, starting with a letter or digit.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,99}$")
#: An ingest source id, as ``LEADPIPE_SOURCES`` names it and ``POST /v1/sources/{source_id}`` takes it.
SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

Clock = Callable[[], datetime]


class IdentityError(Exception):
    """A refused identity change, with a message for the operator (never a secret)."""


class IdentityNotFound(IdentityError):
    """No principal or key by that name or id."""


class AuthenticationFailed(Exception):
    """A credential that does not authenticate; ``reason`` is a code for logs, metrics and the rate limiter."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class PrincipalInfo:
    """A principal as ``leadpipe users list`` shows it."""

    principal_id: str
    name: str
    display_name: str
    kind: PrincipalKind
    roles: frozenset[Role]
    disabled: bool
    created_at: datetime
    created_by: str
    issuer: str | None
    sources: frozenset[str] = frozenset()

    @property
    def sign_in(self) -> Literal["single_sign_on", "api_key"]:
        """Through the identity provider (a person linked by issuer and subject), else with API keys."""
        return "single_sign_on" if self.issuer else "api_key"

    def principal(self, auth: AuthMethod) -> Principal:
        return Principal(
            principal_id=self.principal_id,
            display_name=self.display_name,
            kind=self.kind,
            roles=self.roles,
            auth=auth,
            sources=self.sources,
        )


@dataclass(frozen=True)
class KeyInfo:
    """An API key as ``leadpipe keys list`` shows it: never the secret nor its hash."""

    key_id: str
    principal_name: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``secret`` is the whole key string, shown once and never stored."""

    key_id: str
    principal_name: str
    expires_at: datetime | None
    secret: str = field(repr=False)


class IdentityStore:
    """Principals and API keys on one engine (``ensure_schema`` must have run)."""

    def __init__(
        self,
        engine: Engine,
        pepper: bytes,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        last_used: LastUsedThrottle | None = None,
    ) -> None:
        self._engine = engine
        self._pepper = pepper
        self._clock = clock
        self._last_used = last_used or LastUsedThrottle()

    # ---- principals -----------------------------------------------------------------------------------------

    def add_principal(
        self,
        name: str,
        *,
        display_name: str,
        kind: PrincipalKind,
        roles: Iterable[Role],
        by: Principal,
        issuer: str | None = None,
        external_subject: str | None = None,
        sources: Iterable[str] = (),
    ) -> PrincipalInfo:
        if not NAME_PATTERN.match(name) or _looks_like_id(name):
            raise IdentityError(
                f"{name!r} is not a valid name: lower-case letters, digits and . - _ @, up to 100, and not a UUID "
                "(commands take a name or an id)"
            )
        held = _checked(kind, roles)
        bound = _checked_sources(kind, sources)
        now = self._clock()
        principal_id = str(uuid.uuid4())
        with Session(self._engine) as session:
            session.add(
                PrincipalRow(
                    principal_id=principal_id,
                    name=name,
                    display_name=display_name.strip() or name,
                    kind=kind.value,
                    disabled=False,
                    issuer=issuer,
                    external_subject=external_subject,
                    created_at=now,
                    created_by=by.actor,
                )
            )
            try:
                session.flush()  # the principal row first: the role rows refer to it
                session.add_all(
                    PrincipalRoleRow(principal_id=principal_id, role=r.value, granted_at=now, granted_by=by.actor)
                    for r in sorted(held)
                )
                session.add_all(
                    PrincipalSourceRow(principal_id=principal_id, source_id=s, bound_at=now, bound_by=by.actor)
                    for s in sorted(bound)
                )
                self._audit(
                    session,
                    by,
                    "identity.principal_added",
                    principal_id,
                    kind=kind.value,
                    roles=_names(held),
                    **({"sources": sorted(bound)} if bound else {}),
                )
                session.commit()
            except IntegrityError as exc:
                raise IdentityError(f"a principal named {name!r} (or linked to that identity) exists already") from exc
        found = self.get(name)
        assert found is not None
        return found

    def get(self, name_or_id: str) -> PrincipalInfo | None:
        with Session(self._engine) as session:
            row = session.scalar(
                select(PrincipalRow).where(
                    (PrincipalRow.name == name_or_id) | (PrincipalRow.principal_id == name_or_id)
                )
            )
            return None if row is None else self._infos(session, [row])[0]

    def list_principals(self, *, include_disabled: bool = True) -> list[PrincipalInfo]:
        with Session(self._engine) as session:
            query = select(PrincipalRow).order_by(PrincipalRow.name)
            if not include_disabled:
                query = query.where(PrincipalRow.disabled.is_(False))
            return self._infos(session, list(session.scalars(query)))

    def set_disabled(self, name: str, disabled: bool, *, by: Principal) -> PrincipalInfo:
        """Disable (or enable again) a principal: every key and login of it is refused from the next request."""
        with self._changing(name) as (session, row):
            if row.principal_id == by.principal_id and disabled:
                raise IdentityError("you cannot disable yourself")
            row.disabled = disabled
            row.disabled_at = self._clock() if disabled else None
            action = "identity.principal_disabled" if disabled else "identity.principal_enabled"
            self._audit(session, by, action, row.principal_id)
        return self._must_get(name)

    def grant(self, name: str, roles: Iterable[Role], *, by: Principal) -> PrincipalInfo:
        wanted = frozenset(roles)
        with self._changing(name) as (session, row):
            held = self._held(session, row)
            _checked(PrincipalKind(row.kind), held | wanted)
            now = self._clock()
            new = sorted(wanted - held)
            session.add_all(
                PrincipalRoleRow(principal_id=row.principal_id, role=r.value, granted_at=now, granted_by=by.actor)
                for r in new
            )
            if new:
                self._audit(session, by, "identity.roles_granted", row.principal_id, roles=_names(new))
        return self._must_get(name)

    def revoke(self, name: str, roles: Iterable[Role], *, by: Principal) -> PrincipalInfo:
        gone = frozenset(roles)
        with self._changing(name) as (session, row):
            held = self._held(session, row)
            if row.principal_id == by.principal_id and Role.ADMIN in gone:
                raise IdentityError("you cannot revoke your own admin role")
            removed = sorted(held & gone)
            session.execute(
                delete(PrincipalRoleRow).where(
                    PrincipalRoleRow.principal_id == row.principal_id,
                    PrincipalRoleRow.role.in_([r.value for r in removed]),
                )
            )
            if removed:
                self._audit(session, by, "identity.roles_revoked", row.principal_id, roles=_names(removed))
        return self._must_get(name)

    def bind_source(self, name: str, source_id: str, *, by: Principal) -> PrincipalInfo:
        """Let a producer client's keys submit to the ingest API as ``source_id`` (a source keeps its own
        credentials too: either may be used)."""
        with self._changing(name) as (session, row):
            (source,) = _checked_sources(PrincipalKind(row.kind), [source_id])
            if session.get(PrincipalSourceRow, (row.principal_id, source)) is None:
                session.add(
                    PrincipalSourceRow(
                        principal_id=row.principal_id, source_id=source, bound_at=self._clock(), bound_by=by.actor
                    )
                )
                self._audit(session, by, "identity.source_bound", row.principal_id, source_id=source)
        return self._must_get(name)

    def unbind_source(self, name: str, source_id: str, *, by: Principal) -> PrincipalInfo:
        with self._changing(name) as (session, row):
            binding = session.get(PrincipalSourceRow, (row.principal_id, source_id))
            if binding is not None:
                session.delete(binding)
                self._audit(session, by, "identity.source_unbound", row.principal_id, source_id=source_id)
        return self._must_get(name)

    def linked_principal(
        self,
        issuer: str,
        subject: str,
        *,
        display_name: str,
        preferred_name: str | None,
        roles: frozenset[Role],
        kind: PrincipalKind = PrincipalKind.PERSON,
    ) -> Principal:
        """The principal of a person signed in through the identity provider, created on first sign-in.

        Roles come from the provider's groups at each sign-in, plus any granted here; a locally disabled principal
        is refused (``AuthenticationFailed("disabled")``) whatever the provider says.
        """
        linked = select(PrincipalRow).where(PrincipalRow.issuer == issuer, PrincipalRow.external_subject == subject)
        with Session(self._engine) as session:
            exists = session.scalar(linked) is not None
            name = None if exists else self._free_name(session, preferred_name, subject)
        if name is not None:
            with contextlib.suppress(IdentityError):  # a concurrent first sign-in won; its row is read below
                self.add_principal(
                    name,
                    display_name=display_name,
                    kind=kind,
                    roles=(),
                    by=system_principal("oidc-first-sign-in"),
                    issuer=issuer,
                    external_subject=subject,
                )
        with Session(self._engine) as session:
            row = session.scalar(linked)
            if row is None:
                raise AuthenticationFailed("sign_in_failed")
            if display_name and row.display_name != display_name:
                row.display_name = display_name
                session.commit()
            if row.disabled:
                raise AuthenticationFailed("disabled")
            local = self._roles(session, [row.principal_id])[row.principal_id]
            return Principal(
                principal_id=row.principal_id,
                display_name=row.display_name,
                kind=PrincipalKind(row.kind),
                roles=local | roles,
                auth="oidc",
            )

    # ---- API keys -------------------------------------------------------------------------------------------

    def create_key(
        self, name: str, *, by: Principal, label: str = "", expires_in: timedelta | None = timedelta(days=90)
    ) -> CreatedKey:
        secret, parsed = new_key()
        now = self._clock()
        expires_at = None if expires_in is None else now + expires_in
        with Session(self._engine) as session:
            row = self._row(session, name)
            if row.disabled:
                raise IdentityError(f"{name!r} is disabled")
            session.add(
                ApiKeyRow(
                    key_id=parsed.key_id,
                    principal_id=row.principal_id,
                    label=label,
                    key_hash=key_hash(self._pepper, parsed),
                    created_at=now,
                    created_by=by.actor,
                    expires_at=expires_at,
                )
            )
            self._audit(
                session,
                by,
                "identity.key_created",
                row.principal_id,
                key_id=parsed.key_id,
                expires_at=None if expires_at is None else expires_at.isoformat(),
            )
            session.commit()
        return CreatedKey(key_id=parsed.key_id, principal_name=name, expires_at=expires_at, secret=secret)

    def list_keys(self, name: str | None = None) -> list[KeyInfo]:
        with Session(self._engine) as session:
            query = (
                select(ApiKeyRow, PrincipalRow.name)
                .join(PrincipalRow, PrincipalRow.principal_id == ApiKeyRow.principal_id)
                .order_by(PrincipalRow.name, ApiKeyRow.created_at)
            )
            if name is not None:
                query = query.where(PrincipalRow.principal_id == self._row(session, name).principal_id)
            return [
                KeyInfo(
                    key_id=key.key_id,
                    principal_name=owner,
                    label=key.label,
                    created_at=key.created_at,
                    expires_at=key.expires_at,
                    last_used_at=key.last_used_at,
                    revoked_at=key.revoked_at,
                )
                for key, owner in session.execute(query)
            ]

    def revoke_key(self, key_id: str, *, by: Principal) -> None:
        with Session(self._engine) as session:
            key = session.get(ApiKeyRow, key_id)
            if key is None:
                raise IdentityNotFound(f"no API key {key_id!r}")
            if key.revoked_at is None:
                key.revoked_at = self._clock()
                key.revoked_by = by.actor
                self._audit(session, by, "identity.key_revoked", key.principal_id, key_id=key_id)
                session.commit()

    def authenticate_key(self, presented: str, *, allow_expired: bool = False) -> Principal:
        """The principal behind an API key, or ``AuthenticationFailed`` with the reason (never the key).

        ``allow_expired``: an expired key still names its principal (the embedded default's local operator, whose
        bootstrap key is how the CLI knows which admin it runs as, not what lets it in: see ``identity.operator``).
        """
        parsed = parse_key(presented)
        if parsed is None:
            raise AuthenticationFailed("malformed_key")
        now = self._clock()
        with Session(self._engine) as session:
            found = session.execute(
                select(ApiKeyRow, PrincipalRow)
                .join(PrincipalRow, PrincipalRow.principal_id == ApiKeyRow.principal_id)
                .where(ApiKeyRow.key_id == parsed.key_id)
            ).first()
            key, owner = (found[0], found[1]) if found is not None else (None, None)
            if not key_matches(self._pepper, parsed, None if key is None else key.key_hash) or key is None:
                raise AuthenticationFailed("unknown_key" if key is None else "wrong_key")
            assert owner is not None
            if key.revoked_at is not None:
                raise AuthenticationFailed("revoked_key")
            if key.expires_at is not None and key.expires_at <= now and not allow_expired:
                raise AuthenticationFailed("expired_key")
            if owner.disabled:
                raise AuthenticationFailed("disabled")
            info = self._infos(session, [owner])[0]
            if self._last_used.due(parsed.key_id, time.monotonic()):
                session.execute(update(ApiKeyRow).where(ApiKeyRow.key_id == key.key_id).values(last_used_at=now))
                session.commit()
            return info.principal("api_key")

    # ---- bootstrap ------------------------------------------------------------------------------------------

    def bootstrap_admin(self, by: Principal, *, expires_in: timedelta | None = timedelta(days=30)) -> CreatedKey | None:
        """The first admin and its key, or None when an enabled admin exists already (then it does nothing)."""
        if any(Role.ADMIN in p.roles and not p.disabled for p in self.list_principals()):
            return None
        name = "admin"
        if self.get(name) is None:
            self.add_principal(name, display_name="Administrator", kind=PrincipalKind.PERSON, roles=[Role.ADMIN], by=by)
        else:  # an "admin" that lost the role or was disabled: the operator asked to get an admin back
            self.set_disabled(name, False, by=by)
            self.grant(name, [Role.ADMIN], by=by)
        return self.create_key(name, by=by, label="bootstrap", expires_in=expires_in)

    # ---- the audit outbox -----------------------------------------------------------------------------------

    def unpublished_audit(self, limit: int = 500) -> list[AuditRecord]:
        with Session(self._engine) as session:
            rows = session.scalars(
                select(IdentityAuditRow)
                .where(IdentityAuditRow.published_at.is_(None))
                .order_by(IdentityAuditRow.seq)
                .limit(limit)
            )
            return [AuditRecord.model_validate_json(row.record) for row in rows]

    def forward_audit(self, publish: Callable[[Sequence[AuditRecord]], None], limit: int = 500) -> int:
        """Publish the oldest unpublished records with ``publish`` (which returns once the broker confirmed them),
        then mark them published; returns how many. The rows stay locked until then (PostgreSQL: ``FOR UPDATE SKIP
        LOCKED``), so two forwarders never publish the same record twice; if ``publish`` raises, nothing is marked
        and the next call tries again (a record may then be published twice: its ``audit_id`` says so)."""
        with Session(self._engine) as session:
            rows = list(
                session.scalars(
                    select(IdentityAuditRow)
                    .where(IdentityAuditRow.published_at.is_(None))
                    .order_by(IdentityAuditRow.seq)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if not rows:
                return 0
            publish([AuditRecord.model_validate_json(row.record) for row in rows])
            now = self._clock()
            for row in rows:
                row.published_at = now
            session.commit()
            return len(rows)

    # ---- helpers --------------------------------------------------------------------------------------------

    def _audit(self, session: Session, by: Principal, action: str, target: str, **detail: Any) -> None:
        record = AuditRecord(
            audit_id=uuid.uuid4(),
            at=self._clock(),
            actor=by.actor,
            principal=by,
            action=action,
            detail={"target_principal_id": target, **detail},
        )
        session.add(IdentityAuditRow(audit_id=str(record.audit_id), at=record.at, record=record.model_dump_json()))

    @contextlib.contextmanager
    def _changing(self, name: str) -> Iterator[tuple[Session, PrincipalRow]]:
        """A change to one principal and its audit row, in one transaction committed as the block ends."""
        with Session(self._engine) as session:
            yield session, self._row(session, name)
            session.commit()

    def _held(self, session: Session, row: PrincipalRow) -> frozenset[Role]:
        return self._roles(session, [row.principal_id])[row.principal_id]

    def _row(self, session: Session, name: str) -> PrincipalRow:
        row = session.scalar(
            select(PrincipalRow).where((PrincipalRow.name == name) | (PrincipalRow.principal_id == name))
        )
        if row is None:
            raise IdentityNotFound(f"no user or client named {name!r}")
        return row

    def _must_get(self, name: str) -> PrincipalInfo:
        found = self.get(name)
        if found is None:
            raise IdentityNotFound(f"no user or client named {name!r}")
        return found

    def _infos(self, session: Session, rows: Sequence[PrincipalRow]) -> list[PrincipalInfo]:
        ids = [r.principal_id for r in rows]
        roles = self._roles(session, ids)
        sources: dict[str, set[str]] = {pid: set() for pid in ids}
        if ids:
            for pid, source in session.execute(
                select(PrincipalSourceRow.principal_id, PrincipalSourceRow.source_id).where(
                    PrincipalSourceRow.principal_id.in_(ids)
                )
            ):
                sources[pid].add(source)
        return [_info(row, roles[row.principal_id], frozenset(sources[row.principal_id])) for row in rows]

    @staticmethod
    def _roles(session: Session, principal_ids: Sequence[str]) -> dict[str, frozenset[Role]]:
        held: dict[str, set[Role]] = {pid: set() for pid in principal_ids}
        if principal_ids:
            for pid, role in session.execute(
                select(PrincipalRoleRow.principal_id, PrincipalRoleRow.role).where(
                    PrincipalRoleRow.principal_id.in_(principal_ids)
                )
            ):
                held[pid].add(Role(role))
        return {pid: frozenset(roles) for pid, roles in held.items()}

    @staticmethod
    def _free_name(session: Session, preferred: str | None, subject: str) -> str:
        """A handle for a person first seen through the provider: their preferred name when free and valid."""
        candidate = re.sub(r"[^a-z0-9._@-]", "-", (preferred or "").lower()).strip("-._@")[:80]
        base = (
            candidate
            if candidate and NAME_PATTERN.match(candidate)
            else "sso-" + uuid.uuid5(uuid.NAMESPACE_URL, subject).hex[:12]
        )
        name, n = base, 1
        while session.scalar(select(PrincipalRow.principal_id).where(PrincipalRow.name == name)) is not None:
            n += 1
            name = f"{base}-{n}"
        return name


def _looks_like_id(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True


def _checked(kind: PrincipalKind, roles: Iterable[Role]) -> frozenset[Role]:
    try:
        return check_roles(kind, roles)
    except ValueError as exc:
        raise IdentityError(str(exc)) from exc


def _checked_sources(kind: PrincipalKind, sources: Iterable[str]) -> list[str]:
    wanted = sorted(set(sources))
    if wanted and kind is not PrincipalKind.CLIENT:
        raise IdentityError("only a machine client can be bound to an ingest source")
    if bad := [s for s in wanted if not SOURCE_PATTERN.match(s)]:
        raise IdentityError(f"not a source id: {bad[0]!r} (letters, digits and . _ -, up to 100)")
    return wanted


def _names(roles: Iterable[Role]) -> list[str]:
    return sorted(r.value for r in roles)


def _info(row: PrincipalRow, roles: frozenset[Role], sources: frozenset[str] = frozenset()) -> PrincipalInfo:
    return PrincipalInfo(
        principal_id=row.principal_id,
        name=row.name,
        display_name=row.display_name,
        kind=PrincipalKind(row.kind),
        roles=roles,
        disabled=row.disabled,
        created_at=row.created_at,
        created_by=row.created_by,
        issuer=row.issuer,
        sources=sources,
    )
