"""HubSpot dry run: without an access token, record each request the sink would send, one JSON line per request.

This is the embedded default, so the product runs offline end to end. THE FILE HOLDS PERSONAL DATA (e-mails,
names, messages: exactly what would have gone to HubSpot). It is created with mode 0600 under
``settings.home`` (``settings.resolved_dry_run_file``); treat it like the CRM database: keep it on an encrypted
disk and delete it when done.

An erasure reaches it like every other place the data lives: ``purge_contact`` (the GDPR delete the rights worker
sends for each of the person's e-mails) rewrites the file without the requests naming that e-mail: the whole line
when the request is about the person (a read, an update, an unsubscribe), the person's input alone in a batch
upsert or a batch unsubscribe that also names others. The GDPR delete it then records carries no e-mail. The
rights worker and the sink agents may run in different processes: every write holds an exclusive lock on a file
beside it, and the rewrite replaces the file atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.sinks.hubspot.gateway import UpsertResponse
from pipeline.sinks.hubspot.properties import CUSTOM_PROPERTIES, GROUP_NAME, ContactUpsert, PropertyDef


def _names(value: Any, email: str) -> bool:
    """Whether a request's value names ``email`` (lower-cased): as a value, or as a segment of a path."""
    if isinstance(value, str):
        return value.lower() == email or email in value.lower().split("/")
    if isinstance(value, Mapping):
        return any(_names(v, email) for v in value.values())
    if isinstance(value, list):
        return any(_names(v, email) for v in value)
    return False


def forget_request(request: dict[str, Any], email: str) -> dict[str, Any] | None:
    """``request`` without what names ``email``: a batch loses the person's items; a request about the person
    (or a batch left empty) is dropped (None)."""
    body = request.get("body")
    if isinstance(body, Mapping):
        for key, items in body.items():
            if isinstance(items, list) and any(_names(i, email) for i in items):
                kept = [i for i in items if not _names(i, email)]
                if not kept:
                    return None
                body = {**body, key: kept}
        request = {**request, "body": body}
    return None if _names(request, email) else request


