"""The identity tables: principals (people and machine clients), their roles, API keys, the ingest sources a
producer client is bound to, browser sessions, and an audit outbox.

No secret is stored in clear: an API key row holds the key id and a keyed hash (``pipeline/identity/keys.py``), a
session row the SHA-256 of the session token the (encrypted) cookie carries. A principal signed in through the
identity provider is linked by (issuer, subject); its row lets an admin disable it locally and gives the audit a
stable id. ``identity_audit`` keeps every change with the principal who made it, in the same transaction as the
change, until it is published on the audit topic (``published_at``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.db import Base, UtcDateTime


class PrincipalRow(Base):
    __tablename__ = "principals"
    __table_args__ = (UniqueConstraint("issuer", "external_subject", name="uq_principals_issuer_subject"),)

    principal_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, doc="Login handle, as the CLI names the principal")
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    issuer: Mapped[str | None] = mapped_column(String(300), nullable=True, doc="OIDC issuer of a linked person")
    external_subject: Mapped[str | None] = mapped_column(String(255), nullable=True, doc="Its 'sub' claim")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(200))


def _of_principal(*, primary_key: bool = False, index: bool | None = None) -> Mapped[str]:
    """The principal a row belongs to; deleting the principal deletes the row (roles, keys, sources, sessions)."""
    return mapped_column(
        String(36),
        ForeignKey("principals.principal_id", ondelete="CASCADE"),
        primary_key=primary_key,
        index=index,
    )


class PrincipalRoleRow(Base):
    __tablename__ = "principal_roles"

    principal_id: Mapped[str] = _of_principal(primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    granted_by: Mapped[str] = mapped_column(String(200))


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    principal_id: Mapped[str] = _of_principal(index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class IdentityAuditRow(Base):
    __tablename__ = "identity_audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, doc="Order of the changes")
    audit_id: Mapped[str] = mapped_column(String(36), unique=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    record: Mapped[str] = mapped_column(Text, doc="AuditRecord JSON")
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)


class PrincipalSourceRow(Base):
    """A producer client's key may submit to the ingest API as this source (``POST /v1/sources/{source_id}``)."""

    __tablename__ = "principal_sources"

    principal_id: Mapped[str] = _of_principal(primary_key=True)
    source_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    bound_at: Mapped[datetime] = mapped_column(UtcDateTime())
    bound_by: Mapped[str] = mapped_column(String(200))


class SessionRow(Base):
    """A browser session after single sign-on; revoked at logout, refused once expired or its principal disabled."""

    __tablename__ = "browser_sessions"

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True, doc="SHA-256 of the session token")
    principal_id: Mapped[str] = _of_principal(index=True)
    provider_roles: Mapped[str] = mapped_column(String(200), doc="Roles from the provider's groups at sign-in")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
