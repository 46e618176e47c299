"""docs/samples/ holds one sample file per channel, documented in docs/ingest.md: ``leadpipe import`` accepts each of
them whole against the real broker (every record published, none rejected), and what a consumer reads back from
``contacts.normalized`` is the people the sample names."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings, get_settings
from pipeline.importer import guess_format, split_records
from pipeline.kafka.consumer import read_to_end
from pipeline.models.common import Channel
from pipeline.models.records import ContactRecord
from pipeline.normalize import visitor_key
from pipeline.runtime import Runtime

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[3] / "docs" / "samples"
INGEST_DOC = SAMPLES.parent / "ingest.md"

#: The e-mail addresses (or, without one, the phone) each sample names, in any order.
EXPECTED: dict[Channel, set[str]] = {
    Channel.WEB_FORM: {"ana.garcia@example.com", "lena.schmidt@example.org"},
    Channel.CHATBOT: {"mark.olsen@example.net"},
    Channel.EMAIL: {"sophie.martin@example.fr", "tom.baker@example.co.uk"},
    Channel.MESSENGER: {"+12125550142", "priya.k@example.in"},
    Channel.EVENT: {"jonas.berg@example.se", "chloe.dubois@example.fr"},
    Channel.CUSTOMER: {"emma.johansson@example.se", "john.smith@example.com"},
    # the first page view is the anonymous visitor's: keyed by its cookie id, named here by its visitor key
    Channel.WEBSITE: {
        "peter.lindqvist@example.fi",
        "maria.rossi@example.it",
        visitor_key(b"test-pepper", "6f1c2d3e-0001"),
    },
}


def _sample(channel: Channel) -> Path:
    (path,) = SAMPLES.glob(f"{channel.value}.*")
    return path


def test_every_channel_has_one_sample_and_the_docs_name_it() -> None:
    assert {p.stem for p in SAMPLES.iterdir()} == {c.value for c in Channel}
    text = INGEST_DOC.read_text()
    for channel in Channel:
        assert f"docs/samples/{_sample(channel).name}" in text


@pytest.fixture
def cli_env(kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("LEADPIPE_"):
            monkeypatch.delenv(name)
    for name, value in {
        "LEADPIPE_HOME": str(kafka_settings.home),
        "LEADPIPE_ENVIRONMENT": "test",
        "LEADPIPE_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "LEADPIPE_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "LEADPIPE_SUBJECT_KEY_PEPPER": "test-pepper",
        "LEADPIPE_KEY_ENCRYPTION_KEY": kafka_settings.key_encryption_key.get_secret_value(),  # type: ignore[union-attr]
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("channel", list(Channel), ids=lambda c: c.value)
def test_leadpipe_import_accepts_the_sample_of_each_channel(channel: Channel, kafka_settings: Settings) -> None:
    path = _sample(channel)
    source_id = f"docs-sample-{channel.value}"
    result = CliRunner().invoke(app, ["import", channel.value, str(path), "--source-id", source_id])
    assert result.exit_code == 0, result.output
    records = len(split_records(path.read_bytes(), guess_format(path)))
    assert records >= 1

    runtime = Runtime(get_settings())
    try:
        found = set()
        for record in read_to_end(kafka_settings, ["contacts.normalized"]):
            event = runtime.codec.open_contact(ContactRecord.model_validate_json(record.value or b""))
            if event.channel is channel and event.provenance.source_id == source_id:
                found.add(event.person.email or event.person.phone or event.provenance.visitor_key)
    finally:
        runtime.engine.dispose()
    assert found == EXPECTED[channel]
