"""Against the real broker (issue 17): a number that cannot exist and a hostile e-mail header reach the dead-letter
topic through the real ingest paths (the HTTP API and ``leadpipe import``), with their reason and the payload
sealed; a contact whose e-mail identifies them is published without the number, with the note saying why."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pipeline.api.app import create_api
from pipeline.cli import app as cli
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.ingest.api import sign
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.records import ContactRecord, DeadLetter
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = "inbound-secret"
TOPICS = ["contacts.normalized", "contacts.dlq.ingest"]
NO_SUCH_NUMBER = "+1 (123) 456-7890"  # area code 123 does not exist: possible length, not a valid number


def test_the_api_dead_letters_an_invalid_phone_and_header_abuse(kafka_settings: Settings) -> None:
    sources = {
        "forms": {"channel": "web_form", "hmac_secret": SECRET},
        "mail": {"channel": "email", "hmac_secret": SECRET},
    }
    settings = kafka_settings.model_copy(update={"sources": Settings.model_validate({"sources": sources}).sources})
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    publisher = ConfirmingPublisher(settings)
    client = TestClient(create_api(runtime, publisher))

    def post(source: str, body: bytes, content_type: str) -> tuple[int, dict[str, object]]:
        response = client.post(
            f"/v1/sources/{source}", content=body, headers={"content-type": content_type, **sign(SECRET, body)}
        )
        return response.status_code, response.json()

    phone_only = f'{{"name": "Ana Garcia", "phone": "{NO_SUCH_NUMBER}"}}'.encode()
    kept = f'{{"email": "ana.garcia@example.com", "phone": "{NO_SUCH_NUMBER}"}}'.encode()
    hostile = b"From: ana.garcia@example.com\r\nContent-Type: text/plain" + b";" * 7000 + b"\r\n\r\nHello"
    status, phone_answer = post("forms", phone_only, "application/json")
    assert status == 422 and phone_answer["reason"] == "invalid_phone" and phone_answer["dead_lettered"] is True
    assert phone_answer["errors"] == [
        {"field": "phone", "reason": "invalid_phone", "message": "not a phone number that can exist (libphonenumber)"}
    ]
    status, header_answer = post("mail", hostile, "message/rfc822")
    assert status == 422 and header_answer["reason"] == "oversized_headers", header_answer
    status, kept_answer = post("forms", kept, "application/json")
    assert status == 202, kept_answer
    publisher.close()

    got = read_to_end(settings, TOPICS)
    dead = {
        str(letter.dead_letter_id): letter
        for letter in (
            DeadLetter.model_validate_json(r.value) for r in got if r.topic == "contacts.dlq.ingest" and r.value
        )
    }
    assert {d.reason for d in dead.values()} == {"invalid_phone", "oversized_headers"}
    for answer, body in ((phone_answer, phone_only), (header_answer, hostile)):
        letter = dead[str(answer["dead_letter_id"])]
        assert letter.payload is not None and runtime.codec.sealer.open(letter.payload) == body
        assert letter.stage == "ingest" and "456" not in letter.error
    [event] = [
        runtime.codec.open_contact(ContactRecord.model_validate_json(r.value))
        for r in got
        if r.topic == "contacts.normalized" and r.value
    ]
    assert (event.person.email, event.person.phone) == ("ana.garcia@example.com", None)
    assert event.provenance.notes == ("phone_invalid",)
    runtime.engine.dispose()


def test_import_names_the_file_line_of_an_invalid_phone_and_dead_letters_it(
    cli_runtime: Runtime, tmp_path: Path
) -> None:
    cards = tmp_path / "cards.csv"
    cards.write_text(
        "Name,Email,Phone,Notes,Event Date\n"
        'Ana Garcia,ana.garcia@example.com,+49 30 1234567,"met at\nthe stand",2024-05-14\n'
        f"Bob Stone,,{NO_SUCH_NUMBER.replace(',', '')},,2024-05-14\n"
    )
    result = CliRunner().invoke(cli, ["import", "event", str(cards), "--source-id", "expo"])
    assert result.exit_code == 1, result.output
    assert "line 4: phone: not a phone number that can exist" in result.output  # the header is line 1, Ana 2-3
    [letter] = [
        DeadLetter.model_validate_json(r.value)
        for r in read_to_end(cli_runtime.settings, ["contacts.dlq.ingest"])
        if r.value
    ]
    assert letter.reason == "invalid_phone"
    assert b"Bob Stone" in cli_runtime.codec.sealer.open(letter.payload)  # type: ignore[arg-type]
