"""The HTTP ingest API: ``POST /v1/sources/{source_id}`` for webhooks (``GET`` for a sender's check of the URL).

Each configured source (``settings.sources``) names its channel and how it authenticates: an HMAC-SHA256 signature
over ``timestamp + "." + body`` (headers ``X-Leadpipe-Timestamp``, ``X-Leadpipe-Signature: sha256=<hex>``; up to
two secrets at once while one replaces the other, ``hmac_secrets``), or the signature of a vendor whose webhooks
cannot send those headers (``SourceAuth.signature``, ``pipeline.ingest.signatures``), or a bearer token. Instead
of the source's own credentials, a producer client's API key (``Authorization: Bearer lpk_...``) works for the
sources the client is bound to (``leadpipe users bind``). Checks run cheapest first: unknown source (404), content
type (415), the producer key (401, 403 when not bound or not a producer, 429 after repeated failures) or the bearer
token (401), body size while reading (413), a body the sender compressed (``Content-Encoding: gzip`` or
``deflate``: inflated up to the same size, else 413; another encoding 415), signature (401). Every refusal is counted
and logged without personal data; the id of the HMAC secret a signature matched is logged while two are active,
never the secret. A client that hangs up before its body is in is counted (outcome ``aborted``), not an error.

``GET`` (and ``HEAD``): Meta's verification (``hub.mode=subscribe``, the source's ``verify_token``) is answered its
``hub.challenge``; a plain GET (Mailchimp checks a new webhook's URL so) says the source exists and takes POSTs.

The router hangs on the shared app (``pipeline.http``); ``install`` adds what it keeps per app: the ingest service,
the group-commit publisher and the ingest counters.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from pipeline import tracing
from pipeline.config import Settings, SourceAuth
from pipeline.http.app import Api, complete_headers, security_headers, wants_hsts
from pipeline.http.auth import authentication_refusal, client_address, get_authenticator, public
from pipeline.http.deps import get_metrics, get_settings
from pipeline.http.errors import FieldError, Refused, Rejected, answer, refusal
from pipeline.http.metrics import ApiMetrics
from pipeline.identity.keys import KEY_PREFIX
from pipeline.identity.permissions import Permission, allowed
from pipeline.identity.source_secrets import active_secrets, check_any
from pipeline.identity.store import AuthenticationFailed
from pipeline.ingest import signatures
from pipeline.ingest.coalesce import BrokerUnavailable, GroupCommit, IngestTimeout
from pipeline.ingest.metrics import IngestMetrics
from pipeline.ingest.replay import Outcome, Rejection, ReplayGuard, ReplayKey, ReplayStore
from pipeline.ingest.service import (
    IngestService,
    KeyStoreUnavailable,
    Parsed,
    Submission,
    SubmitResult,
    UnsupportedContentType,
)
from pipeline.kafka.producer import ConfirmingPublisher, PublishError
from pipeline.logging import get_logger
from pipeline.models.common import Channel
from pipeline.sources import CONTENT_TYPES
from pipeline.topics import INGEST_DLQ_TOPIC, raw_topic

log = get_logger(__name__)

TIMESTAMP_HEADER = "X-Leadpipe-Timestamp"
SIGNATURE_HEADER = "X-Leadpipe-Signature"
ROUTE = "/v1/sources/{source_id}"
#: Optional: the sender's id of this delivery, the same on each retry even when the retry is signed anew.
DELIVERY_HEADER = "X-Leadpipe-Delivery"

#: Bodies up to this size are parsed on the event loop (a thread hop costs more than their parse); larger ones in
#: a worker thread, so that one large payload does not hold up the requests beside it.
INLINE_PARSE_BYTES = 65_536

#: What a raw or dead-letter record adds to the sealed payload besides its ciphertext: ids, times, content type,
#: the error text, rounded up. The sealed payload is base64 (4 bytes per 3) of the body plus nonce and tag.
RECORD_FIELDS_BYTES = 8192

#: ``Content-Encoding`` a sender may compress its body with, and zlib's ``wbits`` for each (None: not compressed).
ENCODINGS: dict[str, int | None] = {"identity": None, "gzip": 31, "x-gzip": 31, "deflate": 15}


# The 202 answer: every contact of the payload was published and confirmed (no docstring: it would enter the OpenAPI).
class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    event_ids: list[uuid.UUID] = Field(
        description="One per contact in the payload; the same delivery (signed timestamp, or X-Leadpipe-Delivery) "
        "gets the same ids, a new submission of the same form new ids"
    )
    replayed: bool = Field(
        default=False,
        description="This signed request was accepted before: the original's event ids, nothing published again",
    )
    ignored: str | None = Field(
        default=None,
        description="Taken with no events: the payload names no contact by its nature (status_update, receipt, "
        "webhook_check: a messenger's delivery or read receipt, a sender's check of the endpoint); nothing kept",
    )


# A plain GET's answer: the source exists and takes its webhooks by POST (nothing recorded).
class SourceReady(BaseModel):
    status: Literal["ready"] = "ready"
    source_id: str
    accepts: Literal["POST"] = "POST"


def body_limit(settings: Settings, publisher: ConfirmingPublisher, channel: Channel) -> int:
    """The largest body a channel takes: the API's limit, or less when its raw topic or the ingest dead-letter
    topic cannot hold the sealed record (base64 of body + nonce + tag, plus the record's fields)."""
    topic_limit = min(publisher.limit(raw_topic(channel)), publisher.limit(INGEST_DLQ_TOPIC))
    sealed_room = topic_limit - RECORD_FIELDS_BYTES
    return max(0, min(settings.ingest_max_body_bytes, sealed_room // 4 * 3 - 28))


@dataclass
class IngestState:
    """What the ingest router keeps per app (``app.state.ingest``)."""

    service: IngestService
    group: GroupCommit
    metrics: IngestMetrics
    limits: dict[Channel, int]


def install(app: Api) -> None:
    """Give an app built by ``pipeline.http.app.create_app`` the ingest router's state and its fast path (before
    its first request)."""
    runtime, publisher = app.state.runtime, app.state.publisher
    service = IngestService(runtime, publisher)
    settings = runtime.settings
    group = GroupCommit(
        service,
        ReplayGuard(ReplayStore(runtime.engine)),
        timeout_s=settings.ingest_timeout_s,
        trip_gap_s=settings.ingest_trip_gap_s,
    )
    limits = {channel: body_limit(settings, publisher, channel) for channel in Channel}
    app.state.ingest = IngestState(service, group, IngestMetrics(app.state.metrics.registry), limits)
    app.front_doors.append(IngestFastPath(hsts=wants_hsts(settings)))


SOURCES_PATH = "/v1/sources/"


class IngestFastPath:
    """``POST /v1/sources/{source_id}`` answered by ``submit`` (``GET``/``HEAD`` by ``verify``; a trailing slash
    taken as the same URL, not redirected: many senders do not follow a redirect on POST), a front door of the app
    (``Api.front_doors``).

    The route below documents the endpoint (``/openapi.json``) and behaves the same, but FastAPI's router, dependency
    solving and per-route wrappers cost about a third of a webhook's CPU (issue 20's profile), its error, telemetry
    and body-limit middlewares a few per cent more (each a call, and a wrapped ``send``, per message), and its own
    per-request telemetry check ~3 %; the webhook path needs none of them (it takes the raw body, bounds it itself
    and checks its own credentials). It does what they would have done for it: its answers carry the app's security
    headers (``complete_headers``) and an exception is answered 500 like the error middleware's (then raised
    on, for the server to log).
    """

    def __init__(self, *, hsts: bool) -> None:
        self.security = security_headers(hsts=hsts)  # built once: encoding the CSP per answer cost ~1 %

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Whether the request was a webhook post (or a check of its URL), then answered here."""
        path: str = scope["path"]
        if not path.startswith(SOURCES_PATH):
            return False
        method = scope["method"]
        source_id = path[len(SOURCES_PATH) : -1 if path.endswith("/") else None]
        handler: Callable[[str, Request], Awaitable[Response]]
        if not source_id:
            return False  # the collection itself: FastAPI's answer
        if "/" in source_id:  # no source is named so ("..%2Fx", "a/b"): the API's own refusal, not FastAPI's
            handler = _no_such_source
        elif method == "POST":
            handler = submit
        elif method in ("GET", "HEAD"):
            handler = verify
        else:
            handler = _other_method
        try:
            response = await handler(source_id, Request(scope, receive))
        except Exception:
            await self._send(PlainTextResponse("Internal Server Error", status_code=500), send)
            raise
        await self._send(response, send)
        return True

    async def _send(self, response: Response, send: Send) -> None:
        """The answer as two ASGI messages (a ``Response`` here never has a streamed body or background tasks)."""
        headers = complete_headers(response.raw_headers, self.security)
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})


#: The methods a source's URL answers (``Allow`` of a 405, and of an ``OPTIONS``).
ALLOWED_METHODS = "POST, GET, HEAD, OPTIONS"


async def _no_such_source(source_id: str, request: Request) -> Response:
    """A path under ``/v1/sources/`` that names no source: one with a ``/`` in it (``a/b``, ``..%2Fx`` decoded)."""
    return _refuse(get_metrics(request), 404, "unknown_source", "no source with this id is configured")


async def _other_method(source_id: str, request: Request) -> Response:
    """``OPTIONS`` is answered with the methods the URL takes (no CORS: a source's credentials never belong in a
    browser, so no browser posts here itself); any other method is refused 405 with them, in the API's shape."""
    allow = {"Allow": ALLOWED_METHODS}
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=allow)
    return _refuse(
        get_metrics(request),
        405,
        "method_not_allowed",
        f"a source's URL takes POST (the payload) and GET or HEAD (a check of the URL), not {request.method[:20]}",
        headers=allow,
        source_id=source_id[:200],
    )


def _state(request: Request) -> IngestState:
    return cast(IngestState, request.app.state.ingest)


def _refuse(metrics: ApiMetrics, code: int, reason: str, message: str, **log_fields: Any) -> JSONResponse:
    return answer(refusal(metrics, code, reason, message, log_event="ingest_refused", **log_fields))


# ---- authentication ---------------------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers a source sends: the time and HMAC-SHA256 over ``"<timestamp>." + body`` (for clients and tests)."""
    return signatures.sign("leadpipe", secret, body, int(time.time()) if timestamp is None else timestamp)


def bearer_problem(auth: SourceAuth, header: str | None) -> str | None:
    """None when the request carries the source's token: ``Bearer <token>``, or HTTP Basic with the token as the
    password (the user is not checked), which tools that can only be given a URL send for
    ``https://leadpipe:<token>@host/...`` (Postmark, SendGrid Inbound Parse, Mailgun routes)."""
    if auth.bearer_token is None:
        return None
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() == "basic" and token:
        try:
            token = base64.b64decode(token.strip(), validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return "bad_token"
    elif scheme.lower() != "bearer":
        token = ""
    if not token:
        return "missing_token"
    if not hmac.compare_digest(auth.bearer_token.get_secret_value().encode(), token.strip().encode()):
        return "bad_token"
    return None


def has_credentials(auth: SourceAuth) -> bool:
    return auth.hmac_secret is not None or bool(auth.hmac_secrets) or auth.bearer_token is not None


def producer_key(header: str | None) -> str | None:
    """The ``Authorization`` header when it carries a leadpipe API key (a producer client's), else None."""
    scheme, _, credential = (header or "").strip().partition(" ")
    return header if scheme.lower() == "bearer" and credential.strip().startswith(KEY_PREFIX) else None


async def _producer_refusal(request: Request, source_id: str, header: str) -> JSONResponse | None:
    """None when the key is a producer client's bound to ``source_id``; else the refusal to send."""
    refusals = get_metrics(request)
    try:
        principal = await asyncio.to_thread(get_authenticator(request).authenticate, header, client_address(request))
    except AuthenticationFailed as exc:
        status, reason, message, headers = authentication_refusal(exc)
        return _refuse(refusals, status, reason, message, headers=headers, source_id=source_id, detail=exc.reason)
    if not allowed(principal, Permission.INGEST_SUBMIT):
        return _refuse(
            refusals,
            403,
            "forbidden",
            "this key is not a producer's",
            source_id=source_id,
            principal_id=principal.actor,
        )
    if source_id not in principal.sources:
        return _refuse(
            refusals,
            403,
            "source_not_bound",
            "this producer is not bound to this source",
            source_id=source_id,
            principal_id=principal.actor,
        )
    return None


def _signature_check(auth: SourceAuth, body: bytes, request: Request, source_id: str) -> SignatureCheck:
    """Whether the body is signed with one of the source's active HMAC secrets under its scheme (logging which one
    while two are active, so an operator sees when the old one is no longer used): the secret, or the refusal."""
    settings = get_settings(request)
    now = time.time()
    secrets = active_secrets(auth, datetime.fromtimestamp(now, UTC))
    checked = check_any(
        secrets,
        lambda secret: signatures.problem(
            auth.signature,
            secret,
            body,
            request.headers.get,
            tolerance_s=settings.ingest_signature_tolerance_s,
            now=now,
            content_type=request.headers.get("content-type", ""),
            url=auth.public_url,
        ),
    )
    if checked.matched is not None and len(secrets) > 1:
        log.info("source_secret_matched", source_id=source_id, secret_id=checked.matched)
    secret = next((s.secret for s in secrets if s.id == checked.matched), None)
    return SignatureCheck(secret, checked.problem)


#: What a refusal for the signed time says (the signature may be right: the time it signs is not now); a time ahead
#: of the clock is ``stale_timestamp`` too (the reason senders know), said as it is.
TIME_PROBLEMS = {
    "stale_timestamp": "the signed timestamp is more than {tolerance}s from the server's clock (a replayed or delayed "
    "request, or a sender's clock off): sign each request when sending it",
    "ahead": "the signed timestamp is more than {tolerance}s ahead of the server's clock (the sender's "
    "clock is fast): sign each request with the current Unix time in seconds",
    "timestamp_in_milliseconds": "the signed timestamp is in milliseconds: send (and sign) the Unix time in seconds",
}


def _ahead(auth: SourceAuth, request: Request, body: bytes, content_type: str) -> bool:
    """Whether the time a refused request signs is ahead of the server's clock (the sender's clock is fast)."""
    found = signatures.presented(auth.signature, request.headers.get, body, content_type)
    return isinstance(found, signatures.Presented) and found.signed_at is not None and found.signed_at > time.time()


def _repeated(request: Request, name: str) -> bool:
    """Whether a header came more than once with different values (a proxy that added its own, a sender's bug)."""
    values = request.headers.getlist(name)
    return len(values) > 1 and len({value.strip() for value in values}) > 1


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The secret a request was signed with, or why it is refused."""

    secret: str | None
    problem: str | None


# ---- the ingest router ------------------------------------------------------------------------------------------

router = APIRouter(
    dependencies=[Depends(public("each source's own credentials or a producer key bound to it, checked by the route"))]
)

_ALL_TYPES = sorted(set().union(*CONTENT_TYPES.values()))
_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "The payload exactly as the source sends it; the source's channel decides which types it reads "
        + "; ".join(f"{c.value}: {', '.join(sorted(t))}" for c, t in CONTENT_TYPES.items()),
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in _ALL_TYPES},
    },
    "parameters": [
        {"name": TIMESTAMP_HEADER, "in": "header", "required": False, "schema": {"type": "string"}},
        {"name": SIGNATURE_HEADER, "in": "header", "required": False, "schema": {"type": "string"}},
    ],
}


@router.post(
    ROUTE,
    status_code=202,
    response_model=Accepted,
    summary="Submit a payload from a configured source",
    responses={
        400: {"model": Rejected, "description": "Not well-formed (bad JSON, CSV, encoding); dead-lettered"},
        401: {"model": Refused, "description": "Bad or missing signature or token"},
        404: {"model": Refused, "description": "Unknown source id"},
        413: {"model": Refused, "description": "Body over the channel's limit, or a record too large for its topic"},
        415: {"model": Refused, "description": "The source's channel does not read this content type"},
        422: {"model": Rejected, "description": "Well-formed but not normalisable; dead-lettered"},
        500: {"model": Rejected, "description": "Adapter failure; the payload was dead-lettered"},
        503: {"model": Refused, "description": "Broker or key store unavailable or too slow; retry (Retry-After)"},
    },
    openapi_extra=_REQUEST_BODY,
)
async def submit(source_id: str, request: Request) -> Response:
    if not tracing.enabled():  # off: no span, and a caller's traceparent is not carried on either
        return await _submit(source_id, request, None)
    span = tracing.start_request("POST", ROUTE, request.headers.get(tracing.TRACEPARENT), source_id=source_id)
    response = await _submit(source_id, request, tracing.traceparent(span))
    span.set_attribute("http.response.status_code", response.status_code)
    tracing.end(span, failed=str(response.status_code) if response.status_code >= 500 else None)
    return response


@router.head(ROUTE, include_in_schema=False)
@router.get(
    ROUTE,
    response_model=SourceReady,
    summary="Check a source's URL (Meta's webhook verification, a sender's test GET)",
    responses={
        200: {
            "description": "Meta's verification (hub.mode=subscribe, the source's verify_token): hub.challenge as "
            "text/plain; a GET without hub.* parameters: the source exists and takes POSTs",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        400: {"model": Refused, "description": "hub.mode is not subscribe"},
        403: {"model": Refused, "description": "No verify_token configured for the source, or a missing or wrong one"},
        404: {"model": Refused, "description": "Unknown source id"},
    },
)
async def verify(source_id: str, request: Request) -> Response:
    settings = get_settings(request)
    refusals = get_metrics(request)
    auth = settings.sources.get(source_id)
    if auth is None:
        return _refuse(refusals, 404, "unknown_source", "no source with this id is configured")
    params = request.query_params
    if not any(name.startswith("hub.") for name in params):
        return JSONResponse(SourceReady(source_id=source_id).model_dump())
    if params.get("hub.mode") != "subscribe":
        return _refuse(refusals, 400, "bad_hub_mode", "hub.mode must be subscribe", source_id=source_id)
    if auth.verify_token is None:
        return _refuse(
            refusals,
            403,
            "verify_token_not_configured",
            "this source has no verify_token: set it to the verify token entered in Meta's dashboard",
            source_id=source_id,
        )
    token = params.get("hub.verify_token")
    if not token:
        return _refuse(refusals, 403, "missing_verify_token", "hub.verify_token is required", source_id=source_id)
    if not hmac.compare_digest(auth.verify_token.get_secret_value().encode(), token.encode()):
        return _refuse(refusals, 403, "bad_verify_token", "hub.verify_token is not this source's", source_id=source_id)
    log.info("ingest_source_verified", source_id=source_id)
    return PlainTextResponse(params.get("hub.challenge", ""))


def decompressed(body: bytes, wbits: int, limit: int) -> bytes | None:
    """The body a sender compressed, or None when it inflates past ``limit`` (a bomb costs at most ``limit`` bytes of
    work); ``zlib.error`` when it is not the stream it says (corrupt, truncated, or followed by other bytes)."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit:
        return None
    if not inflater.eof or inflater.unused_data:
        raise zlib.error("not one complete stream")
    return out


async def _submit(source_id: str, request: Request, trace: bytes | None) -> Response:
    settings = get_settings(request)
    refusals = get_metrics(request)
    state = _state(request)
    metrics, service = state.metrics, state.service
    auth = settings.sources.get(source_id)
    if auth is None:
        return _refuse(refusals, 404, "unknown_source", "no source with this id is configured")
    channel = auth.channel
    content_type = request.headers.get("content-type", "")
    try:
        service.check_content_type(channel, content_type)
    except UnsupportedContentType as exc:
        metrics.request(channel, "refused")
        reason, message = "unsupported_content_type", str(exc)
        if not content_type.strip():
            reason = "missing_content_type"
            message = f"the request has no Content-Type; {channel.value} reads one of: {', '.join(exc.accepted)}"
        elif "/" not in content_type.partition(";")[0]:  # the parser reads a header it cannot parse as text/plain
            message = f"the Content-Type is not a media type; {channel.value} reads one of: {', '.join(exc.accepted)}"
        return _refuse(refusals, 415, reason, message, source_id=source_id)
    wbits: int | None = None
    if (encoding := request.headers.get("content-encoding")) is not None:
        # the codings in the order applied (RFC 9110 8.4); "identity" is none, so "identity, gzip" is gzip
        codings = [c for c in (c.strip().lower() for c in encoding.split(",")) if c and c != "identity"]
        encoding = codings[0] if len(codings) == 1 else ", ".join(codings) or "identity"
        if encoding not in ENCODINGS:
            metrics.request(channel, "refused")
            return _refuse(
                refusals,
                415,
                "unsupported_content_encoding",
                f"Content-Encoding {encoding[:40]!r} is not read; send one of gzip, deflate, or none",
                source_id=source_id,
            )
        wbits = ENCODINGS[encoding]
    authorization = request.headers.get("authorization")
    by_key = producer_key(authorization)
    if by_key is not None:
        if (refused := await _producer_refusal(request, source_id, by_key)) is not None:
            metrics.request(channel, "refused")
            return refused
    elif not has_credentials(auth):
        metrics.request(channel, "refused")
        return _refuse(
            refusals,
            401,
            "source_without_credentials",
            "the source has no credentials configured; send a producer key bound to it",
            source_id=source_id,
        )
    elif problem := bearer_problem(auth, authorization):
        metrics.request(channel, "refused")
        return _refuse(
            refusals,
            401,
            problem,
            "a valid bearer token (or Basic with it as password) is required",
            source_id=source_id,
        )

    limit = state.limits[channel]
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        metrics.request(channel, "refused")
        return _refuse(refusals, 413, "too_large", f"the body exceeds {limit} bytes", source_id=source_id)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                metrics.request(channel, "refused")
                return _refuse(refusals, 413, "too_large", f"the body exceeds {limit} bytes", source_id=source_id)
            chunks.append(chunk)
    except ClientDisconnect:  # the client hung up (or the server timed its body out): nobody reads an answer
        metrics.request(channel, "aborted")
        log.debug("ingest_aborted", source_id=source_id, received=size)
        return Response(status_code=499)
    body = b"".join(chunks)
    if not body and declared is None and "transfer-encoding" not in request.headers:
        # HTTP/1.0 (or a client's bug): a body sent without its length is not read, so the request carries none;
        # answering it as a bad signature or an empty payload would hide why
        metrics.request(channel, "refused")
        return _refuse(
            refusals,
            411,
            "length_required",
            "the request has no Content-Length (nor Transfer-Encoding: chunked), so it has no body: send its length",
            source_id=source_id,
        )
    if wbits is not None:
        try:
            inflated = decompressed(body, wbits, limit)
        except zlib.error:
            metrics.request(channel, "refused")
            return _refuse(
                refusals, 400, "bad_content_encoding", f"the body is not {encoding} data", source_id=source_id
            )
        if inflated is None:
            metrics.request(channel, "refused")
            return _refuse(
                refusals, 413, "too_large", f"the decompressed body exceeds {limit} bytes", source_id=source_id
            )
        body = inflated

    replay: ReplayKey | None = None
    delivery = request.headers.get(DELIVERY_HEADER)
    if by_key is None and (auth.hmac_secret is not None or auth.hmac_secrets):
        repeated = [name for name in signatures.request_headers(auth.signature) if _repeated(request, name)]
        signature = (
            SignatureCheck(None, "repeated_signature_header")
            if repeated
            else _signature_check(auth, body, request, source_id)
        )
        if problem := signature.problem:
            metrics.request(channel, "refused")
            wanted = (
                f"a valid {SIGNATURE_HEADER} over '<timestamp>.<body>' is required"
                if auth.signature == "leadpipe"
                else f"a valid {signatures.header_names(auth.signature)} ({auth.signature}) is required"
            )
            if repeated:  # which one was signed? Answering by the first would accept or refuse by header order
                wanted = f"{' and '.join(repeated)} sent more than once with different values: send each once"
            elif problem == "bad_timestamp":
                wanted = f"{signatures.timestamp_name(auth.signature)} is not a Unix time in digits"
            elif problem in TIME_PROBLEMS:  # the signature may be right: the time it signs is not now
                ahead = problem == "stale_timestamp" and _ahead(auth, request, body, content_type)
                wanted = TIME_PROBLEMS["ahead" if ahead else problem].format(
                    tolerance=f"{settings.ingest_signature_tolerance_s:g}"
                )
            return _refuse(refusals, 401, problem, wanted, source_id=source_id)
        if (
            auth.signature == "zoom"
            and signature.secret is not None
            and (validation := signatures.zoom_url_validation(signature.secret, body)) is not None
        ):
            metrics.request(channel, "ignored")  # Zoom checks the endpoint: nothing to take in
            return JSONResponse(validation)
        signed = signatures.presented(auth.signature, request.headers.get, body, content_type)
        assert isinstance(signed, signatures.Presented)
        if auth.signature not in ("telegram", "wufoo"):  # a token signs nothing: no request to tell from a replay
            stamp = int(time.time()) if signed.signed_at is None else signed.signed_at
            replay = ReplayKey.of(source_id, signed.signature, stamp, settings.ingest_signature_tolerance_s)
        if auth.signature == "leadpipe":
            delivery = f"id:{delivery[:200]}" if delivery else f"ts:{request.headers.get(TIMESTAMP_HEADER)}"
        elif delivery:
            delivery = f"id:{delivery[:200]}"
    elif delivery:
        delivery = f"id:{delivery[:200]}"

    started = time.perf_counter()
    group = state.group
    guard = group.replays
    if replay is not None:
        earlier = guard.answered(replay)
        if earlier is None and (waiting := guard.in_flight(replay)) is not None:
            earlier = await waiting  # an identical request is being processed: answer as it is answered
        if earlier is not None:
            metrics.request(channel, "replayed")
            return _replayed(earlier)
        guard.begin(replay)
    outcome: Outcome | None = None
    try:
        submission = Submission(source_id, channel, body, content_type, delivery, trace)
        parsed: Parsed = (
            service.parse(submission)
            if len(body) <= INLINE_PARSE_BYTES
            else await run_in_threadpool(service.parse, submission)
        )
        result = await group.submit(parsed, replay)  # sealed and published with the requests waiting beside it
        metrics.took(channel, time.perf_counter() - started)
        response = _answer(metrics, refusals, channel, source_id, result)
        if replay is not None:
            outcome = _outcome(result, response)
        return response
    except PublishError as exc:
        metrics.request(channel, "error")
        return _unavailable(settings, refusals, source_id, exc)
    finally:
        if replay is not None:
            guard.finish(replay, outcome)
            if outcome is not None:
                group.flush_soon()


def _outcome(result: SubmitResult, response: Response) -> Outcome | None:
    """What a replay of this signed request is answered: its event ids, or its rejection (the same dead letter's
    id); None after a 413, which a retry does not change (nothing was dead-lettered)."""
    if result.accepted:
        return result.event_ids
    if result.rejection is not None or result.dead_letter_id is None:
        return result.rejection
    return Rejection(response.status_code, bytes(response.body))


def _replayed(earlier: Outcome) -> Response:
    """The answer to a replay: the original's ids (202, ``replayed``), or the original's rejection, byte for byte."""
    if isinstance(earlier, Rejection):
        return Response(earlier.body, status_code=earlier.status, media_type="application/json")
    return _accepted(earlier, replayed=True)


def _accepted(event_ids: tuple[uuid.UUID, ...], *, replayed: bool = False, ignored: str | None = None) -> Response:
    """The 202 (``Accepted``), encoded by orjson (UUIDs natively; the same compact JSON as ``JSONResponse``)."""
    body = orjson.dumps({"status": "accepted", "event_ids": event_ids, "replayed": replayed, "ignored": ignored})
    return Response(body, status_code=202, media_type="application/json")


def _answer(
    metrics: IngestMetrics, refusals: ApiMetrics, channel: Channel, source_id: str, result: SubmitResult
) -> Response:
    if result.replayed and result.rejection is not None:  # rejected before (another process): nothing dead-lettered
        metrics.request(channel, "replayed")
        return _replayed(result.rejection)
    if result.accepted:
        outcome = "replayed" if result.replayed else "ignored" if result.ignored else "accepted"
        metrics.request(channel, outcome)
        if not result.replayed:
            metrics.published(channel, len(result.event_ids))
        return _accepted(result.event_ids, replayed=result.replayed, ignored=result.ignored)
    if result.too_large:
        metrics.request(channel, "refused")
        message = result.problems[0].message if result.problems else "a record is too large for its topic"
        return _refuse(refusals, 413, "too_large", message, source_id=source_id)
    metrics.request(channel, "rejected")
    metrics.dead_letters.labels(channel=channel.value, reason=result.reason or "unknown").inc()
    assert result.dead_letter_id is not None
    rejected = Rejected(
        reason=result.reason or "unknown",
        message="; ".join(f"{p.field or 'payload'}: {p.message}" for p in result.problems)[:2000],
        errors=[FieldError(field=p.field, reason=p.reason, message=p.message) for p in result.problems[:200]],
        dead_letter_id=result.dead_letter_id,
    )
    code = 500 if result.internal_error else 400 if result.malformed else 422
    return JSONResponse(rejected.model_dump(mode="json"), status_code=code)


def _unavailable(settings: Settings, refusals: ApiMetrics, source_id: str, exc: PublishError) -> JSONResponse:
    """503 with Retry-After: what was not confirmed, and whether anything of it was (a retry is safe either way)."""
    if isinstance(exc, KeyStoreUnavailable):
        reason, message = "key_store_unavailable", "the data-key store is unavailable; nothing was accepted, retry"
    elif isinstance(exc, IngestTimeout):
        reason, message = "ingest_timeout", f"not processed within {settings.ingest_timeout_s:g}s; nothing was accepted"
    elif isinstance(exc, BrokerUnavailable):
        reason, message = "broker_unavailable", "the brokers are unreachable; nothing was accepted, retry"
    elif exc.delivered:
        reason = "partially_published"
        message = (
            f"{exc.delivered} of {exc.total} records were confirmed, the rest not: not accepted; retry (the retry "
            "carries the same event ids, which are deduplicated downstream)"
        )
    else:
        reason, message = "broker_unavailable", "the broker did not confirm; nothing was accepted, retry"
    refusals.refusals.labels(reason=reason).inc()
    log.error("ingest_unavailable", source_id=source_id, reason=reason, error=str(exc))
    return JSONResponse(
        Refused(reason=reason, message=message).model_dump(),
        status_code=503,
        headers={"Retry-After": str(settings.ingest_retry_after_s)},
    )
