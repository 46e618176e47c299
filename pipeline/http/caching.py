"""``NoStoreRoute``: every answer of a router that hands out personal data or secrets carries ``Cache-Control:
no-store``, errors included (a 404 confirms an id), so no browser, proxy or CDN keeps a copy; and a refusal of a
request's shape (FastAPI's 422) names the field and what is wrong with it but never quotes what was sent: these
routers take e-mail addresses, phone numbers and names (an address one character too long came back whole).

A router opts in with ``APIRouter(..., route_class=NoStoreRoute)``: the DPO's (exports, access passwords), sales'
CRM reads and the review queue's. It is a route class and not a header set in each handler so that a new route, a
``FileResponse`` or a refusal raised by a dependency cannot forget it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

NO_STORE = {"Cache-Control": "no-store"}
#: What FastAPI's validation errors carry beside the field and the complaint: the value sent, and its context (the
#: exception a validator raised, which may quote it).
_ECHOES = frozenset({"input", "ctx", "url"})


class NoStoreRoute(APIRoute):
    """A route whose every answer, success or error, says ``Cache-Control: no-store``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def no_store(request: Request) -> Response:
            try:
                response = await handler(request)
            except HTTPException as exc:  # refusals and not-founds, from the handler or a dependency
                exc.headers = {**(exc.headers or {}), **NO_STORE}
                raise
            except RequestValidationError as exc:  # FastAPI's 422 quotes what was sent: left out
                quiet = [{k: v for k, v in e.items() if k not in _ECHOES} for e in exc.errors()]
                response = await request_validation_exception_handler(request, RequestValidationError(quiet))
            response.headers.update(NO_STORE)
            return response

        return no_store
