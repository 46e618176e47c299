"""The leadpipe HTTP API: every area's router on the shared app factory (``pipeline.http.app.create_app``).

Add an area's router to ``ROUTERS``; every route declares its access (``pipeline.http.auth``: ``require(permission)``,
``require_signed_in()``, ``require_session()`` or ``public("why")``); the permission matrix test refuses a route that
declares none.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from pipeline.api import identity as identity_api
from pipeline.console import app as console
from pipeline.crm import api as crm_api
from pipeline.http.app import create_app
from pipeline.ingest import api as ingest_api
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.review import api as review_api
from pipeline.rights import api as rights_api
from pipeline.runtime import Runtime

#: The routers of the API, in the order ``/openapi.json`` lists them.
ROUTERS: list[APIRouter] = [
    ingest_api.router,
    rights_api.router,
    crm_api.router,
    review_api.router,
    identity_api.sign_in_router,
    identity_api.admin_router,
    console.router,
]

SUMMARY = "Contact events in (webhooks from forms, chat bots, mail, messengers, events, customer imports)."


def create_api(runtime: Runtime, publisher: ConfirmingPublisher) -> FastAPI:
    """The leadpipe HTTP app: every router in ``ROUTERS``, with the ingest router's per-app state and the console's
    static files installed."""
    app = create_app(runtime, publisher, ROUTERS, summary=SUMMARY)
    ingest_api.install(app)
    console.install(app)
    return app
