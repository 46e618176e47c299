"""The spam integration tests' own engine: a private rspamd + Redis that a test may stop and start."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.kafka.launcher import free_port
from pipeline.spam.launcher import SYSTEM_ROOT, LocalSpamEngine


@pytest.fixture(scope="module")
def private_engine(spam_engine: Any) -> Iterator[LocalSpamEngine]:
    """Its own directory and ports; the session engine's compiled regex cache copied in, so it starts in seconds."""
    root = SYSTEM_ROOT / f"spam-engine-it-{uuid.uuid4().hex[:8]}" if os.geteuid() == 0 else None
    if root is None:
        root = Path(os.environ.get("TMPDIR", "/tmp")) / f"leadpipe-spam-it-{uuid.uuid4().hex[:8]}"
    ports = set()
    while len(ports) < 3:
        ports.add(free_port())
    port, controller, redis_port = sorted(ports)
    engine = LocalSpamEngine(root, port=port, controller_port=controller, redis_port=redis_port)
    if spam_engine.launcher is not None:
        engine.copy_regex_cache_from(spam_engine.launcher)
    engine.up()
    try:
        yield engine
    finally:
        engine.down()
        shutil.rmtree(root, ignore_errors=True)
