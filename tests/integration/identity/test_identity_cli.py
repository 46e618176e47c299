"""``leadpipe users`` and ``leadpipe keys`` against a real database, as an operator would type them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pipeline.cli import app as cli
from pipeline.config import get_settings
from pipeline.db import make_engine
from pipeline.identity.bootstrap import bootstrap_key_path, ensure_bootstrap_admin
from pipeline.identity.store import IdentityStore
from pipeline.models.identity import Role

pytestmark = pytest.mark.integration

KEY = re.compile(r"lpk_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")
Run = Callable[..., Result]


@pytest.fixture
def run(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    monkeypatch.setenv("LEADPIPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEADPIPE_DATABASE_URL", db_url)
    monkeypatch.setenv("LEADPIPE_API_KEY_PEPPER", "cli-test-pepper")
    monkeypatch.setenv("LEADPIPE_ENVIRONMENT", "test")
    monkeypatch.delenv("LEADPIPE_API_KEY", raising=False)
    get_settings.cache_clear()

    def invoke(*args: str, key: str | None = None, env_columns: bool = False) -> Result:
        env = {"LEADPIPE_API_KEY": key} if key else {}
        if env_columns:
            env["COLUMNS"] = "200"  # an example on one line
        get_settings.cache_clear()
        return CliRunner().invoke(cli, list(args), env=env)

    yield invoke
    get_settings.cache_clear()


def test_bootstrap_then_manage_people_and_keys_with_the_admin_key(run: Run, db_url: str, tmp_path: Path) -> None:
    boot = run("users", "bootstrap")
    assert boot.exit_code == 0, boot.output
    admin_key = KEY.search(boot.output)
    assert admin_key is not None
    assert "nothing done" in run("users", "bootstrap").output  # once only

    added = run("users", "add", "ana", "--display-name", "Ana Garcia", "--role", "dpo", key=admin_key.group())
    assert added.exit_code == 0 and "ana (person, enabled): dpo" in added.output
    client = run("users", "add", "web-form", "--client", "-r", "producer", key=admin_key.group())
    assert client.exit_code == 0 and "web-form (client, enabled): producer" in client.output
    assert "ana (person, enabled): dpo, sales" in run("users", "grant", "ana", "sales", key=admin_key.group()).output
    assert "dpo, sales" in run("users", "list", key=admin_key.group()).output
    bound = run("users", "bind", "web-form", "wp-contact", key=admin_key.group())
    assert bound.exit_code == 0 and "sources wp-contact" in bound.output

    created = run("keys", "create", "ana", "--label", "laptop", "--expires-in-days", "30", key=admin_key.group())
    assert created.exit_code == 0, created.output
    ana_key = KEY.search(created.output)
    assert ana_key is not None
    listing = run("keys", "list", "ana", key=admin_key.group())
    key_id = ana_key.group()[4:16]
    assert key_id in listing.output and "laptop" in listing.output and "active" in listing.output
    assert ana_key.group() not in listing.output

    # ana is a DPO, not an admin: she cannot manage people
    refused = run("users", "add", "eve", "--role", "admin", key=ana_key.group())
    assert refused.exit_code == 2 and "lacks the permission principals:manage" in refused.output

    assert run("keys", "revoke", key_id, key=admin_key.group()).exit_code == 0
    revoked = run("users", "list", key=ana_key.group())
    assert revoked.exit_code == 2 and "revoked_key" in revoked.output
    # --key-file names the key instead of the variable
    key_file = tmp_path / "admin-key"
    key_file.write_text(admin_key.group() + "\n")
    listed = run("--key-file", str(key_file), "users", "list")
    assert listed.exit_code == 0, listed.output
    missing = run("--key-file", str(tmp_path / "nowhere"), "users", "list")
    assert missing.exit_code == 2
    assert run("users", "disable", "ana", key=admin_key.group()).exit_code == 0
    assert "ana (person, disabled)" in run("users", "revoke", "ana", "sales", key=admin_key.group()).output

    engine = make_engine(db_url)
    try:
        store = IdentityStore(engine, b"cli-test-pepper")
        actions = [(r.action, r.principal.display_name) for r in store.unpublished_audit() if r.principal]
    finally:
        engine.dispose()
    assert ("identity.principal_added", "Administrator") in actions  # the admin's key named who added ana
    assert ("identity.key_revoked", "Administrator") in actions


def test_refusals_are_clear(run: Run) -> None:
    admin = KEY.search(run("users", "bootstrap").output)
    assert admin is not None
    bad_role = run("users", "add", "ana", "--role", "superuser", key=admin.group())
    assert bad_role.exit_code == 2 and "superuser" in bad_role.output
    mixed = run("users", "add", "bot", "--client", "-r", "producer", "-r", "sales", key=admin.group())
    assert mixed.exit_code == 1 and "cannot be combined" in mixed.output
    missing = run("keys", "create", "nobody", key=admin.group())
    assert missing.exit_code == 1 and "no user or client named 'nobody'" in missing.output
    wrong_key = run("users", "list", key="lpk_aaaaaaaaaaaa_" + "A" * 43)
    assert wrong_key.exit_code == 2 and "unknown_key" in wrong_key.output
    # not on the embedded default (a database URL is set): no key, no command; no name can be typed instead
    keyless = run("users", "list")
    assert keyless.exit_code == 2 and "LEADPIPE_API_KEY" in keyless.output


def test_production_requires_a_key_except_for_bootstrap(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADPIPE_ENVIRONMENT", "production")
    monkeypatch.setenv("LEADPIPE_SUBJECT_KEY_PEPPER", "p")
    refused = run("users", "list")
    assert refused.exit_code == 2 and "LEADPIPE_API_KEY" in refused.output
    assert KEY.search(run("users", "bootstrap").output)


def test_every_command_has_help_with_an_example(run: Run) -> None:
    for group, commands in {
        "users": ["add", "list", "disable", "enable", "grant", "revoke", "bind", "unbind", "bootstrap"],
        "keys": ["create", "list", "revoke"],
    }.items():
        for command in commands:
            shown = run(group, command, "--help", env_columns=True)
            assert shown.exit_code == 0 and f"Example: leadpipe {group} {command}" in shown.output, shown.output


def test_first_start_writes_the_admin_key_once_to_a_private_file(db_url: str, tmp_path: Path) -> None:
    from pipeline.config import explicit_settings
    from pipeline.db import ensure_schema

    settings = explicit_settings(environment="development", home=tmp_path, api_key_pepper="p")
    engine = make_engine(db_url)
    ensure_schema(engine)
    try:
        store = IdentityStore(engine, settings.api_key_pepper_bytes())
        path = ensure_bootstrap_admin(settings, store)
        assert path == bootstrap_key_path(settings) and path.stat().st_mode & 0o777 == 0o600
        key = path.read_text().strip()
        assert store.authenticate_key(key).roles == {Role.ADMIN}
        assert ensure_bootstrap_admin(settings, store) is None and path.read_text().strip() == key
        production = explicit_settings(environment="production", home=tmp_path / "p", api_key_pepper="p")
        assert ensure_bootstrap_admin(production, store) is None
    finally:
        engine.dispose()
