"""``leadpipe users add|list|disable|enable|grant|revoke|bind|unbind|bootstrap``, ``leadpipe keys create|list|revoke``.

Who runs these: the operator (``pipeline/identity/operator.py``: an API key of an admin, or on the embedded default
the bootstrapped admin); the audit names them. ``users bootstrap`` needs no key: it only ever creates the first
admin and does nothing once an enabled admin exists. A key's secret is printed once and never stored.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.clikit import DATABASE, Declaration, exits, fails_on, needs
from pipeline.config import Settings, get_settings
from pipeline.identity.bootstrap import write_secret_file
from pipeline.identity.operator import (
    API_KEY_ENV,
    EXIT_REFUSED,
    identity_store,
    operator,
    operator_command,
    without_operator,
)
from pipeline.identity.permissions import Permission
from pipeline.identity.store import IdentityError, IdentityStore, PrincipalInfo
from pipeline.models.identity import Principal, PrincipalKind, Role

users_app = typer.Typer(help="People and machine clients, and their roles (admin).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of people and machine clients (admin).", no_args_is_help=True)


#: Every users/keys command: the identity tables, and who may change them.
IDENTITY_EXITS = {
    1: "the change was refused by the identity store (unknown name, a role that does not fit, ...)",
    EXIT_REFUSED: f"refused: no API key ({API_KEY_ENV} or --key-file) off the embedded default, not valid, or "
    "without the permission",
}
#: Every users/keys command works on the database and exits ``IDENTITY_EXITS``.
ON_IDENTITY: tuple[Declaration, ...] = (needs(DATABASE), exits(IDENTITY_EXITS))


@contextmanager
def _store() -> Iterator[tuple[IdentityStore, Settings]]:
    settings = get_settings()
    with fails_on(IdentityError, prefix="error: "), identity_store(settings) as store:
        yield store, settings


def _change(edit: Callable[[IdentityStore, Principal], PrincipalInfo]) -> None:
    """Change one principal as the operator (``edit(store, by)``) and show it as it is now."""
    with _store() as (store, _settings):
        _show(edit(store, operator()))


def _show(info: PrincipalInfo) -> None:
    state = "disabled" if info.disabled else "enabled"
    roles = ", ".join(sorted(r.value for r in info.roles)) or "no roles"
    sources = f"  sources {', '.join(sorted(info.sources))}" if info.sources else ""
    typer.echo(f"{info.name} ({info.kind.value}, {state}): {roles}  id {info.principal_id}{sources}")


RoleArg = Annotated[list[Role], typer.Argument(help="One or more of: sales, reviewer, dpo, admin, producer")]
NameArg = Annotated[str, typer.Argument(help="The user's or client's name (or its id)")]


SourceArg = Annotated[str, typer.Argument(help="An ingest source id (LEADPIPE_SOURCES)")]


@users_app.command("add")
@operator_command(Permission.PRINCIPALS_MANAGE, *ON_IDENTITY)
def add(
    name: NameArg,
    display_name: Annotated[str, typer.Option(help="Shown in the audit trail; default: the name")] = "",
    client: Annotated[bool, typer.Option("--client", help="A machine client (a source, an integration)")] = False,
    role: Annotated[list[Role] | None, typer.Option("--role", "-r", help="A role to grant; repeatable")] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="A producer client: an ingest source id it submits as")
    ] = None,
) -> None:
    """Add a person or a machine client.

    Example: leadpipe users add ana --display-name "Ana Garcia" --role dpo

    Example: leadpipe users add web-form --client --role producer --source wp-contact
    """
    with _store() as (store, _settings):
        kind = PrincipalKind.CLIENT if client else PrincipalKind.PERSON
        added = store.add_principal(
            name, display_name=display_name or name, kind=kind, roles=role or [], by=operator(), sources=source or ()
        )
        _show(added)


@users_app.command("list")
@operator_command(Permission.PRINCIPALS_READ, *ON_IDENTITY)
def list_users() -> None:
    """Every person and client with kind, state, roles and bound sources.

    Example: leadpipe users list
    """
    with _store() as (store, _settings):
        table = Table("name", "display name", "kind", "state", "roles", "sign-in", "sources", "created", "id")
        for info in store.list_principals():
            table.add_row(
                info.name,
                info.display_name,
                info.kind.value,
                "disabled" if info.disabled else "enabled",
                ", ".join(sorted(r.value for r in info.roles)) or "-",
                "single sign-on" if info.issuer else "API key",
                ", ".join(sorted(info.sources)) or "-",
                info.created_at.strftime("%Y-%m-%d"),
                info.principal_id,
            )
        Console(width=200).print(table)


@users_app.command("disable")
@operator_command(Permission.PRINCIPALS_MANAGE, *ON_IDENTITY)
def disable(name: NameArg) -> None:
    """Disable a person or client: every key and sign-in of it is refused from the next request on.

    Example: leadpipe users disable ana
    """
    _change(lambda store, by: store.set_disabled(name, True, by=by))


@users_app.command("enable")
@operator_command(Permission.PRINCIPALS_MANAGE, *ON_IDENTITY)
def enable(name: NameArg) -> None:
    """Enable a disabled person or client again (its unexpired, unrevoked keys work again).

    Example: leadpipe users enable ana
    """
    _change(lambda store, by: store.set_disabled(name, False, by=by))


@users_app.command("grant")
@operator_command(Permission.PRINCIPALS_MANAGE, *ON_IDENTITY)
def grant(name: NameArg, roles: RoleArg) -> None:
    """Grant roles (the producer role stands alone and belongs to clients only).

    Example: leadpipe users grant sam sales
    """
    _change(lambda store, by: store.grant(name, roles, by=by))


@users_app.command("revoke")
@operator_command(Permission.PRINCIPALS_MANAGE, *ON_IDENTITY)
def revoke(name: NameArg, roles: RoleArg) -> None:
    """Take roles away.

    Example: leadpipe users revoke sam sales
    """
    _change(lambda store, by: store.revoke(name, roles, by=by))


@users_app.command("bind")
@operator_command(Permission.SOURCES_MANAGE, *ON_IDENTITY)
def bind(name: NameArg, source_id: SourceArg) -> None:
    """Let a producer client's API keys submit to the ingest API as this source (POST /v1/sources/SOURCE_ID).

    Example: leadpipe users bind web-form wp-contact
    """
    _change(lambda store, by: store.bind_source(name, source_id, by=by))


@users_app.command("unbind")
@operator_command(Permission.SOURCES_MANAGE, *ON_IDENTITY)
def unbind(name: NameArg, source_id: SourceArg) -> None:
    """Stop a producer client's keys from submitting as this source.

    Example: leadpipe users unbind web-form wp-contact
    """
    _change(lambda store, by: store.unbind_source(name, source_id, by=by))


@users_app.command("bootstrap")
@without_operator("creates the first admin only while no enabled admin exists")
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
@operator_command(Permission.PRINCIPALS_MANAGE, *ON_IDENTITY)
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
        days = expires_in_days or settings.api_key_ttl_days
        expires_in = None if no_expiry else timedelta(days=days)
        created = store.create_key(name, by=operator(), label=label, expires_in=expires_in)
        typer.echo(f"key {created.key_id} for {name}, expires {_day(created.expires_at)}; shown once:")
        typer.echo(created.secret)


@keys_app.command("list")
@operator_command(Permission.PRINCIPALS_READ, *ON_IDENTITY)
def list_keys(name: Annotated[str | None, typer.Argument(help="Only this user's or client's keys")] = None) -> None:
    """API keys with owner, state, expiry and last use (never the secret).

    Example: leadpipe keys list ana
    """
    with _store() as (store, _settings):
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
@operator_command(Permission.PRINCIPALS_MANAGE, *ON_IDENTITY)
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key id (keys list shows it)")]) -> None:
    """Revoke an API key: refused from the next request on.

    Example: leadpipe keys revoke 7x2kq4mzp3ab
    """
    with _store() as (store, _settings):
        store.revoke_key(key_id, by=operator())
        typer.echo(f"key {key_id} revoked")


def _day(moment: datetime | None, never: str = "never") -> str:
    return never if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
