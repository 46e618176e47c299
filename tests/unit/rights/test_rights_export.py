import io
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from identity_helpers import person
from pypdf import PdfReader

from pipeline.config import Settings
from pipeline.db import ensure_schema, make_engine
from pipeline.models.rights import RightKind, SinkStatus
from pipeline.policy.model import load_policy
from pipeline.rights.commands import build_command
from pipeline.rights.effects.base import Context, EffectError, Handover
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.effects.export import ExportEffect
from pipeline.rights.effects.hubspot import ExportReader
from pipeline.rights.export import (
    FALLBACK_FONT_CANDIDATES,
    ExportSection,
    StorageEntry,
    SubjectExport,
    to_json,
    to_pdf,
)
from pipeline.sinks.hubspot.gateway import HubSpotRequestError, HubSpotUnavailable

PASSWORD = "a-long-enough-password"


def sample() -> SubjectExport:
    return SubjectExport(
        request_id=uuid4(),
        kind="access",
        subject_key="sk_" + "1" * 40,
        generated_at=datetime(2025, 6, 1, tzinfo=UTC),
        sections=(
            ExportSection(
                source="crm",
                status="ok",
                records={
                    "identities": [{"email": "zoe.quartz@example.com", "first_name": "Zoë", "last_name": "Łukasz"}],
                    "interactions": [
                        {"kind": "contact_us", "message": "Need a quote", "purposes": ["contract_request"]}
                    ],
                },
            ),
            ExportSection(source="hubspot", status="unreachable", note="HubSpot answered 503"),
        ),
        storage=(StorageEntry(system="crm", description="Internal CRM database", countries=("IE",)),),
    )


def test_json_export_is_the_documented_structure_and_round_trips() -> None:
    export = sample()
    data = json.loads(to_json(export))
    assert data["format"] == "leadpipe.subject-export" and data["version"] == 1
    assert data["sections"][0]["records"]["identities"][0]["first_name"] == "Zoë"
    assert SubjectExport.model_validate(data) == export
    assert export.record_count == 2


def test_pdf_opens_only_with_the_password_and_holds_the_data() -> None:
    pdf = to_pdf(sample(), PASSWORD)
    assert b"zoe.quartz" not in pdf and b"Need a quote" not in pdf  # encrypted, not merely flagged
    locked = PdfReader(io.BytesIO(pdf))
    assert locked.is_encrypted
    assert locked.decrypt("wrong-password") == 0
    with pytest.raises(Exception):  # noqa: B017  pypdf refuses to read pages it cannot decrypt
        locked.pages[0].extract_text()
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.decrypt(PASSWORD) != 0
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "zoe.quartz@example.com" in text
    assert "Need a quote" in text
    assert "HubSpot answered 503" in text
    assert "Where it is kept" in text and "Internal CRM database (crm): IE" in text


def _pdf_text(note: str) -> str:
    export = sample().model_copy(
        update={"sections": (ExportSection(source="crm", status="ok", records={"notes": [{"t": note}]}),)}
    )
    reader = PdfReader(io.BytesIO(to_pdf(export, PASSWORD)))
    reader.decrypt(PASSWORD)
    return "".join(p.extract_text() for p in reader.pages)


def test_characters_without_a_glyph_are_escaped_not_dropped() -> None:
    assert "\\u13000" in _pdf_text("\U00013000")  # an Egyptian hieroglyph: no installed font draws it


@pytest.mark.skipif(
    not (any(p.is_file() for p in FALLBACK_FONT_CANDIDATES) or os.environ.get("CI")),
    reason="no CJK fallback font (scripts/ensure-fonts.sh installs Debian's fonts-droid-fallback)",
)
def test_names_in_chinese_japanese_and_korean_are_written_in_their_letters() -> None:
    """The access copy is the person's to read: 山田 太郎 came out as \\u5c71\\u7530 escapes (DejaVu has no CJK)."""
    names = "山田 太郎, 김민수, 张伟, Иванов"
    assert names in _pdf_text(names)


def test_short_password_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        to_pdf(sample(), "short")


