"""Run ``leadpipe worker`` as a subprocess with given settings: for the integration tests, the benchmark, demos.

The worker reads its settings from the environment (``LEADPIPE_*``) like any deployment; ``worker_env`` writes a
``Settings`` object into that form, so a test's or a benchmark's settings reach the worker unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pipeline.config import Settings

#: Settings a worker needs to see what its caller sees.
ENV_FIELDS = (
    "environment",
    "home",
    "kafka_bootstrap_servers",
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "topic_prefix",
    "topic_partitions",
    "topic_replication_factor",
    "topics_file",
    "app_id",
    "processing_guarantee",
    "batch_size",
    "batch_timeout_s",
    "worker_instance_id",
    "worker_session_timeout_s",
    "worker_commit_interval_s",
    "policy_file",
    "spam_engine_enabled",
    "spam_engine_url",
    "spam_engine_controller_url",
    "spam_engine_redis_host",
    "spam_engine_redis_port",
    "spam_engine_timeout_s",
    "spam_engine_concurrency",
    "spam_classifier_reload_s",
    "database_url",
    "subject_key_pepper",
    "key_encryption_key",
    "log_level",
)


def worker_env(settings: Settings, base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default: this process's environment) without LEADPIPE_*, plus these settings as LEADPIPE_*."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("LEADPIPE_")}
    for name in ENV_FIELDS:
        value: Any = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"LEADPIPE_{name.upper()}"] = str(value)
    env.update(LEADPIPE_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class WorkerProcess:
    """``leadpipe worker [--only REGISTRAR ...]`` in a subprocess, its output appended to ``log_path``."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        registrars: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.registrars = registrars
        self.env = env or worker_env(settings)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        command = [str(Path(sys.executable).parent / "leadpipe"), "worker"]
        for registrar in self.registrars or ():
            command += ["--only", registrar]
        with self.log_path.open("ab") as log:
            log.write(f"\n---- start {self.starts} ----\n".encode())
            log.flush()
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no leaving the group."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it does not end in time."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
