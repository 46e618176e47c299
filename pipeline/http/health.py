"""``/healthz`` (liveness) and ``/metrics`` (the app's Prometheus registry): part of every app ``create_app`` builds."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from pipeline.http.auth import public
from pipeline.http.deps import get_metrics

router = APIRouter()


class Health(BaseModel):
    status: Literal["ok"] = "ok"


@router.get(
    "/healthz", response_model=Health, summary="Liveness", dependencies=[Depends(public("liveness probe: says ok"))]
)
async def healthz() -> Health:
    return Health()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(public("Prometheus scrape: counts by outcome and reason, no ids, no personal data"))],
)
async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(get_metrics(request).registry), media_type=CONTENT_TYPE_LATEST)
