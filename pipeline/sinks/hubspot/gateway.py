"""Every HubSpot call leadpipe makes, through the real ``hubspot-api-client`` 12, with one rate budget and retries.

Why retries live here and not in the client: the client hands ``retry=`` to urllib3, whose default allowed methods
exclude POST, so a 429 on a batch call is never retried (hubspot-api-python issue #117); urllib3's own retries are
switched off and ``_call`` does it instead: 429 waits ``Retry-After`` when HubSpot sends it (and pauses the whole
process's budget), otherwise exponential backoff with jitter; 5xx, timeouts and dropped connections back off too.
When the retries run out ``HubSpotUnavailable`` is raised, which the sink turns into backpressure: never a drop.
A 4xx other than 429 is HubSpot refusing the request itself: ``HubSpotRequestError``, with HubSpot's message
scrubbed of e-mail addresses and phone numbers (HubSpot's validation messages quote the offending value).

Every attribute access like ``client.crm.contacts.batch_api`` builds a new ApiClient and connection pool, so each
API object is built once and kept. The gateway is thread-safe (urllib3 pools are), the limiter is per process.

The rights effects find a person's contacts with ``read_contact`` (by e-mail) and ``search_contacts`` (e-mails and
phones: HubSpot-only contacts too), then act on them by id: ``purge_contact`` (GDPR delete, not the
90-day-restorable archive), ``update_contact`` (marks, rectification, a corrected e-mail), ``unsubscribe`` (v3) and
``unsubscribe_all`` (v4, through ``client.api_request``).
"""

from __future__ import annotations

import json
import operator
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any, TypeVar

import orjson
import requests
import urllib3
from hubspot import HubSpot
from hubspot.communication_preferences import exceptions as prefs_exceptions
from hubspot.communication_preferences.models import PublicUpdateSubscriptionStatusRequest
from hubspot.crm.contacts import Configuration as ContactsConfiguration
from hubspot.crm.contacts import exceptions as contacts_exceptions
from hubspot.crm.contacts.models import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicGdprDeleteInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInput,
)
from hubspot.crm.properties import exceptions as properties_exceptions
from hubspot.crm.properties.models import OptionInput, PropertyCreate
from urllib3.util.retry import Retry

from pipeline.config import Settings
from pipeline.logging import get_logger, scrub_text
from pipeline.sinks.base import backoff_delay
from pipeline.sinks.hubspot.properties import CUSTOM_PROPERTIES, GROUP_NAME, ContactUpsert, PropertyDef
from pipeline.sinks.hubspot.ratelimit import HubSpotLimiters, shared_limiters

log = get_logger(__name__)

T = TypeVar("T")

#: Each API package of the client has its own ApiException class.
API_EXCEPTIONS: tuple[type[Exception], ...] = (
    contacts_exceptions.ApiException,
    properties_exceptions.ApiException,
    prefs_exceptions.ApiException,
)

#: Filter groups a search request may hold (HubSpot's limit; groups are ORed) and results per page (<= 200).
SEARCH_MAX_GROUPS = 5
SEARCH_PAGE_SIZE = 100

