"""The worker: which agents it runs (``REGISTRARS``), the app with them added, and running it until stopped.

A registrar is ``register(app, runtime)``: it adds one area's agents, tables and timers to the app. Add an area's
registrar to ``REGISTRARS``; ``leadpipe worker --only module:function`` runs a chosen few (the dedicated rights
worker runs ``pipeline.agents.rights:register`` alone).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

import faust

from pipeline import tracing
from pipeline.agents import processing, review, rights, sinks
from pipeline.agents.app import LeadpipeApp, build_app, policy_for
from pipeline.agents.health import worker_health
from pipeline.agents.metrics import track_consumer_lag
from pipeline.db import ensure_schema
from pipeline.logging import get_logger
from pipeline.rights.restore import require_reapplied
from pipeline.runtime import Runtime, tune_gc

log = get_logger(__name__)

Registrar = Callable[[LeadpipeApp, Runtime], object]

#: Every area's agents, in the order they are added to the app.
REGISTRARS: list[Registrar] = [processing.register, review.register, sinks.register, rights.register]


def registrar_name(register: Registrar) -> str:
    """``module:function``, as ``leadpipe worker --only`` takes it."""
    return f"{register.__module__}:{register.__qualname__}"


def registrar(reference: str) -> Registrar:
    """The registrar a ``module:function`` reference names (``leadpipe worker --only``).

    Looked up by import, not only in ``REGISTRARS``: a benchmark runs the worker with a registrar of its own
    (``bench/_passthrough_agent.py``).
    """
    for known in REGISTRARS:
        if registrar_name(known) == reference:
            return known
    module_name, _, function_name = reference.partition(":")
    found = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(found):
        raise ValueError(f"{reference!r} names no registrar (expected module:function)")
    register: Registrar = found
    return register


def create_app(runtime: Runtime, registrars: Sequence[Registrar] | None = None) -> LeadpipeApp:
    """The worker's faust app with every registrar's agents added (default: ``REGISTRARS``), and its consumer group's
    lag on ``/metrics`` when faust's web server is on."""
    chosen = list(REGISTRARS if registrars is None else registrars)
    app = build_app(runtime)
    worker_health(app, runtime.settings, runtime.engine)  # /readyz, /livez and their gauges, whatever runs
    for register in chosen:
        register(app, runtime)
    if runtime.settings.worker_web_enabled:
        track_consumer_lag(app, runtime.settings)
    log.info(
        "worker_app_created",
        app_id=app.conf.id,
        guarantee=runtime.settings.processing_guarantee,
        registrars=[registrar_name(r) for r in chosen],
    )
    return app


def run_worker(runtime: Runtime, registrars: Sequence[Registrar] | None = None) -> Any:
    """Run the worker in this process until it is stopped (SIGTERM/SIGINT); ends in ``SystemExit``."""
    policy_for(runtime.settings)  # refuse to start on an invalid policy, before joining the group
    ensure_schema(runtime.engine)
    require_reapplied(runtime)  # nor on a restored database that brought erased subjects back
    tracing.configure(runtime.settings, f"leadpipe-{runtime.settings.app_id}")
    app = create_app(runtime, registrars)
    worker = make_worker(app, runtime.settings.log_level or "INFO")
    tune_gc(runtime.settings.gc_gen0_threshold)
    return worker.execute_from_commandline()


def make_worker(app: LeadpipeApp, loglevel: str, stdout: IO[str] | None = None) -> faust.Worker:
    """faust's worker for ``app``, quiet, with leadpipe's logging; its start-up spinner only on a terminal (it
    wrote cursor escapes into a log file or a container's log otherwise)."""
    out = stdout or sys.stdout
    worker = faust.Worker(
        app,
        loglevel=loglevel,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,  # keep leadpipe's redacting log set-up
        stdout=out,
    )
    if not out.isatty():
        worker.spinner = None
    return worker
