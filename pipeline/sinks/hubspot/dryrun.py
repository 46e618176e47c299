"""HubSpot dry run: without an access token, record each request the sink would send, one JSON line per request.

This is the embedded default, so the product runs offline end to end. THE FILE HOLDS PERSONAL DATA (e-mails,
names, messages: exactly what would have gone to HubSpot). It is created with mode 0600 under
``settings.home`` (``settings.resolved_dry_run_file``); treat it like the CRM database: keep it on an encrypted
disk, delete it when done, and remember that an erasure request does not rewrite it (``purge_contact`` appends
the GDPR-delete request it would send, it cannot un-write earlier lines).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.sinks.hubspot.gateway import UpsertResponse
from pipeline.sinks.hubspot.properties import CUSTOM_PROPERTIES, GROUP_NAME, ContactUpsert, PropertyDef


class DryRunGateway:
    """The ``HubSpotGateway`` interface, answering as HubSpot would have and appending every request to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _record(self, method: str, path: str, body: Any = None, query: Mapping[str, str] | None = None) -> None:
        line = orjson.dumps(
            {"at": datetime.now(UTC).isoformat(), "method": method, "path": path, "query": query or {}, "body": body}
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line + b"\n")
            finally:
                os.close(fd)

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

    def read_contact(self, email: str, properties: Sequence[str] = ()) -> dict[str, Any] | None:
        self._record("GET", f"/crm/v3/objects/contacts/{email.lower()}", query={"idProperty": "email"})
        return None

    def read_contacts(self, emails: Sequence[str], properties: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The dry run keeps no contacts: nothing is known to have landed (an unsure upsert is written again)."""
        self._record("POST", "/crm/v3/objects/contacts/batch/read", {"idProperty": "email", "inputs": len(emails)})
        return {}

    def update_contact(self, email: str, properties: Mapping[str, str]) -> dict[str, Any] | None:
        self._record(
            "PATCH",
            f"/crm/v3/objects/contacts/{email.lower()}",
            {"properties": dict(properties)},
            {"idProperty": "email"},
        )
        return None

    def purge_contact(self, email: str) -> bool:
        self._record("POST", "/crm/v3/objects/contacts/gdpr-delete", {"objectId": email.lower(), "idProperty": "email"})
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
