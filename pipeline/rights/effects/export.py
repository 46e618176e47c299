"""Access (9.1) and portability (9.7): one export of everything held, across the CRM and HubSpot.

The document is written under the exports directory, readable by its owner only; the tracker's evidence names the
file and its SHA-256 so the DPO can prove what was sent. The access PDF is encrypted with the password sealed in
the command (the DPO sends the password to the person by another channel than the file).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pipeline.models.rights import RightKind
from pipeline.policy.model import StoragePolicy
from pipeline.rights.bodies import ExportDelivery
from pipeline.rights.effects.base import Context, Effect, EffectError, EffectResult, Handover
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.export import (
    ExportSection,
    HandlingStep,
    RequestHandling,
    StorageEntry,
    SubjectExport,
    to_json,
    to_pdf,
    write_private,
)
from pipeline.rights.plan import rekeys


class ContactReader(Protocol):
    """What the export needs from HubSpot: the stored properties of every contact of the person, found by every
    identity known for them (``HubSpotLookup``: HubSpot-only contacts too).

    Contacts that cannot be read raise ``EffectError`` (``retryable`` for an outage)."""

    def contacts(self, subject_key: str, handover: Handover) -> list[dict[str, Any]]: ...

    def dry_run_requests(self, handover: Handover) -> list[dict[str, Any]] | None: ...


class ExportEffect(Effect):
    sink = "export"

    def __init__(
        self,
        crm: CrmRights,
        exports_dir: Path,
        hubspot: Callable[[], ContactReader | None] = lambda: None,
        font: Path | None = None,
        storage: StoragePolicy | None = None,
    ) -> None:
        self.crm = crm
        self.exports_dir = exports_dir
        self.hubspot = hubspot
        self.font = font
        self.storage = tuple(
            StorageEntry(system=name, **system.model_dump())
            for name, system in (storage.systems.items() if storage is not None else ())
        )

    def _crm_section(self, subject_key: str) -> ExportSection:
        records = self.crm.export_subject(subject_key)
        if records is None:
            return ExportSection(source="crm", status="not_found")
        return ExportSection(source="crm", status="ok", records=records)

    def _hubspot_section(self, subject_key: str, handover: Handover) -> ExportSection:
        reader = self.hubspot()
        if reader is None:
            return ExportSection(source="hubspot", status="not_configured", note="HubSpot is not connected")
        if not handover.emails and not handover.phones:
            return ExportSection(
                source="hubspot", status="not_found", note="HubSpot is searched by e-mail and phone; none is known"
            )
        if (requests := reader.dry_run_requests(handover)) is not None:  # no account: the dry-run file stands in
            return ExportSection(
                source="hubspot",
                status="ok" if requests else "not_found",
                note="no HubSpot account (dry run): the requests leadpipe would have sent about the person",
                records={"dry_run_requests": requests} if requests else {},
            )
        # HubSpot down: the reader raises an EffectError and the export is retried (the request shows ATTENTION
        # meanwhile); an export that left out what HubSpot holds would answer the request incompletely.
        contacts = reader.contacts(subject_key, handover)
        if not contacts:
            return ExportSection(source="hubspot", status="not_found")
        return ExportSection(source="hubspot", status="ok", records={"contacts": contacts})

    def subject_dir(self, subject_key: str) -> Path:
        """Where a subject's exports are kept until delivered: one directory, so an erasure finds them all."""
        return self.exports_dir / subject_key

    def apply(self, ctx: Context) -> EffectResult:
        command = ctx.command
        if (
            command.kind is RightKind.ERASURE
            or (command.kind is RightKind.RETENTION_EXPIRY and ctx.erase_subject)
            or rekeys(command)  # exports made under the old key hold the corrected (old) address
        ):
            return self._delete_exports(command.subject_key)
        if command.kind not in (RightKind.ACCESS, RightKind.PORTABILITY):
            return EffectResult.not_applicable(f"no_export_for_{command.kind.value}")
        export = SubjectExport(
            request_id=command.request_id,
            kind="access" if command.kind is RightKind.ACCESS else "portability",
            subject_key=command.subject_key,
            generated_at=ctx.now,
            sections=(
                self._crm_section(command.subject_key),
                self._hubspot_section(command.subject_key, ctx.handover),
            ),
            storage=self.storage,
            handling=_handling(ctx),
        )
        if command.kind is RightKind.ACCESS:
            if command.sealed is None:
                raise EffectError("missing_password", "an access request without a sealed password", retryable=False)
            password = ctx.open(command.sealed, ExportDelivery).password
            if not password:
                raise EffectError("missing_password", "an access request without a password", retryable=False)
            data = to_pdf(export, password, font=self.font)
            path = self.subject_dir(command.subject_key) / f"{command.request_id}.pdf"
        else:
            data, path = to_json(export), self.subject_dir(command.subject_key) / f"{command.request_id}.json"
        write_private(path, data)
        return EffectResult.done(
            path=str(path),
            sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data),
            records=export.record_count,
            sources={s.source: s.status for s in export.sections},
        )

    def _delete_exports(self, subject_key: str) -> EffectResult:
        """An erased subject's access and portability exports go too (they hold everything that was erased)."""
        folder = self.subject_dir(subject_key)
        if not folder.is_dir():
            return EffectResult.not_applicable("no_exports")
        deleted = sorted(path.name for path in folder.iterdir() if path.is_file())
        shutil.rmtree(folder)
        return EffectResult.done(exports_deleted=deleted)


def _handling(ctx: Context) -> RequestHandling | None:
    """Who issued the request and who completed each step so far, this export included (it is being completed)."""
    command = ctx.command
    if command.issuer is None:
        return None
    doer = ctx.by.display_name if ctx.by is not None else "leadpipe"
    steps = [HandlingStep(step=sink, completed_by=doer, at=ctx.now) for sink in ctx.evidence]
    steps.append(HandlingStep(step="export (this copy)", completed_by=doer, at=ctx.now))
    return RequestHandling(issued_by=command.issuer.display_name, issued_at=command.issued_at, steps=tuple(steps))


def export_expired(path: Path, now: datetime, max_age: timedelta) -> bool:
    """Whether an export file was written longer than ``max_age`` before ``now`` (its modification time)."""
    return path.stat().st_mtime <= (now - max_age).timestamp()


def expire_exports(exports_dir: Path, now: datetime, max_age: timedelta) -> list[str]:
    """Delete every export written longer than ``max_age`` ago (and the subject folders left empty); their names."""
    deleted: list[str] = []
    if not exports_dir.is_dir():
        return deleted
    for folder in exports_dir.iterdir():
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and export_expired(path, now, max_age):
                path.unlink(missing_ok=True)
                deleted.append(path.name)
        if not any(folder.iterdir()):
            folder.rmdir()
    return deleted
