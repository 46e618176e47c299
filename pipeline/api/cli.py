"""``leadpipe serve``: the HTTP API (``pipeline.api.app``) on uvicorn, with its admin port (``pipeline.http.server``).

Each worker process builds its own app (``app_factory``): its own producer, database pool and group commit. On the
embedded default's first start (not production), the first admin is created, before the workers start, and its key
written once to ``<LEADPIPE_HOME>/secrets/bootstrap-admin-key`` (mode 0600); the log names the file, never the key.
"""

from __future__ import annotations

import atexit
from typing import Annotated, Any

import typer

from pipeline import tracing
from pipeline.clikit import DATABASE, KAFKA, needs
from pipeline.config import get_settings
from pipeline.db import ensure_schema
from pipeline.http.app import wants_hsts
from pipeline.http.server import CannotListen, PortDispatch
from pipeline.http.server import serve as serve_http
from pipeline.identity.bootstrap import ensure_bootstrap_admin
from pipeline.identity.operator import embedded_default
from pipeline.identity.store import IdentityStore
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.logging import configure_logging
from pipeline.rights.restore import UnappliedErasuresError, require_reapplied
from pipeline.runtime import Runtime, tune_gc


def app_factory() -> Any:
    """The app one worker serves: the API, and the admin app on the admin port (called by uvicorn in each worker)."""
    from pipeline.api.app import create_api  # noqa: PLC0415  # start-up: FastAPI and every router (0.8-1.4 s)

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    tracing.configure(settings, "leadpipe-api")
    runtime = Runtime(settings)
    publisher = ConfirmingPublisher(settings, delivery_timeout_s=settings.ingest_timeout_s)
    atexit.register(publisher.close)
    app = create_api(runtime, publisher)
    tune_gc(settings.gc_gen0_threshold)
    return PortDispatch(app, app.state.admin, settings.admin_port)


@needs(KAFKA, DATABASE)
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address; default LEADPIPE_INGEST_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port; default LEADPIPE_INGEST_PORT.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Processes sharing the ports (one per core); default LEADPIPE_API_WORKERS."),
    ] = None,
) -> None:
    """Serve the ingest API (and the review, CRM and DPO routers) until interrupted; /metrics and /docs on the admin
    port (LEADPIPE_ADMIN_PORT).

    Start it after `leadpipe kafka up`, `leadpipe topics apply` and `leadpipe db upgrade`; what it accepts waits on
    Kafka until `leadpipe worker` processes it.

    Example: leadpipe serve --port 8080 --workers 2
    """
    settings = get_settings()
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)  # once, before the workers start
    try:
        require_reapplied(runtime)  # no reads of a restored database that brought erased subjects back
        if embedded_default(settings):
            ensure_bootstrap_admin(settings, IdentityStore(runtime.engine, settings.api_key_pepper_bytes()))
    except UnappliedErasuresError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    finally:
        runtime.engine.dispose()  # the workers open their own pools
    admin = (settings.admin_host, settings.admin_port) if settings.admin_port is not None else None
    try:
        serve_http(
            "pipeline.api.cli:app_factory",
            host=host or settings.ingest_host,
            port=port or settings.ingest_port,
            admin=admin,
            workers=workers or settings.api_workers,
            max_header_bytes=settings.http_max_header_bytes,
            max_header_fields=settings.http_max_header_fields,
            header_timeout_s=settings.http_header_timeout_s,
            body_timeout_s=settings.http_body_timeout_s,
            max_connections=settings.http_max_connections,
            hsts=wants_hsts(settings),
        )
    except CannotListen as exc:
        typer.echo(
            f"leadpipe: {exc}; stop what listens there, or choose other ports (--host, --port, LEADPIPE_INGEST_PORT; "
            "LEADPIPE_ADMIN_HOST, LEADPIPE_ADMIN_PORT)",
            err=True,
        )
        raise typer.Exit(1) from None
