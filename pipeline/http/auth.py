"""Who may call what: ``require(permission)`` is the dependency every operator route declares.

A route names the permission it needs and gets the ``Principal`` making the request; how that principal was
authenticated is this module's business alone. Today an operator bearer token (``LEADPIPE_DPO_TOKEN``,
``_REVIEWER_TOKEN``, ``_SALES_TOKEN``) grants one permission and the principal is named after the token ("dpo");
users, API keys or OIDC will authenticate here later without a router changing. A missing or wrong token is 401,
logged and counted without the token.

Usage: ``Actor = Annotated[Principal, Depends(require(Permission.REVIEW_SPAM))]``, then ``actor.name`` wherever
the action is recorded (audit, decisions): every action carries who took it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.config import Settings
from pipeline.http.deps import get_metrics, get_settings
from pipeline.http.errors import refusal


class Permission(StrEnum):
    """What a route needs, whoever the caller turns out to be."""

    MANAGE_RIGHTS = "manage_rights"
    """The DPO's requests (``/v1/dpo``)."""
    REVIEW_SPAM = "review_spam"
    """The spam review queue and its decisions (``/v1/review``)."""
    READ_CRM = "read_crm"
    """Sales' read-only view of the CRM (``/v1/crm``)."""


TokenKind = Literal["dpo", "reviewer", "sales"]

#: Today's authentication: the operator token (``settings.<kind>_token``) that grants each permission.
TOKEN_GRANTING: Mapping[Permission, TokenKind] = MappingProxyType(
    {Permission.MANAGE_RIGHTS: "dpo", Permission.REVIEW_SPAM: "reviewer", Permission.READ_CRM: "sales"}
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: the name recorded with what they do, and what they may do."""

    name: str
    permissions: frozenset[Permission]


#: The bearer scheme of every operator route (one ``HTTPBearer`` in ``/openapi.json``).
bearer = HTTPBearer(auto_error=False, description="Operator token (LEADPIPE_DPO_TOKEN, _REVIEWER_TOKEN, _SALES_TOKEN)")


def tokens_match(expected: str, given: str) -> bool:
    """Constant-time comparison (a plain == leaks how many leading characters were right)."""
    return hmac.compare_digest(expected.encode(), given.encode())


def _token_problem(settings: Settings, kind: TokenKind, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """None when ``credentials`` carry the ``kind`` token; else why not."""
    expected = getattr(settings, f"{kind}_token")
    if expected is None:
        return "not_configured"
    if credentials is None or credentials.scheme.lower() != "bearer":
        return "missing_token"
    if not tokens_match(expected.get_secret_value(), credentials.credentials):
        return "wrong_token"
    return None


def _token_principal(kind: TokenKind) -> Principal:
    return Principal(kind, frozenset(p for p, granting in TOKEN_GRANTING.items() if granting == kind))


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only a caller holding ``permission``; returns who that caller is."""
    kind = TOKEN_GRANTING[permission]

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Principal:
        problem = _token_problem(get_settings(request), kind, credentials)
        if problem is not None:
            raise refusal(
                get_metrics(request),
                401,
                f"{kind}_token_{problem}",
                f"a valid {kind} token is required",
                log_event="token_refused",
                kind=kind,
                path=request.url.path,
            )
        return _token_principal(kind)

    dependency.__name__ = f"require_{permission.value}"
    return dependency
