"""Bearer-token dependencies for the operator APIs (DPO, reviewers, sales) that hang on the ingest app.

Usage in another area's router: ``@router.get(..., dependencies=[Depends(require_token("dpo"))])`` or take the
returned actor name as a parameter. A missing or wrong token is 401, logged and counted without the token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.ingest.deps import get_metrics, get_settings
from pipeline.logging import get_logger

log = get_logger(__name__)

TokenKind = Literal["dpo", "reviewer", "sales"]

_bearer = HTTPBearer(auto_error=False, description="Operator token (LEADPIPE_DPO_TOKEN, _REVIEWER_TOKEN, _SALES_TOKEN)")


def tokens_match(expected: str, given: str) -> bool:
    """Constant-time comparison (a plain == leaks how many leading characters were right)."""
    return hmac.compare_digest(expected.encode(), given.encode())


def require_token(kind: TokenKind) -> Callable[..., Awaitable[str]]:
    """A dependency that admits only a bearer token equal to ``settings.<kind>_token``; returns the actor name."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> str:
        settings = get_settings(request)
        expected = getattr(settings, f"{kind}_token")
        reason = None
        if expected is None:
            reason = "not_configured"
        elif credentials is None or credentials.scheme.lower() != "bearer":
            reason = "missing_token"
        elif not tokens_match(expected.get_secret_value(), credentials.credentials):
            reason = "wrong_token"
        if reason is not None:
            log.warning("token_refused", kind=kind, reason=reason, path=request.url.path)
            get_metrics(request).refusals.labels(reason=f"{kind}_token_{reason}").inc()
            raise HTTPException(
                status_code=401,
                detail={
                    "status": "refused",
                    "reason": f"{kind}_token_{reason}",
                    "message": f"a valid {kind} token is required",
                },
                headers={"WWW-Authenticate": "Bearer"},
            )
        return kind

    dependency.__name__ = f"require_{kind}_token"
    return dependency
