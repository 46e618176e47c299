"""A fake HubSpot: real HTTP on 127.0.0.1, stateful, HubSpot's JSON shapes and error bodies, injectable faults.

Built from the request/response models of ``hubspot-api-client`` (Apache-2.0) and the notes in
``/work/shared/notes``, not from HubSpot's OpenAPI specs. The real client talks to it unchanged:
``HubSpot(access_token=fake.token, host=fake.url, base_url=fake.url)``.

What it does:
- contacts by id and by e-mail: create (with or without an e-mail), batch upsert/read/update, get/update by id or
  ``idProperty=email`` (an ``email`` changed by id moves the contact to the new address; one another contact holds
  is a 409), archive, GDPR delete by id or e-mail;
- search (``POST .../contacts/search``) with HubSpot's shapes and limits: filter groups ORed, filters ANDed, EQ/NEQ/
  IN/NOT_IN/HAS_PROPERTY/NOT_HAS_PROPERTY/CONTAINS_TOKEN (string matches ignore case), at most 5 groups, 10
  filters a group and 25 in all, ``limit`` 1..200, ``after`` paging, 10,000 results at most, and optionally an index
  that lags behind writes (``search_lag_s``);
- properties get/create; communication preferences v3 definitions/status/unsubscribe/subscribe and v4 batch
  unsubscribe-all;
- HubSpot's limits and refusals: at most 100 inputs per batch, duplicate ids -> 400 for the whole batch, unknown
  properties -> 400, invalid or ``reject_emails`` inputs -> 207 with per-input errors (``objectWriteTraceId`` in the
  error's context), ``transient_emails`` -> 207 ``INTERNAL_ERROR`` a given number of times;
- its own rate limit (default 190 requests per rolling 10 s, the search API 4 per second): over budget -> 429
  ``errorType: RATE_LIMIT`` with ``policyName``, with ``Retry-After`` only if configured;
- injectable faults, consumed in order: 429 with or without ``Retry-After``, 5xx, latency, hanging past the
  client's timeout, dropping the connection;
- every request recorded (arrival time, method, path, query, JSON body, answered status) for assertions, and
  ``max_in_window`` to prove a client never exceeded a budget.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

#: Contact properties every HubSpot portal has (a subset of HubSpot's defaults).
DEFAULT_PROPERTIES = {
    "email": ("Email", "string", "text"),
    "firstname": ("First Name", "string", "text"),
    "lastname": ("Last Name", "string", "text"),
    "phone": ("Phone Number", "string", "phonenumber"),
    "mobilephone": ("Mobile Phone Number", "string", "phonenumber"),
    "hs_additional_emails": ("Additional email addresses", "enumeration", "checkbox"),
    "jobtitle": ("Job Title", "string", "text"),
    "company": ("Company Name", "string", "text"),
    "country": ("Country/Region", "string", "text"),
    "city": ("City", "string", "text"),
    "address": ("Street Address", "string", "text"),
    "message": ("Message", "string", "textarea"),
    "hs_object_id": ("Record ID", "number", "number"),
    "createdate": ("Create Date", "datetime", "date"),
    "lastmodifieddate": ("Last Modified Date", "datetime", "date"),
}


#: The search API's limits: filter groups, filters per group, filters in all (HubSpot's since August 2024).
SEARCH_LIMITS = (5, 10, 25)
SEARCH_OPERATORS = frozenset(
    {"EQ", "NEQ", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
)
#: What a search returns when it names no properties.
SEARCH_DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")


def _tokens(value: str) -> list[str]:
    return [t for t in re.split(r"[;,\s]+", value.lower()) if t]


def _matches(contact: dict[str, Any], flt: dict[str, Any]) -> bool:
    """One search filter against a contact (strings compare without case, as HubSpot's search does)."""
    stored = contact["properties"].get(flt.get("propertyName"))
    value = str(flt.get("value", "")).lower()
    text = "" if stored is None else str(stored).lower()
    operator = flt.get("operator")
    if operator == "HAS_PROPERTY":
        return bool(text)
    if operator == "NOT_HAS_PROPERTY":
        return not text
    if operator in ("IN", "NOT_IN"):
        found = text in {str(v).lower() for v in flt.get("values") or []}
        return found if operator == "IN" else not found
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        found = any(fnmatch.fnmatchcase(token, value) for token in _tokens(text))
        return found if operator == "CONTAINS_TOKEN" else not found
    return (text == value) if operator == "EQ" else (text != value)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Fault:
    """One injected misbehaviour for the next ``times`` requests matching ``method`` and ``path_prefix``."""

    kind: str  # "status" | "latency" | "hang" | "disconnect"
    times: int = 1
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    method: str | None = None
    path_prefix: str = "/"

    @classmethod
    def rate_limited(cls, times: int = 1, retry_after: float | None = None, **match: Any) -> Fault:
        return cls("status", times, status=429, retry_after=retry_after, **match)

    @classmethod
    def server_error(cls, times: int = 1, status: int = 502, **match: Any) -> Fault:
        return cls("status", times, status=status, **match)

    @classmethod
    def latency(cls, seconds: float, times: int = 1, **match: Any) -> Fault:
        return cls("latency", times, seconds=seconds, **match)

    @classmethod
    def hang(cls, seconds: float, times: int = 1, **match: Any) -> Fault:
        """Answer only after ``seconds`` (beyond the client's timeout): the client sees a read timeout."""
        return cls("hang", times, seconds=seconds, **match)

    @classmethod
    def disconnect(cls, times: int = 1, **match: Any) -> Fault:
        return cls("disconnect", times, **match)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and path.startswith(self.path_prefix)


@dataclass
class RecordedRequest:
    at: float
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class _HTTPError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, category: str, message: str, **extra: Any) -> _HTTPError:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    body.update(extra)
    return _HTTPError(status, body)


