"""How clients authenticate to the brokers and encrypt the traffic: one place for every client leadpipe runs.

librdkafka (``confluent-kafka``: ingest, CLI, SDK, readers, topics) and aiokafka (faust: the workers, through
``pipeline.agents.app.faust_credentials``) name the same things differently; both are built from the same settings,
so a cluster that needs SASL/SCRAM over TLS (most managed Kafka services) is configured once
(``LEADPIPE_KAFKA_SECURITY_PROTOCOL`` and friends).
"""

from __future__ import annotations

import ssl
from typing import Any

from confluent_kafka import KafkaError

from pipeline.config import Settings
from pipeline.logging import get_logger

log = get_logger(__name__)


def librdkafka_security(settings: Settings) -> dict[str, Any]:
    """The ``security.*``, ``sasl.*`` and ``ssl.*`` part of a confluent-kafka client's configuration."""
    protocol = settings.kafka_security_protocol
    config: dict[str, Any] = {"security.protocol": protocol}
    if protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None  # Settings refuses SASL without it
        config.update(
            {
                "sasl.mechanisms": settings.kafka_sasl_mechanism,
                "sasl.username": settings.kafka_sasl_username,
                "sasl.password": settings.kafka_sasl_password.get_secret_value(),
            }
        )
    if protocol.endswith("SSL"):
        if settings.kafka_ssl_cafile is not None:
            config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile is not None:
            config["ssl.certificate.location"] = str(settings.kafka_ssl_certfile)
            config["ssl.key.location"] = str(settings.kafka_ssl_keyfile)
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the faust workers (verifying the brokers; with a client certificate for mutual TLS)."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile))
    return context


class ConnectionRefusals:
    """A confluent-kafka ``error_cb`` that remembers why the brokers refused the connection.

    librdkafka reports a failed login or TLS handshake only through ``error_cb`` (it keeps retrying, and poll() and
    delivery reports say nothing), so a wrong password would look like a slow broker. Clients check ``refused``
    while they wait and fail with the broker's reason instead of timing out.
    """

    CODES = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})

    def __init__(self, *, log_refusal: bool = True) -> None:
        self.refused: str | None = None
        self.log_refusal = log_refusal

    def __call__(self, error: KafkaError) -> None:
        if error.code() not in self.CODES:
            return
        if self.refused is None and self.log_refusal:
            log.error("kafka_connection_refused", code=error.name(), reason=error.str())
        self.refused = error.str()
