"""The role -> permission matrix, stated as the issue states it, cell by cell."""

from __future__ import annotations

import pytest

from pipeline.identity.permissions import ROLE_PERMISSIONS, Permission, RoleConflict, allowed, check_roles
from pipeline.models.identity import Principal, PrincipalKind, Role

P = Permission


def principal(*roles: Role, kind: PrincipalKind = PrincipalKind.PERSON) -> Principal:
    return Principal(principal_id="p1", display_name="Someone", kind=kind, roles=frozenset(roles), auth="api_key")


#: Every cell of the matrix, written out: a change to ROLE_PERMISSIONS must change this table too.
EXPECTED: dict[Role, set[Permission]] = {
    Role.SALES: {P.CRM_READ, P.CRM_EXPORT_LEADS},
    Role.REVIEWER: {P.REVIEW_READ, P.REVIEW_DECIDE},
    Role.DPO: {
        P.CRM_READ,
        P.CRM_READ_RESTRICTED,
        P.RIGHTS_READ,
        P.RIGHTS_ISSUE,
        P.RIGHTS_EXPORT,
        P.RETENTION_RUN,
        P.AUDIT_READ,
    },
    Role.ADMIN: {P.PRINCIPALS_READ, P.PRINCIPALS_MANAGE, P.SOURCES_MANAGE, P.DLQ_READ, P.DLQ_REPLAY, P.AUDIT_READ},
    Role.PRODUCER: {P.INGEST_SUBMIT},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_every_cell(role: Role, permission: Permission) -> None:
    assert allowed(principal(role), permission) is (permission in EXPECTED[role])


def test_the_issues_statements() -> None:
    sales, reviewer = principal(Role.SALES), principal(Role.REVIEWER)
    admin, producer = principal(Role.ADMIN), principal(Role.PRODUCER, kind=PrincipalKind.CLIENT)
    # sales may read the CRM but never a restricted subject's data or an export
    assert allowed(sales, P.CRM_READ)
    assert not allowed(sales, P.CRM_READ_RESTRICTED) and not allowed(sales, P.RIGHTS_EXPORT)
    # reviewers see the spam queue only
    assert {p for p in P if allowed(reviewer, p)} == {P.REVIEW_READ, P.REVIEW_DECIDE}
    # only the DPO issues rights, downloads exports and reads a restricted subject's data
    for permission in (P.RIGHTS_ISSUE, P.RIGHTS_EXPORT, P.CRM_READ_RESTRICTED):
        assert [r for r in Role if allowed(principal(r), permission)] == [Role.DPO]
    # only admin manages principals and sources
    for permission in (P.PRINCIPALS_MANAGE, P.SOURCES_MANAGE):
        assert [r for r in Role if allowed(principal(r), permission)] == [Role.ADMIN]
    assert allowed(admin, P.PRINCIPALS_MANAGE) and not allowed(admin, P.CRM_READ)  # separation of duties
    # producer credentials reach ingest only, and nobody else submits
    assert {p for p in P if allowed(producer, p)} == {P.INGEST_SUBMIT}
    assert [r for r in Role if allowed(principal(r), P.INGEST_SUBMIT)] == [Role.PRODUCER]


def test_roles_add_up_and_nobody_gets_anything_without_one() -> None:
    both = principal(Role.SALES, Role.REVIEWER)
    assert allowed(both, P.CRM_READ) and allowed(both, P.REVIEW_DECIDE) and not allowed(both, P.RIGHTS_ISSUE)
    assert not any(allowed(principal(), p) for p in P)
    assert not any(allowed(None, p) for p in P)


def test_matrix_covers_every_role_and_grants_every_permission_to_someone() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert set().union(*ROLE_PERMISSIONS.values()) == set(Permission)


def test_producer_stands_alone_and_belongs_to_clients() -> None:
    assert check_roles(PrincipalKind.CLIENT, [Role.PRODUCER]) == {Role.PRODUCER}
    with pytest.raises(RoleConflict, match="cannot be combined"):
        check_roles(PrincipalKind.CLIENT, [Role.PRODUCER, Role.SALES])
    with pytest.raises(RoleConflict, match="only a machine client"):
        check_roles(PrincipalKind.PERSON, [Role.PRODUCER])
    assert check_roles(PrincipalKind.PERSON, [Role.DPO, Role.SALES]) == {Role.DPO, Role.SALES}


def test_principal_serialises_for_the_audit() -> None:
    p = principal(Role.SALES, Role.DPO)
    assert p.actor == "person:p1"
    assert p.audit_ref() == {
        "principal_id": "p1",
        "display_name": "Someone",
        "kind": "person",
        "roles": ["dpo", "sales"],
        "auth": "api_key",
        "sources": [],
    }
    assert Principal.model_validate(p.audit_ref()) == p
