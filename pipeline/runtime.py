"""Wiring from Settings to the objects the edges share (engine, key store, codec, policy).

Built once per process and passed down; nothing below this module reads settings or creates its own engine.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from pipeline.config import Settings
from pipeline.crypto.codec import RecordCodec
from pipeline.crypto.keystore import SqlKeyStore
from pipeline.crypto.sealing import Sealer
from pipeline.db import make_engine


@dataclass
class Runtime:
    """Lazily built process-wide resources."""

    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        url = self.settings.resolved_database_url
        if url.startswith("sqlite:///"):
            self.settings.home.mkdir(parents=True, exist_ok=True)
        return make_engine(url)

    @cached_property
    def keystore(self) -> SqlKeyStore:
        return SqlKeyStore(self.engine, self.settings.kek_bytes())

    @cached_property
    def codec(self) -> RecordCodec:
        return RecordCodec(Sealer(self.keystore))

    @cached_property
    def pepper(self) -> bytes:
        return self.settings.pepper_bytes()


def tune_gc(gen0_threshold: int) -> None:
    """Take what start-up allocated (modules, the app, the compiled policy) out of the cyclic collector's scans and
    collect the youngest generation every ``gen0_threshold`` allocations instead of Python's 700 (0: untouched).

    Why: a batch of events allocates tens of thousands of short-lived objects (pydantic models, dicts), nearly all
    freed by reference counting; with the default threshold the collector ran every few events and, from time to
    time, scanned every live object of the process. ``bench/processing_step.py`` prints the step under both: 1.09-1.18x.
    """
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
