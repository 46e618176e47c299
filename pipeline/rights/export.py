"""Exports for access (policy 9.1: a password-protected PDF) and portability (9.7: structured JSON).

Both render ONE document, ``SubjectExport``, built from plain data that the CRM and HubSpot effects gather, so the
two formats can never disagree. The JSON structure is documented by the model itself (``leadpipe schemas``
publishes its JSON Schema); the PDF is the same content for a person to read, encrypted with AES-256.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from pipeline.models.common import StrictModel, UtcDatetime

EXPORT_FORMAT = "leadpipe.subject-export"
CONTROLLER = "Altoros Americas LLC and Altoros Norge AS (dpo@altoros.com)"

#: Fonts that cover more than Latin-1; the first one that exists is embedded. Without one, characters outside
#: Latin-1 are written as \\uXXXX escapes so that nothing held about the person is left out of the copy.
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
    Path("/Library/Fonts/Arial Unicode.ttf"),
)
#: Fonts for what the first one has no glyph for: Chinese, Japanese and Korean (Debian's fonts-droid-fallback, which
#: the image carries); every one that exists is a fallback, in this order.
FALLBACK_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
    Path("/usr/share/fonts-droid-fallback/truetype/DroidSansFallback.ttf"),
    Path("/usr/share/fonts/google-droid-sans-fonts/DroidSansFallbackFull.ttf"),
)


class ExportSection(StrictModel):
    """Everything one system holds about the subject, by category (e.g. ``identities``, ``interactions``)."""

    source: str = Field(description="'crm' or 'hubspot'")
    status: Literal["ok", "not_found", "unreachable", "not_configured"]
    note: str | None = Field(default=None, description="Why a source could not be read, without personal data")
    records: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


class StorageEntry(StrictModel):
    """Where one system keeps the data (the policy file's ``storage``): Art. 15(1)(c) and 15(2) GDPR."""

    system: str
    description: str
    countries: tuple[str, ...]
    safeguards: str = ""


class HandlingStep(StrictModel):
    """One step of carrying the request out, and who completed it."""

    step: str
    completed_by: str = Field(description="The display name of the person or part of the product that did it")
    at: UtcDatetime


class RequestHandling(StrictModel):
    """Who issued the request this copy answers, and who completed each step (accountability, Art. 5(2) GDPR)."""

    issued_by: str = Field(description="The display name of the person who issued the request")
    issued_at: UtcDatetime
    steps: tuple[HandlingStep, ...] = ()


class SubjectExport(StrictModel):
    """A copy of the personal data held about one subject, across every system that holds it."""

    format: Literal["leadpipe.subject-export"] = "leadpipe.subject-export"
    version: Literal[1] = 1
    request_id: UUID
    kind: Literal["access", "portability"]
    subject_key: str
    generated_at: UtcDatetime
    controller: str = CONTROLLER
    sections: tuple[ExportSection, ...]
    storage: tuple[StorageEntry, ...] = Field(default=(), description="Where each system keeps the data")
    handling: RequestHandling | None = Field(default=None, description="Who issued the request and carried it out")

    @property
    def record_count(self) -> int:
        return sum(len(rows) for section in self.sections for rows in section.records.values())


def to_json(export: SubjectExport) -> bytes:
    """The portability file: indented, UTF-8, keys in a stable order."""
    return json.dumps(export.model_dump(mode="json"), indent=2, ensure_ascii=False, sort_keys=False).encode()


def _font_path(configured: Path | None) -> Path | None:
    if configured is not None:
        if not configured.is_file():
            raise FileNotFoundError(f"export font {configured} does not exist")
        return configured
    return next((p for p in FONT_CANDIDATES if p.is_file()), None)


def _latin1_safe(text: str) -> str:
    return "".join(ch if ord(ch) < 256 else f"\\u{ord(ch):04x}" for ch in text)


def _escape_missing(covered: set[int]) -> Callable[[str], str]:
    """Characters the font has no glyph for are written as escapes, never silently dropped."""

    def clean(text: str) -> str:
        return "".join(ch if ord(ch) in covered or ch in "\n\t" else f"\\u{ord(ch):04x}" for ch in text)

    return clean


def _lines(value: Any, indent: int = 0) -> Iterable[str]:
    pad = "    " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                yield f"{pad}{key}:"
                yield from _lines(item, indent + 1)
            else:
                yield f"{pad}{key}: {_scalar(item)}"
    elif isinstance(value, list):
        for number, item in enumerate(value, 1):
            if isinstance(item, Mapping | list):
                yield f"{pad}[{number}]"
                yield from _lines(item, indent + 1)
            else:
                yield f"{pad}- {_scalar(item)}"
    else:
        yield f"{pad}{_scalar(value)}"


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping | list):
        return "(none)"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def to_pdf(export: SubjectExport, password: str, *, font: Path | None = None) -> bytes:
    """The access copy: AES-256 encrypted, opened only with ``password`` (the DPO sends it by another channel)."""
    from fpdf import FPDF  # noqa: PLC0415  # start-up: fpdf costs ~1 s, only access requests make a PDF
    from fpdf.enums import EncryptionMethod, XPos, YPos  # noqa: PLC0415  # (the same)

    if len(password) < 8:
        raise ValueError("the export password must have at least 8 characters")
    pdf = FPDF(format="A4")
    pdf.set_title("Copy of your personal data")
    pdf.set_author(export.controller)
    pdf.set_encryption(
        owner_password=secrets.token_urlsafe(24),
        user_password=password,
        encryption_method=EncryptionMethod.AES_256,
        encrypt_metadata=True,
    )
    path = _font_path(font)
    family = "Helvetica"
    clean: Callable[[str], str] = _latin1_safe
    if path is not None:
        pdf.add_font("ExportSans", "", str(path))
        font_face: Any = pdf.fonts["exportsans"]  # a TTFFont: its cmap says which characters have glyphs
        covered = set(font_face.cmap)
        fallbacks = []
        for number, fallback in enumerate(p for p in FALLBACK_FONT_CANDIDATES if p.is_file()):
            pdf.add_font(f"ExportFallback{number}", "", str(fallback))
            fallbacks.append(f"ExportFallback{number}")
            fallback_face: Any = pdf.fonts[f"exportfallback{number}"]
            covered |= set(fallback_face.cmap)
        if fallbacks:  # a person's name in 山田 or 김 is theirs to read in their copy, not as escapes
            pdf.set_fallback_fonts(fallbacks)
        family, clean = "ExportSans", _escape_missing(covered)

    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()

    def write(text: str, size: float = 10, gap: float = 5) -> None:
        pdf.set_font(family, size=size)
        pdf.multi_cell(0, gap, clean(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    write("Copy of your personal data", size=16, gap=9)
    write(f"Controller: {export.controller}")
    write(f"Request: {export.request_id}   Generated: {export.generated_at.isoformat()}")
    write(f"Reference: {export.subject_key}")
    write(
        "This document lists every item of personal data we hold about you in each of our systems, with the purpose "
        "and legal basis it is kept for where recorded. Policy section 9 describes your rights.",
        gap=5,
    )
    for section in export.sections:
        pdf.ln(3)
        write(f"{section.source.upper()} ({section.status})", size=13, gap=7)
        if section.note:
            write(section.note)
        if not section.records:
            write("No data held.")
        for category, rows in section.records.items():
            write(f"{category} ({len(rows)})", size=11, gap=6)
            for line in _lines(rows):
                write(line, size=9, gap=4.5)
    if export.storage:
        pdf.ln(3)
        write("Where it is kept", size=13, gap=7)
        for entry in export.storage:
            where = ", ".join(entry.countries)
            write(f"{entry.description} ({entry.system}): {where}. {entry.safeguards}".strip(), gap=5)
    if export.handling is not None:
        handling = export.handling
        pdf.ln(3)
        write("Who handled your request", size=13, gap=7)
        write(f"Issued by {handling.issued_by} on {handling.issued_at.isoformat()}")
        for step in handling.steps:
            write(f"{step.step}: completed by {step.completed_by} on {step.at.isoformat()}")
    return bytes(pdf.output())


def write_private(path: Path, data: bytes) -> None:
    """Write an export readable by its owner only (it holds personal data until the DPO delivers it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)