class DryRunGateway:
    """The ``HubSpotGateway`` interface, answering as HubSpot would have and appending every request to a file."""

    #: No HubSpot account: the rights effects say so in their evidence.
    dry_run = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads and other processes (sink agents, the rights worker) one at a time."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def _record(self, method: str, path: str, body: Any = None, query: Mapping[str, str] | None = None) -> None:
        line = orjson.dumps(
            {"at": datetime.now(UTC).isoformat(), "method": method, "path": path, "query": query or {}, "body": body}
        )
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line + b"\n")
            finally:
                os.close(fd)

    def requests_naming(self, emails: Sequence[str]) -> list[dict[str, Any]]:
        """Every recorded request about any of ``emails``, a batch with only the person's items: what HubSpot would
        hold of them (an access request's answer in dry-run mode), oldest first."""
        needles = {email.lower() for email in emails}
        found: list[dict[str, Any]] = []
        with self._locked():
            try:
                lines = self.path.read_bytes().splitlines()
            except FileNotFoundError:
                return []
        for line in lines:
            low = line.lower()
            if not any(orjson.dumps(n)[1:-1] in low for n in needles):  # cheap: most lines are about someone else
                continue
            request = orjson.loads(line)
            body = request.get("body")
            if isinstance(body, Mapping):
                body = {
                    k: [i for i in v if any(_names(i, n) for n in needles)] if isinstance(v, list) else v
                    for k, v in body.items()
                }
            found.append({**request, "body": body})
        return found

    def forget(self, email: str) -> int:
        """Rewrite the file without what names ``email``; how many requests were changed or dropped."""
        needle = email.lower()
        as_json = orjson.dumps(needle)[1:-1]  # as it appears in a line (a quoted local part is escaped)
        with self._locked():
            try:
                lines = self.path.read_bytes().splitlines()
            except FileNotFoundError:
                return 0
            kept: list[bytes] = []
            changed = 0
            for line in lines:
                if as_json not in line.lower():  # cheap: most lines are about someone else
                    kept.append(line)
                    continue
                request = forget_request(orjson.loads(line), needle)
                changed += 1
                if request is not None:
                    kept.append(orjson.dumps(request))
            if changed:
                tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, b"".join(line + b"\n" for line in kept))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                tmp.replace(self.path)
            return changed

    def upsert_contacts(self, inputs: Sequence[ContactUpsert]) -> UpsertResponse:
        if len(inputs) > 100 or len({i.email for i in inputs}) != len(inputs):
            raise ValueError("a batch upsert takes at most 100 inputs with distinct e-mails")
        self._record(
            "POST",
            "/crm/v3/objects/contacts/batch/upsert",
            {
                "inputs": [
                    {"id": i.email, "idProperty": "email", "objectWriteTraceId": i.trace_id, "properties": i.properties}
                    for i in inputs
                ]
            },
        )
        return UpsertResponse(written={i.trace_id: "dry-run" for i in inputs})

    def ensure_properties(self, definitions: Sequence[PropertyDef] = CUSTOM_PROPERTIES) -> list[str]:
        for d in definitions:
            self._record(
                "POST",
                "/crm/v3/properties/contacts",
                {"name": d.name, "label": d.label, "type": d.type, "fieldType": d.field_type, "groupName": GROUP_NAME},
            )
        return [d.name for d in definitions]

    def read_contact(
        self, identifier: str, properties: Sequence[str] = (), *, by_id: bool = False
    ) -> dict[str, Any] | None:
        path = f"/crm/v3/objects/contacts/{identifier if by_id else identifier.lower()}"
        self._record("GET", path, query={} if by_id else {"idProperty": "email"})
        return None

    def read_contacts(self, emails: Sequence[str], properties: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The dry run keeps no contacts: nothing is known to have landed (an unsure upsert is written again)."""
        self._record("POST", "/crm/v3/objects/contacts/batch/read", {"idProperty": "email", "inputs": len(emails)})
        return {}

    def search_contacts(
        self, *, emails: Sequence[str] = (), phones: Sequence[str] = (), properties: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        self._record(
            "POST",
            "/crm/v3/objects/contacts/search",
            {"emails": [e.lower() for e in emails], "phones": list(phones), "properties": list(properties)},
        )
        return []

    def update_contact(
        self, identifier: str, properties: Mapping[str, str], *, by_id: bool = False
    ) -> dict[str, Any] | None:
        self._record(
            "PATCH",
            f"/crm/v3/objects/contacts/{identifier if by_id else identifier.lower()}",
            {"properties": dict(properties)},
            {} if by_id else {"idProperty": "email"},
        )
        return None

    def purge_contact(self, identifier: str, *, by_id: bool = False) -> bool:
        """By e-mail: forget the person's requests, then record the GDPR delete without their e-mail. False: no
        HubSpot contact existed (there is no HubSpot)."""
        forgotten = 0 if by_id else self.forget(identifier)
        self._record(
            "POST",
            "/crm/v3/objects/contacts/gdpr-delete",
            {"objectId": identifier if by_id else "[erased]", "idProperty": "email", "requestsForgotten": forgotten},
        )
        return False

    def unsubscribe(
        self, email: str, subscription_id: str, *, legal_basis: str | None = None, explanation: str | None = None
    ) -> dict[str, Any]:
        self._record(
            "POST",
            "/communication-preferences/v3/unsubscribe",
            {"emailAddress": email.lower(), "subscriptionId": subscription_id, "legalBasis": legal_basis},
        )
        return {"subscription_id": subscription_id, "status": "NOT_SUBSCRIBED"}

    def unsubscribe_all(self, emails: Sequence[str], channel: str = "EMAIL") -> dict[str, Any]:
        self._record(
            "POST",
            "/communication-preferences/v4/statuses/batch/unsubscribe-all",
            {"inputs": [e.lower() for e in emails]},
            {"channel": channel},
        )
        return {"status": "COMPLETE", "results": []}

    def close(self) -> None:
        """Nothing to release: the file is opened per request."""
