import io
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from pypdf import PdfReader

from pipeline.rights.export import ExportSection, SubjectExport, to_json, to_pdf

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


def test_characters_without_a_glyph_are_escaped_not_dropped(tmp_path: object) -> None:
    export = sample().model_copy(
        update={"sections": (ExportSection(source="crm", status="ok", records={"notes": [{"t": "张"}]}),)}
    )
    reader = PdfReader(io.BytesIO(to_pdf(export, PASSWORD)))
    reader.decrypt(PASSWORD)
    text = "".join(p.extract_text() for p in reader.pages)
    assert "张" in text or "\\u5f20" in text


def test_short_password_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        to_pdf(sample(), "short")