#: Per-record error categories in a 207 that are worth trying again.
RETRYABLE_CATEGORIES = frozenset(
    {"RATE_LIMITS", "RATE_LIMIT", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT", "LOCKED", "CONFLICT"}
)


class HubSpotRequestError(Exception):
    """HubSpot refused the request (a 4xx other than 429): trying again will not help."""

    def __init__(self, status: int, category: str, message: str, correlation_id: str | None = None) -> None:
        super().__init__(f"HubSpot {status} {category}: {message}")
        self.status = status
        self.category = category
        self.message = message
        self.correlation_id = correlation_id


class HubSpotUnavailable(Exception):
    """Retries ran out (rate limit, 5xx, timeouts): pause, and offer the same work again later."""

    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(f"HubSpot unavailable: {reason}")
        self.retry_after = retry_after
        self.reason = reason


@dataclass(frozen=True)
class RecordError:
    category: str
    message: str
    retryable: bool


@dataclass
class UpsertResponse:
    """One batch upsert: contact ids and errors by ``objectWriteTraceId``; inputs in neither were not answered."""

    written: dict[str, str] = field(default_factory=dict)
    errors: dict[str, RecordError] = field(default_factory=dict)
    status: int = 200


@dataclass(frozen=True)
class _Failure:
    retry_after: float | None
    reason: str


def _parse_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def retry_after_seconds(headers: Mapping[str, str] | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _scrubbed(message: Any) -> str:
    return scrub_text(str(message or ""))[:2000]


def _client_api(path: str) -> cached_property[Any]:
    """One of the client's APIs by its dotted path, built once per gateway (``client.crm.contacts.batch_api``...)."""
    get = operator.attrgetter(path)

    def build(self: Any) -> Any:
        return get(self.client)

    return cached_property(build)


class HubSpotGateway:
    """HubSpot through the official client, one shared rate budget, retries with backoff."""

    def __init__(
        self,
        settings: Settings,
        limiters: HubSpotLimiters | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if settings.hubspot_access_token is None:
            raise ValueError("HubSpotGateway needs LEADPIPE_HUBSPOT_ACCESS_TOKEN (without one, use the dry run)")
        self.settings = settings
        self.limiters = limiters or shared_limiters(
            settings.hubspot_rate_limit_requests,
            settings.hubspot_rate_limit_window_s,
            settings.hubspot_search_rate_per_s,
            settings.hubspot_rate_limit_margin_s,
        )
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._timeout = settings.hubspot_timeout_s
        base = settings.hubspot_base_url.rstrip("/")
        self.client = HubSpot(
            access_token=settings.hubspot_access_token.get_secret_value(),
            host=base,
            base_url=base,
            retry=Retry(total=False, redirect=False),  # urllib3 never retries; _call does
        )
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hubspot-v4")

    # Each property access on the client builds a new ApiClient and pool: build each once.
    _batch_api = _client_api("crm.contacts.batch_api")
    _basic_api = _client_api("crm.contacts.basic_api")
    _search_api = _client_api("crm.contacts.search_api")
    _properties_api = _client_api("crm.properties.core_api")
    _status_api = _client_api("communication_preferences.status_api")
    _definition_api = _client_api("communication_preferences.definition_api")

    # ---- the retry loop ----------------------------------------------------------------------------------------

    def _call(self, operation: str, fn: Callable[[], T], *, search: bool = False) -> T:
        """Run one HubSpot call within the budget; retry what can be retried; raise what cannot."""
        attempt = 0
        while True:
            self.limiters.general.acquire()
            if search:
                self.limiters.search.acquire()
            try:
                return fn()
            except API_EXCEPTIONS as exc:
                failure = self._classify(operation, exc)
            except (urllib3.exceptions.HTTPError, requests.RequestException, FutureTimeout, OSError) as exc:
                failure = _Failure(None, f"{type(exc).__name__} (timeout or connection)")
            except ValueError as exc:  # the client could not read the answer (a garbled or cut response)
                failure = _Failure(None, f"unreadable response: {type(exc).__name__}")
            delay = (
                failure.retry_after
                if failure.retry_after is not None
                else backoff_delay(
                    attempt, self.settings.hubspot_backoff_base_s, self.settings.hubspot_backoff_max_s, self._rng
                )
            )
            attempt += 1
            if attempt > self.settings.hubspot_max_retries:
                log.warning("hubspot_unavailable", operation=operation, attempts=attempt, reason=failure.reason)
                raise HubSpotUnavailable(delay, failure.reason)
            log.info(
                "hubspot_retry", operation=operation, attempt=attempt, delay_s=round(delay, 3), reason=failure.reason
            )
            self._sleep(delay)

    def _classify(self, operation: str, exc: Exception) -> _Failure:
        status = int(getattr(exc, "status", 0) or 0)
        body = _parse_body(getattr(exc, "body", None))
        headers = getattr(exc, "headers", None)
        if status == 429:
            retry_after = retry_after_seconds(headers)
            if retry_after is not None:
                self.limiters.general.pause(retry_after)
            return _Failure(retry_after, f"429 {body.get('policyName') or body.get('errorType') or 'rate limited'}")
        if status >= 500 or status == 0:
            return _Failure(None, f"{status} {body.get('category') or 'server error'}")
        raise HubSpotRequestError(
            status,
            str(body.get("category") or body.get("errorType") or "ERROR"),
            _scrubbed(body.get("message") or getattr(exc, "reason", "")),
            body.get("correlationId"),
        ) from exc

    # ---- contacts: the sink's write path -------------------------------------------------------------------------

    def upsert_contacts(self, inputs: Sequence[ContactUpsert]) -> UpsertResponse:
        """``POST /crm/v3/objects/contacts/batch/upsert`` by e-mail (<= 100 distinct inputs). 200 or 207.

        The answer is read as JSON rather than deserialised into the client's models: building 100 result models
        (a ``Configuration`` and several dateutil parses each) costs more CPU than the rest of the call, and the
        sink needs only ids, trace ids and errors. Request models share one ``Configuration`` for the same reason.
        """
        if not inputs:
            return UpsertResponse()
        if len(inputs) > 100 or len({i.email for i in inputs}) != len(inputs):
            raise ValueError("a batch upsert takes at most 100 inputs with distinct e-mails")
        config = self._model_configuration
        body = BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id=i.email,
                    id_property="email",
                    properties=i.properties,
                    object_write_trace_id=i.trace_id,
                    local_vars_configuration=config,
                )
                for i in inputs
            ],
            local_vars_configuration=config,
        )

        def send() -> tuple[int, dict[str, Any]]:
            raw = self._batch_api.upsert_with_http_info(body, _request_timeout=self._timeout, _preload_content=False)
            try:
                data = orjson.loads(raw.data)  # inside _call: a cut-off body is retried like a dropped connection
            finally:
                raw.release_conn()
            if not isinstance(data, dict):
                raise ValueError("batch upsert answered something that is not a JSON object")
            return int(raw.status), data

        status, data = self._call("batch_upsert", send)
        by_email = {i.email: i.trace_id for i in inputs}
        response = UpsertResponse(status=status)
        for result in data.get("results") or []:
            trace = result.get("objectWriteTraceId") or by_email.get(
                str((result.get("properties") or {}).get("email", "")).lower()
            )
            if trace:
                response.written[trace] = str(result.get("id"))
        for error in data.get("errors") or []:
            context = error.get("context") or {}
            traces = list(context.get("objectWriteTraceId") or [])
            traces += [by_email[i.lower()] for i in context.get("ids") or [] if i.lower() in by_email]
            category = str(error.get("category") or "ERROR")
            record_error = RecordError(category, _scrubbed(error.get("message")), category in RETRYABLE_CATEGORIES)
            for trace in traces:
                response.errors[trace] = record_error
        return response

    def read_contacts(self, emails: Sequence[str], properties: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``POST /crm/v3/objects/contacts/batch/read`` by e-mail (<= 100): e-mail -> the contact's ``properties``;
        e-mails HubSpot has no contact for are absent (its 207 lists them as not found)."""
        if not emails:
            return {}
        config = self._model_configuration
        body = BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=e.lower(), local_vars_configuration=config) for e in emails],
            id_property="email",
            properties=sorted({"email", *properties}),
            properties_with_history=[],
            local_vars_configuration=config,
        )

        def send() -> dict[str, Any]:
            raw = self._batch_api.read_with_http_info(body, _request_timeout=self._timeout, _preload_content=False)
            try:
                data = orjson.loads(raw.data)
            finally:
                raw.release_conn()
            if not isinstance(data, dict):
                raise ValueError("batch read answered something that is not a JSON object")
            return data

        found: dict[str, dict[str, Any]] = {}
        for result in self._call("batch_read", send).get("results") or []:
            props = dict(result.get("properties") or {})
            if props.get("email"):
                found[str(props["email"]).lower()] = props
        return found

    @cached_property
    def _model_configuration(self) -> Any:
        """One ``Configuration`` for every request model (each model would otherwise build its own)."""
        return ContactsConfiguration()

    def ensure_properties(self, definitions: Sequence[PropertyDef] = CUSTOM_PROPERTIES) -> list[str]:
        """Create the custom contact properties that do not exist yet; returns the names created now."""
        existing = {
            p.name
            for p in self._call(
                "properties_get_all",
                lambda: self._properties_api.get_all("contacts", archived=False, _request_timeout=self._timeout),
            ).results
        }
        created = []
        for definition in definitions:
            if definition.name in existing:
                continue
            create = PropertyCreate(
                name=definition.name,
                label=definition.label,
                type=definition.type,
                field_type=definition.field_type,
                group_name=GROUP_NAME,
                description=definition.description,
                options=[
                    OptionInput(label=label, value=value, hidden=False, display_order=n)
                    for n, (value, label) in enumerate(definition.options)
                ]
                or None,
            )
            try:
                self._call(
                    "property_create",
                    lambda create=create: self._properties_api.create(  # type: ignore[misc]
                        "contacts", create, _request_timeout=self._timeout
                    ),
                )
            except HubSpotRequestError as exc:
                if exc.status != 409:  # 409: created meanwhile by another worker
                    raise
            created.append(definition.name)
        if created:
            log.info("hubspot_properties_created", names=created)
        return created

    # ---- contacts: reads and the rights effects ------------------------------------------------------------------

    def read_contact(
        self, identifier: str, properties: Sequence[str] = (), *, by_id: bool = False
    ) -> dict[str, Any] | None:
        """A contact by e-mail (``idProperty=email``) or, ``by_id``, by its HubSpot id, with the given properties;
        None when HubSpot has none. Unlike search, a read by id or e-mail sees a contact the moment it exists."""
        return self._one_contact(
            "contact_get",
            lambda: self._basic_api.get_by_id(
                identifier if by_id else identifier.lower(),
                id_property=None if by_id else "email",
                properties=list(properties) or None,
                _request_timeout=self._timeout,
            ),
        )

    def _one_contact(self, operation: str, request: Callable[[], Any]) -> dict[str, Any] | None:
        """The contact a read or update answers with, as id and properties; None on HubSpot's 404."""
        try:
            contact = self._call(operation, request)
        except HubSpotRequestError as exc:
            if exc.status == 404:
                return None
            raise
        return {"id": str(contact.id), "properties": dict(contact.properties or {})}

    def search_contacts(
        self, *, emails: Sequence[str] = (), phones: Sequence[str] = (), properties: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Contacts holding any of ``emails`` (as their e-mail or an additional e-mail) or ``phones`` (as phone or
        mobile phone, exactly as stored), through the search API: its own lower budget (``limiters.search``), at
        most ``SEARCH_MAX_GROUPS`` filter groups a request (ORed), every page followed. Search is eventually
        consistent: a contact created a moment ago may be missing (``read_contact`` by e-mail is not).
        """
        groups = [
            FilterGroup(filters=[Filter(property_name=name, operator=operator, value=value)])
            for email in dict.fromkeys(e.lower() for e in emails)
            for name, operator, value in (("email", "EQ", email), ("hs_additional_emails", "CONTAINS_TOKEN", email))
        ] + [
            FilterGroup(filters=[Filter(property_name=name, operator="EQ", value=phone)])
            for phone in dict.fromkeys(phones)
            for name in ("phone", "mobilephone")
        ]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(groups), SEARCH_MAX_GROUPS):
            after: str | None = None
            while True:
                request = PublicObjectSearchRequest(
                    filter_groups=groups[start : start + SEARCH_MAX_GROUPS],
                    properties=list(properties) or None,
                    limit=SEARCH_PAGE_SIZE,
                    after=after,
                )
                page = self._call(
                    "contact_search",
                    lambda request=request: self._search_api.do_search(  # type: ignore[misc]
                        request, _request_timeout=self._timeout
                    ),
                    search=True,
                )
                for c in page.results or []:
                    found.setdefault(str(c.id), {"id": str(c.id), "properties": dict(c.properties or {})})
                after = page.paging.next.after if page.paging and page.paging.next else None
                if not after:
                    break
        return list(found.values())

    def update_contact(
        self, identifier: str, properties: Mapping[str, str], *, by_id: bool = False
    ) -> dict[str, Any] | None:
        """Set properties on the contact with this e-mail (or, ``by_id``, this id); None when HubSpot has none.

        By id, ``email`` itself may be among the properties: that is how a rectified address reaches HubSpot.
        """
        return self._one_contact(
            "contact_update",
            lambda: self._basic_api.update(
                identifier if by_id else identifier.lower(),
                SimplePublicObjectInput(properties=dict(properties)),
                id_property=None if by_id else "email",
                _request_timeout=self._timeout,
            ),
        )

    def purge_contact(self, identifier: str, *, by_id: bool = False) -> bool:
        """GDPR delete (``POST /crm/v3/objects/contacts/gdpr-delete``), not the restorable archive.

        By e-mail, or ``by_id`` by HubSpot id. True when HubSpot deleted a contact, False when it had none (gone).
        """
        gdpr = (
            PublicGdprDeleteInput(object_id=identifier)
            if by_id
            else PublicGdprDeleteInput(object_id=identifier.lower(), id_property="email")
        )
        try:
            self._call("contact_gdpr_delete", lambda: self._basic_api.purge(gdpr, _request_timeout=self._timeout))
        except HubSpotRequestError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def subscription_definitions(self) -> list[dict[str, Any]]:
        answer = self._call(
            "subscription_definitions", lambda: self._definition_api.get_page(_request_timeout=self._timeout)
        )
        return [{"id": str(d.id), "name": d.name} for d in answer.subscription_definitions or []]

    def unsubscribe(
        self, email: str, subscription_id: str, *, legal_basis: str | None = None, explanation: str | None = None
    ) -> dict[str, Any]:
        """v3: unsubscribe an e-mail from one subscription type (``POST /communication-preferences/v3/unsubscribe``)."""
        request = PublicUpdateSubscriptionStatusRequest(
            email_address=email.lower(),
            subscription_id=subscription_id,
            legal_basis=legal_basis,
            legal_basis_explanation=explanation,
        )
        status = self._call(
            "unsubscribe", lambda: self._status_api.unsubscribe(request, _request_timeout=self._timeout)
        )
        return {"subscription_id": str(status.id), "status": status.status}

    def email_status(self, email: str) -> dict[str, str]:
        """v3: subscription id -> status for one e-mail."""
        answer = self._call(
            "email_status", lambda: self._status_api.get_email_status(email.lower(), _request_timeout=self._timeout)
        )
        return {str(s.id): str(s.status) for s in answer.subscription_statuses or []}

    def unsubscribe_all(self, emails: Sequence[str], channel: str = "EMAIL") -> dict[str, Any]:
        """v4 batch unsubscribe-all (not in the SDK): ``client.api_request``, bounded by the timeout from settings.

        ``api_request`` uses ``requests`` without a timeout, so the call runs in a worker thread that we stop
        waiting for; the request is idempotent, so a retry after a timeout is harmless.
        """
        options = {
            "method": "POST",
            "path": "/communication-preferences/v4/statuses/batch/unsubscribe-all",
            "qs": {"channel": channel},
            "body": {"inputs": [e.lower() for e in emails]},
        }

        def send() -> dict[str, Any]:
            response = self._executor.submit(self.client.api_request, options).result(timeout=self._timeout)
            if response.status_code >= 400:
                raise _V4Error(response)
            parsed = response.json()
            return parsed if isinstance(parsed, dict) else {}

        return self._call("unsubscribe_all_v4", send)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _V4Error(contacts_exceptions.ApiException):  # type: ignore[misc]
    """A ``requests`` response of ``api_request`` dressed as an ApiException, so ``_call`` classifies it the same."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(status=response.status_code, reason=response.reason)
        self.body = response.text
        self.headers = dict(response.headers)
