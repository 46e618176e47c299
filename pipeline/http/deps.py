"""FastAPI dependencies every router may use: the runtime, the settings, the publisher, the app's metrics."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from pipeline.config import Settings
from pipeline.http.metrics import ApiMetrics
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.runtime.settings)


def get_publisher(request: Request) -> ConfirmingPublisher:
    return cast(ConfirmingPublisher, request.app.state.publisher)


def get_metrics(request: Request) -> ApiMetrics:
    return cast(ApiMetrics, request.app.state.metrics)
