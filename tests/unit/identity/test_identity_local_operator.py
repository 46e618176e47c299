"""The embedded default's local operator (no API key, the SQLite database under LEADPIPE_HOME): the bootstrapped
admin's key names who runs the command; its expiry must not lock the machine's owner out of their own CLI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import typer
from sqlalchemy import update

from pipeline.config import Settings
from pipeline.db import disposing_engine
from pipeline.identity.operator import resolve_operator
from pipeline.identity.permissions import Permission
from pipeline.identity.tables import ApiKeyRow


@pytest.fixture
def settings(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("LEADPIPE_API_KEY", raising=False)
    return make_settings()


def _bootstrap_key(settings: Settings, **values: object) -> None:
    with disposing_engine(settings.resolved_database_url) as engine, engine.begin() as connection:
        connection.execute(update(ApiKeyRow).where(ApiKeyRow.label == "bootstrap").values(**values))


def test_the_local_operator_still_runs_commands_once_the_bootstrap_key_expired(settings: Settings) -> None:
    first = resolve_operator(settings, Permission.CRM_READ)  # the first command bootstraps the admin
    assert first.auth == "local"
    _bootstrap_key(settings, expires_at=datetime(2020, 1, 1, tzinfo=UTC))  # 30 days after the first start
    later = resolve_operator(settings, Permission.CRM_READ)
    assert later.auth == "local" and later.principal_id == first.principal_id


def test_a_revoked_bootstrap_key_still_refuses(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Revoking it is an admin's act ("create real people with it, then revoke it"): then a key is needed."""
    resolve_operator(settings, Permission.CRM_READ)
    _bootstrap_key(settings, revoked_at=datetime.now(UTC))
    with pytest.raises(typer.Exit):
        resolve_operator(settings, Permission.CRM_READ)
    assert "revoked_key" in capsys.readouterr().err
