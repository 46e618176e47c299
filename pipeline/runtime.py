"""Wiring from Settings to the objects the edges share (engine, key store, codec, policy).

Built once per process and passed down; nothing below this module reads settings or creates its own engine.
"""

from __future__ import annotations

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
