"""What every librdkafka client of leadpipe shares (producers, readers, the topics admin, the CLI's check).

- ``client_config``: the brokers, the security settings (``security.py``) and librdkafka's own log routed through
  the ``librdkafka`` logger, so its lines (``%3|...|FAIL|...``) are redacted, levelled and rendered like every other
  log line instead of being written raw to stderr in the middle of a command's output.
- ``check_kafka``: the check commands that need the broker run first, so an unreachable broker is one line naming
  what was tried and what to do, within seconds, not a retry storm and a traceback.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.config import Settings
from pipeline.kafka.security import ConnectionRefusals, librdkafka_security
from pipeline.logging import get_logger

log = get_logger("librdkafka")

#: What to do when the broker cannot be reached; the CLI prints it after the reason.
KAFKA_HINT = "start a local broker with `leadpipe kafka up`, or point LEADPIPE_KAFKA_BOOTSTRAP_SERVERS at a running one"

_DIGITS = re.compile(r"\d+")


class LibrdkafkaLog:
    """confluent-kafka's ``logger``: each librdkafka line becomes a ``librdkafka`` event at its syslog level.

    librdkafka repeats a failing connection's line on every reconnect (a stopped broker: one error a second per
    client); a line seen within the last ``repeat_s`` seconds (digits aside) is logged at DEBUG. ``quiet`` logs every
    line at DEBUG: for a client whose failure its caller reports itself (the reachability check).
    """

    def __init__(self, *, quiet: bool = False, repeat_s: float = 60.0) -> None:
        self.quiet = quiet
        self.repeat_s = repeat_s
        self._seen: dict[tuple[str, str], float] = {}

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """Called by confluent-kafka as ``logger.log(level, "%s [%s] %s", facility, client, text)``."""
        facility, client, text = (str(a) for a in args) if len(args) == 3 else ("", "", fmt % args)
        if self.quiet:
            level = logging.DEBUG
        elif level > logging.DEBUG:
            now = time.monotonic()
            key = (facility, _DIGITS.sub("#", text))
            if now - self._seen.get(key, -self.repeat_s) < self.repeat_s:
                level = logging.DEBUG
            else:
                self._seen[key] = now
        log.log(level, "librdkafka", facility=facility, client=client, detail=text)


def client_config(settings: Settings, *, quiet: bool = False) -> dict[str, Any]:
    """The configuration every confluent-kafka client starts from: brokers, security, log routing."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        **librdkafka_security(settings),
        "logger": LibrdkafkaLog(quiet=quiet),
    }


class KafkaUnavailable(RuntimeError):
    """The brokers could not be reached (or refused the client); the message says what was tried and why."""

    hint = KAFKA_HINT


def _addresses(servers: str) -> list[tuple[str, int]]:
    out = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


def check_kafka(settings: Settings, timeout_s: float = 5.0) -> None:
    """Raise ``KafkaUnavailable`` unless a broker answers a metadata request within ``timeout_s``.

    A TCP connection first (a refused or unroutable address fails at once, before librdkafka starts retrying), then
    a metadata request with the client's real security settings (a wrong password or certificate is named).
    """
    servers = settings.kafka_bootstrap_servers
    deadline = time.monotonic() + timeout_s
    failures = []
    for host, port in _addresses(servers):
        try:
            socket.create_connection((host, port), timeout=max(0.1, min(2.0, deadline - time.monotonic()))).close()
            break
        except OSError as exc:
            failures.append(f"{host}:{port}: {(exc.strerror or str(exc) or type(exc).__name__).lower()}")
    else:
        raise KafkaUnavailable(f"cannot reach Kafka at {servers} ({'; '.join(failures) or 'no host:port given'})")
    refusals = ConnectionRefusals(log_refusal=False)
    config: dict[str, Any] = {**client_config(settings, quiet=True), "error_cb": refusals}
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=max(0.5, deadline - time.monotonic()))
    except KafkaException as exc:
        why = refusals.refused or f"no answer to a metadata request within {timeout_s:g}s: {exc.args[0].str()}"
        raise KafkaUnavailable(f"Kafka at {servers} did not serve the client ({why})") from exc
    finally:
        admin.poll(0)  # hand over the log lines it queued (at DEBUG)


__all__ = ["KAFKA_HINT", "KafkaUnavailable", "LibrdkafkaLog", "check_kafka", "client_config"]
