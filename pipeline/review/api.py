"""The review HTTP API (``/v1/review``): the queue needs ``review:read``, a decision ``review:decide``; every decision
names the reviewer who made it (their principal travels with it to the audit topic)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from pipeline.http.auth import Permission, Principal, require
from pipeline.http.caching import NoStoreRoute
from pipeline.http.deps import get_publisher, get_runtime
from pipeline.models.common import Channel
from pipeline.models.review import BlockTarget
from pipeline.review.service import QueueItem, QueueItemContent, QueueSort, ReviewError, ReviewService

router = APIRouter(prefix="/v1/review", tags=["review"], route_class=NoStoreRoute)

Reader = Annotated[Principal, Depends(require(Permission.REVIEW_READ))]
Decider = Annotated[Principal, Depends(require(Permission.REVIEW_DECIDE))]


class DecisionBody(BaseModel):
    block: list[BlockTarget] = Field(default_factory=list, description="On confirm: sender, domain and/or ip.")


class DecisionMade(BaseModel):
    decision_id: uuid.UUID
    event_id: uuid.UUID
    decision: Literal["release", "confirm"]
    block: list[BlockTarget]


def _service(request: Request) -> ReviewService:
    return ReviewService(get_runtime(request), get_publisher(request))


def _http(exc: ReviewError) -> HTTPException:
    return HTTPException(status_code=404 if exc.code == "not_found" else 409, detail={"reason": exc.code})


@router.get("/quarantine", response_model=list[QueueItem])
async def list_queue(
    request: Request,
    response: Response,
    actor: Reader,
    *,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    sort: QueueSort = "oldest",
    channel: Channel | None = None,
    reason: Annotated[str | None, Query(max_length=100)] = None,
) -> list[QueueItem]:
    """Quarantined events waiting for a decision, with their spam reasons: a page (``offset``, ``limit``) in
    ``sort`` order (oldest, newest, score: nearest the threshold first), of one ``channel`` or spam ``reason`` code
    when given. ``X-Total-Count`` says how many match, ``X-Queue-Waiting`` how many wait in all (a queue of
    thousands is read a page at a time, as ``leadpipe spam review list`` does)."""
    page = await asyncio.to_thread(
        _service(request).page,
        limit,
        offset,
        sort=sort,
        channel=None if channel is None else channel.value,
        reason=reason,
    )
    response.headers["X-Total-Count"] = str(page.matching)
    response.headers["X-Queue-Waiting"] = str(page.waiting)
    return page.items


@router.get("/quarantine/{event_id}", response_model=QueueItemContent)
async def show(event_id: uuid.UUID, request: Request, actor: Reader) -> QueueItemContent:
    """One quarantined event with what the person sent."""
    try:
        return await asyncio.to_thread(_service(request).show, event_id)
    except ReviewError as exc:
        raise _http(exc) from None


async def _decide(
    request: Request, event_id: uuid.UUID, decision: Literal["release", "confirm"], actor: Principal, body: DecisionBody
) -> DecisionMade:
    try:
        made = await asyncio.to_thread(_service(request).decide, event_id, decision, actor, tuple(body.block))
    except ReviewError as exc:
        raise _http(exc) from None
    except ValueError as exc:
        raise HTTPException(status_code=422, detail={"reason": "invalid_decision", "message": str(exc)}) from None
    return DecisionMade(decision_id=made.decision_id, event_id=made.event_id, decision=decision, block=list(made.block))


@router.post("/quarantine/{event_id}/release", response_model=DecisionMade, status_code=202)
async def release(
    event_id: uuid.UUID, request: Request, actor: Decider, body: DecisionBody | None = None
) -> DecisionMade:
    """Not spam: the event continues to contacts.accepted with the reviewer's decision recorded on it."""
    return await _decide(request, event_id, "release", actor, body or DecisionBody())


@router.post("/quarantine/{event_id}/confirm", response_model=DecisionMade, status_code=202)
async def confirm(
    event_id: uuid.UUID, request: Request, actor: Decider, body: DecisionBody | None = None
) -> DecisionMade:
    """Spam: the event stays out; ``block`` adds the sender, domain or IP (hashed) to the reviewer blocklist."""
    return await _decide(request, event_id, "confirm", actor, body or DecisionBody())
