"""The first admin: how a fresh installation gets someone who can create everyone else.

Two ways, one store call (``IdentityStore.bootstrap_admin``, which does nothing once an enabled admin exists):

- ``leadpipe users bootstrap`` prints the admin's key once (production: run it once, keep the key in a vault);
- on the embedded default (development), the first ``leadpipe serve`` calls ``ensure_bootstrap_admin``, which writes
  the key once to ``<LEADPIPE_HOME>/secrets/bootstrap-admin-key`` (mode 0600) and logs that path, never the key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pipeline.config import Settings
from pipeline.identity.store import IdentityStore
from pipeline.logging import get_logger
from pipeline.models.identity import system_principal

log = get_logger(__name__)


def bootstrap_key_path(settings: Settings) -> Path:
    return settings.home / "secrets" / "bootstrap-admin-key"


def write_secret_file(path: Path, secret: str) -> None:
    """Write a secret readable by its owner only; never over an existing file (a key is shown once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    try:
        os.link(tmp, path)  # fails if the file exists: never overwrite a key someone may be using
    finally:
        tmp.unlink()


def ensure_bootstrap_admin(settings: Settings, store: IdentityStore) -> Path | None:
    """In development, on first start: the first admin with its key in a 0600 file. Returns the file when created.

    Production never does this by itself (an admin key on a server's disk is not a default to ship).
    """
    if settings.environment == "production":
        return None
    path = bootstrap_key_path(settings)
    if path.exists():
        return None
    created = store.bootstrap_admin(system_principal("first-start"))
    if created is None:
        return None
    write_secret_file(path, created.secret)
    log.warning("bootstrap_admin_created", key_id=created.key_id, key_file=str(path))
    return path
