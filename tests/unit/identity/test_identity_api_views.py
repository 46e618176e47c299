"""The admin API's view of a principal is read from ``PrincipalInfo``'s attributes: sorted, sign-in derived."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.api.identity import PrincipalOut
from pipeline.identity.store import PrincipalInfo
from pipeline.models.identity import PrincipalKind, Role

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def info(issuer: str | None) -> PrincipalInfo:
    return PrincipalInfo(
        principal_id="p-1",
        name="ana",
        display_name="Ana",
        kind=PrincipalKind.PERSON,
        roles=frozenset({Role.SALES, Role.ADMIN, Role.DPO}),
        disabled=False,
        created_at=CREATED,
        created_by="admin",
        issuer=issuer,
        sources=frozenset({"wp-contact", "crm-sync"}),
    )


def test_principal_out_sorts_roles_and_sources_and_names_the_sign_in() -> None:
    out = PrincipalOut.of(info(None))
    assert out.model_dump(mode="json") == {
        "principal_id": "p-1",
        "name": "ana",
        "display_name": "Ana",
        "kind": "person",
        "roles": ["admin", "dpo", "sales"],
        "disabled": False,
        "sign_in": "api_key",
        "sources": ["crm-sync", "wp-contact"],
        "created_at": "2026-01-02T03:04:05Z",
        "created_by": "admin",
    }
    assert PrincipalOut.of(info("https://idp.example")).sign_in == "single_sign_on"
