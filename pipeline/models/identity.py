"""Who acts: the principal (a person or a machine client) behind every request, with its roles.

A ``Principal`` is the value the HTTP auth dependency returns, the CLI resolves, and the audit records and the
rights tracker carry (``issued_by``). It names an employee or a client, never a data subject, and holds no secret.
The display name is recorded as it was at the time of the action, so the audit still says who acted after a rename.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, field_serializer

from pipeline.models.common import StrictModel


class Role(StrEnum):
    """The fixed set of roles; what each may do is the matrix in ``pipeline/identity/permissions.py``."""

    SALES = "sales"
    REVIEWER = "reviewer"
    DPO = "dpo"
    ADMIN = "admin"
    PRODUCER = "producer"  # a source: a form, a bot, an importer; reaches ingest only


class PrincipalKind(StrEnum):
    PERSON = "person"
    CLIENT = "client"


AuthMethod = Literal["api_key", "oidc", "legacy_token", "local", "system"]


class Principal(StrictModel):
    """An authenticated actor. ``principal_id`` is stable (a UUID from the principals table); names may change."""

    principal_id: str = Field(min_length=1, max_length=64)
    display_name: str = Field(min_length=1, max_length=200)
    kind: PrincipalKind
    roles: frozenset[Role] = frozenset()
    auth: AuthMethod = Field(description="How this principal proved who it is, for the audit")
    sources: frozenset[str] = Field(
        default=frozenset(), description="A producer client: the ingest source ids its key may submit as"
    )

    @field_serializer("roles")
    def _sorted_roles(self, roles: frozenset[Role]) -> list[str]:
        """Sorted, so the same principal always serialises to the same JSON (audit records, tests)."""
        return sorted(role.value for role in roles)

    @field_serializer("sources")
    def _sorted_sources(self, sources: frozenset[str]) -> list[str]:
        return sorted(sources)

    @property
    def actor(self) -> str:
        """The short, stable actor string for ``AuditRecord.actor`` and ``RightsCommand.issued_by``."""
        return f"{self.kind.value}:{self.principal_id}"

    def audit_ref(self) -> dict[str, object]:
        """What an audit record keeps about the actor: id, name at the time, kind, roles, how they logged in."""
        return self.model_dump(mode="json")


def system_principal(name: str) -> Principal:
    """An actor that is the product itself (retention sweep, children rule, rights worker): no login, no roles."""
    return Principal(principal_id=name, display_name=name, kind=PrincipalKind.CLIENT, auth="system")