class _Gateway:
    """Stands in for the HubSpot gateway's reads (by e-mail, and the search): down first, then answering."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures

    def read_contact(self, email: str, properties: Sequence[str] = (), *, by_id: bool = False) -> dict[str, Any] | None:
        if self.failures:
            raise self.failures.pop(0)
        return {"id": "901", "properties": {"email": email, "firstname": "Zoë"}}

    def search_contacts(self, **_: Any) -> list[dict[str, Any]]:
        return [{"id": "902", "properties": {"phone": "+4930123456", "firstname": "Zoë", "email": None}}]


def _export(tmp_path: Path, gateway: _Gateway) -> tuple[ExportEffect, Context]:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    ensure_schema(engine)
    reader = ExportReader(gateway)  # type: ignore[arg-type]  # only the reads are used
    effect = ExportEffect(CrmRights(engine), tmp_path / "exports", lambda: reader, storage=load_policy().storage)
    command = build_command(RightKind.PORTABILITY, "sk_" + "2" * 40, issued_by=person("dpo:test"))
    ctx = Context(
        command=command,
        now=datetime.now(UTC),
        open_sealed=lambda *_: None,
        handover=Handover(emails=("zoe.quartz@example.com",), phones=("+4930123456",)),
    )
    return effect, ctx


def test_an_export_waits_for_hubspot_instead_of_leaving_it_out(tmp_path: Path) -> None:
    """Policy 9.1: an answer without what HubSpot holds would be incomplete; an outage is retried, not skipped."""
    effect, ctx = _export(tmp_path, _Gateway([HubSpotUnavailable(5.0, "503 from HubSpot")]))
    with pytest.raises(EffectError) as failed:
        effect.apply(ctx)
    assert failed.value.retryable and failed.value.code == "hubspot_unavailable"
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())  # nothing half-written
    result = effect.apply(ctx)  # HubSpot is back: the retry writes the whole export
    assert result.evidence["sources"] == {"crm": "not_found", "hubspot": "ok"}
    written = json.loads(Path(str(result.evidence["path"])).read_text())
    [hubspot] = [s for s in written["sections"] if s["source"] == "hubspot"]
    assert hubspot["records"]["contacts"][0]["properties"]["firstname"] == "Zoë"
    # the contact found by the e-mail, and the one HubSpot holds by the phone alone (a HubSpot-only contact)
    assert [c["id"] for c in hubspot["records"]["contacts"]] == ["901", "902"]
    where = {entry["system"]: entry["countries"] for entry in written["storage"]}  # Art. 15(2): where it is kept
    assert where == {"kafka": ["IE"], "crm": ["IE"], "hubspot": ["US"]}


def test_an_export_hubspot_refuses_is_not_retried_blindly(tmp_path: Path) -> None:
    refused = HubSpotRequestError(401, "INVALID_AUTHENTICATION", "token expired", correlation_id="corr-9")
    effect, ctx = _export(tmp_path, _Gateway([refused]))
    with pytest.raises(EffectError) as failed:
        effect.apply(ctx)
    assert not failed.value.retryable and failed.value.evidence["status"] == 401


def test_an_erasure_deletes_the_subject_s_exports_waiting_for_delivery(tmp_path: Path) -> None:
    """They hold everything that was erased (the portability JSON in clear): policy 9.3 reaches them too."""
    effect, ctx = _export(tmp_path, _Gateway([]))
    written = Path(str(effect.apply(ctx).evidence["path"]))
    assert written.parent == effect.subject_dir(ctx.command.subject_key) and written.exists()
    other = build_command(RightKind.PORTABILITY, "sk_" + "3" * 40, issued_by=person("dpo:test"))
    kept = Path(str(effect.apply(replace(ctx, command=other)).evidence["path"]))
    erasure = build_command(RightKind.ERASURE, ctx.command.subject_key, issued_by=person("dpo:test"))
    result = effect.apply(replace(ctx, command=erasure))
    assert result.evidence["exports_deleted"] == [written.name]
    assert not written.exists() and not written.parent.exists() and kept.exists()
    assert effect.apply(replace(ctx, command=erasure)).status is SinkStatus.NOT_APPLICABLE


def test_an_export_in_dry_run_mode_carries_the_requests_that_would_have_gone_to_hubspot(
    tmp_path: Path, settings: Settings
) -> None:
    """No HubSpot account: the HubSpot section is the person's requests from the dry-run file, said so in its note
    (it answered "not_found" while the file held the person's upserts)."""
    from fakes.contacts import make_tagged

    from pipeline.sinks.hubspot.sink import HubSpotSink, make_gateway

    HubSpotSink.from_settings(settings).write([make_tagged("zoe.quartz@example.com")])
    effect, ctx = _export(tmp_path, make_gateway(settings))  # type: ignore[arg-type]
    result = effect.apply(ctx)
    assert result.evidence["sources"] == {"crm": "not_found", "hubspot": "ok"}
    written = json.loads(Path(str(result.evidence["path"])).read_text())
    [hubspot] = [s for s in written["sections"] if s["source"] == "hubspot"]
    assert "dry run" in hubspot["note"]
    upserts = [r for r in hubspot["records"]["dry_run_requests"] if r["path"].endswith("/batch/upsert")]
    assert [i["id"] for u in upserts for i in u["body"]["inputs"]] == ["zoe.quartz@example.com"]