class FakeHubSpot:
    """Start with ``with FakeHubSpot() as fake:``; point the client at ``fake.url`` with ``fake.token``."""

    def __init__(
        self,
        *,
        token: str = "fake-hubspot-token",
        rate_limit: tuple[int, float] | None = (190, 10.0),
        search_rate_limit: tuple[int, float] | None = (4, 1.0),
        rate_limit_retry_after: float | None = None,
        batch_validation: str = "207",
        search_lag_s: float = 0.0,
    ) -> None:
        self.token = token
        self.rate_limit = rate_limit
        self.search_rate_limit = search_rate_limit
        self.rate_limit_retry_after = rate_limit_retry_after
        self.batch_validation = batch_validation  # "207": per-input errors; "400": one bad input fails the batch
        self.search_lag_s = search_lag_s  # how long a new contact stays invisible to search (HubSpot's index lags)
        self._indexed_at: dict[str, float] = {}
        self.lock = threading.RLock()
        self.contacts: dict[str, dict[str, Any]] = {}
        self.by_email: dict[str, str] = {}
        self.properties: dict[str, dict[str, Any]] = {
            name: self._property(name, label, type_, field_type, hubspot_defined=True)
            for name, (label, type_, field_type) in DEFAULT_PROPERTIES.items()
        }
        self.subscription_definitions = [
            {"id": "1001", "name": "Marketing Information", "description": "Marketing offers and updates."},
            {"id": "1002", "name": "One to One", "description": "One to one e-mails."},
        ]
        self.subscriptions: dict[str, dict[str, str]] = {}
        self.unsubscribed_all: dict[str, str] = {}
        self.gdpr_deleted: list[str] = []
        self.faults: deque[Fault] = deque()
        self.reject_emails: dict[str, str] = {}
        self.transient_emails: dict[str, int] = {}
        self.requests: list[RecordedRequest] = []
        self.rate_limited = 0
        self._arrivals: deque[float] = deque()
        self._search_arrivals: deque[float] = deque()
        self._next_id = 1000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> FakeHubSpot:
        fake = self

        class Handler(_Handler):
            hub = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-hubspot", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHubSpot:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake HubSpot is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- test helpers ----------------------------------------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def contact(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            contact_id = self.by_email.get(email.lower())
            return None if contact_id is None else json.loads(json.dumps(self.contacts[contact_id]))

    def calls(self, method: str | None = None, path_prefix: str = "/") -> list[RecordedRequest]:
        with self.lock:
            return [
                r for r in self.requests if (method is None or r.method == method) and r.path.startswith(path_prefix)
            ]

    def max_in_window(self, window_s: float, path_prefix: str = "/") -> int:
        """The most requests that arrived within any rolling ``window_s`` (what HubSpot's limit counts)."""
        times = sorted(r.at for r in self.calls(path_prefix=path_prefix))
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    # ---- state -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _property(name: str, label: str, type_: str, field_type: str, **extra: Any) -> dict[str, Any]:
        now = _now_iso()
        prop = {
            "name": name,
            "label": label,
            "type": type_,
            "fieldType": field_type,
            "description": extra.pop("description", "") or "",
            "groupName": extra.pop("groupName", "contactinformation"),
            "options": extra.pop("options", []),
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": False,
            "hidden": False,
            "hubspotDefined": extra.pop("hubspot_defined", False),
            "formField": True,
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        prop.update(extra)
        return prop

    def _public(self, contact: dict[str, Any], properties: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        props = contact["properties"]
        if properties:
            props = {k: props.get(k) for k in properties}
            props["hs_object_id"] = contact["id"]
        out = {
            "id": contact["id"],
            "properties": props,
            "createdAt": contact["createdAt"],
            "updatedAt": contact["updatedAt"],
            "archived": False,
        }
        out.update(extra)
        return out

    def _find(self, id_value: str, id_property: str | None) -> dict[str, Any] | None:
        if id_property == "email":
            contact_id = self.by_email.get(unquote(id_value).lower())
            return None if contact_id is None else self.contacts.get(contact_id)
        return self.contacts.get(id_value)

    def _check_properties(self, properties: dict[str, Any]) -> None:
        for name, value in properties.items():
            if name not in self.properties:
                raise _error(
                    400,
                    "VALIDATION_ERROR",
                    f'Property values were not valid: [{{"isValid":false,"message":"Property \\"{name}\\" does not '
                    f'exist","error":"PROPERTY_DOESNT_EXIST","name":"{name}"}}]',
                )
            if value is not None and not isinstance(value, str):
                raise _error(400, "VALIDATION_ERROR", f"Property {name} must be a string")

    def _input_error(self, email: str, properties: dict[str, Any]) -> tuple[str, str] | None:
        """(category, message) when one input is refused; HubSpot's messages quote the offending value."""
        if not _EMAIL.match(email):
            return "VALIDATION_ERROR", f"Email address {email} is invalid"
        if email in self.reject_emails:
            return "VALIDATION_ERROR", self.reject_emails[email]
        if self.transient_emails.get(email, 0) > 0:
            self.transient_emails[email] -= 1
            return "INTERNAL_ERROR", "An internal error occurred while processing this input"
        for name, value in properties.items():
            kind = self.properties[name]["type"]
            if value in (None, ""):
                continue
            if kind == "datetime" and not re.match(r"^\d{4}-\d{2}-\d{2}(T[\d:.]+Z?)?$|^\d{10,13}$", value):
                return "VALIDATION_ERROR", f"{value} was not a valid long or date for property {name}"
            if kind == "bool" and value not in ("true", "false"):
                return "VALIDATION_ERROR", f"{value} was not a valid boolean option for property {name}"
        return None

    def _write(self, email: str, properties: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Upsert by e-mail (the batch upsert's way)."""
        contact_id = self.by_email.get(email)
        if contact_id is None:
            return self._create({**properties, "email": properties.get("email") or email}), True
        return self._update(self.contacts[contact_id], properties), False

    def _create(self, properties: dict[str, Any]) -> dict[str, Any]:
        """A new contact, with or without an e-mail (a sales rep may create one from a phone number alone)."""
        now = _now_iso()
        self._next_id += 1
        contact_id = str(self._next_id)
        self.contacts[contact_id] = {
            "id": contact_id,
            "properties": {"hs_object_id": contact_id, "createdate": now},
            "createdAt": now,
            "updatedAt": now,
        }
        self._indexed_at[contact_id] = time.monotonic()
        return self._update(self.contacts[contact_id], properties)

    def _update(self, contact: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
        """Set properties on a contact; a changed ``email`` moves it to the new address (HubSpot: one contact per
        address, so an address another contact holds is a 409 CONFLICT)."""
        now = _now_iso()
        before = str(contact["properties"].get("email") or "").lower()
        after = str(properties.get("email") or before).lower()
        if after != before:
            if not _EMAIL.match(after):
                raise _error(400, "VALIDATION_ERROR", f"Email address {after} is invalid")
            holder = self.by_email.get(after)
            if holder is not None and holder != contact["id"]:
                raise _error(
                    409, "CONFLICT", f"A contact with the email '{after}' already exists. Existing ID: {holder}"
                )
        for name, value in properties.items():
            contact["properties"][name] = value.lower() if name == "email" and value else value
        contact["properties"]["lastmodifieddate"] = now
        contact["updatedAt"] = now
        if after != before:
            self.by_email.pop(before, None)
        if after:
            self.by_email[after] = contact["id"]
        return contact

    def _remove(self, contact: dict[str, Any]) -> None:
        del self.contacts[contact["id"]]
        for email, contact_id in list(self.by_email.items()):
            if contact_id == contact["id"]:
                del self.by_email[email]

    # ---- dispatch --------------------------------------------------------------------------------------------------

    def stats(self, window_s: float, path_prefix: str) -> dict[str, Any]:
        """What a test in another process needs (``GET /__fake__/stats``): counts and the matching requests."""
        calls = self.calls(path_prefix=path_prefix)
        return {
            "contacts": len(self.contacts),
            "rate_limited": self.rate_limited,
            "max_in_window": self.max_in_window(window_s, path_prefix),
            "requests": [
                {"at": c.at, "method": c.method, "status": c.status, "inputs": len((c.body or {}).get("inputs") or [])}
                for c in calls
            ],
        }

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "GET" and path == "/__fake__/stats":  # the fake's own introspection, not a HubSpot API
            q = {k: v[-1] for k, v in query.items()}
            return 200, self.stats(float(q.get("window", "10")), q.get("path_prefix", "/crm")), {}
        if headers.get("authorization") != f"Bearer {self.token}":
            raise _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
        q = {k: v[-1] for k, v in query.items()}
        contacts = "/crm/v3/objects/contacts"
        if method == "POST" and path == f"{contacts}/batch/upsert":
            return self._batch_upsert(body)
        if method == "POST" and path == f"{contacts}/batch/read":
            return self._batch_read(body, q)
        if method == "POST" and path == f"{contacts}/batch/update":
            return self._batch_update(body)
        if method == "POST" and path == contacts:  # create one (a HubSpot form, an import, a sales rep)
            properties = (body or {}).get("properties") or {}
            self._check_properties(properties)
            email = str(properties.get("email") or "").lower()
            if email and email in self.by_email:
                raise _error(409, "CONFLICT", f"Contact already exists. Existing ID: {self.by_email[email]}")
            return 201, self._public(self._create(properties)), {}
        if method == "POST" and path == f"{contacts}/search":
            return self._search(body)
        if method == "POST" and path == f"{contacts}/gdpr-delete":
            return self._gdpr_delete(body)
        if path.startswith(f"{contacts}/") and path.count("/") == 5:
            contact_id = path.rsplit("/", 1)[1]
            q["properties"] = ",".join(query.get("properties", []))  # repeated or comma-separated
            return self._one_contact(method, contact_id, q, body)
        if path == "/crm/v3/properties/contacts":
            if method == "GET":
                return 200, {"results": list(self.properties.values())}, {}
            if method == "POST":
                return self._create_property(body)
        if path.startswith("/crm/v3/properties/contacts/") and method == "GET":
            name = path.rsplit("/", 1)[1]
            if name not in self.properties:
                raise _error(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
            return 200, self.properties[name], {}
        prefs = "/communication-preferences"
        if method == "GET" and path == f"{prefs}/v3/definitions":
            return 200, {"subscriptionDefinitions": [self._definition(d) for d in self.subscription_definitions]}, {}
        if method == "GET" and path.startswith(f"{prefs}/v3/status/email/"):
            email = unquote(path.rsplit("/", 1)[1]).lower()
            return 200, {"recipient": email, "subscriptionStatuses": self._statuses(email)}, {}
        if method == "POST" and path in (f"{prefs}/v3/unsubscribe", f"{prefs}/v3/subscribe"):
            return self._set_status(body, "SUBSCRIBED" if path.endswith("/subscribe") else "NOT_SUBSCRIBED")
        if method == "POST" and path == f"{prefs}/v4/statuses/batch/unsubscribe-all":
            return self._unsubscribe_all(body, q.get("channel", "EMAIL"))
        raise _error(404, "OBJECT_NOT_FOUND", f"No route for {method} {path}")

    def _inputs(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise _error(400, "VALIDATION_ERROR", "Invalid input JSON: 'inputs' is required")
        inputs = body["inputs"]
        if len(inputs) > 100:
            raise _error(400, "VALIDATION_ERROR", f"Batch size of {len(inputs)} exceeds the maximum of 100 inputs")
        return inputs

    def _batch_upsert(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        started = _now_iso()
        inputs = self._inputs(body)
        ids = [str(i.get("id", "")).lower() for i in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise _error(
                400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique"
            )
        for item in inputs:
            if item.get("idProperty") != "email":
                raise _error(400, "VALIDATION_ERROR", "Upsert by idProperty is only supported for unique properties")
            self._check_properties(item.get("properties") or {})
        refused = {}
        for item, email in zip(inputs, ids, strict=True):
            problem = self._input_error(email, item.get("properties") or {})
            if problem:
                refused[email] = problem
        if refused and self.batch_validation == "400":
            category, message = next(iter(refused.values()))
            raise _error(400, category, message)
        results, errors = [], []
        for item, email in zip(inputs, ids, strict=True):
            trace = item.get("objectWriteTraceId")
            if email in refused:
                category, message = refused[email]
                errors.append(
                    {
                        "status": "error",
                        "category": category,
                        "message": message,
                        "context": {"objectWriteTraceId": [trace]} if trace else {"ids": [email]},
                        "errors": [],
                        "links": {},
                    }
                )
                continue
            contact, created = self._write(email, item.get("properties") or {})
            extra: dict[str, Any] = {"new": created}
            if trace:
                extra["objectWriteTraceId"] = trace
            results.append(self._public(contact, **extra))
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "requestedAt": started,
            "startedAt": started,
            "completedAt": _now_iso(),
        }
        if errors:
            answer.update(errors=errors, numErrors=len(errors))
            return 207, answer, {}
        return 200, answer, {}

    def _batch_read(self, body: Any, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        inputs = self._inputs(body)
        id_property = body.get("idProperty") or query.get("idProperty")
        wanted = body.get("properties") or None
        results, missing = [], []
        for item in inputs:
            contact = self._find(str(item.get("id")), id_property)
            if contact is None:
                missing.append(str(item.get("id")))
            else:
                results.append(self._public(contact, wanted))
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": _now_iso(),
            "completedAt": _now_iso(),
        }
        if missing:
            answer.update(
                numErrors=len(missing),
                errors=[
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                        "context": {"ids": missing},
                        "errors": [],
                        "links": {},
                    }
                ],
            )
            return 207, answer, {}
        return 200, answer, {}

    def _batch_update(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        inputs = self._inputs(body)
        results = []
        for item in inputs:
            self._check_properties(item.get("properties") or {})
            contact = self._find(str(item.get("id")), item.get("idProperty"))
            if contact is None:
                raise _error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
            results.append(self._public(self._update(contact, item.get("properties") or {})))
        return 200, {"status": "COMPLETE", "results": results, "startedAt": _now_iso(), "completedAt": _now_iso()}, {}

    def _search(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        """``POST /crm/v3/objects/contacts/search`` with HubSpot's shapes and limits: filter groups are ORed, the
        filters of a group ANDed; at most ``SEARCH_LIMITS`` groups, filters per group and filters in all; ``limit``
        1..200 (default 10); ``after`` pages; no page beyond the first 10,000 results; string EQ/NEQ/IN ignore
        case; a contact created less than ``search_lag_s`` ago is not found yet (the index lags behind writes)."""
        body = body if isinstance(body, dict) else {}
        groups = body.get("filterGroups") or []
        max_groups, max_per_group, max_filters = SEARCH_LIMITS
        if len(groups) > max_groups:
            raise _error(400, "VALIDATION_ERROR", f"Too many filter groups ({len(groups)}); the limit is {max_groups}")
        total_filters = 0
        for group in groups:
            filters = group.get("filters") or []
            total_filters += len(filters)
            if len(filters) > max_per_group:
                raise _error(
                    400,
                    "VALIDATION_ERROR",
                    f"Too many filters in a group ({len(filters)}); the limit is {max_per_group}",
                )
            for flt in filters:
                if flt.get("operator") not in SEARCH_OPERATORS:
                    raise _error(400, "VALIDATION_ERROR", f"Unknown operator {flt.get('operator')!r}")
                if flt.get("propertyName") not in self.properties:
                    raise _error(400, "VALIDATION_ERROR", f"Property {flt.get('propertyName')!r} does not exist")
        if total_filters > max_filters:
            raise _error(400, "VALIDATION_ERROR", f"Too many filters ({total_filters}); the limit is {max_filters}")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 200:
            raise _error(400, "VALIDATION_ERROR", "limit must be between 1 and 200")
        after = int(body.get("after") or 0)
        if after + limit > 10_000:
            raise _error(400, "VALIDATION_ERROR", "Search results are limited to 10,000: narrow the filters")
        visible_before = time.monotonic() - self.search_lag_s
        matches = [
            c
            for c in sorted(self.contacts.values(), key=lambda c: int(c["id"]))
            if self._indexed_at.get(c["id"], 0.0) <= visible_before
            and (not groups or any(all(_matches(c, f) for f in g.get("filters") or []) for g in groups))
        ]
        page = matches[after : after + limit]
        wanted = body.get("properties") or list(SEARCH_DEFAULT_PROPERTIES)
        answer: dict[str, Any] = {"total": len(matches), "results": [self._public(c, wanted) for c in page]}
        if after + limit < len(matches):
            answer["paging"] = {"next": {"after": str(after + limit), "link": "?after=" + str(after + limit)}}
        return 200, answer, {}

    def _one_contact(
        self, method: str, contact_id: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        contact = self._find(contact_id, query.get("idProperty"))
        if contact is None:
            raise _error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
        if method == "GET":
            wanted = [p for p in query.get("properties", "").split(",") if p] or None
            return 200, self._public(contact, wanted), {}
        if method == "PATCH":
            properties = (body or {}).get("properties") or {}
            self._check_properties(properties)
            return 200, self._public(self._update(contact, properties)), {}
        if method == "DELETE":  # archive: restorable in HubSpot for 90 days; gone from the API here
            self._remove(contact)
            return 204, None, {}
        raise _error(405, "METHOD_NOT_ALLOWED", f"{method} not allowed")

    def _gdpr_delete(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        body = body or {}
        contact = self._find(str(body.get("objectId", "")), body.get("idProperty"))
        if contact is None:
            raise _error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
        self.gdpr_deleted.append(str(contact["properties"].get("email")))
        self._remove(contact)
        return 204, None, {}

    def _create_property(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        body = body or {}
        name = body.get("name")
        if not name or not body.get("label") or not body.get("type") or not body.get("fieldType"):
            raise _error(400, "VALIDATION_ERROR", "name, label, type, fieldType and groupName are required")
        if name in self.properties:
            raise _error(409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already exists.")
        prop = self._property(
            name,
            body["label"],
            body["type"],
            body["fieldType"],
            description=body.get("description", ""),
            groupName=body.get("groupName", "contactinformation"),
            options=[
                {
                    "label": o.get("label"),
                    "value": o.get("value"),
                    "displayOrder": o.get("displayOrder", 0),
                    "hidden": False,
                }
                for o in body.get("options") or []
            ],
        )
        self.properties[name] = prop
        return 201, prop, {}

    def _definition(self, definition: dict[str, str]) -> dict[str, Any]:
        now = _now_iso()
        return {
            **definition,
            "isActive": True,
            "isDefault": False,
            "isInternal": False,
            "createdAt": now,
            "updatedAt": now,
            "purpose": "Marketing",
            "communicationMethod": "Email",
        }

    def _statuses(self, email: str) -> list[dict[str, Any]]:
        current = self.subscriptions.get(email, {})
        return [
            {
                "id": d["id"],
                "name": d["name"],
                "description": d["description"],
                "status": "NOT_SUBSCRIBED" if self.unsubscribed_all.get(email) else current.get(d["id"], "SUBSCRIBED"),
                "sourceOfStatus": "SUBSCRIPTION_STATUS",
            }
            for d in self.subscription_definitions
        ]

    def _set_status(self, body: Any, status: str) -> tuple[int, Any, dict[str, str]]:
        body = body or {}
        email = str(body.get("emailAddress", "")).lower()
        sub = str(body.get("subscriptionId", ""))
        definition = next((d for d in self.subscription_definitions if d["id"] == sub), None)
        if not _EMAIL.match(email) or definition is None:
            raise _error(400, "VALIDATION_ERROR", "emailAddress and a known subscriptionId are required")
        self.subscriptions.setdefault(email, {})[sub] = status
        return (
            200,
            {
                "id": sub,
                "name": definition["name"],
                "description": definition["description"],
                "status": status,
                "sourceOfStatus": "SUBSCRIPTION_STATUS",
                "legalBasis": body.get("legalBasis"),
                "legalBasisExplanation": body.get("legalBasisExplanation"),
            },
            {},
        )

    def _unsubscribe_all(self, body: Any, channel: str) -> tuple[int, Any, dict[str, str]]:
        inputs = self._inputs(body)
        results = []
        now = _now_iso()
        for item in inputs:
            email = str(item).lower()
            self.unsubscribed_all[email] = channel
            results.append(
                {
                    "subscriberIdString": email,
                    "statuses": [
                        {
                            "subscriberIdString": email,
                            "subscriptionId": int(d["id"]),
                            "status": "NOT_SUBSCRIBED",
                            "channel": channel,
                            "source": "leadpipe",
                            "timestamp": now,
                        }
                        for d in self.subscription_definitions
                    ],
                }
            )
        return 200, {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": _now_iso()}, {}

    # ---- admission: rate limits and faults ------------------------------------------------------------------------

    def admit(self, method: str, path: str, arrived: float) -> Fault | None:
        """Count the request against the budgets; raise a 429 when over; return the fault to apply, if any."""
        if path.startswith("/__fake__/"):
            return None
        with self.lock:
            if self.rate_limit is not None:
                limit, window = self.rate_limit
                self._arrivals.append(arrived)
                while self._arrivals and arrived - self._arrivals[0] >= window:
                    self._arrivals.popleft()
                if len(self._arrivals) > limit:
                    self.rate_limited += 1
                    raise self._too_many("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
            if self.search_rate_limit is not None and path.endswith("/search"):
                limit, window = self.search_rate_limit
                self._search_arrivals.append(arrived)
                while self._search_arrivals and arrived - self._search_arrivals[0] >= window:
                    self._search_arrivals.popleft()
                if len(self._search_arrivals) > limit:
                    self.rate_limited += 1
                    raise self._too_many("SECONDLY", "You have reached your secondly limit.")
            for fault in list(self.faults):
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _too_many(self, policy: str, message: str) -> _HTTPError:
        error = _error(429, "RATE_LIMITS", message, errorType="RATE_LIMIT", policyName=policy)
        error.body.pop("category")
        if self.rate_limit_retry_after is not None:
            error.headers["Retry-After"] = f"{self.rate_limit_retry_after:g}"
        return error


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHubSpot
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _serve(self, method: str) -> None:
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            at=arrived,
            method=method,
            path=parts.path,
            query=parse_qs(parts.query),
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        with self.hub.lock:
            self.hub.requests.append(record)
        status, payload, headers = 500, None, {}
        fault: Fault | None = None
        try:
            fault = self.hub.admit(method, parts.path, arrived)
            if fault is not None:
                if fault.kind == "disconnect":
                    record.status = -1
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                if fault.kind in ("latency", "hang"):
                    time.sleep(fault.seconds)
                if fault.kind == "status":
                    if fault.status == 429:
                        raise self.hub._too_many(
                            "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit."
                        )
                    raise _error(fault.status, "INTERNAL_ERROR", "internal error (injected)")
            with self.hub.lock:
                status, payload, headers = self.hub.handle(method, parts.path, record.query, body, record.headers)
        except _HTTPError as exc:
            status, payload, headers = exc.status, exc.body, dict(exc.headers)
            if fault is not None and fault.kind == "status" and fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
        record.status = status
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if data:
                self.wfile.write(data)
        except OSError:  # the client gave up (timeout): nothing to answer to
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


@contextlib.contextmanager
def running_fake(**options: Any) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(**options) as fake:
        yield fake


def main() -> None:
    """Serve a fake HubSpot in a process of its own: ``python tests/fakes/hubspot.py [requests window_s]``.

    Prints ``<url> <token>`` on the first line, then serves until stdin closes (the parent exits).
    """
    import sys

    limit = (int(sys.argv[1]), float(sys.argv[2])) if len(sys.argv) > 2 else (190, 10.0)
    with FakeHubSpot(rate_limit=limit) as fake:
        sys.stdout.write(f"{fake.url} {fake.token}\n")
        sys.stdout.flush()
        sys.stdin.read()


if __name__ == "__main__":
    main()
