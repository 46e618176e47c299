"""Read-only CRM endpoints for sales (``crm:read``).

``GET /v1/crm/subjects?email=...|phone=...|name=...`` finds contacts, ``GET /v1/crm/subjects/{subject_key}`` shows
one with interactions, legal bases and status. Nothing here writes; no answer may be cached, and a refusal never
quotes the e-mail, phone or name searched for (``NoStoreRoute``).
A restricted subject (policy 9.4) is answered with its key and status only (``withheld``): its data is kept, not
processed further, and being read by sales is processing; only ``crm:read_restricted`` (the DPO) sees it whole.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from pipeline.crm.read import CrmReadModel
from pipeline.crm.views import SubjectSummary, SubjectView
from pipeline.http.auth import Permission, Principal, require
from pipeline.http.caching import NoStoreRoute
from pipeline.http.deps import get_runtime
from pipeline.identity.permissions import allowed
from pipeline.logging import get_logger

log = get_logger(__name__)

router = APIRouter(prefix="/v1/crm", tags=["crm"], route_class=NoStoreRoute)

Actor = Annotated[Principal, Depends(require(Permission.CRM_READ))]


def read_model(request: Request) -> CrmReadModel:
    """The app's one CRM read model, made on first use (the console's pages read it too)."""
    read = getattr(request.app.state, "crm_read_model", None)
    if not isinstance(read, CrmReadModel):
        read = CrmReadModel(get_runtime(request).engine)
        request.app.state.crm_read_model = read
    return read


@router.get("/subjects", response_model=list[SubjectSummary])
async def find_subjects(
    request: Request,
    *,
    actor: Actor,
    email: Annotated[str | None, Query(max_length=320)] = None,
    phone: Annotated[str | None, Query(max_length=40)] = None,
    name: Annotated[str | None, Query(min_length=2, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[SubjectSummary]:
    """Contacts matching every given criterion (e-mail and phone exactly, name as a substring)."""
    if not (email or phone or name):
        raise HTTPException(422, detail={"status": "invalid", "message": "give email, phone or name"})
    read = read_model(request)
    hits = await asyncio.to_thread(read.search, email=email, phone=phone, name=name, limit=limit)
    log.info("crm_search", principal_id=actor.principal_id, hits=len(hits))
    return hits if allowed(actor, Permission.CRM_READ_RESTRICTED) else [hit.for_sales() for hit in hits]


@router.get("/subjects/{subject_key}", response_model=SubjectView)
async def show_subject(
    subject_key: str,
    request: Request,
    actor: Actor,
) -> SubjectView:
    """One contact: profile, status, identities, interactions with purposes and legal bases, consents."""
    read = read_model(request)
    view = await asyncio.to_thread(read.show, subject_key)
    if view is None:
        raise HTTPException(404, detail={"status": "not_found", "message": "no such subject"})
    full = allowed(actor, Permission.CRM_READ_RESTRICTED)
    log.info(
        "crm_show",
        principal_id=actor.principal_id,
        subject_key=subject_key,
        withheld=view.status == "restricted" and not full,
    )
    return view if full else view.for_sales()
