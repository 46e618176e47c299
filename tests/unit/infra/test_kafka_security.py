"""One set of settings, the same security for librdkafka (ingest, CLI, SDK) and aiokafka (faust workers)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import faust
import pytest
from faust.types.auth import AuthProtocol, SASLMechanism

from pipeline.agents.app import faust_credentials
from pipeline.config import Settings
from pipeline.kafka.consumer import _consumer
from pipeline.kafka.producer import make_producer
from pipeline.kafka.security import librdkafka_security, ssl_context


def test_plaintext_by_default(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert librdkafka_security(settings) == {"security.protocol": "PLAINTEXT"}
    assert ssl_context(settings) is None and faust_credentials(settings) is None


def test_sasl_scram_over_tls_for_both_client_libraries(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc-leadpipe",
        kafka_sasl_password="pw",
    )
    assert librdkafka_security(settings) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "svc-leadpipe",
        "sasl.password": "pw",
    }
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL and credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    assert (credentials.username, credentials.password) == ("svc-leadpipe", "pw")
    context = credentials.ssl_context
    assert context is not None and context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert "pw" not in repr(settings) and "pw" not in repr(credentials)


def test_tls_with_a_private_ca_and_a_client_certificate(make_settings: Callable[..., Settings], tmp_path: Any) -> None:
    settings = make_settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=tmp_path / "ca.pem",
        kafka_ssl_certfile=tmp_path / "client.pem",
        kafka_ssl_keyfile=tmp_path / "client.key",
    )
    assert librdkafka_security(settings) == {
        "security.protocol": "SSL",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "client.pem"),
        "ssl.key.location": str(tmp_path / "client.key"),
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "needs kafka_sasl_username and kafka_sasl_password"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "c.pem"}, "go together"),
    ],
)
def test_incomplete_security_settings_are_refused_at_start(
    make_settings: Callable[..., Settings], values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_settings(**values)


def test_every_confluent_client_gets_the_security_settings(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Producer, reader and admin are built from the same helper (a client left out would connect in clear)."""
    seen: list[dict[str, Any]] = []

    def capture(config: dict[str, Any]) -> object:
        seen.append(config)
        return object()

    monkeypatch.setattr("pipeline.kafka.producer.Producer", capture)
    monkeypatch.setattr("pipeline.kafka.consumer.Consumer", capture)
    monkeypatch.setattr("pipeline.kafka.topics.AdminClient", capture)
    from pipeline.kafka.topics import make_admin

    settings = make_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="p")
    make_producer(settings)
    _consumer(settings, "read_committed")
    make_admin(settings)
    assert [c["security.protocol"] for c in seen] == ["SASL_SSL"] * 3
    assert all(c["sasl.username"] == "u" for c in seen)
