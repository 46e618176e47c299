"""Permissions and the role -> permission matrix: the one place that says who may do what.

Every HTTP route and operator command declares one ``Permission``; ``allowed(principal, permission)`` is the only
check. The matrix is a code constant rather than a data file because it is security policy that must change with
code review, and mypy checks that every cell names a real role and permission. Separation of duties: admin manages
people, clients and sources but cannot read the CRM or issue rights; the DPO cannot manage accounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from pipeline.models.identity import Principal, PrincipalKind, Role


class Permission(StrEnum):
    CRM_READ = "crm:read"  # search and show contacts; a restricted subject answers with key, counts, status only
    CRM_READ_RESTRICTED = "crm:read_restricted"  # a restricted subject's data (policy 9.4: the DPO only)
    CRM_EXPORT_LEADS = "crm:export_leads"  # CSV of leads that may be contacted for marketing now
    REVIEW_READ = "review:read"  # the spam queue and an item's content
    REVIEW_DECIDE = "review:decide"  # release / confirm
    RIGHTS_READ = "rights:read"  # requests, deadlines, per-sink evidence
    RIGHTS_ISSUE = "rights:issue"  # erasure, objection, restriction, ..., extensions and notices
    RIGHTS_EXPORT = "rights:export"  # download an access / portability export
    RETENTION_RUN = "retention:run"  # the retention sweep and its preview
    AUDIT_READ = "audit:read"  # the audit trail (subject keys, actors)
    DLQ_READ = "dlq:read"  # dead letters, their sealed payloads opened for the operator
    DLQ_REPLAY = "dlq:replay"
    PRINCIPALS_READ = "principals:read"
    PRINCIPALS_MANAGE = "principals:manage"  # users, clients, roles, API keys
    SOURCES_MANAGE = "sources:manage"  # ingest sources and their secrets
    INGEST_SUBMIT = "ingest:submit"  # publish payloads as a source


P = Permission

#: The matrix. A role not listed for a permission does not have it; nothing is implied by another role.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.SALES: frozenset({P.CRM_READ, P.CRM_EXPORT_LEADS}),
        Role.REVIEWER: frozenset({P.REVIEW_READ, P.REVIEW_DECIDE}),
        Role.DPO: frozenset(
            {
                P.CRM_READ,
                P.CRM_READ_RESTRICTED,
                P.RIGHTS_READ,
                P.RIGHTS_ISSUE,
                P.RIGHTS_EXPORT,
                P.RETENTION_RUN,
                P.AUDIT_READ,
            }
        ),
        Role.ADMIN: frozenset(
            {P.PRINCIPALS_READ, P.PRINCIPALS_MANAGE, P.SOURCES_MANAGE, P.DLQ_READ, P.DLQ_REPLAY, P.AUDIT_READ}
        ),
        Role.PRODUCER: frozenset({P.INGEST_SUBMIT}),
    }
)


def permissions_of(roles: Iterable[Role]) -> frozenset[Permission]:
    return frozenset().union(*(ROLE_PERMISSIONS[role] for role in roles))


def allowed(principal: Principal | None, permission: Permission) -> bool:
    """Whether this principal may do this. No principal (not authenticated) may do nothing."""
    return principal is not None and permission in permissions_of(principal.roles)


class RoleConflict(ValueError):
    """A role set the product refuses to hold on one principal."""


def check_roles(kind: PrincipalKind, roles: Iterable[Role]) -> frozenset[Role]:
    """The role set, or ``RoleConflict``: producer credentials reach ingest only, so producer stands alone and only
    a machine client holds it (a person's key must never be pasted into a web form's configuration)."""
    held = frozenset(roles)
    if Role.PRODUCER in held and len(held) > 1:
        raise RoleConflict(
            "the producer role cannot be combined with other roles: a source's credential reaches ingest only"
        )
    if Role.PRODUCER in held and kind is not PrincipalKind.CLIENT:
        raise RoleConflict("only a machine client can hold the producer role")
    return held
