"""The error shapes of every API, as ``/openapi.json`` documents them, and the one way to refuse a request.

``Refused``: nothing was read (unknown source, bad credentials, too large, service unavailable). ``Rejected``: the
payload was read but could not be used; it was dead-lettered, and ``errors`` names each bad field without quoting
its value. A refusal is counted by reason (``leadpipe_ingest_refusals``) and logged without personal data.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pipeline.http.metrics import ApiMetrics
from pipeline.logging import get_logger

log = get_logger(__name__)


class FieldError(BaseModel):
    field: str | None = Field(description="Dotted path of the bad field, e.g. 'email' or 'row 3.phone'")
    reason: str = Field(description="Stable code, e.g. invalid_email, no_identity, missing_event_date")
    message: str = Field(description="What is wrong, without quoting the value")


class Rejected(BaseModel):
    status: Literal["rejected"] = "rejected"
    reason: str
    message: str
    errors: list[FieldError]
    dead_lettered: bool = Field(default=True, description="The payload was kept, sealed, on contacts.dlq.ingest")
    dead_letter_id: uuid.UUID


class Refused(BaseModel):
    status: Literal["refused"] = "refused"
    reason: str
    message: str


def _refused(metrics: ApiMetrics, status: int, reason: str, message: str, log_event: str, **log_fields: Any) -> Refused:
    metrics.refusals.labels(reason=reason).inc()
    log.warning(log_event, status=status, reason=reason, **log_fields)
    return Refused(reason=reason, message=message)


def _headers(status: int, extra: Mapping[str, str] | None) -> dict[str, str] | None:
    """401 carries the challenge (RFC 6750); ``extra`` adds e.g. ``Retry-After`` to a 429 or a 503."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    headers.update(extra or {})
    return headers or None


def refusal(
    metrics: ApiMetrics,
    status: int,
    reason: str,
    message: str,
    *,
    log_event: str,
    headers: Mapping[str, str] | None = None,
    **log_fields: Any,
) -> HTTPException:
    """A ``Refused`` answer, counted by reason and logged (``log_fields``: ids only, never personal data).

    Raised (a dependency can only raise), FastAPI sends the body under ``detail``; a route that answers itself
    returns ``answer(refusal(...))`` instead, with the body at the top level."""
    body = _refused(metrics, status, reason, message, log_event, **log_fields)
    return HTTPException(status_code=status, detail=body.model_dump(), headers=_headers(status, headers))


def answer(refused: HTTPException) -> JSONResponse:
    """A ``refusal`` returned rather than raised: the same status and headers, the ``Refused`` body at the top."""
    return JSONResponse(refused.detail, status_code=refused.status_code, headers=refused.headers)
