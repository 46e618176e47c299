"""``leadpipe serve``: the HTTP API (``pipeline.api.app``) under uvicorn.

On the embedded default's first start (not production), the first admin is created and its key written once to
``<LEADPIPE_HOME>/secrets/bootstrap-admin-key`` (mode 0600); the log names the file, never the key.
"""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from pipeline.clikit import DATABASE, KAFKA, needs
from pipeline.config import get_settings
from pipeline.db import ensure_schema
from pipeline.identity.bootstrap import ensure_bootstrap_admin
from pipeline.identity.operator import embedded_default
from pipeline.identity.store import IdentityStore
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.runtime import Runtime


@needs(KAFKA, DATABASE)
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address; default LEADPIPE_INGEST_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port; default LEADPIPE_INGEST_PORT.")] = None,
) -> None:
    """Serve the ingest API (and the review, CRM and DPO routers) until interrupted.

    Start it after `leadpipe kafka up`, `leadpipe topics apply` and `leadpipe db upgrade`; what it accepts waits on
    Kafka until `leadpipe worker` processes it.

    Example: leadpipe serve --port 8080
    """
    from pipeline.api.app import create_api  # noqa: PLC0415  # start-up: FastAPI and every router (0.8-1.4 s)

    settings = get_settings()
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    if embedded_default(settings):
        ensure_bootstrap_admin(settings, IdentityStore(runtime.engine, settings.api_key_pepper_bytes()))
    publisher = ConfirmingPublisher(settings)
    app = create_api(runtime, publisher)
    bind = f"{host or settings.ingest_host}:{port or settings.ingest_port}"
    typer.echo(f"leadpipe API on http://{bind} (OpenAPI at /openapi.json, health at /healthz); Ctrl-C stops it")
    try:
        # log_config=None: uvicorn's loggers go through leadpipe's redacting handler instead of their own
        uvicorn.run(app, host=host or settings.ingest_host, port=port or settings.ingest_port, log_config=None)
    finally:
        publisher.close()
