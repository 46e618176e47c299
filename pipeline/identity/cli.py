"""``leadpipe users add|list|disable|enable|grant|revoke|bootstrap`` and ``leadpipe keys create|list|revoke``.

Who runs these: the principal of ``LEADPIPE_API_KEY`` (a key of yours; it must hold ``principals:manage``), or,
outside production, the local login (whoever runs the CLI holds the database credentials anyway; the audit names
the login). In production a key is required, except for ``users bootstrap``, which only ever creates the first
admin and does nothing once an enabled admin exists. A key's secret is printed once and never stored.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.clikit import DATABASE, exits, needs
from pipeline.config import Settings, get_settings
from pipeline.db import ensure_schema
from pipeline.identity.bootstrap import write_secret_file
from pipeline.identity.permissions import Permission, allowed
from pipeline.identity.store import AuthenticationFailed, IdentityError, IdentityStore, PrincipalInfo
from pipeline.models.identity import Principal, PrincipalKind, Role
from pipeline.runtime import Runtime

users_app = typer.Typer(help="People and machine clients, and their roles (admin).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of people and machine clients (admin).", no_args_is_help=True)

EXIT_REFUSED = 2
API_KEY_ENV = "LEADPIPE_API_KEY"
#: Every users/keys command: the identity tables, and who may change them.
IDENTITY_EXITS = {
    1: "the change was refused by the identity store (unknown name, a role that does not fit, ...)",
    EXIT_REFUSED: f"refused: {API_KEY_ENV} missing (production), not valid, or without the permission",
}


def operator_principal(store: IdentityStore, settings: Settings, permission: Permission) -> Principal:
    """Who runs this command, checked against ``permission``; exits 2 with the reason when refused."""
    presented = os.environ.get(API_KEY_ENV)
    if presented:
        try:
            principal = store.authenticate_key(presented)
        except AuthenticationFailed as exc:
            _refuse(f"{API_KEY_ENV} does not authenticate ({exc.reason})")
        if not allowed(principal, permission):
            _refuse(f"{principal.display_name} lacks the permission {permission.value}")
        return principal
    if settings.environment == "production":
        _refuse(f"set {API_KEY_ENV} to an API key of yours (production requires one)")
    login = getpass.getuser()
    return Principal(principal_id=f"local:{login}", display_name=login, kind=PrincipalKind.PERSON, auth="local")


def _refuse(message: str) -> None:
    typer.echo(f"refused: {message}", err=True)
    raise typer.Exit(EXIT_REFUSED)


@contextmanager
def _store() -> Iterator[tuple[IdentityStore, Settings]]:
    settings = get_settings()
    runtime = Runtime(settings)
    try:
        ensure_schema(runtime.engine)
        yield IdentityStore(runtime.engine, settings.api_key_pepper_bytes()), settings
    except IdentityError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        runtime.engine.dispose()


def _show(info: PrincipalInfo) -> None:
    state = "disabled" if info.disabled else "enabled"
    roles = ", ".join(sorted(r.value for r in info.roles)) or "no roles"
    typer.echo(f"{info.name} ({info.kind.value}, {state}): {roles}  id {info.principal_id}")


RoleArg = Annotated[list[Role], typer.Argument(help="One or more of: sales, reviewer, dpo, admin, producer")]
NameArg = Annotated[str, typer.Argument(help="The user's or client's name (or its id)")]


@users_app.command("add")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def add(
    name: NameArg,
    display_name: Annotated[str, typer.Option(help="Shown in the audit trail; default: the name")] = "",
    client: Annotated[bool, typer.Option("--client", help="A machine client (a source, an integration)")] = False,
    role: Annotated[list[Role] | None, typer.Option("--role", "-r", help="A role to grant; repeatable")] = None,
) -> None:
    """Add a person or a machine client.

    Example: leadpipe users add ana --display-name "Ana Garcia" --role dpo

    Example: leadpipe users add web-form --client --role producer
    """
    with _store() as (store, settings):
        by = operator_principal(store, settings, Permission.PRINCIPALS_MANAGE)
        kind = PrincipalKind.CLIENT if client else PrincipalKind.PERSON
        _show(store.add_principal(name, display_name=display_name or name, kind=kind, roles=role or [], by=by))


@users_app.command("list")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def list_users() -> None:
    """Every person and client with kind, state and roles.

    Example: leadpipe users list
    """
    with _store() as (store, settings):
        operator_principal(store, settings, Permission.PRINCIPALS_READ)
        table = Table("name", "display name", "kind", "state", "roles", "sign-in", "created", "id")
        for info in store.list_principals():
            table.add_row(
                info.name,
                info.display_name,
                info.kind.value,
                "disabled" if info.disabled else "enabled",
                ", ".join(sorted(r.value for r in info.roles)) or "-",
                "single sign-on" if info.issuer else "API key",
                info.created_at.strftime("%Y-%m-%d"),
                info.principal_id,
            )
        Console(width=200).print(table)


@users_app.command("disable")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def disable(name: NameArg) -> None:
    """Disable a person or client: every key and sign-in of it is refused from the next request on.

    Example: leadpipe users disable ana
    """
    with _store() as (store, settings):
        _show(store.set_disabled(name, True, by=operator_principal(store, settings, Permission.PRINCIPALS_MANAGE)))


@users_app.command("enable")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def enable(name: NameArg) -> None:
    """Enable a disabled person or client again (its unexpired, unrevoked keys work again).

    Example: leadpipe users enable ana
    """
    with _store() as (store, settings):
        _show(store.set_disabled(name, False, by=operator_principal(store, settings, Permission.PRINCIPALS_MANAGE)))


@users_app.command("grant")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def grant(name: NameArg, roles: RoleArg) -> None:
    """Grant roles (the producer role stands alone and belongs to clients only).

    Example: leadpipe users grant sam sales
    """
    with _store() as (store, settings):
        _show(store.grant(name, roles, by=operator_principal(store, settings, Permission.PRINCIPALS_MANAGE)))


@users_app.command("revoke")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def revoke(name: NameArg, roles: RoleArg) -> None:
    """Take roles away.

    Example: leadpipe users revoke sam sales
    """
    with _store() as (store, settings):
        _show(store.revoke(name, roles, by=operator_principal(store, settings, Permission.PRINCIPALS_MANAGE)))


@users_app.command("bootstrap")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def bootstrap(
    key_file: Annotated[
        Path | None, typer.Option(help="Write the key to this file (mode 0600) instead of printing it")
    ] = None,
) -> None:
    """Create the first admin ("admin") and print its API key once; does nothing when an enabled admin exists.

    Use the key to create the real people and their keys, then revoke it.

    Example: leadpipe users bootstrap
    """
    with _store() as (store, _settings):
        login = getpass.getuser()
        by = Principal(principal_id=f"local:{login}", display_name=login, kind=PrincipalKind.PERSON, auth="local")
        created = store.bootstrap_admin(by)
        if created is None:
            typer.echo("an enabled admin exists already: nothing done (ask them for a key)")
            return
        if key_file is not None:
            write_secret_file(key_file, created.secret)
            typer.echo(
                f"admin created; its key ({created.key_id}, expires {_day(created.expires_at)}) is in {key_file}"
            )
        else:
            typer.echo(f"admin created; its API key (shown once, expires {_day(created.expires_at)}):")
            typer.echo(created.secret)


@keys_app.command("create")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def create_key(
    name: NameArg,
    label: Annotated[str, typer.Option(help="What the key is for (shown in keys list)")] = "",
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Lifetime; default LEADPIPE_API_KEY_TTL_DAYS (90)")
    ] = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="A key that never expires (avoid)")] = False,
) -> None:
    """Create an API key for a person or client and print it once (only its hash is stored).

    Example: leadpipe keys create web-form --label "contact form on www" --expires-in-days 365
    """
    with _store() as (store, settings):
        by = operator_principal(store, settings, Permission.PRINCIPALS_MANAGE)
        days = expires_in_days or settings.api_key_ttl_days
        created = store.create_key(name, by=by, label=label, expires_in=None if no_expiry else timedelta(days=days))
        typer.echo(f"key {created.key_id} for {name}, expires {_day(created.expires_at)}; shown once:")
        typer.echo(created.secret)


@keys_app.command("list")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def list_keys(name: Annotated[str | None, typer.Argument(help="Only this user's or client's keys")] = None) -> None:
    """API keys with owner, state, expiry and last use (never the secret).

    Example: leadpipe keys list ana
    """
    with _store() as (store, settings):
        operator_principal(store, settings, Permission.PRINCIPALS_READ)
        now = datetime.now(UTC)
        table = Table("key id", "owner", "label", "state", "created", "expires", "last used")
        for key in store.list_keys(name):
            table.add_row(
                key.key_id,
                key.principal_name,
                key.label or "-",
                key.state(now),
                _day(key.created_at),
                _day(key.expires_at),
                _day(key.last_used_at, never="never"),
            )
        Console(width=200).print(table)


@keys_app.command("revoke")
@needs(DATABASE)
@exits(IDENTITY_EXITS)
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key id (keys list shows it)")]) -> None:
    """Revoke an API key: refused from the next request on.

    Example: leadpipe keys revoke 7x2kq4mzp3ab
    """
    with _store() as (store, settings):
        store.revoke_key(key_id, by=operator_principal(store, settings, Permission.PRINCIPALS_MANAGE))
        typer.echo(f"key {key_id} revoked")


def _day(moment: datetime | None, never: str = "never") -> str:
    return never if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
