"""Every client behind a broker that asks for a user and a password (SASL): topics, ingest, readers and a worker.

A broker of its own (the launcher with a SASL/PLAIN listener, own directory and free ports); the clients are given
only the SASL listener, so nothing can pass over the plaintext one. The same settings configure SCRAM and TLS
(``pipeline/kafka/security.py``); PLAIN is what a local broker can check without a credentials store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.agents.launch import WorkerProcess
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.ingest.service import IngestService
from pipeline.kafka.consumer import ReadError, read_until
from pipeline.kafka.launcher import LocalKafka, free_port
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing, PublishError
from pipeline.kafka.topics import apply_topics
from pipeline.models.common import Channel
from pipeline.models.records import AcceptedRecord
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

USER, PASSWORD = "leadpipe", "s3cret-for-tests"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    from pipeline.config import get_settings

    broker = LocalKafka(
        tmp_path_factory.mktemp("sasl-broker"),
        cache_dir=get_settings().cache_dir,
        kafka_version=get_settings().kafka_version,
        log4j_version=get_settings().kafka_log4j_version,
        port=free_port(),
        controller_port=free_port(),
        sasl_port=free_port(),
        sasl_users={USER: PASSWORD},
    )
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


@pytest.fixture
def sasl_settings(sasl_broker: LocalKafka, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        kafka_bootstrap_servers=sasl_broker.sasl_bootstrap_servers,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username=USER,
        kafka_sasl_password=PASSWORD,
        app_id="lp-sasl",
    )


def test_the_whole_path_runs_over_sasl(sasl_settings: Settings, tmp_path: Path) -> None:
    assert apply_topics(sasl_settings).created
    runtime = Runtime(sasl_settings)
    ensure_schema(runtime.engine)
    form = {"email": "sasl.person@example.com", "first_name": "Sasha", "message": "Please call me back."}
    publisher = ConfirmingPublisher(sasl_settings)
    try:  # closed: its poller would log this broker's refusals into later tests' output once the broker is down
        result = IngestService(runtime, publisher).submit(
            "site-form", Channel.WEB_FORM, json.dumps(form).encode(), "application/json"
        )
    finally:
        publisher.close()
    assert result.accepted, result
    worker = WorkerProcess(sasl_settings, tmp_path / "worker.log", ["pipeline.agents.processing:register"])
    with worker:
        records = read_until(sasl_settings, ["contacts.accepted"], lambda r: len(r) >= 1, timeout_s=120)
        assert worker.alive(), worker.log_tail()
    accepted = AcceptedRecord.model_validate_json(records[0].value or b"")
    assert accepted.event_id == result.event_ids[0]
    runtime.engine.dispose()


def test_a_wrong_password_is_refused_with_a_clear_error(sasl_settings: Settings) -> None:
    """librdkafka reports a refused login only to an error callback; readers and publishers must not just time out."""
    wrong = sasl_settings.model_copy(update={"kafka_sasl_password": SecretStr("not-the-password")})
    started = time.monotonic()
    with pytest.raises(ReadError, match=r"refused the connection: .*[Aa]uthentication failed"):
        read_until(wrong, ["contacts.accepted"], lambda r: len(r) >= 1, timeout_s=60)
    publisher = ConfirmingPublisher(wrong)
    try:
        with pytest.raises(PublishError, match=r"refused the connection: .*[Aa]uthentication failed"):
            publisher.publish([Outgoing("audit", "k", b"{}")], timeout_s=60)
    finally:
        publisher.close(timeout_s=0)
    assert time.monotonic() - started < 30  # the broker's reason, long before the timeouts


def test_sasl_without_credentials_is_refused_at_start(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="needs kafka_sasl_username and kafka_sasl_password"):
        make_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username=USER)
