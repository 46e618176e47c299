"""Who runs an operator command: every ``leadpipe`` command declares the permission it needs, or that it needs none.

``@operator_command(Permission.X)`` on a command resolves the operator before the command's body runs and refuses
(exit 2, with the reason) when they lack ``X``; the body reads the principal with ``operator()`` and records it with
what it does. ``@without_operator("why")`` declares a command that acts for nobody (it starts a process or reads a
file with the deployment's own credentials). The declaration rides on the function (``ACCESS_ATTRIBUTE``), where the
permission matrix test reads it through typer's wrapper for every command of the ``leadpipe`` app.

The operator is the principal of an API key: ``--key-file`` (``leadpipe --key-file PATH ...``) or
``LEADPIPE_API_KEY``. On the embedded default (not production, the SQLite database under ``LEADPIPE_HOME``), whoever
runs the CLI owns the database file and every secret beside it, so without a key the command runs as the
bootstrapped admin (created on first use, its key written once to ``<LEADPIPE_HOME>/secrets/bootstrap-admin-key``),
recorded with ``auth: local``, and no permission is checked. Anywhere else a key is required: no free-text names.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from pipeline.clikit import Declaration
from pipeline.config import Settings, get_settings
from pipeline.db import ensure_schema
from pipeline.identity.bootstrap import bootstrap_key_path, ensure_bootstrap_admin
from pipeline.identity.permissions import Permission, allowed
from pipeline.identity.store import AuthenticationFailed, IdentityStore
from pipeline.models.identity import Principal
from pipeline.runtime import Runtime

EXIT_REFUSED = 2
API_KEY_ENV = "LEADPIPE_API_KEY"
#: The attribute a command function carries its declaration in (typer's wrapper copies it).
ACCESS_ATTRIBUTE = "leadpipe_access"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class NoOperator:
    """A command that acts for nobody, and why."""

    reason: str


Access = Permission | NoOperator

_current: ContextVar[Principal | None] = ContextVar("leadpipe_operator", default=None)
_key_file: ContextVar[Path | None] = ContextVar("leadpipe_key_file", default=None)


def use_key_file(path: Path | None) -> None:
    """The root ``--key-file`` option (``pipeline/cli.py`` sets it before any command runs)."""
    _key_file.set(path)


def operator_command(permission: Permission, *declarations: Declaration) -> Callable[[F], F]:
    """Declare and enforce the permission a command needs; the body reads the operator with ``operator()``.

    ``declarations``: what a group of commands shares besides (``pipeline/clikit.py``'s ``needs``, ``exits``),
    applied to the command underneath, where its ``--help`` and ``pipeline/cli.py`` read them."""

    def decorate(command: F) -> F:
        declared: Callable[..., Any] = command
        for declare in declarations:
            declared = declare(declared)

        @functools.wraps(declared)
        def run(*args: Any, **kwargs: Any) -> Any:
            principal = resolve_operator(get_settings(), permission)
            token = _current.set(principal)
            try:
                return declared(*args, **kwargs)
            finally:
                _current.reset(token)

        setattr(run, ACCESS_ATTRIBUTE, permission)
        return run  # type: ignore[return-value]

    return decorate


def without_operator(reason: str) -> Callable[[F], F]:
    """Declare a command that needs no operator (``reason`` says why)."""

    def decorate(command: F) -> F:
        setattr(command, ACCESS_ATTRIBUTE, NoOperator(reason))
        return command

    return decorate


def access_of(callback: Callable[..., Any] | None) -> Access | None:
    found = getattr(callback, ACCESS_ATTRIBUTE, None)
    return found if isinstance(found, Permission | NoOperator) else None


def operator() -> Principal:
    """The operator of the running command (inside an ``@operator_command``)."""
    found = _current.get()
    if found is None:
        raise RuntimeError("operator() outside an @operator_command")
    return found


def refuse(message: str) -> NoReturn:
    typer.echo(f"refused: {message}", err=True)
    raise typer.Exit(EXIT_REFUSED)


def presented_key() -> str | None:
    """The operator's API key: ``--key-file`` (the root option) first, then ``LEADPIPE_API_KEY``."""
    key_file = _key_file.get()
    if key_file is not None:
        try:
            return key_file.read_text().strip()
        except OSError as exc:
            refuse(f"cannot read --key-file {key_file}: {exc.strerror}")
    return os.environ.get(API_KEY_ENV) or None


def embedded_default(settings: Settings) -> bool:
    """Not production, on the SQLite database under ``LEADPIPE_HOME``: the machine's owner holds everything."""
    return settings.environment != "production" and settings.database_url is None


@contextmanager
def identity_store(settings: Settings) -> Iterator[IdentityStore]:
    engine = Runtime(settings).engine  # the embedded default's directory is made on first use
    try:
        ensure_schema(engine)
        yield IdentityStore(engine, settings.api_key_pepper_bytes())
    finally:
        engine.dispose()


def resolve_operator(settings: Settings, permission: Permission) -> Principal:
    """The principal running a command, checked against ``permission``; exits 2 with the reason when refused."""
    with identity_store(settings) as store:
        return principal_for(store, settings, permission)


def principal_for(store: IdentityStore, settings: Settings, permission: Permission) -> Principal:
    key = presented_key()
    if key:
        try:
            principal = store.authenticate_key(key)
        except AuthenticationFailed as exc:
            refuse(f"the API key does not authenticate ({exc.reason})")
        if not allowed(principal, permission):
            refuse(f"{principal.display_name} lacks the permission {permission.value}")
        return principal
    if not embedded_default(settings):
        refuse(
            f"this command needs {permission.value}: set {API_KEY_ENV} to an API key of yours, or pass "
            "leadpipe --key-file PATH"
        )
    path = bootstrap_key_path(settings)
    if not path.exists():
        ensure_bootstrap_admin(settings, store)
    if not path.exists():
        refuse(f"an admin exists but {path} does not: set {API_KEY_ENV} to an API key of yours")
    try:
        # whoever runs the CLI here owns the database and the key file: the key names the admin, it is not what lets
        # them in, so its 30 days' expiry (it is an API key over HTTP too) does not lock the machine's owner out
        principal = store.authenticate_key(path.read_text().strip(), allow_expired=True)
    except AuthenticationFailed as exc:
        refuse(f"the bootstrapped admin's key in {path} does not authenticate ({exc.reason}); set {API_KEY_ENV}")
    return principal.model_copy(update={"auth": "local"})
